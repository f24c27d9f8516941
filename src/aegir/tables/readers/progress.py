"""Progress of reading one large file, for whoever shows it (the CLI's progress bar).

Reading a multi-GB CSV or JSON Lines file to sample and count its rows takes minutes, and the readers return
only at the end. A caller that wants to show how far they are says so with `reporting(fn)`; inside it, every
file the streaming readers open through `compressed.open_raw` (CSV/TSV and JSON Lines, plain or compressed)
that is at least `min_bytes` long reports `fn(path, bytes_read, size)` as it is read: the bytes of the file on
disk, compressed or not, so the fraction is the share of the file read. The readers take no extra argument,
and without `reporting` nothing is wrapped or counted.
"""

from __future__ import annotations

import contextlib
import io
import os
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

Report = Callable[[Path, int, int], None]  # (path, bytes read, file size)


@dataclass(frozen=True)
class _Reporting:
    fn: Report
    min_bytes: int


_CURRENT: ContextVar[_Reporting | None] = ContextVar("aegir_read_progress", default=None)
MIN_BYTES = 64 << 20  # smaller files read in about a second: no progress to show


@contextlib.contextmanager
def reporting(fn: Report, min_bytes: int = MIN_BYTES) -> Iterator[None]:
    """Within this block, streamed reads of files of at least `min_bytes` report to `fn`."""
    token = _CURRENT.set(_Reporting(fn, min_bytes))
    try:
        yield
    finally:
        _CURRENT.reset(token)


class _Counting(io.RawIOBase):
    """A file's bytes as they are read, telling `fn` how far it is every STEP bytes and at the end."""

    STEP = 4 << 20

    def __init__(self, fh: BinaryIO, path: Path, size: int, fn: Report):
        self._fh, self._path, self._size, self._fn = fh, path, size, fn
        self._done = self._told = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._fh.readinto(b)
        self._done += n or 0
        if not n or self._done - self._told >= self.STEP:
            self._told = self._done
            self._fn(self._path, self._done, self._size)
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


def open_binary(path: Path) -> BinaryIO:
    """`open(path, "rb")`, counted for the reporter when one is set and the file is large enough."""
    rep = _CURRENT.get()
    size = os.path.getsize(path) if rep is not None else 0
    if rep is None or size < rep.min_bytes:
        return open(path, "rb")
    return io.BufferedReader(_Counting(open(path, "rb", buffering=0), path, size, rep.fn), buffer_size=1 << 20)


def report(path: Path, done: int, size: int) -> None:
    """Tell the current reporter, if any, how far work on `path` of `size` bytes is (a download: `remote`), where
    the size is known and large enough to show."""
    rep = _CURRENT.get()
    if rep is not None and size >= max(rep.min_bytes, 1):
        rep.fn(path, done, size)


def task_reporter(bar, describe: Callable[[Path], str] = lambda p: f"reading {p.name}") -> Report:
    """A Report that shows each large file as a task of a rich `Progress` (`bar`): the bytes read of its size,
    the task removed once the file is read (a reader may open a file again: another task)."""
    tasks: dict[Path, int] = {}

    def report(path: Path, done: int, size: int) -> None:
        if path not in tasks:
            tasks[path] = bar.add_task(describe(path), total=size)
        bar.update(tasks[path], completed=done)
        if done >= size:
            bar.remove_task(tasks.pop(path))
    return report
