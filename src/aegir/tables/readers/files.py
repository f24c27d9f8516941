"""One table file by its suffix: Parquet (`.parquet`, `.pq`), Arrow IPC/Feather (`.arrow`, `.feather`, `.ipc`) or
ORC (`.orc`); an Excel workbook or OpenDocument spreadsheet (`.xlsx`, `.xlsm`, `.xls`, `.ods`; one worksheet); a SQLite
database (`.sqlite`, `.sqlite3`, `.db`, `.db3`, or any file with SQLite's header; one table); an HTML page (`.html`,
`.htm`; one <table>); JSON Lines or a JSON array of objects (`.jsonl`, `.ndjson`, `.json`; also compressed); a zip
archive of such files (`.zip`; one member); or CSV/TSV text (anything else; also compressed)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from aegir.tables.readers.archive import ZIP_SUFFIXES, extracted
from aegir.tables.readers.common import errors_named
from aegir.tables.readers.csv import read_csv
from aegir.tables.readers.excel import WORKBOOK_SUFFIXES, read_excel
from aegir.tables.readers.html import HTML_SUFFIXES, read_html
from aegir.tables.readers.jsonl import is_json, read_json
from aegir.tables.readers.parquet import COLUMNAR_SUFFIXES, read_parquet
from aegir.tables.readers.sqlite import is_database, read_sqlite
from aegir.tables.table import Table, TableError


def read_table_file(path: str | Path, *, header: bool | str = "infer", max_rows: int | None = None,
                    spread: bool = False, encoding: str | None = None, sheet: str | int | None = None,
                    table: str | None = None, member: str | None = None) -> Table:
    """`header` applies to CSV/TSV and Excel, `encoding` (None: detected) to CSV/TSV only: a Parquet
    file's column names come from its schema, a database table's from its definition, JSON's from its keys.
    `sheet` picks a workbook's worksheet (None: the first holding a table), `table` a database's table or view
    (None: the first holding a row), a JSON document's array of objects (None: the first) or an HTML page's
    <table> (None: the first holding a table), `member` a zip archive's table file (None: the first; sheet and table then
    apply to it). max_rows keeps the first rows, or with `spread` a uniform sample of the whole file's (seeded)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in ZIP_SUFFIXES:
        return _read_member(p, member, header=header, max_rows=max_rows, spread=spread, encoding=encoding,
                            sheet=sheet, table=table)
    if member is not None:
        raise TableError(f"{p}: a member was named, but this is not a zip archive")
    database = is_database(p)
    if sheet is not None and suffix not in WORKBOOK_SUFFIXES:
        raise TableError(f"{p}: a sheet was named, but this is not a workbook (.xlsx, .xlsm, .xls, .ods)")
    if table is not None and not database and not is_json(p) and suffix not in HTML_SUFFIXES:
        raise TableError(f"{p}: a table was named, but this is not a SQLite database, a JSON document or an HTML page")
    if database:
        return read_sqlite(p, table=table, max_rows=max_rows, spread=spread)
    if suffix in COLUMNAR_SUFFIXES:
        return read_parquet(p, max_rows=max_rows, spread=spread)
    if is_json(p):
        return read_json(p, table=table, max_rows=max_rows, spread=spread)
    if suffix in HTML_SUFFIXES:
        return read_html(p, table=table, header=header, max_rows=max_rows, spread=spread)
    if suffix in WORKBOOK_SUFFIXES:
        return read_excel(p, sheet=sheet, header=header, max_rows=max_rows, spread=spread)
    return read_csv(p, header=header, max_rows=max_rows, spread=spread, encoding=encoding)


def _read_member(archive: Path, member: str | None, **kw) -> Table:
    """A zip archive's member, extracted to a temporary file and read by its kind; errors and the table's
    meta name the archive and member, not the temporary file."""
    with extracted(archive, member) as (tmp, name, names):
        with errors_named(tmp, f"{archive} [{name}]"):
            t = read_table_file(tmp, **kw)
    t.meta.update(path=str(archive), name=PurePosixPath(name).name, member=name, members=names)
    return t
