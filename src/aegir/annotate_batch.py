"""Annotate many table files in one run: `annotate_files(paths, checkpoint, out)` and
`aegir annotate FOLDER_OR_FILES... --out annotations.jsonl`.

The model is loaded once; each file is annotated as `annotate()` would annotate it alone (same
labels, same scores). Output is JSON Lines, one record per annotated column (`annotate`'s record
plus `file`, the path as found, and `file_columns`, how many records that file has), appended and
flushed file by file, so a killed run keeps every finished file:

- `--resume` continues a run: files whose records are all in `out` are skipped, a trailing file
  that was cut mid-write is dropped from `out` (rewritten atomically) and annotated again, and the
  run's settings (checkpoint, top-k, label subset, views, byte budget, ...) must match those stored
  beside `out` in `<out stem>.run.json`, so one file never mixes two models' answers.
- A file that cannot be read as a table (binary, empty, undecodable, malformed CSV) does not stop
  the run: it is listed with its reason in `<out stem>.errors.jsonl` (this run's failures; a
  resumed run retries them) and counted in the result.

Folders are searched recursively (sorted, so runs and resumes see the same order) for *.csv, *.tsv, *.tab,
*.jsonl, *.ndjson (also compressed: *.csv.gz, *.csv.bz2, *.jsonl.xz, *.csv.zst, ...), *.parquet, *.pq, *.arrow,
*.feather, *.ipc, *.orc, *.xlsx, *.xlsm, *.xls, *.ods and *.zip files, and for SQLite databases (*.sqlite,
*.sqlite3, *.db, *.db3 that start with SQLite's header); not for *.json or *.html (folders hold JSON and web
pages of every kind: name such tables directly), nor the JSON Lines that annotation runs write. Files named
directly are taken whatever their suffix. Every worksheet of a workbook (.xlsx, .xls, .ods) that holds a table
(two or more non-blank rows) is annotated; records carry `sheet`, and `sheet=` picks one worksheet in every
workbook (other files ignore it). Likewise every table of a database that holds a row, every array of objects
of a JSON document and every <table> of an HTML page that holds a table (`table`), and every table file of a
zip archive (`member`), a workbook, database or document in it part by part. http(s) URLs are downloaded when their
turn comes (`remote.downloaded`), recorded by the URL, and known on --resume by its text.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

from rich.markup import escape

from aegir.annotation import Checkpoint, annotate, checked_options, loaded_members
from aegir.evaluation._io import atomic_write
from aegir.inference import LoadedClassifier
from aegir.tables.readers.archive import ZIP_SUFFIXES, extracted, member_names
from aegir.tables.readers.common import errors_named
from aegir.tables.readers.compressed import table_suffix
from aegir.tables.readers.csv import CSV_SUFFIXES
from aegir.tables.readers.excel import WORKBOOK_SUFFIXES, sheet_names
from aegir.tables.readers.html import HTML_SUFFIXES, html_tables
from aegir.tables.readers.jsonl import JSONL_SUFFIXES, is_json, json_tables
from aegir.tables.readers.parquet import COLUMNAR_SUFFIXES
from aegir.tables.readers.progress import reporting, task_reporter
from aegir.tables.readers.remote import downloaded, is_url
from aegir.tables.readers.sqlite import SQLITE_SUFFIXES, is_database, is_sqlite, table_names
from aegir.tables.table import TableError

TEXT_SUFFIXES = (*CSV_SUFFIXES, *JSONL_SUFFIXES)  # also compressed: data.csv.gz, .bz2, .xz, .zst
TABLE_SUFFIXES = (*TEXT_SUFFIXES, *COLUMNAR_SUFFIXES, *WORKBOOK_SUFFIXES, *ZIP_SUFFIXES)


def _is_table_file(q: Path) -> bool:
    """Whether a folder search takes the file: a table suffix (also compressed), or a SQLite database; not the
    output of an annotation run."""
    suffix = q.suffix.lower()
    if suffix in JSONL_SUFFIXES and is_annotation_output(q):
        return False
    return (suffix in TABLE_SUFFIXES or table_suffix(q) in TEXT_SUFFIXES
            or suffix in SQLITE_SUFFIXES and is_sqlite(q))


def is_annotation_output(path: Path) -> bool:
    """Whether a JSON Lines file was written by `annotate_files`: its first record is a column record
    (`file`, `file_columns`, `top_k`) or an unreadable file's (`file`, `error`). Such files often lie in the
    folders annotated, and are not tables to annotate."""
    try:
        with open(path, "rb") as fh:
            first = next((line for line in fh if line.strip()), b"")
        rec = json.loads(first)
    except (OSError, ValueError):
        return False
    return isinstance(rec, dict) and ({"file", "file_columns", "top_k"} <= rec.keys() or rec.keys() == {"file", "error"})


@dataclass
class FileError:
    file: str
    error: str


@dataclass
class BatchResult:
    out: Path
    files: int  # files found (tables or not)
    annotated: int  # annotated by this run
    skipped: int  # already complete in `out` (resume)
    columns: int  # column records this run wrote
    errors: list[FileError] = field(default_factory=list)
    header_guessed: int = 0  # files annotated by this run whose first row a guess took for column names
    preamble_skipped: int = 0  # files annotated by this run with title/notes rows skipped above the table

    @property
    def errors_path(self) -> Path | None:
        """Where this run listed its unreadable files (None: there were none)."""
        return sidecar(self.out, "errors") if self.errors else None


def sidecar(out: Path, kind: str) -> Path:
    """`<out stem>.<kind>.json[l]` beside `out` (kind: "run" or "errors")."""
    return out.with_name(f"{out.stem}.{kind}.{'json' if kind == 'run' else 'jsonl'}")


Source = Path | str  # a file or folder, or an http(s) URL (a string: Path would fold its //)


def source_key(src: Source) -> str:
    """What identifies a source across runs (resume, duplicates): a URL as given, a file by its resolved path."""
    return src if is_url(src) else str(Path(src).resolve())


def find_tables(paths: Sequence[str | Path]) -> list[Source]:
    """The sources to annotate: files as named, folders searched recursively for table suffixes, http(s) URLs
    as given (strings); in order, duplicates (same resolved path, same URL) once."""
    found: list[Source] = []
    for i, p in enumerate(paths):
        if not isinstance(p, (str, Path)):
            raise TableError(f"paths[{i}] is a {type(p).__name__}: annotate_files takes the paths of files and folders "
                             "and http(s) URLs; annotate(df) annotates a DataFrame")
        if is_url(p):
            found.append(str(p))
            continue
        p = Path(p)
        if p.is_dir():
            found += sorted(q for q in p.rglob("*") if q.is_file() and _is_table_file(q))
        elif p.exists():
            found.append(p)
        else:
            raise TableError(f"{p}: no such file or folder")
    seen: set[str] = set()
    unique = []
    for p in found:
        key = source_key(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def completed_files(out: Path) -> set[str]:
    """The sources (`source_key`: resolved paths, URLs) whose records are all in `out`. Drops what a kill left behind —
    a last line without its newline (torn mid-write) and the first records of a file cut short —
    by rewriting `out` atomically without them (those files are annotated again)."""
    data = out.read_bytes()
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline, as every finished write does
    recs: list[tuple[bytes, str]] = []
    expected: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            f, k = str(rec["file"]), int(rec["file_columns"])
        except (ValueError, KeyError, TypeError):
            raise TableError(f"{out}, line {n}: not an annotation record; is this the output of another "
                             "command?") from None
        recs.append((line, f))
        expected[f] = k
    counts: dict[str, int] = {}
    for _, f in recs:
        counts[f] = counts.get(f, 0) + 1
    complete = {f for f in counts if counts[f] == expected[f]}
    kept = [line for line, f in recs if f in complete]
    if torn or len(kept) != len(recs):
        atomic_write(out, lambda tmp: tmp.write_bytes(b"".join(line + b"\n" for line in kept)))
    return {source_key(f) for f in complete}


def _settings(members: Sequence[LoadedClassifier], kw: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with the run it continues (as JSON values)."""
    return {"checkpoint": [str(Path(m.source).resolve()) for m in members],
            "temperature": [m.temperature for m in members],
            **kw, "labels": list(kw["labels"]) if kw["labels"] is not None else None}


