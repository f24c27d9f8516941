"""Excel workbooks (.xlsx, .xlsm) -> Table, one worksheet at a time (openpyxl, read-only streaming).

A worksheet is read like a CSV file (`readers.rows`): as a stream of rows, keeping the first `max_rows`
or a seeded uniform sample of them and counting the rest, with the same preamble skip and header guess.
Cells become text as they are shown where that is the cell's number format (`numfmt`: 15% for a stored
0.15, $1,234.50, 12.3 kg; a format it does not cover, and General, plainly: 3, 4.8), a date as ISO 8601,
TRUE/FALSE as Excel writes them, a formula as the value Excel last computed (empty when the file was never
opened in a spreadsheet program).
Legacy .xls workbooks are refused with a clear error (save them as .xlsx or CSV).
openpyxl parses the workbook's XML through defusedxml (a dependency), so a hostile file cannot
expand entities without bound.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any, Iterator

from aegir.tables.readers.numfmt import format_number
from aegir.tables.readers.rows import blank, collect, keep_for, to_table
from aegir.tables.table import Table, TableError

EXCEL_SUFFIXES = (".xlsx", ".xlsm")
LEGACY_SUFFIXES = (".xls",)


def cell_text(v: Any, number_format: str | None = None) -> str:
    """A stored cell value as the text a CSV export would hold: a number through its number format where
    `numfmt` covers it (15% for 0.15 shown as a percent), else plainly."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)) and number_format:
        shown = format_number(v, number_format)
        if shown is not None:
            return shown
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else format(v, ".15g")
    if isinstance(v, dt.datetime):
        return v.date().isoformat() if v.time() == dt.time() else v.isoformat(sep=" ")
    if isinstance(v, (dt.date, dt.time)):
        return v.isoformat()
    return str(v)


def _open(path: Path):
    import openpyxl

    if path.suffix.lower() in LEGACY_SUFFIXES:
        raise TableError(f"{path}: legacy .xls workbook; save it as .xlsx or CSV")
    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # not a zip, a zip without a workbook, XML openpyxl cannot parse, ...
        raise TableError(f"{path}: cannot read as an Excel workbook ({type(e).__name__}: {e})") from None


def _rows(ws) -> Iterator[list[str]]:
    for cells in ws.iter_rows():  # cells, not values: their number formats (read-only mode costs about the same)
        yield [cell_text(c.value, getattr(c, "number_format", None)) for c in cells]


def _worksheets(wb) -> list:
    return [ws for ws in wb.worksheets if hasattr(ws, "iter_rows")]  # chart sheets have no cells


def _holds_table(ws) -> bool:
    """Two or more non-blank rows: a header and a row, or rows (a cover sheet with a title is not a table).
    Reads the sheet up to its second such row."""
    return sum(1 for _ in itertools.islice((r for r in _rows(ws) if not blank(r)), 2)) == 2


def sheet_names(path: str | Path, *, nonempty: bool = True) -> list[str]:
    """The workbook's worksheets in order (chart sheets excluded); with `nonempty`, only those
    that hold a table (two or more non-blank rows)."""
    path = Path(path)
    wb = _open(path)
    try:
        return [ws.title for ws in _worksheets(wb) if not nonempty or _holds_table(ws)]
    finally:
        wb.close()


def read_excel(path: str | Path, *, sheet: str | int | None = None, header: bool | str = "infer",
               max_rows: int | None = None, spread: bool = False, meta: dict[str, Any] | None = None) -> Table:
    """One worksheet as a Table. sheet: its name, its position (0 = first), or None for the first
    worksheet that holds a table (two or more non-blank rows). header, max_rows and spread as in `read_csv`.
    meta: source "excel", sheet, sheets (every worksheet's name), and read_csv's row/header keys."""
    path = Path(path)
    wb = _open(path)
    try:
        sheets = _worksheets(wb)
        names = [ws.title for ws in sheets]
        if not sheets:
            raise TableError(f"{path}: workbook has no worksheets")
        if sheet is None:
            ws = next((ws for ws in sheets if _holds_table(ws)), None)
            if ws is None:
                raise TableError(f"{path}: no worksheet holds a table (two or more non-blank rows)")
        elif isinstance(sheet, int) and 0 <= sheet < len(sheets):
            ws = sheets[sheet]
        elif str(sheet) in names:  # a name; also 2019 from the command line for a sheet named "2019"
            ws = sheets[names.index(str(sheet))]
        elif isinstance(sheet, int):
            raise TableError(f"{path}: no worksheet {sheet}; it has {len(sheets)}: {', '.join(names)}")
        else:
            raise TableError(f"{path}: no worksheet named {sheet!r}; it has {', '.join(map(repr, names))}")
        try:
            rows = collect(_rows(ws), keep_for(max_rows, header), spread)
        except Exception as e:  # a damaged sheet part inside a readable zip
            raise TableError(f"{path}, worksheet {ws.title!r}: cannot read ({type(e).__name__}: {e})") from None
        return to_table(rows, f"{path} [{ws.title}]", header=header, max_rows=max_rows, spread=spread, meta=meta,
                        source={"source": "excel", "name": path.name, "path": str(path), "sheet": ws.title,
                                "sheets": names})
    finally:
        wb.close()
