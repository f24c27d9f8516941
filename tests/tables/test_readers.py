import gzip
import json
import re

import pandas as pd
import pytest

from aegir.tables import Table, TableError
from aegir.tables.labels import LABEL_DIMS, LabelVocab, label_list
from aegir.tables.readers import (
    from_dataframe, gittables_folds, read_csv, read_gittables, read_labeled_csv_folder, read_sotab,
    read_sotab_table, read_turl, sotab_splits,
)


# ---------------------------------------------------------------- real shared data
def test_sotab_cta_train_counts(shared_data):
    splits = sotab_splits(shared_data / "sotab_v2_sample")
    ds = read_sotab(*splits["cta-train"])
    assert (len(ds.tables), len(ds.targets)) == (1199, 1640)  # the README's figures
    assert ds.task == "cta" and ds.skipped == 0
    assert set(ds.label_counts()) <= set(label_list("sotab-cta"))
    val = read_sotab(*splits["cta-validation"])
    assert (len(val.tables), len(val.targets)) == (199, 765)
    assert all(t.header is None for t in val.tables)  # SOTAB is headerless


def test_sotab_cpa_train(shared_data):
    ds = read_sotab(*sotab_splits(shared_data / "sotab_v2_sample")["cpa-train"])
    assert ds.task == "cpa" and len(ds.targets) == 2154 and len(ds.tables) == 1263
    assert all(t.main_column == 0 for t in ds.targets)
    assert set(ds.label_counts()) <= set(label_list("sotab-cpa"))


def test_gittables_folds(shared_data):
    folds = gittables_folds(shared_data / "gittables_semtab22", "dbpedia")
    assert [p.name for p in folds] == [f"db_semi1_cv_{k}.csv" for k in range(4)]
    ds = read_gittables(folds[0])
    assert ds.tables and ds.targets
    assert set(ds.label_counts()) <= set(label_list("gittables-dbpedia"))
    # unlabelled context columns are present as columns but are not targets
    assert sum(t.n_cols for t in ds.tables) > len(ds.targets)


def test_label_dims():
    assert LABEL_DIMS["sotab-cta"] == 82 and LABEL_DIMS["sotab-cpa"] == 108
    assert LABEL_DIMS["gittables-dbpedia"] == 101 and LABEL_DIMS["gittables-schema"] == 53
    assert LABEL_DIMS["wikitables-cta"] == 255 and LABEL_DIMS["wikitables-cpa"] == 121
    with pytest.raises(TableError, match="not shipped"):
        LabelVocab.benchmark("wikitables-cta")
    v = LabelVocab.from_labels(["b", "a", "b"])
    assert v.labels == ["a", "b"] and v.index("b") == 1
    with pytest.raises(TableError, match="not in"):
        v.index("zzz")


# ---------------------------------------------------------------- files the tests write
def _write_sotab(tmp_path, rows, gold_lines, name="T_x.json.gz"):
    d = tmp_path / "Train"
    d.mkdir()
    with gzip.open(d / name, "wt") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    gold = tmp_path / "gold.csv"
    gold.write_text("table_name,column_index,label\n" + "".join(l + "\n" for l in gold_lines))
    return d, gold


def test_sotab_written(tmp_path):
    d, gold = _write_sotab(tmp_path, [{"0": "a", "1": "b"}, {"0": "c"}], ["T_x.json.gz,1,Thing"])
    ds = read_sotab(d, gold)
    assert ds.tables[0].columns == [["a", "c"], ["b", ""]]
    assert ds.targets[0].labels == ("Thing",) and ds.tables[0].meta["domain"] == "T"


def test_sotab_missing_table_and_bad_index(tmp_path):
    d, gold = _write_sotab(tmp_path, [{"0": "a"}], ["T_x.json.gz,5,Thing", "nope.json.gz,0,X", "T_x.json.gz,0,Y"])
    ds = read_sotab(d, gold, on_error="skip")
    assert ds.skipped == 2 and len(ds.targets) == 1
    with pytest.raises(TableError, match=r"gold.csv, line 2: column index 5 out of range"):
        read_sotab(d, gold, on_error="raise")


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b.json.gz", "..", "x\\y"])
def test_sotab_rejects_path_traversal(tmp_path, name):
    d, gold = _write_sotab(tmp_path, [{"0": "a"}], [f"{name},0,X"])
    with pytest.raises(TableError, match="not a plain file name"):
        read_sotab(d, gold)


