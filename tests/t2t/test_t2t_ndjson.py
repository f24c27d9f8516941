"""NDJSON parsing edge cases and serialisation."""

import json

import pytest

from aegir.t2t.ndjson import parse_ndjson, rows_to_ndjson
from aegir.t2t.schema import build_assistant_schema
from aegir.t2t.gold import GoldTable


def test_empty_and_blank():
    for text in ("", "   \n\n", None):
        p = parse_ndjson(text)
        assert p.rows == [] and p.n_lines == 0 and p.n_valid == 0 and not p.ok
        assert p.valid_rate == 0.0 and p.prefix_rate == 0.0


def test_truncated_last_line_keeps_valid_prefix():
    text = '{"a": 1}\n{"a": 2}\n{"a": 3, "b": "unfini'
    for mode in ("strict", "lenient"):
        p = parse_ndjson(text, mode)
        assert p.rows == [{"a": 1}, {"a": 2}]
        assert (p.n_lines, p.n_valid, p.valid_prefix) == (3, 2, 2)
        assert p.errors[0].line == 3 and "invalid JSON" in p.errors[0].message
        assert abs(p.prefix_rate - 2 / 3) < 1e-12


def test_prefix_stops_at_first_bad_line():
    p = parse_ndjson('{"a":1}\nnope\n{"a":3}', "strict")
    assert (p.n_lines, p.n_valid, p.valid_prefix) == (3, 2, 1)
    assert p.rows == [{"a": 1}, {"a": 3}]


def test_code_fence_strict_vs_lenient():
    text = 'Here you go:\n```json\n{"a": 1}\n{"a": 2}\n```\nHope this helps!'
    s = parse_ndjson(text, "strict")
    assert s.n_valid == 2 and s.n_lines == 6 and not s.ok
    le = parse_ndjson(text, "lenient")
    assert le.fenced and le.ok and le.rows == [{"a": 1}, {"a": 2}] and le.n_lines == 2
    # an unclosed fence (generation stopped) still yields its rows
    le2 = parse_ndjson('```json\n{"a": 1}\n{"a": 2', "lenient")
    assert le2.rows == [{"a": 1}] and le2.n_lines == 2


def test_trailing_text_and_commas_lenient_only():
    text = '{"a": 1} <- first row\n{"a": 2},'
    assert parse_ndjson(text, "strict").n_valid == 0
    le = parse_ndjson(text, "lenient")
    assert le.rows == [{"a": 1}, {"a": 2}] and le.ok


def test_non_objects_are_errors():
    p = parse_ndjson('[1, 2]\n"x"\n3\n{"a": 1}', "strict")
    assert p.n_valid == 1 and p.n_lines == 4
    assert all("expected a JSON object" in e.message for e in p.errors)


def test_lenient_accepts_whole_array_and_skips_chatter():
    le = parse_ndjson('[{"a": 1}, {"a": 2}]', "lenient")
    assert le.rows == [{"a": 1}, {"a": 2}] and le.ok
    le2 = parse_ndjson('Rows:\n{"a": 1}\nThat is all.', "lenient")
    assert le2.rows == [{"a": 1}] and le2.n_lines == 1


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        parse_ndjson("{}", "loose")


def test_rows_to_ndjson_orders_keys_and_fills_null():
    text = rows_to_ndjson([{"b": 2, "a": "x", "z": True}, {}], ["a", "b"])
    lines = text.split("\n")
    assert lines[0] == '{"a":"x","b":2,"z":true}'
    assert lines[1] == '{"a":null,"b":null}'
    assert parse_ndjson(text).rows == [json.loads(l) for l in lines]
    assert rows_to_ndjson([{"a": "é"}], ["a"]) == '{"a":"é"}'


def test_rows_to_ndjson_with_multi_table_schema():
    team = GoldTable.from_grid([["", "Wins"], ["Hawks", "46"]], "Team")
    player = GoldTable.from_grid([["", "Points"], ["Al", "17"]], "Player")
    s = build_assistant_schema([team, player])
    text = rows_to_ndjson([{"points": "17", "player": "Al", "_table": "player"}], s)
    assert text == '{"_table":"player","player":"Al","points":"17"}'
