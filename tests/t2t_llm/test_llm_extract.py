import json

import pytest
from typer.testing import CliRunner

from aegir.t2t.extract import (
    ExtractionError, GrammarLimits, chunk_document, extract, extract_file, merge_rows, ndjson_grammar_ebnf,
    parse_schema_answer, predict_schema,
)
from aegir.t2t.ndjson import parse_ndjson
from aegir.t2t.schema import Schema

SCHEMAS = [
    {"structure": "kv_single", "fields": [{"name": "name"}, {"name": "area", "required": True},
                                          {"name": "price", "type": "integer"}, {"name": "open", "type": "boolean"},
                                          {"name": "food", "enum": ["Thai", 'Chinese "x"']}]},
    {"structure": "multi_row", "row_key": "player", "fields": ["player", {"name": "points", "type": "number"}]},
    {"structure": "multi_row", "tables": [{"name": "team", "fields": ["name", {"name": "wins", "type": "integer"}]},
                                          {"name": "player", "fields": ["name", "pts"]}]},
]


def _check_rows(text, schema):
    p = parse_ndjson(text, "strict")
    assert p.ok, text
    for row in p.rows:
        table = row.get("_table") if schema.tables else None
        assert list(row) == schema.key_order(table)  # the schema's keys, in order
    return p.rows


@pytest.mark.parametrize("sd", SCHEMAS, ids=["kv_typed", "multi_row", "multi_table"])
def test_constrained_extraction_is_always_valid_ndjson(tiny, fast_cfg, sd):
    schema = Schema.from_dict(sd)
    for doc in ["The Eagle is a cheap Thai place.", "Hawks 95, Magic 88. Horford had 17 points."]:
        res = extract(doc, schema=schema, model=tiny, cfg=fast_cfg.replace(max_new_tokens_table=48))
        assert res.rows and res.schema_source == "given"
        rows = _check_rows(res.ndjson, schema)
        assert rows == res.rows
        if sd["structure"] == "kv_single":
            assert rows[0]["area"] is not None  # required -> never null
            assert rows[0]["food"] in (None, "Thai", 'Chinese "x"')
            assert rows[0]["price"] is None or isinstance(rows[0]["price"], int)


def test_budget_exhaustion_falls_back_to_a_complete_row(tiny, fast_cfg):
    schema = Schema.from_dict(SCHEMAS[0])
    # 3 tokens cannot hold a row; the tight second pass (bounded values, budget >= worst case) must
    res = extract("The Eagle is a cheap Thai place.", schema=schema, model=tiny,
                  cfg=fast_cfg.replace(max_new_tokens_table=3))
    assert res.fallback_chunks == 1
    _check_rows(res.ndjson, schema)


def test_unconstrained_random_model_is_not_valid(tiny, fast_cfg):
    res = extract("The Eagle is a cheap Thai place.", schema=Schema.from_dict(SCHEMAS[0]), model=tiny,
                  constrained=False, cfg=fast_cfg.replace(max_new_tokens_table=24))
    assert res.rows == [] and res.ndjson == ""  # what the grammar prevents


def test_constrained_pi1_writes_a_parseable_schema(tiny, fast_cfg):
    schema, raw = predict_schema(tiny, "The Eagle is a cheap Thai place.", cfg=fast_cfg)
    assert isinstance(schema, Schema) and json.loads(raw)


def test_long_documents_are_chunked_and_rows_merged(tiny, fast_cfg):
    doc = "\n\n".join(f"Paragraph {i}: " + "the Eagle is in the riverside area. " * 4 for i in range(6))
    chunks = chunk_document(doc, 200)
    assert len(chunks) > 1 and all(len(c) <= 200 for c in chunks)
    assert "".join(chunks).replace("\n", "").replace(" ", "") == doc.replace("\n", "").replace(" ", "")
    schema = Schema.from_dict(SCHEMAS[0])
    res = extract(doc, schema=schema, model=tiny, cfg=fast_cfg.replace(chunk_chars=200, max_new_tokens_table=48))
    assert res.n_chunks == len(chunks) and len(res.rows) == 1  # kv_single: one merged row
    _check_rows(res.ndjson, schema)


def test_merge_rows_by_row_key_and_first_non_null():
    kv = Schema.from_dict({"structure": "kv_single", "fields": ["a", "b"]})
    assert merge_rows([[{"a": None, "b": "1"}], [{"a": "x", "b": "2"}]], kv) == [{"a": "x", "b": "1"}]
    mr = Schema.from_dict({"structure": "multi_row", "row_key": "p", "fields": ["p", "pts"]})
    got = merge_rows([[{"p": "Al", "pts": None}, {"p": "Jo", "pts": "3"}], [{"p": "Al", "pts": "17"},
                                                                          {"p": "Jo", "pts": "3"}]], mr)
    assert got == [{"p": "Al", "pts": "17"}, {"p": "Jo", "pts": "3"}]


def test_grammar_text_and_schema_repair():
    g = ndjson_grammar_ebnf(Schema.from_dict(SCHEMAS[1]), GrammarLimits(value_units=8, max_rows=5))
    assert g.startswith('root ::= row ("\\n" row){0,4}')
    assert 'row_0 ::= "{\\"player\\":" v_0_0 ",\\"points\\":" v_0_1 "}"' in g
    s = parse_schema_answer('{"structure":"kv_single","fields":[{"name":"a","type":"string","required":false},'
                            '{"name":"a","type":"string","required":false}],"row_key":"zz"}')
    assert s.field_names == ["a", "a_2"] and s.row_key is None
    with pytest.raises(ValueError):
        parse_schema_answer("nope")


def test_extract_file_and_cli(tiny, tmp_path):
    from aegir.cli import app

    doc = tmp_path / "doc.txt"
    doc.write_text("Aromi is a coffee shop in the city centre.", encoding="utf-8")
    sp = tmp_path / "s.json"
    sp.write_text(json.dumps(SCHEMAS[0]))
    files = extract_file(doc, tmp_path / "out", schema_path=sp, model=tiny)
    assert files.result.base_only == ["pi_2"]  # the schema was given: pi_1 did not run
    assert Schema.from_json((tmp_path / "out" / "doc.schema.json").read_text()) == Schema.from_dict(SCHEMAS[0])
    _check_rows((tmp_path / "out" / "doc.ndjson").read_text(), files.result.schema)

    runner = CliRunner()
    r = runner.invoke(app, ["extract", str(doc), "--schema", str(sp), "--model", "tiny", "--out-dir",
                            str(tmp_path / "cli")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "cli" / "doc.ndjson").read_text().strip()
    r = runner.invoke(app, ["extract", str(tmp_path / "missing.txt"), "--model", "tiny"])
    assert r.exit_code == 2 and "no such file" in r.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"structure": "kv_single"}')
    r = runner.invoke(app, ["extract", str(doc), "--schema", str(bad), "--model", "tiny"])
    assert r.exit_code == 2 and "bad.json" in r.output and "fields" in r.output
    with pytest.raises(ExtractionError, match="empty"):
        extract("   ", schema=Schema.from_dict(SCHEMAS[0]), model=tiny)


def test_extract_without_schema_runs_pi1_then_pi2(tiny, fast_cfg):
    res = extract("Aromi is a coffee shop in the city centre.", model=tiny,
                  cfg=fast_cfg.replace(max_new_tokens_table=32))
    assert res.schema_source == "pi_1" and res.schema_raw and res.base_only == ["pi_1", "pi_2"]
    _check_rows(res.ndjson, res.schema)
