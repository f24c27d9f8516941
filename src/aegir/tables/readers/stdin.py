"""A table piped on standard input (`aegir annotate - ...`), spooled to a temporary file.

The readers read files (twice for CSV: the head to guess, then the rows; Parquet and Excel seek), so the stream
is copied to a temporary file in blocks (memory stays bounded) whose suffix names the format sniffed from the
first bytes: SQLite, Parquet, Arrow IPC, ORC, Excel (.xlsx, .xls), OpenDocument and zip archives by their magic,
compressed streams by theirs with the format inside sniffed from a decompressed head, JSON by a first `{` or `[`,
HTML by a first `<!doctype html`, `<html` or `<table`, and CSV/TSV otherwise.
"""

from __future__ import annotations

import bz2
import contextlib
import lzma
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

import zstandard

from aegir.tables.readers.compressed import STREAM_ERRORS, SUFFIXES, compression_of
from aegir.tables.readers.excel import OLE_MAGIC
from aegir.tables.readers.sqlite import MAGIC as SQLITE_MAGIC

STDIN_NAME = "<stdin>"
SNIFF_BYTES = 1 << 16


# The first SNIFF_BYTES decompressed bytes of a compressed head (bounded: a head of runs can expand a
# thousand-fold, zstd's thirty-thousand-fold; zstd's decompressor takes no output limit, so it gets 1 KB in).
_HEADS = {"gzip": lambda head: zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, SNIFF_BYTES),
          "bzip2": lambda head: bz2.BZ2Decompressor().decompress(head, SNIFF_BYTES),
          "xz": lambda head: lzma.LZMADecompressor().decompress(head, SNIFF_BYTES),
          "zstd": lambda head: zstandard.ZstdDecompressor().decompressobj().decompress(head[:1024])[:SNIFF_BYTES]}


def _decompressed_head(head: bytes) -> tuple[bytes, str] | None:
    """The first decompressed bytes of a compressed stream's head, and the suffix of its compression."""
    how = compression_of(head)
    if how is None:
        return None
    try:
        return _HEADS[how](head), SUFFIXES[how]
    except STREAM_ERRORS:
        return b"", SUFFIXES[how]  # the reader will name the damage


def sniff_suffix(head: bytes) -> str:
    """The file suffix under which the readers read a stream that starts with `head`."""
    if head.startswith(SQLITE_MAGIC):
        return ".sqlite"
    if head.startswith(b"PAR1"):
        return ".parquet"
    if head.startswith(OLE_MAGIC):  # the compound file of a legacy .xls workbook
        return ".xls"
    if head.startswith(b"ARROW1"):
        return ".arrow"
    if head.startswith(b"ORC"):
        return ".orc"
    if head.startswith(b"PK\x03\x04"):  # a zip: a workbook when it holds OOXML's content types, or ODF's mimetype first
        if head[30:38] == b"mimetype" and b"opendocument.spreadsheet" in head[38:120]:
            return ".ods"
        return ".xlsx" if b"[Content_Types].xml" in head or b"xl/" in head else ".zip"
    inner = _decompressed_head(head)
    if inner is not None:
        text, compressed = inner
        return sniff_suffix(text) + compressed  # a compressed database or workbook is refused by its reader
    start = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if start[:1] in (b"{", b"["):
        return ".json"
    return ".html" if start[:15].lower().startswith((b"<!doctype html", b"<html", b"<table")) else ".csv"


@contextlib.contextmanager
def spooled(stream: BinaryIO) -> Iterator[Path]:
    """The stream's bytes as a temporary file (named by `sniff_suffix`), removed afterwards."""
    head = stream.read(SNIFF_BYTES)
    with tempfile.TemporaryDirectory(prefix="aegir-stdin-") as tmp:
        path = Path(tmp) / f"stdin{sniff_suffix(head)}"
        with open(path, "wb") as fh:
            fh.write(head)
            shutil.copyfileobj(stream, fh, 1 << 20)
        yield path
