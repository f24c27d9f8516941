"""Where things live: the shared data folder beside the checkout, and run output folders."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout root (src/aegir/paths.py -> ../..). Only meaningful for editable installs."""
    return Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path | None:
    """`../shared/data` beside the checkout (or $AEGIR_SHARED_DATA), or None when absent."""
    env = os.environ.get("AEGIR_SHARED_DATA")
    cands = [Path(env)] if env else []
    cands += [repo_root().parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for c in cands:
        if c.is_dir():
            return c
    return None
