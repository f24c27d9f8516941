"""One table file by its suffix: Parquet (`.parquet`, `.pq`), an Excel workbook (`.xlsx`, `.xlsm`; one
worksheet) or CSV/TSV text (anything else)."""

from __future__ import annotations

from pathlib import Path

from aegir.tables.readers.csv import read_csv
from aegir.tables.readers.excel import EXCEL_SUFFIXES, LEGACY_SUFFIXES, read_excel
from aegir.tables.readers.parquet import PARQUET_SUFFIXES, read_parquet
from aegir.tables.table import Table, TableError


def read_table_file(path: str | Path, *, header: bool | str = "infer", max_rows: int | None = None,
                    spread: bool = False, encoding: str | None = None, sheet: str | int | None = None) -> Table:
    """`header` applies to CSV/TSV and Excel, `encoding` (None: detected) to CSV/TSV only: a Parquet
    file's column names come from its schema, its text is UTF-8. `sheet` picks a workbook's worksheet
    (None: the first holding a table). max_rows keeps the first rows, or with `spread` a uniform sample of
    the whole file's (seeded)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if sheet is not None and suffix not in EXCEL_SUFFIXES:
        raise TableError(f"{p}: a sheet was named, but this is not an Excel workbook (.xlsx, .xlsm)")
    if suffix in PARQUET_SUFFIXES:
        return read_parquet(p, max_rows=max_rows, spread=spread)
    if suffix in EXCEL_SUFFIXES + LEGACY_SUFFIXES:
        return read_excel(p, sheet=sheet, header=header, max_rows=max_rows, spread=spread)
    return read_csv(p, header=header, max_rows=max_rows, spread=spread, encoding=encoding)
