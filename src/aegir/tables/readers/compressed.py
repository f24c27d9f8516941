"""Compressed table files (gzip, bzip2, xz, zstd), read as a stream: the standard library's openers, and
`zstandard` for zstd (Python 3.11 has no stdlib zstd; data lakes write it for its speed).

A file is recognised by its first bytes, whatever it is called; its inner suffix (`data.tsv.gz` -> `.tsv`)
says what the table is. Shared by the CSV/TSV and JSON Lines readers.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from pathlib import Path

import zstandard

from aegir.tables.readers.progress import open_binary
from aegir.tables.table import TableError

# Compressed text is recognised by its first bytes, whatever the file is called (a gzip member with deflate,
# a bzip2 stream's block header, xz's and zstd's magic), and read with the standard library's opener (zstd:
# `ZstdFile` below).
# Each takes the compressed file, open for binary reading, and returns the decompressed stream (whose close
# closes the file too: `_Closing` for the standard library's, which leave a file object they are given open).
OPENERS = {"gzip": lambda fh: io.BufferedReader(_Closing(gzip.GzipFile(fileobj=fh, mode="rb"), fh), 1 << 16),
           "bzip2": lambda fh: io.BufferedReader(_Closing(bz2.BZ2File(fh, "rb"), fh), 1 << 16),
           "xz": lambda fh: io.BufferedReader(_Closing(lzma.LZMAFile(fh, "rb"), fh), 1 << 16),
           "zstd": lambda fh: io.BufferedReader(ZstdFile(fh))}
SUFFIXES = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz", "zstd": ".zst"}
COMPRESSED_SUFFIXES = tuple(SUFFIXES.values())
# What a damaged or truncated compressed stream raises while it is read (BadGzipFile is an OSError).
STREAM_ERRORS = (EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError, OSError)


class _Closing(io.RawIOBase):
    """A decompressing reader of the file `fh` whose close closes `fh` too."""

    def __init__(self, stream, fh):
        self._stream, self._fh = stream, fh

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        return self._stream.readinto(b)

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._fh.close()
            super().close()


class ZstdFile(io.RawIOBase):
    """A zstd file's decompressed bytes, frame after frame (`zstd` writes one per input it concatenates), as
    a raw stream. zstandard's own stream readers return what they have of a truncated frame and stop, so a cut
    download would read as a shorter table; this one raises ZstdError there, as gzip raises EOFError.
    Compressed bytes go in FEED bytes at a time: zstd reaches ~32,000:1 on runs of one byte, so a call never
    produces more than ~FEED * 32 KB (a file built to expand without bound is read in bounded steps)."""

    FEED = 2048

    def __init__(self, fh):
        self._fh = fh  # the compressed file, open for binary reading
        self._dctx = zstandard.ZstdDecompressor()
        self._frame = None  # the current frame's decompressor
        self._out = memoryview(b"")  # decompressed bytes not yet read
        self._next = b""  # compressed bytes after a frame's end: the next frame's start

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._out:
            if not self._decompress():
                return 0
        n = min(len(b), len(self._out))
        b[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _decompress(self) -> bool:
        """Decompress the next compressed bytes into `_out`; False at the end of the file."""
        data, self._next = self._next or self._fh.read(self.FEED), b""
        if not data:
            if self._frame is not None and not self._frame.eof:
                raise zstandard.ZstdError("the file ends inside a frame (truncated)")
            return False
        if self._frame is None or self._frame.eof:
            self._frame = self._dctx.decompressobj()
        self._out = memoryview(self._frame.decompress(data))
        if self._frame.eof:
            self._next = self._frame.unused_data
        return True

    def close(self) -> None:
        self._fh.close()
        super().close()


def compression(path: Path) -> str | None:
    """"gzip", "bzip2", "xz" or "zstd" when the file starts with that format's header, else None."""
    with open(path, "rb") as fh:
        return compression_of(fh.read(10))


def compression_of(m: bytes) -> str | None:
    """`compression` of a stream that starts with the bytes `m`."""
    if m.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if m[:3] == b"BZh" and m[3:4].isdigit() and m[3:4] != b"0" and m[4:10] == b"1AY&SY":
        return "bzip2"
    if m.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return "zstd" if m.startswith(b"\x28\xb5\x2f\xfd") else None


def open_raw(path: Path, how: str | None):
    """The file's bytes, decompressed as they are read when `how` names a compression (a large file's progress
    reported where `progress.reporting` asks for it)."""
    fh = open_binary(path)
    if how is None:
        return fh
    try:
        return OPENERS[how](fh)
    except Exception:
        fh.close()
        raise


def read_error(path: Path, e: Exception, how: str | None, where: str = "") -> TableError:
    """An error met while reading the file's bytes: a damaged compressed stream, or the file system's."""
    if how is not None:
        return TableError(f"{path}{where}: cannot decompress ({how}: {e or type(e).__name__})")
    return TableError(f"{path}{where}: cannot read file ({getattr(e, 'strerror', None) or e})")


def table_suffix(path: Path) -> str:
    """The suffix that says what the table is: `.tsv` for `data.tsv.gz`."""
    suffixes = [s.lower() for s in path.suffixes]
    return suffixes[-2] if len(suffixes) > 1 and suffixes[-1] in COMPRESSED_SUFFIXES else path.suffix.lower()
