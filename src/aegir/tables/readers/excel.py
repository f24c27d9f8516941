"""Excel workbooks (.xlsx, .xlsm) -> Table, one worksheet at a time (openpyxl, read-only streaming); OpenDocument
spreadsheets (.ods) the same way, through `readers.ods`.

A worksheet is read like a CSV file (`readers.rows`): as a stream of rows, keeping the first `max_rows`
or a seeded uniform sample of them and counting the rest, with the same preamble skip and header guess.
Cells become text as they are shown where that is the cell's number format (`numfmt`: 15% for a stored
0.15, $1,234.50, 12.3 kg; a format it does not cover, and General, plainly: 3, 4.8), a date as ISO 8601,
TRUE/FALSE as Excel writes them, a formula as the value Excel last computed (empty when the file was never
opened in a spreadsheet program).
Legacy .xls workbooks (Excel 97-2003, BIFF) are read with xlrd the same way, cell by cell with their number
formats; a .xls sheet holds at most 65,536 rows, so xlrd's whole-sheet load stays bounded.
openpyxl parses the workbook's XML through defusedxml (a dependency), so a hostile file cannot
expand entities without bound.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Iterator

from aegir.tables.readers.common import plain_number
from aegir.tables.readers.numfmt import format_number
from aegir.tables.readers.ods import ODS_SUFFIXES, OdsBook
from aegir.tables.readers.rows import collect, holds_table, keep_for, to_table
from aegir.tables.table import Table, TableError

EXCEL_SUFFIXES = (".xlsx", ".xlsm")
LEGACY_SUFFIXES = (".xls",)
WORKBOOK_SUFFIXES = (*EXCEL_SUFFIXES, *LEGACY_SUFFIXES, *ODS_SUFFIXES)  # what read_excel reads
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the compound file a .xls workbook is stored in


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
        return plain_number(v)
    if isinstance(v, dt.datetime):
        return v.date().isoformat() if v.time() == dt.time() else v.isoformat(sep=" ")
    if isinstance(v, (dt.date, dt.time)):
        return v.isoformat()
    return str(v)


class XlsxBook:
    """An .xlsx/.xlsm workbook's worksheets (chart sheets have no cells and are left out), as `read_excel` reads
    a workbook; `ods.OdsBook` is the same for OpenDocument spreadsheets."""

    source = "excel"  # meta["source"] of its tables

    def __init__(self, path: Path):
        import openpyxl

        try:
            self.wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as e:  # not a zip, a zip without a workbook, XML openpyxl cannot parse, ...
            raise TableError(f"{path}: cannot read as an Excel workbook ({type(e).__name__}: {e})") from None
        self._sheets = [ws for ws in self.wb.worksheets if hasattr(ws, "iter_rows")]
        self.names = [ws.title for ws in self._sheets]

    def rows(self, index: int) -> Iterator[list[str]]:
        for cells in self._sheets[index].iter_rows():  # cells, not values: their number formats (same cost)
            yield [cell_text(c.value, getattr(c, "number_format", None)) for c in cells]

    def holds_table(self, index: int) -> bool:
        return holds_table(self.rows(index))

    def close(self) -> None:
        self.wb.close()


class XlsBook:
    """A legacy .xls workbook's worksheets (xlrd), as `read_excel` reads a workbook."""

    source = "xls"

    def __init__(self, path: Path):
        import xlrd

        try:
            self.book = xlrd.open_workbook(path, formatting_info=True, on_demand=True)
        except Exception as e:  # not a compound file, an .xlsx renamed .xls, a damaged stream, ...
            raise TableError(f"{path}: cannot read as an Excel 97-2003 workbook ({type(e).__name__}: {e})") from None
        self.names = self.book.sheet_names()

    def rows(self, index: int) -> Iterator[list[str]]:
        import xlrd

        book = self.book
        sheet = book.sheet_by_index(index)
        for r in range(sheet.nrows):
            row = []
            for c in sheet.row(r):
                fmt = book.format_map.get(book.xf_list[c.xf_index].format_key) if c.xf_index is not None else None
                if c.ctype == xlrd.XL_CELL_DATE:
                    try:
                        v = xlrd.xldate_as_datetime(c.value, book.datemode)
                    except (ValueError, OverflowError, xlrd.xldate.XLDateError):
                        v = c.value  # a date format on a number no date has: the number
                elif c.ctype == xlrd.XL_CELL_BOOLEAN:
                    v = bool(c.value)
                elif c.ctype == xlrd.XL_CELL_ERROR:
                    v = xlrd.error_text_from_code.get(c.value, "#ERR")
                else:
                    v = c.value if c.ctype != xlrd.XL_CELL_BLANK else None
                row.append(cell_text(v, fmt.format_str if fmt is not None else None))
            yield row

    def holds_table(self, index: int) -> bool:
        return holds_table(self.rows(index))

    def close(self) -> None:
        self.book.release_resources()


def _open(path: Path) -> XlsxBook | XlsBook | OdsBook:
    suffix = path.suffix.lower()
    if suffix in ODS_SUFFIXES:
        return OdsBook(path)
    if suffix in LEGACY_SUFFIXES:
        return XlsBook(path)
    return XlsxBook(path)


def sheet_names(path: str | Path, *, nonempty: bool = True) -> list[str]:
    """The workbook's worksheets in order (chart sheets excluded); with `nonempty`, only those
    that hold a table (two or more non-blank rows)."""
    path = Path(path)
    book = _open(path)
    try:
        return [n for i, n in enumerate(book.names) if not nonempty or book.holds_table(i)]
    finally:
        book.close()


def read_excel(path: str | Path, *, sheet: str | int | None = None, header: bool | str = "infer",
               max_rows: int | None = None, spread: bool = False, meta: dict[str, Any] | None = None) -> Table:
    """One worksheet of an Excel workbook (.xlsx, .xls) or .ods spreadsheet as a Table. sheet: its name, its
    position (0 = first), or None for the first worksheet that holds a table (two or more non-blank rows). header,
    max_rows and spread as in `read_csv`. meta: source "excel", "xls" or "ods", sheet, sheets (every worksheet's
    name), and read_csv's row/header keys."""
    path = Path(path)
    book = _open(path)
    try:
        names = book.names
        if not names:
            raise TableError(f"{path}: workbook has no worksheets")
        if sheet is None:
            i = next((i for i in range(len(names)) if book.holds_table(i)), None)
            if i is None:
                raise TableError(f"{path}: no worksheet holds a table (two or more non-blank rows)")
        elif isinstance(sheet, int) and 0 <= sheet < len(names):
            i = sheet
        elif str(sheet) in names:  # a name; also 2019 from the command line for a sheet named "2019"
            i = names.index(str(sheet))
        elif isinstance(sheet, int):
            raise TableError(f"{path}: no worksheet {sheet}; it has {len(names)}: {', '.join(names)}")
        else:
            raise TableError(f"{path}: no worksheet named {sheet!r}; it has {', '.join(map(repr, names))}")
        try:
            rows = collect(book.rows(i), keep_for(max_rows, header), spread)
        except TableError:
            raise
        except Exception as e:  # a damaged sheet part inside a readable zip
            raise TableError(f"{path}, worksheet {names[i]!r}: cannot read ({type(e).__name__}: {e})") from None
        return to_table(rows, f"{path} [{names[i]}]", header=header, max_rows=max_rows, spread=spread, meta=meta,
                        source={"source": book.source, "name": path.name, "path": str(path), "sheet": names[i],
                                "sheets": names})
    finally:
        book.close()
