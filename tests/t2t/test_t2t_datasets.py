"""Loaders (shared + user formats, clear errors), synthetic documents, SFT records and length buckets."""

import json

import pytest

from aegir.tables.table import TableError
from aegir.t2t.datasets import (
    bucket_records,
    build_sft_dataset,
    build_sft_records,
    estimate_tokens,
    load_e2e,
    load_examples,
    load_instructie,
    load_rotowire,
    load_user_jsonl,
    load_wikitabletext,
    synthetic_examples,
)
from aegir.t2t.ndjson import parse_ndjson
from aegir.t2t.prompts import parse_sections
from aegir.t2t.sanity import check_sft_record
from aegir.t2t.schema import Schema


def _write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n", encoding="utf-8")
    return p


def test_shared_loaders(shared_data):
    e2e = load_e2e(limit=5)
    assert e2e[0].id == "e2e-dev-0" and e2e[0].tables[0].kv
    assert e2e[0].tables[0].pairs == [("Name", "Alimentum"), ("Area", "City centre"), ("Family friendly", "No")]
    assert "original_mr" in e2e[0].extra and "original_mr" not in e2e[0].metadata
    wtt = load_wikitabletext(limit=3)
    assert wtt[0].tables[0].header == ["title", "subtitle", "name"]
    roto = load_rotowire()
    assert len(roto) == 5 and [t.name for t in roto[0].tables] == ["Team", "Player"]
    team = roto[0].tables[0]
    assert team.row_header and team.header[0] == "Team" and team.rows[0][:3] == ["Hawks", "12", "95"]
    assert len(load_examples("e2e", limit=7)) == 7


def test_user_jsonl_layouts(tmp_path):
    p = _write(tmp_path, "u.jsonl", [
        {"id": "a", "text": "Ann is 31.", "table": {"Name": "Ann", "Age": "31"}},
        {"document": "Bob, 40.", "table": [["Name", "Bob"], ["Age", "40"]]},
        {"text": "Pens 2, ink 3.", "header": ["Item", "Qty"], "rows": [["pen", "2"], ["ink", "3"]]},
        {"text": "t", "tables": [{"name": "T", "header": ["k", "v"], "rows": [["a", "1"]], "row_header": True}],
         "metadata": {"language": "de", "secret": 1}},
    ])
    exs = load_user_jsonl(p)
    assert [e.id for e in exs] == ["a", "user-2", "user-3", "user-4"]
    assert exs[0].tables[0].pairs == [("Name", "Ann"), ("Age", "31")]
    assert exs[2].tables[0].rows == [["pen", "2"], ["ink", "3"]] and not exs[2].tables[0].kv
    assert exs[3].metadata == {"language": "de"} and exs[3].tables[0].row_header


def test_instructie_records(tmp_path):
    p = _write(tmp_path, "ie.jsonl", [{"instruction": "List the products and prices.", "input": "A costs 3, B 4.",
                                       "header": ["Product", "Price"], "rows": [["A", "3"], ["B", "4"]]}])
    ex = load_instructie(p)[0]
    assert ex.source == "instructie"
    assert ex.metadata["table_hints"]["instruction"] == "List the products and prices."
    rec = build_sft_records([ex], "schema")[0]
    assert parse_sections(rec["messages"][1]["content"]).metadata["table_hints"]["instruction"].startswith("List")
    assert Schema.from_json(rec["messages"][2]["content"]).structure == "multi_row"


