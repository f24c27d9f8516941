"""Helpers every reader shares: safe names from data files, cell normalisation, skip accounting."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Iterator

from aegir.tables.table import TableError

log = logging.getLogger("aegir.tables")


@contextlib.contextmanager
def errors_named(stand_in: Path, name: str) -> Iterator[None]:
    """TableErrors raised inside name `name` where they name `stand_in`, a temporary copy of it (a zip member,
    a table piped on standard input), so a user reads where the bad input came from."""
    try:
        yield
    except TableError as e:
        raise TableError(str(e).replace(str(stand_in), name)) from None


def safe_member_name(name: str, where: str) -> str:
    """A file name read from a data file, guaranteed to stay inside its folder.

    Names come from gold CSVs written by other people: a separator or `..` could make us read any
    file on the machine, so such names are rejected rather than resolved.
    """
    if not name or "/" in name or "\\" in name or name in (".", "..") or ".." in Path(name).parts or "\x00" in name:
        raise TableError(f"{where}: table name {name!r} is not a plain file name (path separators and '..' are rejected)")
    if name.startswith(".."):
        raise TableError(f"{where}: table name {name!r} starts with '..'")
    return name


_PANDAS_BLANK = re.compile(r"Unnamed: \d+(_level_\d+)?")


def column_name(name: Any) -> str:
    """A column label as a header name: pandas' placeholder for a blank header cell ("Unnamed: 0", the index
    column of a `to_csv` export) is blank again, as the CSV reader reads the same file's header."""
    text = str(name)
    return "" if _PANDAS_BLANK.fullmatch(text) else text


def cell_text(v: Any) -> str:
    """One cell as text: None -> "", strings as-is, other JSON values compactly serialised."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if isinstance(v, float) else str(v)
    return json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)  # dates in a Parquet list: their str()


BLOB_BYTES = 32  # bytes of a binary value shown as hex


def bytes_text(v: bytes) -> str:
    """Bytes as the text a CSV export would hold: UTF-8 text as itself, else a hex literal of the first BLOB_BYTES
    bytes (x'89504e47...'), as SQLite writes a BLOB."""
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        return f"x'{v[:BLOB_BYTES].hex()}{'...' if len(v) > BLOB_BYTES else ''}'"


def plain_number(v: float) -> str:
    """A spreadsheet number as its General format shows it: 3 for 3.0, 4.8, 1e+20 past integers' precision."""
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else format(v, ".15g")


class SkipCounter:
    """Counts skipped records and warns once per reason, so a big file does not flood the log."""

    def __init__(self, on_error: str):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.count = 0
        self._seen: set[str] = set()

    def __call__(self, message: str, reason: str) -> None:
        if self.on_error == "raise":
            raise TableError(message)
        self.count += 1
        if reason not in self._seen:
            self._seen.add(reason)
            log.warning("skipping: %s (further '%s' skips are counted, not logged)", message, reason)


def spread_rows(n: int, k: int):
    """k of the row numbers 0..n-1, a seeded uniform sample in ascending order: the rows a long table
    keeps when its length is known up front (Parquet metadata, a DataFrame). Same rows every time."""
    import numpy as np

    return np.sort(np.random.default_rng(0).choice(n, size=k, replace=False))


def row_sample_kind(kept: int, total: int, spread: bool) -> str:
    """meta["row_sample"]: "all" rows kept, the "first" ones, or a uniform sample "spread" over the table."""
    return "all" if kept >= total else "spread" if spread else "first"
