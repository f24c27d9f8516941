"""JSON Lines files (one JSON object per line: `.jsonl`, `.ndjson`) and JSON arrays of objects (`.json`), also
compressed, -> Table.

In JSON Lines each line is a row and each key a column, read as a stream: every line is parsed (a malformed
line is an error that names it) and counted, and the first `max_rows` rows or a seeded uniform sample of them
are kept (`rows.sample_rows`), so a long file costs time, not memory. Nested objects are flattened into
dotted keys (`{"address": {"city": ...}}` -> column `address.city`); lists and deeper values become
compact JSON text. The columns are the keys of the rows kept, in the order they first appear, so a key
that only rows outside the sample hold does not make an empty column. Keys that are just the column
positions ("0", "1", ... as pandas writes a frame without column names, as SOTAB's tables are stored)
are read as no header, and pandas' "Unnamed: 0" as a blank name. A file whose first line is not an object of
its own, or a `.json` file of one line holding an array of objects (a minified API dump), is one JSON document,
parsed whole (memory grows with the file): an array of row objects, or an object holding such arrays (an API
dump's `{"data": [...], "count": 2}`; `table=` names one of several, like a database's tables).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
from pathlib import Path
from typing import Any, Iterator

from aegir.tables.readers.common import cell_text, column_name, row_sample_kind
from aegir.tables.readers.compressed import STREAM_ERRORS, compression, open_raw, read_error, table_suffix
from aegir.tables.readers.rows import sample_rows
from aegir.tables.table import Table, TableError

JSONL_SUFFIXES = (".jsonl", ".ndjson")
JSON_SUFFIXES = (*JSONL_SUFFIXES, ".json")


def is_json(path: str | Path) -> bool:
    """By name: `rows.jsonl`, `rows.ndjson`, `rows.json`, or any of them compressed (`rows.jsonl.gz`)."""
    return table_suffix(Path(path)) in JSON_SUFFIXES


def flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """One JSON object as {column: cell text}: nested objects become dotted keys, other values text."""
    out: dict[str, str] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = cell_text(v)
    return out


def _objects(lines: Iterator[str], path: Path) -> Iterator[dict[str, Any]]:
    first = True
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if first:  # not JSON Lines from its first line: a pretty-printed document, read whole
                raise _Document() from None
            raise TableError(f"{path}, line {n}: not a JSON object ({e.msg} at column {e.colno})") from None
        first = False
        if not isinstance(obj, dict):
            raise TableError(f"{path}, line {n}: expected a JSON object per line, got {type(obj).__name__}")
        yield obj  # flattened only if kept


class _Document(Exception):
    """The file's first line is not a JSON object of its own: it is one JSON document over many lines."""


def arrays_of_objects(data: dict[str, Any]) -> list[str]:
    """The keys of a JSON object whose values are non-empty arrays of objects: the tables it holds."""
    return [k for k, v in data.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]


