"""Many files at once: `annotate_files` / `aegir annotate FOLDER --out x.jsonl`."""

import json
import random
from pathlib import Path

import pytest

from aegir.annotation import annotate
from aegir.annotate_batch import annotate_files, completed_files, find_tables
from aegir.tables import TableError

ROOT = Path(__file__).resolve().parents[2]


def _lake(root):
    """Three readable tables (one in a subfolder, one a TSV), a binary file, an empty one, and a
    file with another suffix that a folder search must not pick up."""
    from custom_task import KINDS

    r = random.Random(3)
    (root / "sub").mkdir(parents=True)
    for name, kinds, sep in (("a.csv", ["date", "email"], ","), ("sub/b.tsv", ["number", "word", "date"], "\t"),
                             ("c.csv", ["email"], ",")):
        rows = [sep.join(f"col{j}" for j in range(len(kinds)))]
        rows += [sep.join(KINDS[k](r) for k in kinds) for _ in range(5)]
        (root / name).write_text("\n".join(rows) + "\n")
    (root / "bad.csv").write_bytes(b"\x00\x01\x02 not text")
    (root / "empty.csv").write_text("")
    (root / "notes.txt").write_text("not a table")
    return root


def _records(path):
    return [json.loads(l) for l in path.read_text().splitlines()]


def test_folder_is_annotated_file_by_file_like_single_files(trained, tmp_path):
    lake = _lake(tmp_path / "lake")
    out = tmp_path / "ann.jsonl"
    res = annotate_files([lake], trained.final_checkpoint, out, top_k=2, progress=False)
    assert (res.files, res.annotated, res.skipped, res.columns) == (5, 3, 0, 6)
    assert sorted(e.file for e in res.errors) == [str(lake / "bad.csv"), str(lake / "empty.csv")]
    assert "binary" in next(e.error for e in res.errors if e.file.endswith("bad.csv"))
    assert [json.loads(l)["file"] for l in res.errors_path.read_text().splitlines()] == [e.file for e in res.errors]
    recs = _records(out)
    assert [r["file"] for r in recs] == [str(lake / "a.csv")] * 2 + [str(lake / "c.csv")] + [str(lake / "sub/b.tsv")] * 3
    for f in {r["file"] for r in recs}:  # the same answer as annotating that file alone
        alone = annotate(f, trained.final_checkpoint, top_k=2).to_records()
        mine = [{k: v for k, v in r.items() if k not in ("file", "file_columns")} for r in recs if r["file"] == f]
        assert mine == alone and all(r["file_columns"] == len(alone) for r in recs if r["file"] == f)
    assert json.loads((tmp_path / "ann.run.json").read_text())["top_k"] == 2


def test_resume_after_a_kill_keeps_finished_files_and_redoes_the_torn_one(trained, tmp_path):
    lake = _lake(tmp_path / "lake")
    (lake / "bad.csv").unlink()
    (lake / "empty.csv").unlink()
    ref = tmp_path / "ref.jsonl"
    annotate_files([lake], trained.final_checkpoint, ref, progress=False)
    full = ref.read_bytes()
    lines = full.split(b"\n")
    # A kill in the middle of sub/b.tsv's chunk: its first record whole, the second torn mid-line.
    cut_whole = len(b"\n".join(lines[:4])) + 1
    for cut in (cut_whole, cut_whole + 25):
        out = tmp_path / f"cut{cut}.jsonl"
        out.write_bytes(full[:cut])
        (tmp_path / f"cut{cut}.run.json").write_bytes((tmp_path / "ref.run.json").read_bytes())
        assert completed_files(out) == {str((lake / "a.csv").resolve()), str((lake / "c.csv").resolve())}
        assert out.read_bytes() == b"\n".join(lines[:3]) + b"\n"  # the torn file's records dropped
        res = annotate_files([lake], trained.final_checkpoint, out, resume=True, progress=False)
        assert (res.skipped, res.annotated, res.columns) == (2, 1, 3)
        assert out.read_bytes() == full