def annotate_files(paths: str | Path | Sequence[str | Path], checkpoint: Checkpoint | Sequence[Checkpoint], out: str | Path, *,
                   resume: bool = False, overwrite: bool = False, progress: bool = True,
                   labels: Sequence[str] | None = None, top_k: int = 3, views: int = 1,
                   main_column: int | str | None = None, max_bytes: int | None = None, bf16: bool | None = None,
                   min_score: float | None = None, header: bool | None = None, encoding: str | None = None,
                   sheet: str | int | None = None, table: str | None = None, member: str | None = None,
                   batch_size: int = 64) -> BatchResult:
    """Annotate every table under `paths` (files, folders and http(s) URLs; one of them alone, or a list) into the
    JSON Lines file `out`.

    resume: continue a run that wrote `out` (finished files skipped, settings checked); overwrite:
    start over. Without either, an existing `out` is an error, so no earlier results are lost.
    The other arguments are `annotate`'s, applied to every file.
    """
    if isinstance(paths, (str, Path)):  # one path given alone, not a list: a string is not a list of characters
        paths = [paths]
    out = Path(out)
    if out.suffix.lower() not in (".jsonl", ".ndjson"):
        raise TableError(f"{out}: annotating many files writes JSON Lines; name the output *.jsonl")
    if resume and overwrite:
        raise TableError("resume and overwrite exclude each other")
    if out.exists() and not (resume or overwrite):
        raise TableError(f"{out} exists: pass --resume to continue that run (finished files are skipped) "
                         "or --overwrite to start over")
    # Before touching any output (a mistyped path loses nothing); the run's own JSON Lines output and its
    # sidecars are never taken for tables, even in the folder searched.
    own = {source_key(q) for q in (out, sidecar(out, "run"), sidecar(out, "errors"))}
    files = [p for p in find_tables(paths) if source_key(p) not in own]
    if not files:
        raise TableError(f"no table files in {', '.join(map(str, paths))}: folders are searched for "
                         "CSV/TSV, JSON Lines, Parquet/Arrow/ORC, Excel/OpenDocument workbooks, SQLite databases and "
                         "zip archives of them (name other files, such as .json or .html, directly)")
    members = loaded_members(checkpoint)
    labels = checked_options(members, labels, top_k, views, batch_size, min_score)  # before any output is written
    kw = dict(labels=labels, top_k=top_k, views=views, main_column=main_column, max_bytes=max_bytes, bf16=bf16,
              min_score=min_score, header=header, encoding=encoding, sheet=sheet, table=table, member=member)
    settings = _settings(members, kw)
    run_file, err_file = sidecar(out, "run"), sidecar(out, "errors")
    done: set[str] = set()
    if resume and out.exists():
        if run_file.exists():
            before = json.loads(run_file.read_text())
            diff = [k for k in settings if before.get(k) != settings[k]]
            if diff:
                raise TableError(f"{out}: cannot resume with other settings than the run that wrote it "
                                 f"({run_file}): " + "; ".join(f"{k} was {before.get(k)!r}, now {settings[k]!r}"
                                                              for k in diff))
        done = completed_files(out)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"")
    atomic_write(run_file, lambda tmp: tmp.write_text(json.dumps(settings, indent=1) + "\n"))
    if err_file.exists():
        err_file.unlink()  # the previous run's failures: this run tries those files again

    todo = [p for p in files if source_key(p) not in done]
    res = BatchResult(out, len(files), 0, len(files) - len(todo), 0)
    bar = _progress(progress, len(todo))
    reading = (contextlib.nullcontext() if bar is None
               else reporting(task_reporter(bar, lambda f: f"  reading {escape(f.name)}")))
    try:
        with open(out, "ab") as fh, reading:
            for p in todo:
                try:
                    anns = _annotate_source(p, members, kw, batch_size)
                except TableError as e:  # the file's fault (unreadable, empty, ...): note it, go on
                    res.errors.append(FileError(str(p), str(e)))
                    with open(err_file, "a", encoding="utf-8") as ef:
                        ef.write(json.dumps(asdict(res.errors[-1]), ensure_ascii=False) + "\n")
                else:
                    recs = [{**a.parts, **r} for a in anns for r in a.to_records()]
                    chunk = "".join(json.dumps({"file": str(p), "file_columns": len(recs), **r}, ensure_ascii=False)
                                    + "\n" for r in recs)
                    fh.write(chunk.encode("utf-8"))  # one write per file: a kill tears at most this file
                    fh.flush()
                    os.fsync(fh.fileno())
                    res.annotated += 1
                    res.columns += len(recs)
                    res.header_guessed += any(a.header_guessed for a in anns)
                    res.preamble_skipped += any(a.preamble_rows > 0 for a in anns)
                if bar is not None:
                    bar.advance(bar.task_ids[0])
    finally:
        if bar is not None:
            bar.stop()
    return res


