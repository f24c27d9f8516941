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


def absolute_path(p: str | None) -> str | None:
    """`p` made absolute and normalised (trailing slash, `..`), symlinks kept as named; URLs as given. How runs
    record the paths they were given, so a resume or an eval works from any folder."""
    if p is None or "://" in p:
        return p
    return os.path.abspath(os.path.expanduser(p))


def same_path(a: object, b: object) -> bool:
    """Whether two recorded paths name one place (`my_tables`, `my_tables/` and `/abs/my_tables`; None only None)."""
    if a is None or b is None:
        return a is b
    return str(a) == str(b) or Path(str(a)).expanduser().resolve() == Path(str(b)).expanduser().resolve()
