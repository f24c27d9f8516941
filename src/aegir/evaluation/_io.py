"""Atomic file writes shared by the evaluation writers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_target(path: Path) -> Path:
    """A fresh temp file beside `path` (same filesystem, so os.replace onto `path` is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
    return Path(tmp)