def test_sotab_malformed_json_and_gzip(tmp_path):
    d = tmp_path / "S"
    d.mkdir()
    with gzip.open(d / "bad.json.gz", "wt") as fh:
        fh.write('{"0": "ok"}\n{"0": broken\n')
    with pytest.raises(TableError, match=r"bad.json.gz, line 2: invalid JSON"):
        read_sotab_table(d / "bad.json.gz")
    (d / "corrupt.json.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(TableError, match="corrupt or unreadable gzip"):
        read_sotab_table(d / "corrupt.json.gz")
    with gzip.open(d / "empty.json.gz", "wt") as fh:
        fh.write("")
    with pytest.raises(TableError, match="empty table"):
        read_sotab_table(d / "empty.json.gz")


def test_csv_ragged_empty_and_encoding(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes("name,city,zip\nJosé,Köln,50667\nAnn,,\nBob,Paris\n".encode("latin-1"))
    t = read_csv(p)
    assert t.header == ["name", "city", "zip"]
    assert t.columns[0] == ["José", "Ann", "Bob"] and t.columns[1] == ["Köln", "", "Paris"]
    assert t.columns[2] == ["50667", "", ""]  # ragged row padded
    assert t.meta["encoding"] != "utf-8"


def test_tsv_and_headerless(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("1\t2\n3\t4\n")
    t = read_csv(p, header=False)
    assert t.header is None and t.columns == [["1", "3"], ["2", "4"]]
    assert read_csv(p).meta["delimiter"] == "\t"


def test_csv_errors(tmp_path):
    with pytest.raises(TableError, match="cannot read file"):
        read_csv(tmp_path / "missing.csv")
    (tmp_path / "e.csv").write_text("   \n")
    with pytest.raises(TableError, match="empty"):
        read_csv(tmp_path / "e.csv")
    (tmp_path / "b.csv").write_bytes(b"\x00\x01\x02\x00" * 100)
    with pytest.raises(TableError, match="binary"):
        read_csv(tmp_path / "b.csv")


def test_dataframe():
    df = pd.DataFrame({"a": [1, None, 3], "b": ["x", "y", None]})
    t = from_dataframe(df)
    assert t.header == ["a", "b"] and t.columns[1] == ["x", "y", ""] and t.columns[0][1] == ""


def test_a_dataframe_reads_as_its_csv_file_does(tmp_path):
    """Dates parsed by pandas (parse_dates) are written as to_csv writes them: date-only columns as dates."""
    df = pd.DataFrame({"day": pd.to_datetime(["2024-01-01", "2024-02-03", None]),
                       "at": pd.to_datetime(["2024-01-01 10:00", "2024-02-03 00:00", None]),
                       "utc": pd.to_datetime(["2024-01-01"] * 3, utc=True), "x": [1.0, 2.5, None],
                       "n": pd.array([1, None, 3], dtype="Int64"), "ok": [True, False, None]})
    df.to_csv(tmp_path / "f.csv", index=False)
    t = from_dataframe(df)
    assert t.columns == read_csv(tmp_path / "f.csv").columns
    assert t.columns[0] == ["2024-01-01", "2024-02-03", ""] and t.columns[1][0] == "2024-01-01 10:00:00"
    back = pd.read_csv(tmp_path / "f.csv", parse_dates=["day"])  # a user's round trip
    assert from_dataframe(back).columns[0] == ["2024-01-01", "2024-02-03", ""]
    # Read without a header, the labels are positions: no names, as read_csv(header=False) and JSON give.
    plain = pd.read_csv(tmp_path / "f.csv", header=None, skiprows=1)
    assert from_dataframe(plain).header is None and from_dataframe(plain).meta["header"] == "positions"
    pd.DataFrame([[1, 2]]).to_parquet(tmp_path / "q.parquet")  # pyarrow stores the labels as "0", "1"
    from aegir.tables.readers.files import read_table_file

    assert read_table_file(tmp_path / "q.parquet").header is None
    # A pivot table's two-level labels: joined with dots, empty levels dropped.
    sales = pd.DataFrame({"city": ["a", "b", "a"], "year": [2023, 2024, 2023], "sales": [1, 2, 3]})
    pivot = sales.pivot_table(index="city", columns="year", values=["sales"], aggfunc="sum").reset_index()
    assert from_dataframe(pivot).header == ["city", "sales.2023", "sales.2024"]


def test_an_index_that_holds_data_is_read_as_to_csv_writes_it(tmp_path):
    """set_index("id") and a time series' dates are columns (first, as to_csv writes them), in a DataFrame and in
    the Parquet file pandas writes of it; row numbers (a RangeIndex, a filtered frame's index) are not."""
    from aegir.tables.readers.files import read_table_file

    people = pd.DataFrame({"id": ["a1", "b2", "c3"], "age": [31, 42, 27]}).set_index("id")
    t = from_dataframe(people)
    assert (t.header, t.columns, t.meta["index_columns"]) == (["id", "age"], [["a1", "b2", "c3"], ["31", "42", "27"]], 1)
    people.to_parquet(tmp_path / "people.parquet")  # the file stores id as its last column; pyarrow's to_pandas
    p = read_table_file(tmp_path / "people.parquet")  # made it the index again, which was dropped
    assert (p.header, p.columns, p.meta["index_columns"]) == (t.header, t.columns, 1)  # first, as in the frame
    series = pd.DataFrame({"visits": [5, 7]}, index=pd.date_range("2024-01-01", periods=2))
    assert from_dataframe(series).columns == [["2024-01-01", "2024-01-02"], ["5", "7"]]
    series.to_parquet(tmp_path / "series.parquet")
    assert read_table_file(tmp_path / "series.parquet").columns == [["2024-01-01", "2024-01-02"], ["5", "7"]]
    filtered = pd.DataFrame({"x": [1, 2, 3, 4]})
    filtered = filtered[filtered.x > 2]
    filtered.to_parquet(tmp_path / "filtered.parquet")
    for t in (from_dataframe(filtered), read_table_file(tmp_path / "filtered.parquet")):
        assert (t.header, t.columns) == (["x"], [["3", "4"]])
    two = people.assign(city=["Oslo", "Rome", "Lyon"]).set_index("city", append=True)
    assert from_dataframe(two).header == ["id", "city", "age"] and from_dataframe(two).meta["index_columns"] == 2


def test_integer_columns_with_nulls_stay_integers_in_columnar_files(tmp_path):
    """pyarrow, Spark and DuckDB write an integer column with a null as int64 with a validity mask; pandas' default
    conversion made it float (10117 -> "10117.0", 19 digits rounded), where the CSV of the same table reads 10117."""
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    from aegir.tables.readers.files import read_table_file

    t = pa.table({"zip": pa.array([10117, None, 75001], pa.int32()),
                  "id": pa.array([1234567890123456789, None, 3], pa.int64()),
                  "u": pa.array([2**64 - 1, 0, None], pa.uint64()), "price": pa.array([1.5, None, 2.0])})
    pq.write_table(t, tmp_path / "t.parquet")
    feather.write_feather(t, tmp_path / "t.feather")
    want = [["10117", "", "75001"], ["1234567890123456789", "", "3"], ["18446744073709551615", "0", ""],
            ["1.5", "", "2.0"]]
    for name in ("t.parquet", "t.feather"):
        assert read_table_file(tmp_path / name).columns == want, name


def test_labels_csv_in_a_windows_encoding_and_malformed_rows(tmp_path):
    """Excel on Windows saves labels.csv as cp1252; a row with a field too many or too few is named by its line."""
    (tmp_path / "streets.csv").write_text("name,town\nHauptstraße 1,Köln\nRing 2,Bonn\n", encoding="utf-8")
    (tmp_path / "labels.csv").write_bytes("table_name,column_index,label\nstreets.csv,0,Straße\nstreets.csv,1,Ort\n"
                                          .encode("cp1252"))
    ds = read_labeled_csv_folder(tmp_path)
    assert [(t.column, t.labels) for t in ds.targets] == [(0, ("Straße",)), (1, ("Ort",))]
    assert ds.tables[0].columns[0] == ["Hauptstraße 1", "Ring 2"]
    for row, n in (("streets.csv,0,Straße,extra", 4), ("streets.csv,0", 2)):
        (tmp_path / "labels.csv").write_text(f"table_name,column_index,label\nstreets.csv,1,Ort\n{row}\n")
        with pytest.raises(TableError, match=rf"labels.csv, line 3: {n} fields where the header has 3"):
            read_labeled_csv_folder(tmp_path)


def test_dataframe_object_cells_read_as_the_other_readers_write_them():
    import decimal

    df = pd.DataFrame({"blob": [b"\x00\xff", b"abc"], "tags": [["a", "b"], {"k": 1}],
                       "dec": [decimal.Decimal("NaN"), decimal.Decimal("1.10")], "cplx": [1 + 2j, None],
                       "mixed": [("x", 1), None]})
    t = from_dataframe(df)
    assert t.columns == [["x'00ff'", "abc"], ['["a", "b"]', '{"k": 1}'], ["", "1.10"], ["(1+2j)", ""], ['["x", 1]', ""]]
    years = pd.DataFrame({"v": [1, 2]}, index=pd.MultiIndex.from_tuples([("x", 2023), ("y", 2024)]))
    assert from_dataframe(years).columns == [["x", "y"], ["2023", "2024"], ["1", "2"]]  # as to_csv writes it


def test_labeled_csv_folder(tmp_path):
    (tmp_path / "people.csv").write_text("name,age\nAnn,3\nBo,4\n")
    (tmp_path / "labels.csv").write_text("table_name,column_name,label\npeople.csv,name,Person\npeople.csv,age,Age\n")
    ds = read_labeled_csv_folder(tmp_path)
    assert [(t.column, t.label) for t in ds.targets] == [(0, "Person"), (1, "Age")]
    (tmp_path / "labels.csv").write_text("table_name,column_index,label\n../people.csv,0,X\n")
    with pytest.raises(TableError, match="line 2"):
        read_labeled_csv_folder(tmp_path)
    (tmp_path / "long.csv").write_text("n\n" + "".join(f"{i}\n" for i in range(150)))
    (tmp_path / "labels.csv").write_text("table_name,column_name,label\nlong.csv,n,Number\n")
    t = read_labeled_csv_folder(tmp_path, max_rows=50).tables[0]  # a uniform sample of a long table's rows
    ids = [int(x) for x in t.columns[0]]
    assert len(ids) == 50 and ids == sorted(ids) and ids[-1] > 100 and t.meta["rows_total"] == 150
    assert read_labeled_csv_folder(tmp_path).tables[0].n_rows == 150  # the default keeps 100,000


def test_turl_both_layouts(tmp_path):
    lst = [["t1", "Page", 0, "Sec", "Cap", ["Player", "Team"],
            [[[[0, 0], [1, "Ann"]], [[1, 0], [2, "Bo"]]], [[[0, 1], [3, "Reds"]]]],
            [["people.person", "sports.pro_athlete"], []]]]
    (tmp_path / "a.json").write_text(json.dumps(lst))
    ds = read_turl(tmp_path / "a.json")
    assert ds.multi_label and ds.tables[0].columns == [["Ann", "Bo"], ["Reds", ""]]
    assert ds.targets[0].labels == ("people.person", "sports.pro_athlete") and len(ds.targets) == 1
    (tmp_path / "b.jsonl").write_text(json.dumps({"table_id": "x", "headers": ["h"], "columns": [["v"]], "labels": [["T"]]}) + "\n")
    assert read_turl(tmp_path / "b.jsonl").targets[0].labels == ("T",)
    (tmp_path / "c.json").write_text('[["too", "short"]]')
    with pytest.raises(TableError, match="item 0"):
        read_turl(tmp_path / "c.json")


def test_table_validation():
    with pytest.raises(TableError, match="header has 1 names"):
        Table(columns=[["a"], ["b"]], header=["x"])
    t = Table.from_rows([["a", "b"], ["c"]], header=["x", "y"])
    assert t.columns == [["a", "c"], ["b", ""]] and list(t.rows()) == [["a", "b"], ["c", ""]]


def test_read_csv_records_how_the_header_was_decided(tmp_path):
    from aegir.tables.readers.csv import read_csv

    p = tmp_path / "t.csv"
    p.write_text("name,age\nann,31\nbob,42\n")  # the numeric column's first cell is text: evidence
    assert (read_csv(p).meta["header"], read_csv(p).meta["has_header"]) == ("evidence", True)
    p.write_text("alpha,beta\ngamma,delta\nepsilon,zeta\n")  # text only: no evidence, taken for names
    t = read_csv(p)
    assert (t.meta["header"], t.meta["has_header"], t.n_rows) == ("names", True, 2)
    t = read_csv(p, header=False)
    assert (t.meta["header"], t.meta["has_header"], t.n_rows) == ("given", False, 3)


def test_labelled_folder_takes_parquet_tables(tmp_path):
    import pandas as pd

    from aegir.tables.readers import read_labeled_csv_folder

    pd.DataFrame({"city": ["Oslo", "Bergen"], "pop": [709_000, 291_000]}).to_parquet(tmp_path / "t.parquet")
    (tmp_path / "u.csv").write_text("mail\na@b.org\n")
    (tmp_path / "labels.csv").write_text("table_name,column_name,label\nt.parquet,pop,population\n"
                                         "t.parquet,city,City\nu.csv,mail,email\n")
    ds = read_labeled_csv_folder(tmp_path)
    assert [t.meta["source"] for t in ds.tables] == ["parquet", "csv"]
    assert ds.tables[0].columns == [["Oslo", "Bergen"], ["709000", "291000"]]
    assert sorted((ds.tables[t.table_index].name, t.column, t.labels) for t in ds.targets) == [
        ("t.parquet", 0, ("City",)), ("t.parquet", 1, ("population",)), ("u.csv", 0, ("email",))]


def test_csv_is_read_as_a_stream_with_every_row_counted(tmp_path):
    """A long CSV read with max_rows keeps those rows only (memory bounded by them, not by the
    file) and still counts every row, blank lines excepted, quoted newlines included."""
    import tracemalloc

    p = tmp_path / "long.csv"
    n = 60_000
    with open(p, "w", newline="") as fh:
        fh.write("id,note,city\n")
        for i in range(n):
            fh.write(f'{i},"line one\nline two of {i}",Oslo\n' if i % 1000 == 0 else f"{i},plain {i:080d},Bergen\n")
            if i % 5000 == 0:
                fh.write("\n , ,\n")  # blank lines: no cells, not rows
    assert p.stat().st_size > 5_000_000  # 5x the head the sniffers read
    tracemalloc.start()
    t = read_csv(p, max_rows=100)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert t.header == ["id", "note", "city"] and t.n_rows == 100 and t.meta["rows_total"] == n
    assert t.columns[1][0] == "line one\nline two of 0" and t.columns[0][99] == "99"
    assert peak < 3_000_000, peak  # the file as bytes + text is > 10 MB (what the reader held before)
    full = read_csv(p)
    assert full.n_rows == n == full.meta["rows_total"] and full.columns[0][-1] == str(n - 1)


@pytest.mark.parametrize("encoding, names", [
    ("cp1252", ["São Paulo", "Søren Kierkegård", "François Ñoño", "Zürich", "Málaga"]),  # read as cp1250 before
    ("latin-1", ["São Paulo", "Åsa Öberg", "Reykjavík", "Besançon"]),  # the same bytes as cp1252 here
    ("cp1250", ["Wrocław", "Łódź", "Gdańsk", "Zażółć"]),  # as cp1252: "Wroc³aw", a symbol inside a word
    ("cp1251", ["Москва", "Санкт-Петербург", "Казань"]),  # mac_cyrillic before
    ("cp932", ["東京都", "大阪府", "山田太郎"]),
])
def test_csv_legacy_encodings_are_detected(tmp_path, encoding, names):
    """Short files, the hard case: a few non-ASCII names among ASCII cells (benchmarks/text_encodings.py measures it
    on real tables)."""
    rows = ["name,price"] + [f"{names[i % len(names)]},{i + 1}" for i in range(12)]
    p = tmp_path / "t.csv"
    p.write_bytes(("\n".join(rows) + "\n").encode(encoding))
    t = read_csv(p)
    assert t.columns[0] == [r.split(",")[0] for r in rows[1:]], t.meta["encoding"]


def test_csv_unclosed_quote_is_an_error_and_excel_sep_line_names_the_delimiter(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text('name,email\n"Ann,ann@x.com\nBob,b@y.com\nCy,c@z.net\n')  # the csv module: 1 row, the rest one cell
    with pytest.raises(TableError, match=r"q.csv, line 2: a quote opened in this row is never closed, so lines 2-4"):
        read_csv(p)
    p.write_text('name,notes\nAnn,"two\nlines"\nBob,"x"\n')  # quoted line breaks, closed: fine
    assert read_csv(p).columns == [["Ann", "Bob"], ["two\nlines", "x"]]
    p.write_bytes("\ufeffsep=;\r\nname;price\r\nAnn;1,5\r\nBob;2,25\r\n".encode())  # Excel's delimiter line
    t = read_csv(p)
    assert (t.header, t.columns, t.meta["delimiter"], t.meta["rows_total"]) == (
        ["name", "price"], [["Ann", "Bob"], ["1,5", "2,25"]], ";", 2)


def test_csv_encoding_that_fails_past_the_head_gets_a_second_guess(tmp_path):
    p = tmp_path / "late.csv"
    body = "".join(f"{i},Anna {i}\n" for i in range(120_000))  # ASCII well past the 1 MiB head
    p.write_bytes(("id,name\n" + body + "999999,José Müller\n").encode("latin-1"))
    t = read_csv(p)
    assert t.columns[1][-1] == "José Müller" and t.meta["encoding"] not in ("utf-8", "ascii")
    assert t.meta["rows_total"] == 120_001
    with pytest.raises(TableError, match=r"late.csv, near line \d+: cannot decode as utf-8"):
        read_csv(p, encoding="utf-8")  # given, not guessed: no second guess
    (tmp_path / "blank.csv").write_text(" , \n\n,,\n")
    with pytest.raises(TableError, match="blank.csv: file is empty"):
        read_csv(tmp_path / "blank.csv")


def test_csv_preamble_above_the_table_is_skipped_when_the_header_is_guessed(tmp_path):
    from aegir.tables.readers.rows import preamble as _preamble

    p = tmp_path / "r.csv"
    p.write_text("Quarterly figures;;;\nSource: ministry;;;\nregion;q1;q2;q3\nNorth;1;2;3\nSouth;4;5;6\n")
    t = read_csv(p)
    assert t.header == ["region", "q1", "q2", "q3"] and t.columns[0] == ["North", "South"]
    assert (t.meta["preamble_rows"], t.meta["rows_total"], t.meta["header"]) == (2, 2, "evidence")
    t = read_csv(p, max_rows=1)  # the rows kept are counted after the preamble
    assert t.columns[0] == ["North"] and t.meta["rows_total"] == 2
    t = read_csv(p, header=True)  # said, not guessed: every row as written
    assert t.header[0] == "Quarterly figures" and t.meta["preamble_rows"] == 0 and t.n_rows == 4
    # Hand cases: filled-cell counts decide; narrow tables and sparse-but-not-preamble rows keep every row.
    assert _preamble([["T"], ["a", "b", "c"], ["1", "2", "3"]]) == 1
    assert _preamble([["a", ""], ["b", "c"], ["d", "e"]]) == 0  # two columns: a sparse first row is data
    assert _preamble([["x", "y", ""], ["1", "2", "3"], ["4", "5", "6"]]) == 0  # 2 of 3 filled: not under half
    assert _preamble([["T", "", "", ""], ["n", "", "", ""]] + [["1", "2", "3", "4"]] * 3) == 2
    assert _preamble([["T"]] * 25 + [["1", "2", "3"]] * 30) == 0  # more than PREAMBLE_MAX: not a preamble
    # A record with only its id filled is data: a title or note is text, not a number.
    assert _preamble([["1000", "", "", ""], ["-9.5", "", "", ""]] + [["1001", "Ann", "a@x.org", "Rome"]] * 3) == 0
    assert _preamble([["Report 2024", "", "", ""]] + [["1001", "Ann", "a@x", "Rome"]] * 3) == 1


def test_no_real_headerless_table_loses_rows_to_the_preamble_rule(shared_data):
    """Every SOTAB sample table (headerless web tables, first rows, sparse cells included) as the
    reader would see it: the preamble rule skips none of their rows."""
    from aegir.tables.readers.rows import preamble as _preamble

    root = shared_data / "sotab_v2_sample"
    files = [f for d in ("CTA/Train", "CTA/Train50", "CTA/Validation", "CPA/Train")
             for f in sorted((root / d).glob("*.json.gz"))]
    assert len(files) > 3000
    tripped = []
    for f in files:
        rows = [list(r) for r in read_sotab_table(f).rows() if any(c.strip() for c in r)]
        if _preamble(rows):
            tripped.append(f.name)
    assert tripped == []


def test_reservoir_takes_every_row_with_the_same_probability():
    """Algorithm L over 40 rows, k = 5, 4,000 seeded runs: each row is kept ~500 times (k/n of the
    runs; the binomial sd is ~21), the sample is in file order, and short inputs are kept whole."""
    import random

    from aegir.tables.readers.rows import reservoir as _reservoir

    counts = [0] * 40
    for seed in range(4000):
        first, kept = [], []
        assert _reservoir(iter([[str(i)] for i in range(40)]), 5, first, kept, random.Random(seed)) == 40
        idx = [i for i, _ in kept]
        assert len(idx) == 5 == len(set(idx)) and idx == sorted(idx) and [int(r[0]) for _, r in kept] == idx
        for i in idx:
            counts[i] += 1
    assert min(counts) > 400 and max(counts) < 600, counts
    # Past FIRST_ROWS (200) the rows between takes are skipped unseen: 600 rows, k = 5, 1,000 runs; each
    # 100-row bin is taken ~833 times (sd ~26), the same before and after the switch at row 200.
    bins = [0] * 6
    for seed in range(1000):
        kept = []
        assert _reservoir(iter([[str(i)] for i in range(600)]), 5, [], kept, random.Random(seed)) == 600
        for i, _ in kept:
            bins[i // 100] += 1
    assert min(bins) > 700 and max(bins) < 966, bins
    first, kept = [], []
    assert _reservoir(iter([["a"], ["b"]]), 5, first, kept) == 2 and kept == [(0, ["a"]), (1, ["b"])]


def test_spread_reads_a_uniform_sample_of_a_long_file_in_order(tmp_path):
    p = tmp_path / "sorted.csv"
    p.write_text("Export of 2024,,\nid,day,value\n" + "".join(f"{i},{i // 100},{i * 3}\n" for i in range(10_000)))
    t = read_csv(p, max_rows=500, spread=True)
    assert t.header == ["id", "day", "value"] and t.meta["preamble_rows"] == 1  # the header guess as before
    ids = [int(x) for x in t.columns[0]]
    assert len(ids) == 500 and ids == sorted(ids) and len(set(ids)) == 500
    assert t.meta["rows_total"] == 10_000 and t.meta["row_sample"] == "spread"
    deciles = [sum(1 for i in ids if d * 1000 <= i < (d + 1) * 1000) for d in range(10)]
    assert min(deciles) >= 30 and max(deciles) <= 70, deciles  # ~50 each: the whole file, not its head
    assert t.columns == read_csv(p, max_rows=500, spread=True).columns  # seeded: the same rows every time
    head = read_csv(p, max_rows=500)
    assert [int(x) for x in head.columns[0]] == list(range(500)) and head.meta["row_sample"] == "first"
    assert read_csv(p, max_rows=20_000, spread=True).meta["row_sample"] == "all"
    pq = tmp_path / "sorted.parquet"
    pd.DataFrame({"id": range(10_000)}).to_parquet(pq, row_group_size=1000)
    from aegir.tables.readers.files import read_table_file

    t = read_table_file(pq, max_rows=500, spread=True)
    ids = [int(x) for x in t.columns[0]]
    assert len(ids) == 500 and ids == sorted(ids) and min(ids) < 200 and max(ids) > 9800
    assert (t.meta["rows_total"], t.meta["row_sample"]) == (10_000, "spread")
    assert read_table_file(pq, max_rows=500).columns[0] == [str(i) for i in range(500)]


def test_nested_parquet_columns_read_as_json_objects_are(tmp_path):
    """Struct fields as dotted columns (like the JSON reader), lists and maps as JSON text, not numpy reprs."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    from aegir.tables.readers import read_parquet

    t = pa.table({
        "id": [1, 2],
        "address": [{"city": "Oslo", "geo": {"lat": 59.9}}, {"city": None, "geo": None}],
        "tags": [["a", "b"], None],
        "seen": [[dt.date(2024, 1, 2)], []],
        "attrs": pa.array([[("k", 1)], None], type=pa.map_(pa.string(), pa.int64())),
    })
    pq.write_table(t, tmp_path / "n.parquet")
    out = read_parquet(tmp_path / "n.parquet")
    assert out.header == ["id", "address.city", "address.geo.lat", "tags", "seen", "attrs"]
    assert out.columns[1] == ["Oslo", ""] and out.columns[2] == ["59.9", ""]
    assert out.columns[3] == ['["a", "b"]', ""] and out.columns[4] == ['["2024-01-02"]', "[]"]
    assert out.columns[5] == ['[["k", 1]]', ""]
    assert read_parquet(tmp_path / "n.parquet", max_rows=1, spread=True).header == out.header


def test_pandas_blank_header_placeholder_reads_as_the_csv_blank_it_came_from(tmp_path):
    """A `to_csv` export with its index has a blank first header cell; pandas reads it back as "Unnamed: 0" and
    writes that name into JSON, Parquet and SQL. Every reader gives the CSV's blank name."""
    import sqlite3

    import pandas as pd

    from aegir.tables.readers import from_dataframe, read_table_file
    from aegir.tables.readers.common import column_name

    pd.DataFrame({"city": ["Oslo", "Rome"], "pop": [0.7, 2.8]}).to_csv(tmp_path / "t.csv")  # index written
    want = ["", "city", "pop"]
    assert read_table_file(tmp_path / "t.csv").header == want
    df = pd.read_csv(tmp_path / "t.csv")
    assert list(df.columns)[0] == "Unnamed: 0" and from_dataframe(df).header == want
    df.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    df.to_parquet(tmp_path / "t.parquet")
    with sqlite3.connect(tmp_path / "t.sqlite") as con:
        df.to_sql("t", con, index=False)
    for ext in ("jsonl", "parquet", "sqlite"):
        assert read_table_file(tmp_path / f"t.{ext}").header == want, ext
    assert [column_name(x) for x in ("Unnamed: 3", "Unnamed: 0_level_1", "Unnamed", "x", 7)] == ["", "", "Unnamed", "x", "7"]


def test_arrow_ipc_feather_and_orc_read_like_parquet(tmp_path):
    """The columnar files pyarrow writes: the same Table as the Parquet file of the same frame, sampled alike."""
    from aegir.tables.readers.files import read_table_file
    from aegir.tables.readers.stdin import sniff_suffix

    df = pd.DataFrame({"id": range(5000), "city": [f"City {i % 37}" for i in range(5000)],
                       "when": pd.to_datetime("2024-01-01") + pd.to_timedelta(range(5000), unit="D")})
    df.to_parquet(tmp_path / "t.parquet", row_group_size=700)
    df.to_feather(tmp_path / "t.feather")
    df.to_feather(tmp_path / "t.arrow", compression="zstd")
    df.to_orc(tmp_path / "t.orc")
    want = read_table_file(tmp_path / "t.parquet", max_rows=300, spread=True)
    for name, source in (("t.feather", "arrow"), ("t.arrow", "arrow"), ("t.orc", "orc")):
        for kw in ({}, {"max_rows": 300}, {"max_rows": 300, "spread": True}):
            got, ref = read_table_file(tmp_path / name, **kw), read_table_file(tmp_path / "t.parquet", **kw)
            assert (got.header, got.columns) == (ref.header, ref.columns), (name, kw)
            assert got.meta["rows_total"] == 5000 and got.meta["source"] == source
        assert sniff_suffix((tmp_path / name).read_bytes()[:64]) == "." + name.split(".")[1].replace("feather", "arrow")
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) for v in want.columns[2])  # date-only: dates, as to_csv
    (tmp_path / "bad.orc").write_bytes(b"ORC" + bytes(100))
    with pytest.raises(TableError, match=r"bad.orc: cannot read as ORC"):
        read_table_file(tmp_path / "bad.orc")
