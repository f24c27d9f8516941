"""Zip archives of table files: each member read as the file it holds, by its kind, never by its path."""

import gzip
import io
import json
import sqlite3
import zipfile

import openpyxl
import pandas as pd
import pytest

from aegir.tables import TableError
from aegir.tables.readers import read_table_file
from aegir.tables.readers.archive import member_names


def _files(tmp_path):
    """The same small table in several kinds, as loose files (name -> bytes)."""
    csv = b"city,pop\nOslo,0.7\nRome,2.8\n"
    df = pd.read_csv(io.BytesIO(csv))
    df.to_parquet(tmp_path / "t.parquet")
    wb = openpyxl.Workbook()
    for row in (["city", "pop"], ["Oslo", 0.7], ["Rome", 2.8]):
        wb.active.append(row)
    wb.save(tmp_path / "t.xlsx")
    with sqlite3.connect(tmp_path / "t.sqlite") as con:
        df.to_sql("cities", con, index=False)
    return {"t.csv": csv, "data/t.tsv.gz": gzip.compress(csv.replace(b",", b"\t")),
            "t.jsonl": "".join(json.dumps(r) + "\n" for r in df.to_dict("records")).encode(),
            "t.parquet": (tmp_path / "t.parquet").read_bytes(), "t.xlsx": (tmp_path / "t.xlsx").read_bytes(),
            "t.sqlite": (tmp_path / "t.sqlite").read_bytes()}


def test_members_read_as_the_files_they_hold(tmp_path):
    files = _files(tmp_path)
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("__MACOSX/._t.csv", b"\x00\x05\x16\x07")
        z.writestr("readme.txt", b"not a table")
        z.writestr("empty/", b"")
    assert member_names(tmp_path / "a.zip") == list(files)
    first = read_table_file(tmp_path / "a.zip")
    assert (first.meta["member"], first.meta["name"], first.meta["members"]) == ("t.csv", "t.csv", list(files))
    assert first.meta["path"] == str(tmp_path / "a.zip")
    for name in files:
        t = read_table_file(tmp_path / "a.zip", member=name)
        assert t.header == ["city", "pop"] and t.columns == [["Oslo", "Rome"], ["0.7", "2.8"]], name
    assert read_table_file(tmp_path / "a.zip", member="t.sqlite", table="cities").meta["table"] == "cities"


def test_member_names_never_become_paths(tmp_path):
    (tmp_path / "in").mkdir()
    with zipfile.ZipFile(tmp_path / "in" / "evil.zip", "w") as z:
        z.writestr("../../escaped.csv", b"a,b\n1,2\n")
    t = read_table_file(tmp_path / "in" / "evil.zip")
    assert t.meta["member"] == "../../escaped.csv" and t.columns == [["1"], ["2"]]
    assert not list(tmp_path.rglob("escaped.csv"))


def test_errors_name_the_archive_and_member(tmp_path):
    (tmp_path / "fake.zip").write_text("a,b\n1,2\n")
    with pytest.raises(TableError, match="fake.zip: cannot read as a zip archive"):
        read_table_file(tmp_path / "fake.zip")
    with zipfile.ZipFile(tmp_path / "none.zip", "w") as z:
        z.writestr("notes.txt", b"hello")
    with pytest.raises(TableError, match="none.zip: the archive holds no table file"):
        read_table_file(tmp_path / "none.zip")
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as z:
        z.writestr("good.csv", b"a,b\n1,2\n")
        z.writestr("bad.jsonl", b'{"a": 1}\n{oops}\n')
    with pytest.raises(TableError, match=r"no table file 'nope.csv' in the archive; it holds 'good.csv', 'bad.jsonl'"):
        read_table_file(tmp_path / "b.zip", member="nope.csv")
    with pytest.raises(TableError, match=r"b.zip \[bad.jsonl\], line 2: not a JSON object"):
        read_table_file(tmp_path / "b.zip", member="bad.jsonl")
    (tmp_path / "t.csv").write_text("a\n1\n")
    with pytest.raises(TableError, match="a member was named, but this is not a zip archive"):
        read_table_file(tmp_path / "t.csv", member="x.csv")


def test_a_member_larger_than_the_free_disk_is_refused_before_copying(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    with zipfile.ZipFile(tmp_path / "big.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.csv", b"a\n" + b"1\n" * 100_000)  # 200 kB unpacked, a few hundred bytes packed
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**6, 10**6 - 1000, 1000))  # 1 kB free
    with pytest.raises(TableError, match=r"big.zip \[big.csv\]: 0.2 MiB unpacked, more than the 0.0 MiB free"):
        read_table_file(tmp_path / "big.zip")
