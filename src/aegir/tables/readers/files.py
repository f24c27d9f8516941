"""One table file by its suffix: Parquet (`.parquet`, `.pq`) or CSV/TSV text (anything else)."""

from __future__ import annotations

from pathlib import Path

from aegir.tables.readers.csv import read_csv
from aegir.tables.readers.parquet import PARQUET_SUFFIXES, read_parquet
from aegir.tables.table import Table


def read_table_file(path: str | Path, *, header: bool | str = "infer", max_rows: int | None = None,
                    spread: bool = False, encoding: str | None = None) -> Table:
    """`header` and `encoding` (None: detected) apply to CSV/TSV only: a Parquet file's column names
    come from its schema, its text is UTF-8. max_rows keeps the first rows, or with `spread` a uniform
    sample of the whole file's (seeded)."""
    p = Path(path)
    if p.suffix.lower() in PARQUET_SUFFIXES:
        return read_parquet(p, max_rows=max_rows, spread=spread)
    return read_csv(p, header=header, max_rows=max_rows, spread=spread, encoding=encoding)
