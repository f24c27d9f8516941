"""SQLite database files: tables read as streams of rows with their own column names (real sqlite3 files)."""

import sqlite3

import pytest

from aegir.tables import TableError
from aegir.tables.readers import read_sqlite, read_table_file, table_names
from aegir.tables.readers.sqlite import cell_text


def _db(path, n=1000):
    con = sqlite3.connect(path)
    con.execute('CREATE TABLE "order ""lines""" (id INTEGER, price REAL, note TEXT, img BLOB, missing TEXT)')
    con.executemany('INSERT INTO "order ""lines""" VALUES (?, ?, ?, ?, NULL)',
                    [(i, i * 1.5, f"n{i}", b"\x89PNG" + bytes(40)) for i in range(n)])
    con.execute("CREATE TABLE empty (a)")
    con.execute("CREATE TABLE people (name TEXT, born TEXT)")
    con.executemany("INSERT INTO people VALUES (?, ?)", [("Ada", "1815-12-10"), ("Alan", "1912-06-23"), (None, None)])
    con.execute('CREATE VIEW cheap AS SELECT id, price FROM "order ""lines""" WHERE price < 3')
    con.commit()
    con.close()
    return path


def test_cells_read_as_a_csv_export_writes_them():
    assert [cell_text(v) for v in (None, 3, 4.5, 3.0, "x", b"caf\xc3\xa9")] == ["", "3", "4.5", "3.0", "x", "café"]
    assert cell_text(b"\x89PNG") == "x'89504e47'"
    assert cell_text(bytes(range(128, 168))) == "x'" + bytes(range(128, 160)).hex() + "...'"  # first 32 bytes


def test_tables_rows_and_names(tmp_path):
    p = _db(tmp_path / "shop.sqlite")
    assert table_names(p) == ['order "lines"', "people"]  # creation order; empty tables and views left out
    assert table_names(p, nonempty=False) == ['order "lines"', "empty", "people"]
    t = read_sqlite(p)  # the first table holding a row, whole
    assert t.header == ["id", "price", "note", "img", "missing"] and t.n_rows == 1000
    assert t.columns[0][:3] == ["0", "1", "2"] and t.columns[1][3] == "4.5" and t.columns[4] == [""] * 1000
    assert t.columns[3][0] == "x'89504e47" + "00" * 28 + "...'"
    assert (t.meta["source"], t.meta["table"], t.meta["tables"], t.meta["header"]) == (
        "sqlite", 'order "lines"', ['order "lines"', "empty", "people"], "given")
    people = read_sqlite(p, table="people")
    # A row of NULLs is a row (unlike a blank CSV line): read and counted.
    assert people.header == ["name", "born"] and people.columns == [["Ada", "Alan", ""], ["1815-12-10", "1912-06-23", ""]]
    assert people.meta["rows_total"] == 3
    view = read_sqlite(p, table="cheap")  # a view can be named
    assert view.header == ["id", "price"] and view.columns[0] == ["0", "1"]


def test_long_tables_are_sampled_and_counted(tmp_path):
    p = _db(tmp_path / "shop.db", n=5000)
    head = read_sqlite(p, max_rows=10)
    assert head.columns[0] == [str(i) for i in range(10)] and head.meta["rows_total"] == 5000
    assert head.meta["row_sample"] == "first"
    spread = read_sqlite(p, max_rows=10, spread=True)
    ids = [int(x) for x in spread.columns[0]]
    assert len(ids) == 10 and ids == sorted(ids) and ids[-1] > 1000  # a uniform sample, in table order
    assert spread.meta["rows_total"] == 5000 and spread.meta["row_sample"] == "spread"
    assert read_sqlite(p, max_rows=10, spread=True).columns == spread.columns  # seeded


def test_files_are_recognised_by_suffix_or_header(tmp_path):
    p = _db(tmp_path / "shop.sqlite3")
    assert read_table_file(p, max_rows=3).meta["source"] == "sqlite"
    renamed = tmp_path / "export.csv"  # a database under a CSV name is still read as one
    renamed.write_bytes(p.read_bytes())
    assert read_table_file(renamed, table="people").n_rows == 3
    (tmp_path / "notes.db").write_text("a,b\n1,2\n")
    with pytest.raises(TableError, match="notes.db: not a SQLite database"):
        read_table_file(tmp_path / "notes.db")
    with pytest.raises(TableError, match="a table was named, but this is not a SQLite database"):
        (tmp_path / "t.csv").write_text("a,b\n1,2\n")
        read_table_file(tmp_path / "t.csv", table="people")


