"""JSON Lines and JSON arrays of objects: keys as columns, nested objects flattened, rows streamed and counted."""

import gzip
import json

import pytest

from aegir.tables import TableError
from aegir.tables.readers import read_json, read_table_file
from aegir.tables.readers.jsonl import flatten, json_tables

ROWS = [{"id": 1, "name": "Ada", "address": {"city": "London", "geo": {"lat": 51.5}}, "tags": ["a", "b"]},
        {"id": 2, "name": None, "address": {"city": "Paris"}, "active": True},
        {"id": 3, "name": "Ché", "address": {}, "extra": {"k": [1, {"x": 2}]}}]


def test_flatten_dots_nested_objects_and_writes_other_values_as_json():
    assert flatten(ROWS[0]) == {"id": "1", "name": "Ada", "address.city": "London", "address.geo.lat": "51.5",
                                "tags": '["a", "b"]'}
    assert flatten(ROWS[1])["name"] == "" and flatten(ROWS[1])["active"] == "true"
    assert flatten(ROWS[2]) == {"id": "3", "name": "Ché", "address": "{}", "extra.k": '[1, {"x": 2}]'}


@pytest.mark.parametrize("form", ["lines", "document"])
def test_rows_keys_and_missing_values(tmp_path, form):
    p = tmp_path / ("t.jsonl" if form == "lines" else "t.json")
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS) + "\n\n" if form == "lines" else \
        json.dumps(ROWS, indent=2, ensure_ascii=False)
    p.write_text(text, encoding="utf-8")
    t = read_table_file(p)
    assert t.header == ["id", "name", "address.city", "address.geo.lat", "tags", "active", "address", "extra.k"]
    assert t.columns[0] == ["1", "2", "3"] and t.columns[1] == ["Ada", "", "Ché"]
    assert t.columns[3] == ["51.5", "", ""] and t.columns[5] == ["", "true", ""]
    assert (t.meta["source"], t.meta["format"], t.meta["rows_total"], t.meta["header"]) == ("json", form, 3, "given")


def test_long_files_are_sampled_counted_and_may_be_compressed(tmp_path):
    rows = [{"id": i, "even": i % 2 == 0} for i in range(5000)] + [{"id": 5000, "late": "only here"}]
    p = tmp_path / "t.ndjson.gz"
    p.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    head = read_json(p, max_rows=10)
    assert head.columns[0] == [str(i) for i in range(10)] and head.meta["rows_total"] == 5001
    assert head.header == ["id", "even"]  # the late key is in no kept row: no empty column for it
    assert (head.meta["row_sample"], head.meta["compression"]) == ("first", "gzip")
    spread = read_json(p, max_rows=10, spread=True)
    ids = [int(x) for x in spread.columns[0]]
    assert ids == sorted(ids) and ids[-1] > 1000 and spread.meta["rows_total"] == 5001
    assert read_table_file(p, max_rows=10, spread=True).columns == spread.columns  # seeded; found by its name


def test_an_api_dump_holding_one_array_of_rows(tmp_path):
    p = tmp_path / "dump.json"
    p.write_text(json.dumps({"count": 2, "data": ROWS[:2], "tags": ["x"]}, indent=2))
    t = read_json(p)
    assert t.meta["format"] == "document" and t.columns[0] == ["1", "2"] and t.header[:2] == ["id", "name"]


def test_positional_keys_read_as_no_header(tmp_path):
    # How SOTAB stores its tables (pandas to_json(orient="records", lines=True) of a frame without names).
    p = tmp_path / "Book_x.json.gz"
    p.write_bytes(gzip.compress(b'{"0": "Dune", "1": "Frank Herbert"}\n{"0": "Emma", "1": "Jane Austen"}\n'))
    t = read_table_file(p)
    assert t.header is None and t.columns == [["Dune", "Emma"], ["Frank Herbert", "Jane Austen"]]
    assert t.meta["header"] == "positions" and t.meta["format"] == "lines"


