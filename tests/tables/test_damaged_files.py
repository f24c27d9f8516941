"""Damaged and foreign files never escape as a bare traceback: every reader answers a TableError that names
the file. Real files of each kind are cut short at seeded points; random bytes get every suffix."""

import gzip
import json
import random
import sqlite3
import zipfile

import openpyxl
import pandas as pd
import pytest
import xlwt
import zstandard

from aegir.tables import TableError
from aegir.tables.readers import read_table_file

MAGICS = [b"", b"\x1f\x8b\x08", b"BZh91AY&SY", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"PK\x03\x04", b"PAR1",
          b"SQLite format 3\x00", b"[", b"<table><tr><td>", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"]
SUFFIXES = [".csv", ".csv.gz", ".tsv.bz2", ".jsonl", ".json", ".json.xz", ".csv.zst", ".parquet", ".xlsx", ".ods",
            ".sqlite", ".db", ".zip", ".html", ".xls"]


def _real_files(tmp_path):
    df = pd.DataFrame({"city": [f"City {i}" for i in range(300)], "pop": [i * 0.5 for i in range(300)]})
    files = {}
    df.to_csv(tmp_path / "t.csv", index=False)
    files[".csv"] = (tmp_path / "t.csv").read_bytes()
    files[".csv.gz"] = gzip.compress(files[".csv"])
    files[".jsonl"] = "".join(json.dumps(r) + "\n" for r in df.to_dict("records")).encode()
    files[".json"] = json.dumps({"data": df.to_dict("records")}).encode()
    df.to_parquet(tmp_path / "t.parquet")
    files[".parquet"] = (tmp_path / "t.parquet").read_bytes()
    wb = openpyxl.Workbook()
    for row in [list(df.columns)] + df.values.tolist():
        wb.active.append(row)
    wb.save(tmp_path / "t.xlsx")
    files[".xlsx"] = (tmp_path / "t.xlsx").read_bytes()
    df.to_excel(tmp_path / "t.ods", engine="odf", index=False)
    files[".ods"] = (tmp_path / "t.ods").read_bytes()
    files[".csv.zst"] = zstandard.ZstdCompressor().compress(files[".csv"])
    files[".html"] = df.to_html(index=False).encode()
    book = xlwt.Workbook()
    sheet = book.add_sheet("t")
    for r, row in enumerate([list(df.columns)] + df.values.tolist()):
        for c, v in enumerate(row):
            sheet.write(r, c, v)
    book.save(tmp_path / "t.xls")
    files[".xls"] = (tmp_path / "t.xls").read_bytes()
    with sqlite3.connect(tmp_path / "t.sqlite") as con:
        df.to_sql("t", con, index=False)
    files[".sqlite"] = (tmp_path / "t.sqlite").read_bytes()
    with zipfile.ZipFile(tmp_path / "t.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("t.csv", files[".csv"])
    files[".zip"] = (tmp_path / "t.zip").read_bytes()
    return files


def _read(path):
    try:
        read_table_file(path, max_rows=50, spread=True)
    except TableError as e:
        assert str(path.name) in str(e), str(e)  # the error names the file


def test_files_cut_short_answer_with_a_table_error(tmp_path):
    r = random.Random(0)
    for suffix, data in _real_files(tmp_path).items():
        for k in range(6):
            cut = tmp_path / f"cut{k}{suffix}"
            cut.write_bytes(data[: r.randrange(1, len(data))])
            _read(cut)  # read what survives, or a TableError naming the file; anything else fails the test


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_random_bytes_under_every_suffix(tmp_path, suffix):
    r = random.Random(suffix)
    for k in range(16):
        p = tmp_path / f"junk{k}{suffix}"
        magic = r.choice(MAGICS)  # junk behind a real format's header, which sends it to that format's reader
        p.write_bytes(magic + bytes(r.randrange(256) for _ in range(r.choice([0, 1, 17, 300, 5000]))))
        _read(p)