def test_existing_output_and_changed_settings_are_refused(trained, tmp_path):
    lake = _lake(tmp_path / "lake")
    out = tmp_path / "ann.jsonl"
    annotate_files([lake / "a.csv"], trained.final_checkpoint, out, progress=False)
    before = out.read_bytes()
    with pytest.raises(TableError, match="exists: pass --resume"):
        annotate_files([lake], trained.final_checkpoint, out, progress=False)
    with pytest.raises(TableError, match="top_k was 3, now 1"):
        annotate_files([lake], trained.final_checkpoint, out, resume=True, top_k=1, progress=False)
    with pytest.raises(TableError, match="no such file or folder"):
        annotate_files([tmp_path / "nowhere"], trained.final_checkpoint, out, overwrite=True, progress=False)
    with pytest.raises(TableError, match=r"\*.jsonl"):
        annotate_files([lake], trained.final_checkpoint, tmp_path / "ann.json", progress=False)
    assert out.read_bytes() == before  # nothing lost by the refusals
    res = annotate_files([lake], trained.final_checkpoint, out, resume=True, progress=False)
    assert res.skipped == 1 and res.annotated == 2
    (tmp_path / "other.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(TableError, match="line 1: not an annotation record"):
        annotate_files([lake], trained.final_checkpoint, tmp_path / "other.jsonl", resume=True, progress=False)


def test_find_tables_searches_folders_and_keeps_named_files(tmp_path):
    lake = _lake(tmp_path / "lake")
    found = find_tables([lake / "notes.txt", lake, lake / "a.csv"])
    assert found[0] == lake / "notes.txt"  # named directly: taken whatever its suffix
    assert [p.name for p in found[1:]] == ["a.csv", "bad.csv", "c.csv", "empty.csv", "b.tsv"]  # a.csv once


def test_cli_annotates_a_folder_and_exits_1_on_unreadable_files(trained, tmp_path):
    from typer.testing import CliRunner

    from aegir.cli import app

    lake = _lake(tmp_path / "lake")
    out = tmp_path / "ann.jsonl"
    r = CliRunner().invoke(app, ["annotate", str(lake), "--checkpoint", str(trained.final_checkpoint),
                                 "--out", str(out)])
    text = " ".join(r.output.split())  # rich wraps long lines
    assert r.exit_code == 1, r.output
    assert "3 annotated (6 columns)" in text and "2 unreadable" in text and "ann.errors.jsonl" in text
    (lake / "bad.csv").unlink()
    (lake / "empty.csv").write_text("x\n1\n")
    r = CliRunner().invoke(app, ["annotate", str(lake), "--checkpoint", str(trained.final_checkpoint),
                                 "--out", str(out), "--resume"])
    assert r.exit_code == 0, r.output
    assert "1 annotated (1 column), 3 already in" in " ".join(r.output.split())
    assert not (tmp_path / "ann.errors.jsonl").exists()
    r = CliRunner().invoke(app, ["annotate", str(lake), "--checkpoint", str(trained.final_checkpoint)])
    assert r.exit_code != 0 and "--out FILE.jsonl" in " ".join(r.output.split())


def test_header_option_reads_the_first_row_as_data(trained, tmp_path):
    p = tmp_path / "names.csv"  # headerless text values: unique, non-numeric, so they pass for a header
    p.write_text("alpha,beta\ngamma,delta\nepsilon,zeta\n")
    guessed = annotate(p, trained.final_checkpoint)
    assert [c.name for c in guessed.columns] == ["alpha", "beta"] and guessed.columns[0].rows_total == 2
    assert guessed.header_guessed and any("--no-header" in n for n in guessed.notes)  # never silent
    plain = annotate(p, trained.final_checkpoint, header=False)
    assert [c.name for c in plain.columns] == ["column_0", "column_1"] and plain.columns[0].rows_total == 3
    assert not plain.header_guessed and not any("header" in n for n in plain.notes)
    res = annotate_files([p], trained.final_checkpoint, tmp_path / "a.jsonl", header=False, progress=False)
    assert [r["rows_total"] for r in _records(res.out)] == [3, 3] and res.header_guessed == 0
    res = annotate_files([p], trained.final_checkpoint, tmp_path / "b.jsonl", progress=False)
    assert res.header_guessed == 1


def test_encoding_can_be_given_when_detection_would_guess(trained, tmp_path):
    from typer.testing import CliRunner

    from aegir.cli import app

    p = tmp_path / "de.csv"
    p.write_bytes("Name;Straße;Preis\nMüller GmbH;Hauptstraße 1;12,50\nWeber KG;Bahnhofstraße 7;7,99\n".encode("cp1252"))
    res = annotate(p, trained.final_checkpoint, encoding="cp1252")
    assert [c.name for c in res.columns] == ["Name", "Straße", "Preis"] and not any("UTF-8" in n for n in res.notes)
    guessed = annotate(p, trained.final_checkpoint)  # detected: right here, and said to be a guess
    assert [c.name for c in guessed.columns] == ["Name", "Straße", "Preis"]
    assert any("not UTF-8; its text was read as cp1252 (detected, a guess)" in n for n in guessed.notes)
    with pytest.raises(TableError, match=r"de.csv, line 1: cannot decode as utf-8"):
        annotate(p, trained.final_checkpoint, encoding="utf-8")  # said, not guessed: no second guess
    r = CliRunner().invoke(app, ["annotate", str(p), "--checkpoint", str(trained.final_checkpoint),
                                 "--encoding", "no-such-codec"])
    # (aegir.cli.main turns a TableError into one "error:" line and exit code 2; the runner calls the app itself)
    assert isinstance(r.exception, TableError) and "cannot decode as no-such-codec" in str(r.exception)
    batch = annotate_files([p], trained.final_checkpoint, tmp_path / "a.jsonl", encoding="cp1252", progress=False)
    assert batch.annotated == 1 and json.loads((tmp_path / "a.run.json").read_text())["encoding"] == "cp1252"


def test_title_rows_above_the_table_are_skipped_and_said(trained, tmp_path):
    p = tmp_path / "report.csv"  # an export with a title and a note above the header
    p.write_text("Sales report,,\nGenerated 2024-01-01,,\n\nid,product,amount\n1,Widget,3.5\n2,Gadget,4\n")
    res = annotate(p, trained.final_checkpoint)
    assert [c.name for c in res.columns] == ["id", "product", "amount"] and res.columns[0].rows_total == 2
    assert res.preamble_rows == 2 and any("2 leading row(s)" in n and "--no-header" in n for n in res.notes)
    given = annotate(p, trained.final_checkpoint, header=True)  # said how the file is written: every row read
    assert [c.name for c in given.columns][0] == "Sales report" and given.preamble_rows == 0
    batch = annotate_files([p], trained.final_checkpoint, tmp_path / "a.jsonl", progress=False)
    assert batch.preamble_skipped == 1


@pytest.mark.skipif(not (ROOT.parent / "shared/data/sotab_v2_sample/CTA/Validation").is_dir(),
                    reason="needs ../shared/data")
def test_lake_benchmark_agrees_with_eval(trained, tmp_path):
    """benchmarks/annotate_lake.py on 12 SOTAB validation tables: the resumed output is identical to
    the uninterrupted one, and the labels read from the JSON Lines are eval's, column for column."""
    import annotate_lake

    res = annotate_lake.main(["--checkpoint", str(trained.final_checkpoint), "--limit", "12",
                              "--out", str(tmp_path / "lake")])
    assert res["tables_annotated"] == 12 and len(res["errors"]) == 2 and res["resume"]["output_identical"]
    assert res["labelled_columns"] > 0 and res["same_label_as_eval"] == res["labelled_columns"]
    assert res["lake"] == res["eval"]
    assert "byte-identical" in (tmp_path / "lake.md").read_text()
    assert (res["batching"]["files"], res["batching"]["columns"]) == (12, res["columns"])


def test_parquet_files_are_annotated_like_their_dataframes(trained, tmp_path):
    import numpy as np
    import pandas as pd

    from custom_task import KINDS

    r = random.Random(5)
    df = pd.DataFrame({"when": [KINDS["date"](r) for _ in range(6)], "who": [KINDS["email"](r) for _ in range(6)],
                       "n": [1.5, np.nan, 3.0, 4.25, None, 6.0]})
    p = tmp_path / "t.parquet"
    df.to_parquet(p)
    a, b = annotate(p, trained.final_checkpoint), annotate(df, trained.final_checkpoint)
    assert [(c.name, c.labels) for c in a.columns] == [(c.name, c.labels) for c in b.columns]
    long = tmp_path / "long.pq"
    pd.DataFrame({"d": [f"2020-01-{1 + i % 28:02d}" for i in range(5000)]}).to_parquet(long, row_group_size=1000)
    res = annotate(long, trained.final_checkpoint, max_rows_read=1200)  # reads the first 1,200 rows only
    assert res.columns[0].rows_total == 5000 and res.notes and "1200 kept (a uniform sample of the 5000 in the file)" in res.notes[0]
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(TableError, match="bad.parquet: cannot read as Parquet"):
        annotate(tmp_path / "bad.parquet", trained.final_checkpoint)
    out = annotate_files([tmp_path], trained.final_checkpoint, tmp_path / "all.jsonl", progress=False)
    assert (out.annotated, out.columns, [e.file for e in out.errors]) == (2, 4, [str(tmp_path / "bad.parquet")])


def test_the_package_level_api_stays_callable(trained, tmp_path):
    """`aegir.annotate` is the function however often it is called and whatever was imported first
    (a submodule of that name once replaced it after the first call)."""
    import importlib

    import aegir

    p = tmp_path / "t.csv"
    p.write_text("city,zip\nOslo,0150\nBergen,5003\n")
    importlib.import_module("aegir.annotate_batch")  # the batch module imports the single-file one
    for _ in range(2):
        assert callable(aegir.annotate) and aegir.annotate(p, trained.final_checkpoint).columns[0].name == "city"
    assert aegir.annotate_files([p], trained.final_checkpoint, tmp_path / "a.jsonl", progress=False).annotated == 1
    assert callable(aegir.extract)


def test_a_long_dataframe_is_sampled_before_its_cells_become_text(trained):
    import pandas as pd

    df = pd.DataFrame({"day": pd.date_range("2020-01-01", periods=5000, freq="h"), "n": range(5000)})
    res = annotate(df, trained.final_checkpoint, max_rows_read=300)
    assert [c.rows_total for c in res.columns] == [5000, 5000]
    assert any("300 kept (a uniform sample of the 5000 in the DataFrame)" in n for n in res.notes), res.notes
    small = annotate(df.head(40), trained.final_checkpoint, max_rows_read=300)
    assert small.columns[0].rows_total == 40 and not any("kept" in n for n in small.notes)


def _workbook(path, r):
    """A workbook of three worksheets: two tables (the same cells as CSVs written beside it) and an empty one."""
    import openpyxl

    from custom_task import KINDS

    wb = openpyxl.Workbook()
    sheets = {"People": ["email", "date"], "Blank": None, "Stock": ["number", "word", "email"]}
    wb.remove(wb.active)
    for name, kinds in sheets.items():
        ws = wb.create_sheet(name)
        if kinds is None:
            continue
        rows = [[f"col{j}" for j in range(len(kinds))]] + [[KINDS[k](r) for k in kinds] for _ in range(5)]
        for row in rows:
            ws.append(row)
        (path.parent / f"{path.stem}_{name}.csv.txt").write_text("\n".join(",".join(x) for x in rows) + "\n")
    wb.save(path)
    return path


def test_excel_worksheets_are_annotated_like_the_same_cells_in_a_csv(trained, tmp_path):
    book = _workbook(tmp_path / "book.xlsx", random.Random(5))
    ck = trained.final_checkpoint
    one = annotate(book, ck, top_k=2)  # the first worksheet holding a table; the note names the others
    as_csv = annotate(tmp_path / "book_People.csv.txt", ck, top_k=2)
    assert one.sheet == "People" and one.to_records() == as_csv.to_records()
    assert any("3 worksheets (People, Blank, Stock)" in n and "--sheet" in n for n in one.notes)
    stock = annotate(book, ck, top_k=2, sheet="Stock")
    assert stock.to_records() == annotate(tmp_path / "book_Stock.csv.txt", ck, top_k=2).to_records()
    assert not any("worksheets" in n for n in stock.notes)  # named: nothing to point out
    import pandas as pd

    with pytest.raises(TableError, match="not a file path"):
        annotate(pd.DataFrame({"a": [1]}), ck, sheet="Stock")

    # A folder: every worksheet with cells, records tagged with it; the workbook is one unit for resume.
    (tmp_path / "book_People.csv.txt").unlink()
    (tmp_path / "book_Stock.csv.txt").unlink()
    (tmp_path / "c.csv").write_text("col0\na@x.com\nb@y.com\n")
    out = tmp_path / "ann.jsonl"
    res = annotate_files([tmp_path], ck, out, top_k=2, progress=False)
    assert (res.files, res.annotated, res.columns) == (2, 2, 6)
    recs = [r for r in _records(out) if r["file"].endswith("book.xlsx")]
    assert [(r["sheet"], r["column_index"]) for r in recs] == [("People", 0), ("People", 1), ("Stock", 0),
                                                               ("Stock", 1), ("Stock", 2)]
    assert {r["file_columns"] for r in recs} == {5}
    assert [{k: v for k, v in r.items() if k not in ("file", "file_columns", "sheet")} for r in recs[2:]] == \
        stock.to_records()
    assert "sheet" not in next(r for r in _records(out) if r["file"].endswith("c.csv"))
    full = out.read_bytes()
    out.write_bytes(full[: full.index(b'"Stock"') - 20])  # killed between the workbook's two sheets
    again = annotate_files([tmp_path], ck, out, top_k=2, resume=True, progress=False)
    assert (again.skipped, again.annotated) == (0, 2)  # the workbook is redone whole, then c.csv
    assert out.read_bytes() == full
    picked = annotate_files([tmp_path], ck, tmp_path / "stock.jsonl", top_k=2, sheet="Stock", progress=False)
    assert (picked.annotated, picked.errors) == (2, [])  # the CSV beside the workbook ignores sheet=
    assert [r.get("sheet") for r in _records(tmp_path / "stock.jsonl")] == ["Stock"] * 3 + [None]

    from typer.testing import CliRunner

    from aegir.cli import app

    r = CliRunner().invoke(app, ["annotate", str(book), "--checkpoint", str(ck), "--sheet", "Stock"])
    assert r.exit_code == 0, r.output
    assert "book.xlsx [Stock]" in r.output and "3 worksheets" not in r.output
    r = CliRunner().invoke(app, ["annotate", str(book), "--checkpoint", str(ck), "--sheet", "Nope"])
    assert isinstance(r.exception, TableError) and "no worksheet named 'Nope'" in str(r.exception)  # main() prints it


def test_opendocument_spreadsheets_are_annotated_like_the_same_workbook_in_excel(trained, tmp_path):
    """The same three worksheets as .xlsx (openpyxl) and .ods (pandas through odfpy): the same records, sheet by
    sheet, alone and in a folder."""
    import openpyxl
    import pandas as pd

    (tmp_path / "xl").mkdir()
    book = _workbook(tmp_path / "xl" / "book.xlsx", random.Random(5))
    wb = openpyxl.load_workbook(book)
    (tmp_path / "od").mkdir()
    with pd.ExcelWriter(tmp_path / "od" / "book.ods", engine="odf") as w:
        for ws in wb.worksheets:
            pd.DataFrame([list(r) for r in ws.iter_rows(values_only=True)]).to_excel(
                w, sheet_name=ws.title, index=False, header=False)
    ck = trained.final_checkpoint
    xl, od = annotate(book, ck, top_k=2), annotate(tmp_path / "od" / "book.ods", ck, top_k=2)
    assert od.sheet == "People" and od.to_records() == xl.to_records() and od.notes == xl.notes
    runs = {}
    for kind in ("xl", "od"):
        annotate_files([tmp_path / kind], ck, tmp_path / f"{kind}.jsonl", top_k=2, progress=False)
        runs[kind] = [{k: v for k, v in r.items() if k != "file"} for r in _records(tmp_path / f"{kind}.jsonl")]
    assert runs["od"] == runs["xl"] and [r["sheet"] for r in runs["od"]] == ["People"] * 2 + ["Stock"] * 3


def test_a_workbook_without_a_table_is_listed_as_unreadable(trained, tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.append(["Only a title"])
    wb.save(tmp_path / "cover.xlsx")
    res = annotate_files([tmp_path / "cover.xlsx"], trained.final_checkpoint, tmp_path / "a.jsonl", progress=False)
    assert res.annotated == 0 and [e.error for e in res.errors] == [
        f"{tmp_path / 'cover.xlsx'}: no worksheet holds a table (two or more non-blank rows)"]


def _database(path, r):
    """A SQLite database of two tables holding the same cells as CSVs written beside it, and an empty table."""
    import sqlite3

    from custom_task import KINDS

    con = sqlite3.connect(path)
    for name, kinds in {"people": ["email", "date"], "unused": None, "stock": ["number", "word", "email"]}.items():
        if kinds is None:
            con.execute(f"CREATE TABLE {name} (a)")
            continue
        cols = [f"col{j}" for j in range(len(kinds))]
        rows = [[KINDS[k](r) for k in kinds] for _ in range(5)]
        con.execute(f"CREATE TABLE {name} ({', '.join(cols)})")
        con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(cols))})", rows)
        (path.parent / f"{path.stem}_{name}.csv.txt").write_text("\n".join(",".join(x) for x in [cols] + rows) + "\n")
    con.commit()
    con.close()
    return path


