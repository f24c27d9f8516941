"""Compressed table files (gzip, bzip2, xz), read as a stream with the standard library's openers.

A file is recognised by its first bytes, whatever it is called; its inner suffix (`data.tsv.gz` -> `.tsv`)
says what the table is. Shared by the CSV/TSV and JSON Lines readers.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from pathlib import Path

from aegir.tables.table import TableError

# Compressed text is recognised by its first bytes, whatever the file is called (a gzip member with deflate,
# a bzip2 stream's block header, xz's magic), and read with the standard library's opener.
OPENERS = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}
SUFFIXES = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz"}
COMPRESSED_SUFFIXES = tuple(SUFFIXES.values())
# What a damaged or truncated compressed stream raises while it is read (BadGzipFile is an OSError).
STREAM_ERRORS = (EOFError, zlib.error, lzma.LZMAError, OSError)


def compression(path: Path) -> str | None:
    """"gzip", "bzip2" or "xz" when the file starts with that format's header, else None."""
    with open(path, "rb") as fh:
        return compression_of(fh.read(10))


def compression_of(m: bytes) -> str | None:
    """`compression` of a stream that starts with the bytes `m`."""
    if m.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if m[:3] == b"BZh" and m[3:4].isdigit() and m[3:4] != b"0" and m[4:10] == b"1AY&SY":
        return "bzip2"
    return "xz" if m.startswith(b"\xfd7zXZ\x00") else None


def open_raw(path: Path, how: str | None):
    """The file's bytes, decompressed as they are read when `how` names a compression."""
    return open(path, "rb") if how is None else OPENERS[how](path, "rb")


def read_error(path: Path, e: Exception, how: str | None, where: str = "") -> TableError:
    """An error met while reading the file's bytes: a damaged compressed stream, or the file system's."""
    if how is not None:
        return TableError(f"{path}{where}: cannot decompress ({how}: {e or type(e).__name__})")
    return TableError(f"{path}{where}: cannot read file ({getattr(e, 'strerror', None) or e})")


def table_suffix(path: Path) -> str:
    """The suffix that says what the table is: `.tsv` for `data.tsv.gz`."""
    suffixes = [s.lower() for s in path.suffixes]
    return suffixes[-2] if len(suffixes) > 1 and suffixes[-1] in COMPRESSED_SUFFIXES else path.suffix.lower()
