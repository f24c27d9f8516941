"""OpenDocument spreadsheets (.ods: LibreOffice Calc's format, and what many open-data portals publish) as rows
of text, one sheet at a time; `excel.read_excel` makes them Tables like worksheets.

An .ods file is a zip whose `content.xml` holds every sheet in order. It is parsed as a stream (defusedxml's
iterparse: no DTD, no entity expansion), and each row is dropped once read, so memory stays bounded by the
rows kept, not by the sheet. A cell becomes the text the spreadsheet shows: its `text:p` paragraphs, which the
writing program fills with the displayed value (15%, 1.234,50 EUR in a German locale, as a CSV export "as
shown" holds), joined by newlines. Dates are the exception: they are read from their stored ISO 8601 value
(as the Excel reader writes dates), since the shown form (01/02/24) is ambiguous. A cell without paragraphs
falls back to its stored value, and so does a number whose shown text is empty or only the stored value
written out (files from other writers: pandas writes 15.0 for 15, and nothing for 0), as General shows it.
Merged-over cells are blank, as in the Excel reader.

Repeated rows and cells (`table:number-rows-repeated`, `table:number-columns-repeated`) are expanded, except
blank ones at a row's end or blank rows (LibreOffice writes them to fill a sheet's million rows and
thousands of columns). A row wider than MAX_COLUMNS cells or a sheet longer than MAX_ROWS rows is refused: a
repeat count is a number in the file, not bytes, so a small file could otherwise ask for billions of cells.
"""

from __future__ import annotations

import contextlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from defusedxml.ElementTree import iterparse

from aegir.tables.readers.common import plain_number
from aegir.tables.readers.rows import blank
from aegir.tables.table import TableError

ODS_SUFFIXES = (".ods",)
MIMETYPES = ("application/vnd.oasis.opendocument.spreadsheet",
             "application/vnd.oasis.opendocument.spreadsheet-template")
MAX_COLUMNS = 16_384  # LibreOffice's and Excel's widest sheet
MAX_ROWS = 1 << 24  # LibreOffice's longest ("jumbo") sheet: 16,777,216 rows

_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_CELLS = (_TABLE + "table-cell", _TABLE + "covered-table-cell")
_ROW, _P = _TABLE + "table-row", _TEXT + "p"
_NUMERIC = ("float", "percentage", "currency")
_ROW_PARENTS = {_TABLE + t for t in ("table", "table-header-rows", "table-row-group", "table-rows")}
_COLUMNS_REPEATED, _ROWS_REPEATED = _TABLE + "number-columns-repeated", _TABLE + "number-rows-repeated"


@dataclass
class Sheet:
    name: str
    holds_table: bool  # two or more non-blank rows


def _paragraph(p) -> str:
    """A text:p's text: its runs, with text:s (spaces, `text:c` of them), tabs and line breaks spelled out."""
    out = [p.text or ""]
    for child in p:
        tag = child.tag
        if tag == _TEXT + "s":
            out.append(" " * _count(child, _TEXT + "c", 1 << 16))
        elif tag == _TEXT + "tab":
            out.append("\t")
        elif tag == _TEXT + "line-break":
            out.append("\n")
        elif tag != _OFFICE + "annotation":  # spans, links, fields: their text
            out.append(_paragraph(child))
        out.append(child.tail or "")
    return "".join(out)


def _count(el, attr: str, limit: int) -> int:
    """A repeat count attribute (1 when absent); a count that is no positive number reads as 1, one past
    `limit` is cut to limit + 1 (the caller refuses what passes its bound)."""
    v = el.get(attr)
    if v is None:
        return 1
    try:
        n = int(v)
    except ValueError:
        return 1
    return min(max(n, 1), limit + 1)


def cell_text(cell) -> str:
    """A table:table-cell as text (see the module docstring)."""
    get = cell.attrib.get
    kind = get(_OFFICE + "value-type")
    if kind == "date" and get(_OFFICE + "date-value"):
        day, _, time = get(_OFFICE + "date-value").partition("T")
        return day if not time.strip("0:.") else f"{day} {time}"
    if len(cell) == 1 and cell[0].tag == _P and not len(cell[0]):  # the common cell: one plain paragraph
        text = cell[0].text or ""
    else:
        paras = [_paragraph(p) for p in cell if p.tag in (_P, _TEXT + "h")]
        text = "\n".join(paras) if paras else None
    if kind in _NUMERIC and get(_OFFICE + "value") is not None:
        # A number whose shown text is missing or only its stored value (pandas' odf writer writes 15.0 for 15,
        # and nothing for 0; a spreadsheet program would show 15 and 0): the value, as General shows it.
        value = get(_OFFICE + "value")
        if not text or text == value:
            try:
                return plain_number(float(value))
            except ValueError:
                return value
    if text is not None:
        return text
    boolean = get(_OFFICE + "boolean-value")
    if boolean is not None:
        return "TRUE" if boolean == "true" else "FALSE"
    for attr in ("value", "string-value", "time-value"):
        if get(_OFFICE + attr) is not None:
            return get(_OFFICE + attr)
    return ""