def test_database_tables_are_annotated_like_the_same_cells_in_a_csv(trained, tmp_path):
    db = _database(tmp_path / "shop.sqlite", random.Random(6))
    ck = trained.final_checkpoint
    one = annotate(db, ck, top_k=2)  # the first table holding a row; the note names the others
    assert one.table == "people" and one.sheet is None
    assert one.to_records() == annotate(tmp_path / "shop_people.csv.txt", ck, top_k=2, header=True).to_records()
    assert any("3 tables (people, unused, stock)" in n and "--table" in n for n in one.notes)
    stock = annotate(db, ck, top_k=2, table="stock")
    assert stock.to_records() == annotate(tmp_path / "shop_stock.csv.txt", ck, top_k=2, header=True).to_records()
    assert not any("tables (" in n for n in stock.notes)
    import pandas as pd

    with pytest.raises(TableError, match="table= names a table of a SQLite file"):
        annotate(pd.DataFrame({"a": [1]}), ck, table="stock")
    with pytest.raises(TableError, match="a table was named, but this is not a SQLite database"):
        annotate(tmp_path / "shop_stock.csv.txt", ck, table="stock")

    # A folder: every table holding a row, records tagged with it; the database is one unit for resume.
    for f in tmp_path.glob("*.csv.txt"):
        f.unlink()
    (tmp_path / "c.csv").write_text("col0\na@x.com\nb@y.com\n")
    (tmp_path / "thumbs.db").write_bytes(b"\x00 not SQLite")  # a .db that is no database is not picked up
    out = tmp_path / "ann.jsonl"
    res = annotate_files([tmp_path], ck, out, top_k=2, progress=False)
    assert (res.files, res.annotated, res.columns, res.errors) == (2, 2, 6, [])
    recs = [r for r in _records(out) if r["file"].endswith("shop.sqlite")]
    assert [(r["table"], r["column_index"]) for r in recs] == [("people", 0), ("people", 1), ("stock", 0),
                                                               ("stock", 1), ("stock", 2)]
    assert [{k: v for k, v in r.items() if k not in ("file", "file_columns", "table")} for r in recs[2:]] == \
        stock.to_records()
    full = out.read_bytes()
    out.write_bytes(full[: full.index(b'"stock"') - 20])  # killed between the database's two tables
    again = annotate_files([tmp_path], ck, out, top_k=2, resume=True, progress=False)
    assert (again.skipped, again.annotated) == (1, 1) and out.read_bytes() == full  # c.csv sorts first
    picked = annotate_files([tmp_path], ck, tmp_path / "stock.jsonl", top_k=2, table="stock", progress=False)
    assert [r.get("table") for r in _records(tmp_path / "stock.jsonl")] == [None] + ["stock"] * 3

    from typer.testing import CliRunner

    from aegir.cli import app

    r = CliRunner().invoke(app, ["annotate", str(db), "--checkpoint", str(ck), "--table", "stock"])
    assert r.exit_code == 0, r.output
    assert "shop.sqlite [stock]" in r.output
    r = CliRunner().invoke(app, ["annotate", str(db), "--checkpoint", str(ck), "--table", "nope"])
    assert isinstance(r.exception, TableError) and "no table or view named 'nope'" in str(r.exception)
    # Names from the file are printed as they are, not read as rich markup ("[b]" would turn bold and vanish).
    (tmp_path / "odd.csv").write_text("[b]name\nalice@x.com\nbob@y.com\n")
    r = CliRunner().invoke(app, ["annotate", str(tmp_path / "odd.csv"), "--checkpoint", str(ck), "--header"])
    assert r.exit_code == 0 and "[b]name" in r.output, r.output