def _annotate_source(src: Source, members, kw: dict[str, Any], batch_size: int):
    """A file's annotations (`_annotate_file`), or a URL's: downloaded to a temporary file first, errors naming
    the URL (a download that fails is that source's error, like an unreadable file)."""
    if not is_url(src):
        return _annotate_file(src, members, kw, batch_size)
    with downloaded(src) as tmp, errors_named(tmp, src):
        return _annotate_file(tmp, members, kw, batch_size)


def _annotate_file(p: Path, members, kw: dict[str, Any], batch_size: int):
    """One file's annotations: one table, or each worksheet of a workbook that holds a table, each table of a
    database that holds a row, each array of objects of a JSON document, or each table file of a zip archive
    (in order), a workbook, database or JSON document in it part by part the same way. `sheet`/`table`/`member`
    apply where they can, and pick one part."""
    def run(**given):
        return annotate(p, members, **{**kw, **given}, batch_size=batch_size)

    if p.suffix.lower() not in ZIP_SUFFIXES:
        return _each_part(lambda **a: run(member=None, **a), _lister(p.name, is_database(p)), kw,
                          lambda: contextlib.nullcontext(p))
    out = []
    # An archive without a table file: annotate(member=None) raises the reader's error for it.
    for n in [kw["member"]] if kw["member"] is not None else member_names(p) or [None]:
        lister = _lister(n or "", PurePosixPath(n or "").suffix.lower() in SQLITE_SUFFIXES)
        out += _each_part(lambda n=n, **a: run(member=n, **a), lister, kw, lambda n=n: _member_file(p, n))
    return out