def _document_rows(data: Any, path: Path, table: str | None, meta: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The rows of a parsed JSON document: an array of objects, or an array of objects an object holds (an API
    dump's `{"data": [...], "count": 2}`): the one `table` names, else the first. Sets meta's table/tables."""
    if isinstance(data, dict):
        lists = arrays_of_objects(data)
        if table is not None and table not in lists:
            raise TableError(f"{path}: no array of objects named {table!r}; its arrays of objects: "
                             f"{', '.join(map(repr, lists)) or 'none'}")
        if not lists:
            raise TableError(f"{path}: a JSON object whose rows are not clear: a table is JSON Lines, an array of "
                             "objects, or an object holding such arrays; it holds none")
        meta.update(table=table or lists[0], tables=lists)
        data = data[table or lists[0]]
    elif table is not None:
        raise TableError(f"{path}: a table was named, but the JSON document is an array (one table)")
    if not isinstance(data, list):
        raise TableError(f"{path}: the JSON document is a {type(data).__name__}, not rows (an array of objects)")
    for i, obj in enumerate(data):
        if not isinstance(obj, dict):
            raise TableError(f"{path}: item {i} of the array is {type(obj).__name__}, not an object (a row)")
        yield obj


def _text(raw) -> io.TextIOWrapper:
    return io.TextIOWrapper(raw, encoding="utf-8-sig")  # JSON is UTF-8 (RFC 8259)


def _load(raw, path: Path) -> Any:
    """A whole JSON document, parsed at once."""
    try:
        return json.load(_text(raw))
    except json.JSONDecodeError as e:
        raise TableError(f"{path}, line {e.lineno}: not JSON ({e.msg} at column {e.colno})") from None


@contextlib.contextmanager
def _opened(path: Path, how: str | None) -> Iterator[tuple[str, Any]]:
    """("lines", the rows as an iterator), streamed, for JSON Lines; ("document", the parsed document) for a file
    that starts with an array or whose first line is not an object of its own (parsed whole), and for a `.json`
    file of one line holding an array of objects (a minified API dump, `{"data": [...]}`; a `.jsonl` file's one
    line is one row)."""
    with open_raw(path, how) as raw:  # each of these streams can peek
        if _first_char(raw) != b"[":
            lines = _objects(_text(raw), path)
            try:
                head = list(itertools.islice(lines, 2))  # a second line says JSON Lines; it is read again below
            except _Document:
                pass  # read again from the start, as one document
            else:
                if len(head) == 1 and table_suffix(path) == ".json" and arrays_of_objects(head[0]):
                    yield "document", head[0]
                else:
                    yield "lines", itertools.chain(head, lines)
                return
    with open_raw(path, how) as raw:
        yield "document", _load(raw, path)


def _rows(path: Path, how: str | None, max_rows: int | None, spread: bool, table: str | None,
          meta: dict[str, Any]) -> tuple[str, list, int]:
    """("lines" or "document", the rows kept, how many there are) (`_opened` says which)."""
    with _opened(path, how) as (form, data):
        if form == "lines":
            if table is not None:
                raise TableError(f"{path}: a table was named, but this is JSON Lines (one table)")
            return ("lines", *sample_rows(data, max_rows, spread))
        return ("document", *sample_rows(_document_rows(data, path, table, meta), max_rows, spread))


def json_tables(path: str | Path) -> list[str]:
    """The arrays of objects a JSON document's top-level object holds (its tables), in order; [] for JSON Lines
    and for a document that is an array (one table each, not parsed here)."""
    path = Path(path)
    with _errors(path) as how:
        with open_raw(path, how) as raw:
            if _first_char(raw) != b"{":
                return []
        with _opened(path, how) as (form, data):
            return arrays_of_objects(data) if form == "document" and isinstance(data, dict) else []


@contextlib.contextmanager
def _errors(path: Path) -> Iterator[str | None]:
    """Yields the file's compression; the reading inside raises a TableError naming the file for text that is
    not UTF-8 and for a damaged stream."""
    how = None
    try:
        how = compression(path)
        yield how
    except UnicodeDecodeError as e:
        raise TableError(f"{path}: not UTF-8 text, as JSON must be ({e.reason})") from None
    except STREAM_ERRORS as e:
        raise read_error(path, e, how) from None


def _first_char(raw) -> bytes:
    """The first non-whitespace byte of a binary stream that can peek (a BOM skipped), as far as it shows."""
    return raw.peek(4096)[:4096].lstrip(b"\xef\xbb\xbf").lstrip()[:1]


def read_json(path: str | Path, *, table: str | None = None, max_rows: int | None = None, spread: bool = False,
              meta: dict[str, Any] | None = None) -> Table:
    """A JSON Lines file, or one JSON document of rows (`_document_rows`), as a Table. table: of a document
    object holding several arrays of objects, the one to read (None: the first). max_rows and spread as in
    `read_csv` (the first rows, or a seeded uniform sample of the whole file's; every row counted). meta: source
    "json", format "lines" or "document", table and tables (a document object's arrays), rows_total,
    row_sample, header ("given", or "positions" for keys "0", "1", ... read as no header)."""
    path = Path(path)
    parts: dict[str, Any] = {}
    with _errors(path) as how:
        form, kept, total = _rows(path, how, max_rows, spread, table, parts)
    if not kept:
        raise TableError(f"{path}: no rows (no JSON object found)")
    flat = [flatten(obj) for _, obj in kept]
    keys = list(dict.fromkeys(k for row in flat for k in row))  # first appearance, in file order
    positional = keys == [str(j) for j in range(len(keys))]
    m = {"source": "json", "format": form, "name": path.name, "path": str(path),
         **({"compression": how} if how else {}), **parts, "rows_total": total,
         "row_sample": row_sample_kind(len(kept), total, spread),
         "header": "positions" if positional else "given", "has_header": not positional, "preamble_rows": 0}
    m.update(meta or {})
    return Table.from_rows([[row.get(k, "") for k in keys] for row in flat],
                           header=None if positional else [column_name(k) for k in keys], meta=m)