def test_folder_search_takes_compressed_tables_and_real_databases(tmp_path):
    import bz2
    import gzip
    import sqlite3

    import zstandard

    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(b"x,y\n1,2\n"))
    (tmp_path / "b.tsv.bz2").write_bytes(bz2.compress(b"x\ty\n1\t2\n"))
    (tmp_path / "d.csv.zst").write_bytes(zstandard.ZstdCompressor().compress(b"x,y\n1,2\n"))
    (tmp_path / "logs.gz").write_bytes(gzip.compress(b"not a table"))  # no table suffix inside
    sqlite3.connect(tmp_path / "c.db").execute("CREATE TABLE t (a)").connection.commit()
    (tmp_path / "Thumbs.db").write_bytes(b"\x00\x01 not SQLite")
    (tmp_path / "events.jsonl").write_text('{"user": "a", "at": "2024-01-01"}\n')
    # An earlier annotation run's output and its errors sidecar are not tables.
    (tmp_path / "old.jsonl").write_text(json.dumps({"file": "x.csv", "file_columns": 1, "column_index": 0,
                                                    "label": "email", "top_k": []}) + "\n")
    (tmp_path / "old.errors.jsonl").write_text(json.dumps({"file": "y.csv", "error": "y.csv: empty"}) + "\n")
    assert [p.name for p in find_tables([tmp_path])] == ["a.csv.gz", "b.tsv.bz2", "c.db", "d.csv.zst",
                                                         "events.jsonl"]