def _lister(name: str, database: bool):
    """The function that lists a file's parts (worksheets, database tables, a JSON document's arrays, an HTML
    page's tables), or None for a file of one table."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in WORKBOOK_SUFFIXES:
        return sheet_names
    if suffix in HTML_SUFFIXES:
        return html_tables
    return table_names if database else json_tables if is_json(name) else None


@contextlib.contextmanager
def _member_file(archive: Path, member: str):
    """A zip member extracted to a temporary file, errors naming the archive and member."""
    with extracted(archive, member) as (tmp, _, _), errors_named(tmp, f"{archive} [{member}]"):
        yield tmp


def _each_part(run, lister, kw: dict[str, Any], file) -> list:
    """`run` (annotate) on one table: each part `lister` names in the file that holds one, or the one kw names;
    the part arguments that do not apply cleared. `file()` gives the file to list the parts in (a context).
    A JSON file is listed first either way: JSON Lines and arrays are one table, which `table=` does not name."""
    if lister is None:
        return [run(sheet=None, table=None)]
    part, other = ("sheet", "table") if lister is sheet_names else ("table", "sheet")
    if kw[part] is not None and lister is not json_tables:
        return [run(**{part: kw[part], other: None})]
    with file() as f:
        names = lister(f)
    if lister is json_tables and not names:
        return [run(sheet=None, table=None)]
    if kw[part] is not None:
        return [run(**{part: kw[part], other: None})]
    # Nothing holding a table: annotate(part=None) raises the reader's error for the file.
    return [run(**{part: n, other: None}) for n in names or [None]]


def _progress(on: bool, total: int):
    """The files' progress bar; a file large enough to take a while to read adds its own task (bytes read)."""
    if not on or total == 0:
        return None
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
                   transient=True)
    bar.add_task(f"annotating {total} files", total=total)
    bar.start()
    return bar