def test_errors_name_the_file_and_table(tmp_path):
    p = _db(tmp_path / "shop.db")
    with pytest.raises(TableError, match=r"shop.db: no table or view named 'nope'; its tables: 'order \"lines\"', "
                                         r"'empty', 'people'"):
        read_sqlite(p, table="nope")
    none = tmp_path / "none.db"
    sqlite3.connect(none).execute("CREATE TABLE t (a)").connection.commit()
    with pytest.raises(TableError, match="none.db: no table holds a row"):
        read_sqlite(none)
    broken = tmp_path / "broken.db"
    broken.write_bytes(p.read_bytes()[:100] + b"\xff" * 3000)  # SQLite's header, then garbage
    with pytest.raises(TableError, match="broken.db"):
        read_sqlite(broken)
    with pytest.raises(TableError, match="missing.db: no such file"):
        read_sqlite(tmp_path / "missing.db")


def test_the_database_is_opened_read_only(tmp_path):
    p = _db(tmp_path / "shop.db")
    before = p.read_bytes()
    read_sqlite(p, table="people")
    table_names(p)
    assert p.read_bytes() == before and not (tmp_path / "shop.db-journal").exists()


def _with_indexes(path):
    """A database as an app with search and maps writes it: a plain table, a full-text (FTS5) table of
    documents and an R*Tree, with the shadow tables SQLite creates for both, and a virtual table whose module
    (SpatiaLite's, say) is not loaded here."""
    con = sqlite3.connect(path)
    con.execute("CREATE VIRTUAL TABLE docs USING fts5(title, body)")
    con.executemany("INSERT INTO docs VALUES (?, ?)", [("Tea", "Leaves in water"), ("Milk", "From cows")])
    con.execute("CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1)")
    con.execute("INSERT INTO boxes VALUES (1, 0.5, 2.5)")
    con.execute("CREATE TABLE docs_notes (note)")  # named like a shadow table, but the user's own
    con.execute("INSERT INTO docs_notes VALUES ('keep me')")
    con.execute("PRAGMA writable_schema = ON")
    con.execute("INSERT INTO sqlite_master VALUES ('table', 'geo', 'geo', 0, "
                "'CREATE VIRTUAL TABLE geo USING VirtualSpatialIndex()')")
    con.commit()
    con.close()
    return path


def test_index_shadow_tables_are_not_tables_and_unreadable_virtual_ones_are_passed_over(tmp_path):
    db = _with_indexes(tmp_path / "app.db")
    # docs_data, docs_idx, docs_content, docs_docsize, docs_config, boxes_node, boxes_rowid, boxes_parent: gone.
    assert table_names(db, nonempty=False) == ["docs", "boxes", "docs_notes", "geo"]
    assert table_names(db) == ["docs", "boxes", "docs_notes"]  # geo's module is not loaded: no rows can be read
    t = read_table_file(db)
    assert (t.meta["table"], t.header, t.columns) == ("docs", ["title", "body"], [["Tea", "Milk"],
                                                                                  ["Leaves in water", "From cows"]])
    assert t.meta["tables"] == ["docs", "boxes", "docs_notes", "geo"]
    with pytest.raises(TableError, match=r"app.db, table 'geo': cannot read \(no such module: VirtualSpatialIndex\)"):
        read_table_file(db, table="geo")
    assert read_table_file(db, table="docs_notes").columns == [["keep me"]]


def test_shadow_tables_by_name_where_sqlite_cannot_list_them(tmp_path, monkeypatch):
    """Before SQLite 3.37 there is no PRAGMA table_list: shadow tables are known by their virtual table's name."""
    from aegir.tables.readers import sqlite as reader

    db = _with_indexes(tmp_path / "app.db")
    real = reader._shadow_tables

    class OldConnection:
        def __init__(self, con):
            self.con = con

        def execute(self, sql, *args):
            if "table_list" in sql:
                raise sqlite3.OperationalError("unknown pragma")
            return self.con.execute(sql, *args)

    monkeypatch.setattr(reader, "_shadow_tables", lambda con: real(OldConnection(con)))
    assert table_names(db, nonempty=False) == ["docs", "boxes", "docs_notes", "geo"]
