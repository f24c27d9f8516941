"""HTML tables (`.html`, `.htm`: a saved web page, an exported report) -> Table, one `<table>` at a time.

Web tables are what SOTAB annotates, and a page holds several: a layout table around the content, a table
of data, a small one in the sidebar. Each `<table>` is a table here, named by its `id`, else its caption,
else its position (`table 3`), and like a database's tables picked with `table=`; by default the first that
holds a table (two or more non-blank rows, and no table nested in it, as a page's layout table has). Rows are
the table's own `<tr>` (those of a table nested in a cell belong to that table, whose text is the cell's); a
cell is its text with runs of white space made one space. A cell spanning columns or rows (colspan, rowspan)
fills each place it covers with its text, as pandas' read_html does; spans are capped as browsers cap them
(1,000 columns, 65,534 rows), and a table whose spans fill more than a million places is refused. A first row inside `<thead>`, or of `<th>` cells only, is the header; otherwise
the header is guessed as for a CSV file (`readers.header`), and the same row sample, count and preamble skip
apply (`readers.rows`).

The page is parsed whole by lxml's HTML parser (no network access, comments dropped); its encoding comes from
the page's own declaration, else UTF-8 with a fallback to cp1252.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from aegir.tables.readers.rows import collect, holds_table, keep_for, to_table
from aegir.tables.table import Table, TableError

HTML_SUFFIXES = (".html", ".htm")
MAX_COLSPAN, MAX_ROWSPAN = 1000, 65534  # the HTML standard's limits, which browsers apply
MAX_SPANNED = 1_000_000  # cells a table's spans may fill: a few bytes of markup can ask for 65 million
MAX_BYTES = 256 << 20  # a page is parsed whole
_DECLARED = re.compile(rb"<meta[^>]+charset\s*=|<\?xml[^>]+encoding\s*=", re.I)  # the page names its encoding


@dataclass
class HtmlTable:
    name: str
    element: Any  # the lxml <table> element
    header_row: bool  # its first row is a header by its markup (<thead>, or <th> cells only)

    def rows(self, where: str = "") -> Iterator[list[str]]:
        """The table's rows as text cells, spans filled in (at most MAX_SPANNED places; `where` names the table
        in the error past that)."""
        carry: dict[int, tuple[str, int]] = {}  # column -> (text, rows it still covers below this one)
        spanned = 0
        for tr in _own(self.element, "tr"):
            if spanned > MAX_SPANNED:
                raise TableError(f"{where or self.name}: its cells' spans fill more than {MAX_SPANNED:,} places")
            row: list[str] = []
            cells = iter(_own(tr, "td", "th"))
            while True:
                j = len(row)
                if j in carry:  # a cell from a row above spans down into this place
                    text, left = carry.pop(j)
                    row.append(text)
                    spanned += 1
                    if left > 1:
                        carry[j] = (text, left - 1)
                    continue
                cell = next(cells, None)
                if cell is None:
                    if carry and max(carry) > j:  # the row ends short of a span further right: a blank between
                        row.append("")
                        continue
                    break
                text = " ".join(cell.text_content().split())
                span_r = _span(cell, "rowspan", MAX_ROWSPAN)
                span_c = _span(cell, "colspan", MAX_COLSPAN)
                spanned += span_c - 1
                for k in range(span_c):
                    row.append(text)
                    if span_r > 1:
                        carry[j + k] = (text, span_r - 1)
            yield row


def _span(cell, attr: str, limit: int) -> int:
    try:
        return min(max(int(str(cell.get(attr, "1")).strip() or 1), 1), limit)
    except ValueError:
        return 1


def _own(el, *tags: str) -> list:
    """`el`'s own descendants with these tags: not those inside a table nested in it (rows are found through
    thead/tbody/tfoot, which the parser may add or omit)."""
    out = []
    for child in el:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag in tags:
            out.append(child)
        elif tag in ("thead", "tbody", "tfoot"):
            out.extend(_own(child, *tags))
    return out


def _parse(path: Path):
    import lxml.html

    size = path.stat().st_size
    if size > MAX_BYTES:
        raise TableError(f"{path}: {size / 2**20:,.0f} MiB of HTML is more than the {MAX_BYTES >> 20} MiB read whole; "
                         "save the table as CSV")
    data = path.read_bytes()
    if not data.strip():
        raise TableError(f"{path}: file is empty")
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TableError(f"{path}: looks like a binary file, not HTML")
    parser = lxml.html.HTMLParser(no_network=True, remove_comments=True, remove_pis=True)
    page: bytes | str = data
    if not data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")) and not _DECLARED.search(data[:4096]):
        # Undeclared: libxml2 would read the bytes as Latin-1; pages are UTF-8 now, else most likely cp1252.
        try:
            page = data.decode("utf-8")
        except UnicodeDecodeError:
            page = data.decode("cp1252", errors="replace")
    try:
        return lxml.html.document_fromstring(page, parser=parser)
    except Exception as e:  # lxml.etree.ParserError on a page with no elements
        raise TableError(f"{path}: cannot read as HTML ({type(e).__name__}: {e})") from None


def _tables(root) -> list[HtmlTable]:
    """Every <table> of the page in document order, named by id, caption or position (made unique)."""
    out: list[HtmlTable] = []
    seen: set[str] = set()
    for k, el in enumerate(root.iter("table"), 1):
        caption = next((" ".join(c.text_content().split()) for c in el if c.tag == "caption"), "")
        name = (el.get("id") or "").strip() or caption[:80] or f"table {k}"
        if name in seen:
            name = f"{name} ({k})"
        seen.add(name)
        first = next(iter(_own(el, "tr")), None)
        in_head = first is not None and first.getparent() is not None and first.getparent().tag == "thead"
        cells = _own(first, "td", "th") if first is not None else []
        out.append(HtmlTable(name, el, in_head or bool(cells) and all(c.tag == "th" for c in cells)))
    return out


def _holds_table(t: HtmlTable) -> bool:
    """Two or more non-blank rows, and no table nested in it: a page's layout table holds other tables (and a box
    of one cell, a lone row). A one-column table of data is one."""
    return not any(el is not t.element for el in t.element.iter("table")) and holds_table(t.rows())


def html_tables(path: str | Path, *, nonempty: bool = True) -> list[str]:
    """The page's tables' names in document order; with `nonempty`, only those that hold a table."""
    return [t.name for t in _tables(_parse(Path(path))) if not nonempty or _holds_table(t)]


def read_html(path: str | Path, *, table: str | None = None, header: bool | str = "infer",
              max_rows: int | None = None, spread: bool = False, meta: dict[str, Any] | None = None) -> Table:
    """One `<table>` of an HTML file as a Table. table: its name (`html_tables`), or None for the first that holds
    a table. header: as in `read_csv`, except that a first row marked up as a header (<thead>, all <th>) is one
    when header is "infer". meta: source "html", table, tables (every table's name), and read_csv's row keys."""
    path = Path(path)
    tables = _tables(_parse(path))
    names = [t.name for t in tables]
    if table is None:
        t = next((t for t in tables if _holds_table(t)), None)
        if t is None:
            raise TableError(f"{path}: no <table> holds a table (two or more rows, no table nested in it)"
                             + ("" if tables else "; the page has no <table>"))
    elif table in names:
        t = tables[names.index(table)]
    else:
        shown = ", ".join(map(repr, names[:10])) + (", ..." if len(names) > 10 else "")
        raise TableError(f"{path}: no table named {table!r}; its tables: {shown or 'none'}")
    given = True if header == "infer" and t.header_row else header
    rows = collect(t.rows(f"{path} [{t.name}]"), keep_for(max_rows, given), spread)
    return to_table(rows, f"{path} [{t.name}]", header=given, max_rows=max_rows, spread=spread, meta=meta,
                    source={"source": "html", "name": path.name, "path": str(path), "table": t.name, "tables": names})
