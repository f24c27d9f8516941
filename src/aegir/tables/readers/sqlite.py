"""SQLite database files -> Table, one table (or view) at a time (the standard library's sqlite3).

A database table is read like a CSV file (`readers.rows`): `SELECT *` as a stream of rows, keeping the
first `max_rows` or a seeded uniform sample of them and counting the rest, so a large table costs a scan,
not memory. Column names are the table's own (never guessed). Cells become text as a CSV export would
hold them: NULL empty, numbers as Python writes them (3, 4.5), text as stored; a BLOB as its text when it
is UTF-8, else as a hex literal of its first bytes (x'89504e47...'). Every row counts, one of NULLs too.

The file is opened read-only (`mode=ro`): annotating never writes to a user's database. Table names
read from the file are quoted as identifiers, never pasted into SQL as they are.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from aegir.tables.readers.common import bytes_text, cell_text as _json_cell_text, column_name
from aegir.tables.readers.rows import Collected, sample_rows, to_table
from aegir.tables.table import Table, TableError

SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db", ".db3")
MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite 3 database file


def is_sqlite(path: str | Path) -> bool:
    """Whether the file starts with SQLite's header (a `.db` file may be anything else)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def is_database(path: str | Path) -> bool:
    """Whether a file is read as a SQLite database: by its suffix, or by its header whatever the suffix (a
    `.db` file that is not SQLite is one by name, and its reader then says it is not SQLite)."""
    return Path(path).suffix.lower() in SQLITE_SUFFIXES or is_sqlite(path)


def cell_text(v: Any) -> str:
    """A stored value as the text a CSV export would hold."""
    if isinstance(v, bytes):
        return bytes_text(v)
    return _json_cell_text(v)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    if not is_sqlite(path):
        raise TableError(f"{path}: not a SQLite database (it does not start with the SQLite 3 header)")
    con = None
    try:
        con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.Error as e:  # damaged, encrypted, locked
        if con is not None:
            con.close()
        raise TableError(f"{path}: cannot read the SQLite database ({e})") from None
    con.text_factory = lambda b: b.decode("utf-8", errors="replace")  # TEXT that is not valid UTF-8
    return con


# The tables a full-text or spatial index keeps its own data in, named after its virtual table (FTS3/4/5, R*Tree):
# recognised this way where SQLite is older than 3.37, which lists them itself (PRAGMA table_list: "shadow").
SHADOW_SUFFIXES = ("_data", "_idx", "_content", "_docsize", "_config", "_segments", "_segdir", "_stat", "_node",
                   "_rowid", "_parent")


def _shadow_tables(con: sqlite3.Connection) -> set[str]:
    """Tables that only hold a virtual table's index: its contents are read through the virtual table itself."""
    try:
        return {n for _, n, kind, *_ in con.execute("PRAGMA main.table_list") if kind == "shadow"}
    except sqlite3.Error:  # before SQLite 3.37
        virtual = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                             "sql LIKE 'CREATE VIRTUAL TABLE%'")]
        return {v + s for v in virtual for s in SHADOW_SUFFIXES}


def _names(con: sqlite3.Connection, kinds: tuple[str, ...]) -> list[str]:
    """Tables (and views) in creation order; SQLite's own and virtual tables' shadow tables left out."""
    marks = ",".join("?" * len(kinds))
    shadow = _shadow_tables(con)
    return [n for (n,) in con.execute(f"SELECT name FROM sqlite_master WHERE type IN ({marks}) AND name NOT LIKE "
                                      "'sqlite\\_%' ESCAPE '\\' ORDER BY rowid", kinds) if n not in shadow]


def _has_rows(con: sqlite3.Connection, name: str) -> bool:
    """Whether the table holds a row; False for one that cannot be read here (a virtual table whose module,
    such as SpatiaLite's, is not loaded), which is then passed over unless named."""
    try:
        return con.execute(f"SELECT 1 FROM {_quote(name)} LIMIT 1").fetchone() is not None
    except sqlite3.Error:
        return False


def table_names(path: str | Path, *, nonempty: bool = True) -> list[str]:
    """The database's tables in creation order (SQLite's own tables, views and full-text/spatial indexes' shadow
    tables excluded; a full-text table itself is one); with `nonempty`, only those holding a row that can be
    read."""
    path = Path(path)
    con = _connect(path)
    try:
        return [n for n in _names(con, ("table",)) if not nonempty or _has_rows(con, n)]
    finally:
        con.close()


def _collect(con: sqlite3.Connection, table: str, max_rows: int | None, spread: bool) -> Collected:
    """The table's column names and rows as `rows.collect` would give them for a CSV file with that header,
    but drawn from the raw rows: only the rows kept become text (a scan of a long table only counts), and
    every row counts, an all-NULL one too (a database row is a row)."""
    cur = con.execute(f"SELECT * FROM {_quote(table)}")
    names = [column_name(d[0]) for d in cur.description]  # pandas' to_sql keeps "Unnamed: 0"
    kept, total = sample_rows(cur, max_rows, spread,
                              count=lambda: con.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()[0])
    # Row numbers as collect counts them: the header is row 0.
    return Collected(first=[names], kept=[(i + 1, [cell_text(v) for v in row]) for i, row in kept], total=total + 1)


def read_sqlite(path: str | Path, *, table: str | None = None, max_rows: int | None = None, spread: bool = False,
                meta: dict[str, Any] | None = None) -> Table:
    """One table (or view) of a SQLite database as a Table. table: its name, or None for the first table
    holding a row. max_rows and spread as in `read_csv`. meta: source "sqlite", table, tables (every
    table's name), and read_csv's row keys; header "given" (the table's column names)."""
    path = Path(path)
    con = _connect(path)
    try:
        tables = _names(con, ("table",))
        if table is None:
            table = next((n for n in tables if _has_rows(con, n)), None)
            if table is None:
                raise TableError(f"{path}: no table holds a row" + ("" if tables else " (the database has no tables)"))
        elif table not in _names(con, ("table", "view")):
            raise TableError(f"{path}: no table or view named {table!r}; its tables: "
                             f"{', '.join(map(repr, tables)) or 'none'}")
        try:
            rows = _collect(con, table, max_rows, spread)
        except sqlite3.Error as e:  # a damaged page, a view over a missing table
            raise TableError(f"{path}, table {table!r}: cannot read ({e})") from None
        return to_table(rows, f"{path} [{table}]", header=True, max_rows=max_rows, spread=spread, meta=meta,
                        source={"source": "sqlite", "name": path.name, "path": str(path), "table": table,
                                "tables": tables})
    finally:
        con.close()