def test_json_lines_are_annotated_like_the_same_cells_in_a_csv_and_outputs_are_not_tables(trained, tmp_path):
    from custom_task import KINDS

    r = random.Random(8)
    kinds = ["email", "date", "number"]
    rows = [[KINDS[k](r) for k in kinds] for _ in range(6)]
    names = ["who", "when", "n"]
    (tmp_path / "t.csv").write_text("\n".join(",".join(x) for x in [names] + rows) + "\n")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(dict(zip(names, x))) + "\n" for x in rows))
    ck = trained.final_checkpoint
    assert annotate(tmp_path / "t.jsonl", ck, top_k=2).to_records() == \
        annotate(tmp_path / "t.csv", ck, top_k=2, header=True).to_records()
    # The run's own output lies in the folder it searches: it is written, resumed, and never read as a table.
    out = tmp_path / "ann.jsonl"
    res = annotate_files([tmp_path], ck, out, top_k=2, header=True, progress=False)
    assert (res.files, res.annotated, res.errors) == (2, 2, [])
    again = annotate_files([tmp_path], ck, out, top_k=2, header=True, resume=True, progress=False)
    assert (again.files, again.skipped, again.annotated) == (2, 2, 0)


def test_a_json_document_is_annotated_array_by_array(trained, tmp_path):
    """An API dump holding two arrays of objects, minified on one line: each array is a table, like a database's."""
    from custom_task import KINDS

    r = random.Random(11)
    doc = {"users": [{"email": KINDS["email"](r), "joined": KINDS["date"](r)} for _ in range(6)], "page": 1,
           "items": [{"sku": KINDS["number"](r), "name": KINDS["word"](r)} for _ in range(5)]}
    (tmp_path / "dump.json").write_text(json.dumps(doc))
    ck = trained.final_checkpoint
    first = annotate(tmp_path / "dump.json", ck, top_k=2)
    assert first.table == "users" and [c.name for c in first.columns] == ["email", "joined"]
    assert any("the file has 2 tables (users, items)" in n and "--table" in n for n in first.notes)
    items = annotate(tmp_path / "dump.json", ck, top_k=2, table="items")
    assert items.table == "items" and not any("tables" in n for n in items.notes)
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in doc["items"]))
    assert items.to_records() == annotate(tmp_path / "items.jsonl", ck, top_k=2).to_records()
    out = tmp_path / "ann.jsonl"
    res = annotate_files([tmp_path / "dump.json", tmp_path / "items.jsonl"], ck, out, top_k=2, progress=False)
    assert (res.annotated, res.errors) == (2, [])
    assert [(Path(r["file"]).name, r.get("table")) for r in _records(out)] == \
        [("dump.json", "users")] * 2 + [("dump.json", "items")] * 2 + [("items.jsonl", None)] * 2
    # table= picks the array in the document; the JSON Lines file beside it, one table, is annotated as it is.
    res = annotate_files([tmp_path / "dump.json", tmp_path / "items.jsonl"], ck, tmp_path / "b.jsonl", top_k=2,
                         table="items", progress=False)
    assert [(Path(r["file"]).name, r.get("table")) for r in _records(tmp_path / "b.jsonl")] == \
        [("dump.json", "items")] * 2 + [("items.jsonl", None)] * 2


