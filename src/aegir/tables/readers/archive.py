"""Zip archives of table files (`.zip`): each member that is a table file is one table.

A member is copied, as a stream, to a temporary file named only by the member's suffix (never by its path in
the archive, so a name like `../../x.csv` cannot write or read outside the temporary folder), and that file is
read by the reader of its kind. Members read: CSV/TSV (also compressed), JSON Lines/JSON, Parquet, Excel and .ods
workbooks, SQLite databases and HTML pages; folders, macOS metadata (`__MACOSX/`, `._*`) and other files are passed over.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator

from aegir.tables.readers.compressed import table_suffix
from aegir.tables.readers.csv import CSV_SUFFIXES
from aegir.tables.readers.excel import WORKBOOK_SUFFIXES
from aegir.tables.readers.html import HTML_SUFFIXES
from aegir.tables.readers.jsonl import JSON_SUFFIXES
from aegir.tables.readers.parquet import COLUMNAR_SUFFIXES
from aegir.tables.readers.sqlite import SQLITE_SUFFIXES
from aegir.tables.table import TableError

ZIP_SUFFIXES = (".zip",)
MEMBER_SUFFIXES = (*CSV_SUFFIXES, *JSON_SUFFIXES, *COLUMNAR_SUFFIXES, *WORKBOOK_SUFFIXES, *SQLITE_SUFFIXES,
                   *HTML_SUFFIXES)


def _suffix(name: str) -> str:
    """A member's suffix as a file name: the table suffix and its compression (`.csv.gz`), or ""."""
    p = PurePosixPath(name)
    inner = table_suffix(Path(p.name))
    if inner not in MEMBER_SUFFIXES:
        return ""
    return inner + (p.suffix.lower() if p.suffix.lower() != inner else "")


def _open(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise TableError(f"{path}: cannot read as a zip archive ({e})") from None


def member_names(path: str | Path) -> list[str]:
    """The archive's members that are table files, in archive order."""
    with _open(Path(path)) as z:
        return [i.filename for i in z.infolist()
                if not i.is_dir() and _suffix(i.filename) and not i.filename.startswith("__MACOSX/")
                and not PurePosixPath(i.filename).name.startswith("._")]


@contextlib.contextmanager
def extracted(path: str | Path, member: str | None = None) -> Iterator[tuple[Path, str, list[str]]]:
    """(temporary file holding the member, its name, every table member's name); member None: the first."""
    path = Path(path)
    names = member_names(path)
    if not names:
        raise TableError(f"{path}: the archive holds no table file ({', '.join(MEMBER_SUFFIXES)}, also compressed)")
    if member is None:
        member = names[0]
    elif member not in names:
        shown = ", ".join(map(repr, names[:10])) + (", ..." if len(names) > 10 else "")
        raise TableError(f"{path}: no table file {member!r} in the archive; it holds {shown}")
    with tempfile.TemporaryDirectory(prefix="aegir-zip-") as tmp, _open(path) as z:
        target = Path(tmp) / f"member{_suffix(member)}"
        size, free = z.getinfo(member).file_size, shutil.disk_usage(tmp).free
        if size > free:  # a member too large to copy (or a zip bomb): say so before filling the disk
            raise TableError(f"{path} [{member}]: {size / 2**20:,.1f} MiB unpacked, more than the "
                             f"{free / 2**20:,.1f} MiB free in {tempfile.gettempdir()} (set TMPDIR, or extract it)")
        try:
            with z.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as e:  # damaged, encrypted (RuntimeError)
            raise TableError(f"{path} [{member}]: cannot extract ({e})") from None
        yield target, member, names
