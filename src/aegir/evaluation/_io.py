"""Atomic file writes shared by the evaluation writers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_target(path: Path) -> Path:
    """A fresh temp file beside `path` (same filesystem, so os.replace onto `path` is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
    return Path(tmp)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a temp file beside `path`, then rename it over `path`.

    A crash mid-write leaves the previous file (or none), never a half-written one."""
    path = Path(path)
    tmp = atomic_target(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))