def test_an_html_page_is_annotated_table_by_table(trained, tmp_path):
    """A saved page: a layout table around two data tables. Each data table is annotated like a CSV of its cells."""
    from custom_task import KINDS

    r = random.Random(12)
    people = [["who", "when"]] + [[KINDS["email"](r), KINDS["date"](r)] for _ in range(6)]
    stock = [["n", "item"]] + [[KINDS["number"](r), KINDS["word"](r)] for _ in range(5)]

    def html(rows, attrs):
        head = "".join(f"<th>{c}</th>" for c in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows[1:])
        return f"<table {attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    page = (f"<html><body><table><tr><td>{html(people, 'id=people')}</td><td>menu</td></tr></table>"
            f"{html(stock, '')}</body></html>")
    (tmp_path / "page.html").write_text(page)
    for name, rows in (("people.csv", people), ("stock.csv", stock)):
        (tmp_path / name).write_text("\n".join(",".join(x) for x in rows) + "\n")
    ck = trained.final_checkpoint
    first = annotate(tmp_path / "page.html", ck, top_k=2)
    assert first.table == "people" and first.to_records() == annotate(tmp_path / "people.csv", ck, top_k=2).to_records()
    assert any("the file has 3 tables (table 1, people, table 3)" in n for n in first.notes)
    out = tmp_path / "ann.jsonl"
    res = annotate_files([tmp_path / "page.html"], ck, out, top_k=2, progress=False)
    assert (res.annotated, res.errors) == (1, [])
    recs = _records(out)
    assert [r["table"] for r in recs] == ["people"] * 2 + ["table 3"] * 2
    assert [{k: v for k, v in x.items() if k not in ("file", "file_columns", "table")} for x in recs[2:]] == \
        annotate(tmp_path / "stock.csv", ck, top_k=2).to_records()