def _row_cells(row, where: str) -> list[str]:
    """A table:table-row's cells as text, repeats expanded and trailing blank cells dropped."""
    runs = [(cell_text(c), _count(c, _COLUMNS_REPEATED, MAX_COLUMNS)) for c in row if c.tag in _CELLS]
    while runs and not runs[-1][0].strip():
        runs.pop()
    if any(n > 1 for _, n in runs):
        if sum(n for _, n in runs) > MAX_COLUMNS:
            raise TableError(f"{where}: a row is wider than {MAX_COLUMNS:,} cells")
        return [text for text, n in runs for _ in range(n)]
    return [text for text, _ in runs]


def _events(fh: IO[bytes], path: Path) -> Iterator[tuple[str, object]]:
    """("sheet", name) at each sheet's start and ("row", (cells, repeat)) at each of its rows' ends, in document
    order. Tables nested in a cell are part of that cell, not sheets. Each row is removed from its parent (the
    sheet, or a group of its rows) once read, so the parsed tree never holds more than one row."""
    parents = []  # open sheets, nested tables and row groups: a row's parent is the last
    tables = 0  # table:table elements open
    sheets = 0
    where = str(path)
    for event, el in iterparse(fh, events=("start", "end"), forbid_dtd=True):
        tag = el.tag
        if event == "start":
            if tag in _ROW_PARENTS:
                parents.append(el)
                if tag == _TABLE + "table":
                    tables += 1
                    if tables == 1:
                        sheets += 1
                        name = el.get(_TABLE + "name") or f"Sheet{sheets}"  # LibreOffice's name for an unnamed one
                        where = f"{path} [{name}]"
                        yield "sheet", name
        elif tag == _ROW and tables == 1:
            yield "row", (_row_cells(el, where), _count(el, _ROWS_REPEATED, MAX_ROWS))
            parents[-1].remove(el)
        elif tag in _ROW_PARENTS:
            parents.pop()
            if tag == _TABLE + "table":
                tables -= 1


class OdsBook:
    """An .ods workbook, read as `excel.read_excel` reads a workbook: its sheets' names and which hold a table
    (one pass over content.xml, on opening), and each sheet's rows (one more pass)."""

    source = "ods"  # meta["source"] of its tables

    def __init__(self, path: Path):
        self.path = path
        self.sheets = self._scan()
        self.names = [s.name for s in self.sheets]

    def holds_table(self, index: int) -> bool:
        return self.sheets[index].holds_table

    def close(self) -> None:
        pass  # every pass opens and closes the file itself

    @contextlib.contextmanager
    def _content(self) -> Iterator[IO[bytes]]:
        """content.xml as a stream (the zip closed after), once the file is known to be a spreadsheet."""
        try:
            z = zipfile.ZipFile(self.path)
        except Exception as e:  # not a zip, a damaged zip
            raise TableError(f"{self.path}: cannot read as an OpenDocument spreadsheet ({type(e).__name__}: {e})") from None
        with z:
            try:
                kind = z.read("mimetype").decode("ascii", "replace").strip() if "mimetype" in z.namelist() else None
                fh = z.open("content.xml")
            except KeyError:
                raise TableError(f"{self.path}: not an OpenDocument spreadsheet (no content.xml)") from None
            except Exception as e:  # a damaged member
                raise TableError(f"{self.path}: cannot read ({type(e).__name__}: {e})") from None
            if kind is not None and kind not in MIMETYPES:
                raise TableError(f"{self.path}: not an OpenDocument spreadsheet (its mimetype is {kind!r})")
            with fh:
                yield fh

    def _walk(self) -> Iterator[tuple[str, object]]:
        with self._content() as fh:
            try:
                yield from _events(fh, self.path)
            except TableError:
                raise
            except Exception as e:  # XML that does not parse, a DTD, a damaged deflate stream
                raise TableError(f"{self.path}: cannot read ({type(e).__name__}: {e})") from None

    def _scan(self) -> list[Sheet]:
        sheets: list[Sheet] = []
        filled = 0  # the current sheet's non-blank rows, up to 2
        for kind, value in self._walk():
            if kind == "sheet":
                sheets.append(Sheet(str(value), False))
                filled = 0
            elif not sheets[-1].holds_table and not blank(value[0]):
                filled += min(value[1], 2)
                sheets[-1].holds_table = filled >= 2
        return sheets

    def rows(self, index: int) -> Iterator[list[str]]:
        """The rows of sheet `index` (0 = first) as text cells; blank rows are passed over."""
        where = f"{self.path} [{self.sheets[index].name}]"
        seen, n = -1, 0
        for kind, value in self._walk():
            if kind == "sheet":
                seen += 1
                if seen > index:
                    return
            elif seen == index and not blank(value[0]):
                cells, repeat = value
                n += repeat
                if n > MAX_ROWS:
                    raise TableError(f"{where}: more than {MAX_ROWS:,} rows")
                for _ in range(repeat):
                    yield cells  # one list for every repeat: a row repeated a million times is not copied