@pytest.mark.parametrize("line,needle", [
    ("{oops", "u.jsonl:2: invalid JSON"),
    ('["x"]', "u.jsonl:2: expected a JSON object"),
    ('{"table": [["a", "b"]]}', "u.jsonl:2: missing or empty field 'text'"),
    ('{"text": "x"}', "u.jsonl:2: no gold table"),
    ('{"text": "x", "table": [["a"]]}', "u.jsonl:2: field 'table'"),
    ('{"text": "x", "header": ["a", "b"], "rows": [["1"]]}', "u.jsonl:2"),
    ('{"text": "x", "tables": [{"header": ["a"]}]}', "tables[0]: missing field 'rows'"),
    ('{"text": "x", "table": {"a": "1"}, "metadata": 3}', "field 'metadata'"),
])
def test_bad_records_name_file_line_and_field(tmp_path, line, needle):
    p = _write(tmp_path, "u.jsonl", [{"text": "ok", "table": {"a": "1"}}, line])
    with pytest.raises(TableError) as e:
        load_user_jsonl(p)
    assert needle in str(e.value)


def test_missing_inputs(tmp_path):
    with pytest.raises(TableError, match="no such file"):
        load_user_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(TableError, match="not a file and not one of"):
        load_examples("nowhere")


def test_synthetic_deterministic_and_evidence_only():
    a, b = synthetic_examples(25, seed=7), synthetic_examples(25, seed=7)
    assert [x.document for x in a] == [x.document for x in b]
    assert [x.document for x in synthetic_examples(25, seed=8)] != [x.document for x in a]
    styles = {x.extra["style"] for x in a}
    assert styles == {"prose", "kv_list", "markdown", "bullets", "report"}
    for ex in a:
        for t in ex.tables:
            for row in t.rows:
                for v in row:
                    assert v == "" or v in ex.document, (ex.id, v)  # every gold value is stated verbatim


def test_sft_records_shape_and_targets():
    exs = synthetic_examples(15, seed=2)
    for stage in ("schema", "table"):
        recs = build_sft_records(exs, stage)
        assert len(recs) == 15
        for r, ex in zip(recs, exs):
            assert set(r) == {"messages", "stage", "id", "data_source", "ground_truth", "est_tokens"}
            assert r["id"] == ex.id and r["data_source"] == "aegir_t2t/synthetic" and r["stage"] == stage
            assert check_sft_record(r) == []
            assert r["est_tokens"] == estimate_tokens(r["messages"])
        if stage == "table":
            target = recs[0]["messages"][2]["content"]
            assert parse_ndjson(target).ok and "```" not in target
    with pytest.raises(ValueError, match="stage"):
        build_sft_records(exs, "both")


def test_estimate_tokens():
    msgs = [{"role": "user", "content": "x" * 400}, {"role": "assistant", "content": "y" * 2}]
    assert estimate_tokens(msgs) == 101 + 8
    assert estimate_tokens(msgs, chars_per_token=2.0) == 201 + 8


def _rec(tokens):
    # one user message of (tokens - 4) * 4 chars -> est_tokens == tokens
    return {"messages": [{"role": "user", "content": "x" * ((tokens - 4) * 4)}]}


def test_bucket_records_margin_moves_near_boundary_records_up():
    recs = [_rec(n) for n in (100, 1638, 1639, 2048, 3276, 3300, 6553, 7000, 9000)]
    with pytest.warns(UserWarning, match="1 record"):
        b = bucket_records(recs)
    sizes = {k: [estimate_tokens(r["messages"]) for r in v] for k, v in b.items()}
    # 1638 * 1.25 = 2047.5 fits 2048; 1639 * 1.25 > 2048 moves up; 7000 fits 8192 only without margin
    assert sizes == {2048: [100, 1638], 4096: [1639, 2048, 3276], 8192: [3300, 6553, 7000]}
    no_margin = bucket_records(recs[:-1], bucket_margin=0.0)
    assert [len(v) for v in no_margin.values()] == [4, 2, 2]
    with pytest.raises(ValueError, match="increasing"):
        bucket_records(recs, stages=(4096, 2048))


def test_build_sft_dataset_writes_files(tmp_path, shared_data):
    res = build_sft_dataset("rotowire", "table", tmp_path / "out")
    assert res.n_records == 5 and sum(res.buckets.values()) == 5
    lines = (tmp_path / "out" / "table.jsonl").read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["stage"] == "table"
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["n_records"] == 5 and "table_2048.jsonl" in man["files"]