def test_a_table_piped_on_standard_input_and_json_on_standard_output(trained, tmp_path):
    import gzip
    import sqlite3

    import pandas as pd
    import zstandard
    from typer.testing import CliRunner

    from aegir.cli import app
    from aegir.tables.readers.stdin import sniff_suffix

    from custom_task import KINDS

    r = random.Random(9)
    rows = [["who", "when"]] + [[KINDS["email"](r), KINDS["date"](r)] for _ in range(6)]
    csv_bytes = ("\n".join(",".join(x) for x in rows) + "\n").encode()
    (tmp_path / "t.csv").write_bytes(csv_bytes)
    ck = trained.final_checkpoint
    want = annotate(tmp_path / "t.csv", ck, top_k=2).to_records()
    con = sqlite3.connect(tmp_path / "t.sqlite")
    con.execute("CREATE TABLE t (who, \"when\")")
    con.executemany("INSERT INTO t VALUES (?, ?)", rows[1:])
    con.commit()
    con.close()
    jsonl = "".join(json.dumps(dict(zip(rows[0], x))) + "\n" for x in rows[1:]).encode()
    pd.DataFrame(rows[1:], columns=rows[0]).to_excel(tmp_path / "t.ods", engine="odf", index=False)
    piped = {"csv": csv_bytes, "csv.gz": gzip.compress(csv_bytes), "csv.zst": zstandard.compress(csv_bytes),
             "jsonl": jsonl, "sqlite": (tmp_path / "t.sqlite").read_bytes(), "ods": (tmp_path / "t.ods").read_bytes()}
    assert [sniff_suffix(b) for b in piped.values()] == [".csv", ".csv.gz", ".csv.zst", ".json", ".sqlite", ".ods"]
    for kind, data in piped.items():
        res = CliRunner().invoke(app, ["annotate", "-", "--checkpoint", str(ck), "--top-k", "2", "--out", "-"],
                                 input=data)
        assert res.exit_code == 0, (kind, res.output)
        assert json.loads(res.stdout) == want, kind  # stdout holds the JSON alone; the table went to stderr
        assert "<stdin>" in res.stderr and "aegir-stdin" not in res.stderr
    bad = CliRunner().invoke(app, ["annotate", "-", "--checkpoint", str(ck)], input=b"")
    assert isinstance(bad.exception, TableError) and str(bad.exception).startswith("<stdin>: ")
    two = CliRunner().invoke(app, ["annotate", "-", str(tmp_path / "t.csv"), "--checkpoint", str(ck)])
    assert two.exit_code != 0 and "standard input" in two.output


def test_zip_archives_are_annotated_member_by_member(trained, tmp_path):
    import zipfile

    from typer.testing import CliRunner

    from aegir.cli import app

    book = _workbook(tmp_path / "book.xlsx", random.Random(5))  # also writes its sheets as CSVs beside it
    ck = trained.final_checkpoint
    people = (tmp_path / "book_People.csv.txt").read_bytes()
    with zipfile.ZipFile(tmp_path / "lake.zip", "w") as z:
        z.writestr("people.csv", people)
        z.writestr("sub/book.xlsx", book.read_bytes())
        z.writestr("__MACOSX/._people.csv", b"\x00\x05")
    for f in [book, *tmp_path.glob("*.csv.txt")]:
        f.unlink()
    (tmp_path / "people.csv").write_bytes(people)
    one = annotate(tmp_path / "lake.zip", ck, top_k=2)
    assert one.member == "people.csv" and one.to_records() == annotate(tmp_path / "people.csv", ck, top_k=2).to_records()
    assert any("2 table files (people.csv, sub/book.xlsx)" in n and "--member" in n for n in one.notes)
    stock = annotate(tmp_path / "lake.zip", ck, top_k=2, member="sub/book.xlsx", sheet="Stock")
    assert (stock.member, stock.sheet) == ("sub/book.xlsx", "Stock")
    (tmp_path / "people.csv").unlink()
    out = tmp_path / "ann.jsonl"
    res = annotate_files([tmp_path], ck, out, top_k=2, sheet="Stock", progress=False)  # sheet= skips the CSV member
    assert (res.files, res.annotated, res.errors) == (1, 1, [])
    recs = _records(out)
    assert [(r["member"], r.get("sheet")) for r in recs] == [("people.csv", None)] * 2 + [("sub/book.xlsx", "Stock")] * 3
    r = CliRunner().invoke(app, ["annotate", str(tmp_path / "lake.zip"), "--checkpoint", str(ck),
                                 "--member", "sub/book.xlsx", "--sheet", "Stock"])
    assert r.exit_code == 0 and "lake.zip [sub/book.xlsx / Stock]" in r.output, r.output
    # Without sheet=: the workbook in the archive sheet by sheet, as it is outside one; a database table by table.
    every = annotate_files([tmp_path / "lake.zip"], ck, tmp_path / "every.jsonl", top_k=2, progress=False)
    assert (every.annotated, every.errors) == (1, [])
    assert [(r["member"], r.get("sheet")) for r in _records(tmp_path / "every.jsonl")] == \
        [("people.csv", None)] * 2 + [("sub/book.xlsx", "People")] * 2 + [("sub/book.xlsx", "Stock")] * 3
    import sqlite3

    con = sqlite3.connect(tmp_path / "shop.db")
    for name in ("empty", "staff", "stock"):
        con.execute(f"CREATE TABLE {name} (who, n)")
    con.executemany("INSERT INTO staff VALUES (?, ?)", [("a@x.org", 1), ("b@y.org", 2)])
    con.executemany("INSERT INTO stock VALUES (?, ?)", [("tea", 3)])
    con.commit()
    con.close()
    with zipfile.ZipFile(tmp_path / "shop.zip", "w") as z:
        z.write(tmp_path / "shop.db", "backup/shop.db")
    res = annotate_files([tmp_path / "shop.zip"], ck, tmp_path / "shop.jsonl", top_k=2, progress=False)
    assert (res.annotated, res.errors) == (1, [])
    recs = _records(tmp_path / "shop.jsonl")
    assert [(r["member"], r["table"], r["column_index"]) for r in recs] == \
        [("backup/shop.db", t, i) for t in ("staff", "stock") for i in (0, 1)]
    annotate_files([tmp_path / "shop.db"], ck, tmp_path / "db.jsonl", top_k=2, progress=False)  # the same, unzipped
    assert [{k: v for k, v in r.items() if k != "member"} for r in recs] == \
        [{**r, "file": recs[0]["file"]} for r in _records(tmp_path / "db.jsonl")]