def test_errors_name_the_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"a": 1}\n{"a": 2,}\n')
    with pytest.raises(TableError, match=r"bad.jsonl, line 2: not a JSON object \("):
        read_json(p)
    p.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(TableError, match="bad.jsonl, line 2: expected a JSON object per line, got list"):
        read_json(p)
    p.write_text('{\n  "data": [{"a": 1}], "next": [{"page": 2}]\n}\n')
    with pytest.raises(TableError, match=r"bad.jsonl: no array of objects named 'rows'; its arrays of objects: "
                                         r"'data', 'next'"):
        read_json(p, table="rows")
    p.write_text('{\n  "count": 2, "tags": ["a", "b"]\n}\n')
    with pytest.raises(TableError, match=r"bad.jsonl: a JSON object whose rows are not clear.*it holds none"):
        read_json(p)
    p.write_text('{"a": 1}\n{"a": 2}\n')
    with pytest.raises(TableError, match=r"bad.jsonl: a table was named, but this is JSON Lines \(one table\)"):
        read_json(p, table="a")
    p.write_text("\n\n")
    with pytest.raises(TableError, match="bad.jsonl: no rows"):
        read_json(p)
    (tmp_path / "n.json").write_text("42\n")
    with pytest.raises(TableError, match="n.json, line 1: expected a JSON object per line, got int"):
        read_json(tmp_path / "n.json")
    (tmp_path / "s.json").write_text('  "just text"')
    with pytest.raises(TableError, match="s.json, line 1: expected a JSON object per line, got str"):
        read_json(tmp_path / "s.json")
    arr = tmp_path / "bad.json"
    arr.write_text('[{"a": 1}, 7]')
    with pytest.raises(TableError, match="bad.json: item 1 of the array is int, not an object"):
        read_json(arr)
    arr.write_text('[{"a": 1},\n {"a": }]')
    with pytest.raises(TableError, match=r"bad.json, line 2: not JSON"):
        read_json(arr)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"a": "café"}\n'.encode("latin-1"))
    with pytest.raises(TableError, match="latin.jsonl: not UTF-8 text"):
        read_json(latin)


def test_a_document_holds_tables_by_name_minified_or_not(tmp_path):
    """An API dump with several arrays of objects: the first by default, the others by table=; the same whether
    it is pretty-printed or minified on one line (which reads like one JSON Lines row unless it is a .json)."""
    doc = {"users": [{"id": 1, "email": "a@x.org"}, {"id": 2, "email": "b@y.org"}], "count": 2,
           "orders": [{"user": 1, "total": 9.5}], "tags": ["x"]}
    for name, text in (("pretty.json", json.dumps(doc, indent=2)), ("min.json", json.dumps(doc)),
                       ("min.json.gz", None)):
        p = tmp_path / name
        if text is None:
            p.write_bytes(gzip.compress(json.dumps(doc).encode()))
        else:
            p.write_text(text)
        assert json_tables(p) == ["users", "orders"]
        t = read_json(p)
        assert (t.header, t.columns) == (["id", "email"], [["1", "2"], ["a@x.org", "b@y.org"]])
        assert (t.meta["format"], t.meta["table"], t.meta["tables"]) == ("document", "users", ["users", "orders"])
        o = read_table_file(p, table="orders")
        assert (o.header, o.columns, o.meta["table"]) == (["user", "total"], [["1"], ["9.5"]], "orders")
    lines = tmp_path / "lines.json"  # JSON Lines under .json whose rows hold arrays of objects: every line a row
    lines.write_text("".join(json.dumps({"id": i, "items": [{"sku": i}]}) + "\n" for i in range(3)))
    assert json_tables(lines) == [] and read_json(lines).columns[0] == ["0", "1", "2"]  # the second was lost
    one = tmp_path / "row.jsonl"  # a .jsonl file's one line is one row, whatever it holds
    one.write_text(json.dumps(doc) + "\n")
    assert json_tables(one) == [] and read_json(one).n_rows == 1 and read_json(one).meta["format"] == "lines"
    record = tmp_path / "record.json"  # a one-line .json object without arrays of objects: one row, as before
    record.write_text('{"name": "Tea", "price": 3}')
    assert json_tables(record) == [] and read_json(record).columns == [["Tea"], ["3"]]
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps(doc["users"]))
    assert json_tables(arr) == [] and "table" not in read_json(arr).meta
    with pytest.raises(TableError, match=r"arr.json: a table was named, but the JSON document is an array"):
        read_json(arr, table="users")