@pytest.mark.parametrize("name", ["t.csv.gz", "t.csv"])
def test_the_cli_shows_reading_progress_on_a_big_file(trained, tmp_path, monkeypatch, name):
    """`aegir annotate FILE` on a file past BIG_FILE reads it inside the progress display and prints its table."""
    import gzip

    from typer.testing import CliRunner

    from aegir.cli import app
    from aegir.commands import annotate as cmd
    from aegir.tables.readers import progress

    monkeypatch.setattr(cmd, "BIG_FILE", 0)
    monkeypatch.setattr(progress._Counting, "STEP", 1 << 12)
    heard, real = [], progress.task_reporter

    def spy(bar, describe):  # the CLI's reporter, listened to
        inner = real(bar, describe)
        return lambda *a: (heard.append(a), inner(*a))
    monkeypatch.setattr(progress, "task_reporter", spy)
    text = ("who,when\n" + "".join(f"u{i}@x.org,2024-01-{i % 28 + 1:02d}\n" for i in range(3000))).encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    r = CliRunner().invoke(app, ["annotate", str(path), "--checkpoint", str(trained.final_checkpoint)])
    assert r.exit_code == 0, r.output
    assert name in r.output and "label 1" in r.output
    assert heard and heard[-1][1:] == (path.stat().st_size, path.stat().st_size)


def test_a_url_is_downloaded_and_annotated_like_the_file(trained, tmp_path):
    """`annotate(url)` and `aegir annotate URL`: a real HTTP server on localhost serves the file."""
    import http.server
    import threading
    from functools import partial

    from typer.testing import CliRunner

    from aegir.cli import app
    from custom_task import KINDS

    r = random.Random(13)
    rows = [["who", "when"]] + [[KINDS["email"](r), KINDS["date"](r)] for _ in range(8)]
    (tmp_path / "t.csv").write_text("\n".join(",".join(x) for x in rows) + "\n")
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(quiet, directory=str(tmp_path)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/t.csv"
        ck = trained.final_checkpoint
        res = annotate(url, ck, top_k=2)
        assert res.source == url and res.to_records() == annotate(tmp_path / "t.csv", ck, top_k=2).to_records()
        cli = CliRunner().invoke(app, ["annotate", url, "--checkpoint", str(ck), "--top-k", "2", "--out", "-"])
        assert cli.exit_code == 0, cli.output
        assert json.loads(cli.stdout) == res.to_records() and url in cli.stderr
        bad = CliRunner().invoke(app, ["annotate", url + ".missing", "--checkpoint", str(ck)])
        assert isinstance(bad.exception, TableError) and "the server answered 404" in str(bad.exception)

        # Many sources, URLs among them: one JSON Lines run, a failed download listed like an unreadable file,
        # and --resume keys URLs by their text (no second download of a finished one).
        out = tmp_path / "ann.jsonl"
        args = ["annotate", url, url + ".missing", str(tmp_path / "t.csv"), "--checkpoint", str(ck), "--top-k", "2",
                "--out", str(out)]
        many = CliRunner().invoke(app, args)
        assert many.exit_code == 1 and "the server answered 404" in many.output
        recs = _records(out)
        assert [r["file"] for r in recs] == [url, url, str(tmp_path / "t.csv"), str(tmp_path / "t.csv")]
        assert [{k: v for k, v in r.items() if k not in ("file", "file_columns")} for r in recs[:2]] == res.to_records()
        assert _records(out.with_name("ann.errors.jsonl")) == [
            {"file": url + ".missing", "error": f"{url}.missing: the server answered 404 File not found"}]
        assert completed_files(out) == {url, str((tmp_path / "t.csv").resolve())}
        (tmp_path / "t.csv").rename(tmp_path / "gone.csv")  # the served file too: a resume must not fetch it again
        again = annotate_files([url, str(tmp_path / "gone.csv")], ck, out, resume=True, top_k=2, progress=False)
        assert (again.skipped, again.annotated, again.errors) == (1, 1, [])  # a fetch would have failed: 404
        assert _records(out)[:4] == recs and [r["file"] for r in _records(out)[4:]] == [str(tmp_path / "gone.csv")] * 2
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_dataframe_index_that_holds_data_is_annotated_and_said(trained, tmp_path):
    import pandas as pd

    from custom_task import KINDS

    r = random.Random(14)
    df = pd.DataFrame({"who": [KINDS["email"](r) for _ in range(8)], "when": [KINDS["date"](r) for _ in range(8)]})
    ck = trained.final_checkpoint
    res = annotate(df.set_index("who"), ck, top_k=2)
    assert [c.name for c in res.columns] == ["who", "when"]
    assert res.to_records() == annotate(df, ck, top_k=2).to_records()  # the same cells, the same labels
    assert any("index ('who') holds data and was annotated as the first column" in n for n in res.notes)
    assert not any("index" in n for n in annotate(df, ck, top_k=2).notes)
