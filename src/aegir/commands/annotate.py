"""`aegir annotate FILE.csv` (or many files / folders into JSON Lines) and `aegir export`."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from aegir.commands import INFER_BF16_HELP

console = Console()
STDIN = Path("-")
BIG_FILE = 256 * 2**20  # bytes from which `aegir annotate FILE` shows its reading progress (~14 s a GiB here)


def register(app: typer.Typer) -> None:
    @app.command("annotate")
    def annotate_cmd(
        files: List[str] = typer.Argument(..., help="- reads one table from standard input (any format below, sniffed); http(s) URLs are downloaded, each read by its kind; else CSV/TSV or JSON Lines/JSON (also gzip/bzip2/xz/zstd-compressed), Excel (.xlsx, .xls) or OpenDocument (.ods) workbooks, Parquet, Arrow IPC/Feather, ORC, SQLite or HTML (.html: its <table>s) file(s) to annotate, or folders (searched recursively for *.csv, *.tsv, *.tab, *.jsonl, *.ndjson and those with .gz/.bz2/.xz/.zst, *.parquet, *.pq, *.arrow, *.feather, *.ipc, *.orc, *.xlsx, *.xlsm, *.xls, *.ods, SQLite databases named *.sqlite, *.sqlite3, *.db, *.db3, and *.zip archives of such files)."),
        checkpoint: List[Path] = typer.Option(..., help="Classifier checkpoint (final.pt / run folder) or exported specialist folder; repeat it for an ensemble (mean probability)."),
        labels: Optional[str] = typer.Option(None, help="Comma-separated subset of labels to choose from."),
        top_k: int = typer.Option(3, min=1, help="Labels per column."),
        out: Optional[Path] = typer.Option(None, help="Write the annotations: .json or .csv for one file, or - for JSON on standard output (the table and notes then go to standard error); .jsonl (one record per column, appended file by file) for many files or folders, where it is required."),
        resume: bool = typer.Option(False, help="Many files: continue the run that wrote --out (finished files are skipped; the settings must match)."),
        overwrite: bool = typer.Option(False, help="Replace an existing --out instead of refusing."),
        views: int = typer.Option(1, min=1, help="Average over this many row views per column (reads more rows of long tables)."),
        max_bytes: Optional[int] = typer.Option(None, min=8, help="Bytes read per column (default: the budget the checkpoint was trained with)."),
        main_column: Optional[str] = typer.Option(None, help="CPA checkpoints: the subject column (index, or header name; a string of digits is an index; default 0); every other column gets its property relative to it."),
        bf16: Optional[bool] = typer.Option(None, "--bf16/--fp32", help=INFER_BF16_HELP),
        min_score: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="Abstain on columns whose best score is below this (they are marked, their top-k still shown); `aegir eval` prints coverage and accuracy per threshold."),
        encoding: Optional[str] = typer.Option(None, help="Text encoding of CSV/TSV files, e.g. cp1252 (default: detected per file)."),
        sheet: Optional[str] = typer.Option(None, help="Workbooks (Excel, OpenDocument): the worksheet to annotate, by name or position (0 = first; a string of digits is a position). Default: one file: the first worksheet holding a table (two or more non-blank rows); many files: every such worksheet."),
        table: Optional[str] = typer.Option(None, help="SQLite databases: the table (or view) to annotate, by name; JSON documents holding several arrays of objects ({\"users\": [...], \"orders\": [...]}): the array, by its key. HTML pages: the <table>, by its id, caption or position (\"table 2\"). Default: one file: the first table holding a row; many files: every such table."),
        member: Optional[str] = typer.Option(None, help="Zip archives: the table file to annotate, by its name in the archive. Default: one file: the first table file; many files: every one."),
        header: Optional[bool] = typer.Option(None, "--header/--no-header", help="Whether the first row holds column names (default: guessed per file, skipping title/notes rows above the table; say --no-header for headerless tables of text values, which can pass for a header)."),
    ) -> None:
        """Per column: the top-k labels with scores (CPA checkpoints: each column's property relative to the main column).

        One file prints a table; several files or a folder are annotated into --out (JSON Lines),
        file by file, with unreadable files listed in <out>.errors.jsonl (exit code 1 if any)."""
        subset = [s.strip() for s in labels.split(",") if s.strip()] if labels else None
        kw = dict(labels=subset, top_k=top_k, views=views, main_column=main_column, max_bytes=max_bytes, bf16=bf16,
                  min_score=min_score, header=header, encoding=encoding,
                  sheet=int(sheet) if sheet is not None and sheet.isdigit() else sheet, table=table, member=member)
        from aegir.tables.readers.remote import is_url

        # A URL stays a string (Path would fold its //); several sources, a folder or a .jsonl --out are a batch.
        paths: list[Path | str] = [f if is_url(f) else Path(f) for f in files]
        if STDIN in paths and len(paths) > 1:
            raise typer.BadParameter("- (standard input) is one table: annotate it alone")
        many = paths != [STDIN] and (len(paths) > 1 or (isinstance(paths[0], Path) and paths[0].is_dir())
                                     or (out is not None and out.suffix.lower() in (".jsonl", ".ndjson")))
        if many and out == STDIN:
            raise typer.BadParameter("many files or a folder are annotated into a .jsonl file (resumable), not to -")
        if many:
            _annotate_many(paths, checkpoint, out, resume, overwrite, kw)
            return
        if resume:
            raise typer.BadParameter("--resume applies to many files or folders annotated into a .jsonl --out")
        _check_out(out, paths[0], overwrite)
        if paths[0] == STDIN:
            _annotate_stdin(checkpoint, out, kw)
        else:
            _annotate_one(paths[0], checkpoint, out, kw)

    @app.command("export")
    def export_cmd(
        checkpoint: Path = typer.Option(..., help="Classifier checkpoint (final.pt or run folder)."),
        out: Path = typer.Option(..., help="Output folder for the specialist (new or empty)."),
        overwrite: bool = typer.Option(False, help="Replace a specialist already in --out (its eval/liveness reports go too)."),
    ) -> None:
        """Freeze a classifier as a specialist: safetensors weights + config + label map."""
        from aegir.inference import export_specialist

        path = export_specialist(checkpoint, out, overwrite=overwrite)
        console.print(f"specialist written to {path}: {', '.join(sorted(p.name for p in path.iterdir()))}")


def _check_out(out: Optional[Path], source: Path | str, overwrite: bool) -> None:
    """One table's --out, checked before the model runs: a file of a kind written here, not a folder, not the
    table being annotated, and not an existing file unless --overwrite (as for many files)."""
    if out is None or out == STDIN:
        return
    if out.is_dir():
        raise typer.BadParameter(f"--out {out} is a folder: name a file (.json, .csv or .jsonl)")
    if out.suffix.lower() not in (".json", ".csv", ".jsonl", ".ndjson"):
        raise typer.BadParameter(f"--out {out}: annotations are written as .json, .csv or .jsonl (or - for JSON on "
                                 "standard output)")
    if isinstance(source, Path) and source != STDIN and source.exists() and source.resolve() == out.resolve():
        raise typer.BadParameter(f"--out {out} is the table being annotated: name another file")
    if out.exists() and not overwrite:
        raise typer.BadParameter(f"--out {out} exists: pass --overwrite to replace it")


def _annotate_stdin(checkpoint: List[Path], out: Optional[Path], kw: dict) -> None:
    """One table piped on standard input: spooled to a temporary file, then annotated as that file; the
    temporary name is replaced by <stdin> in the result and in errors."""
    import sys

    from aegir.tables.readers.common import errors_named
    from aegir.tables.readers.stdin import STDIN_NAME, spooled

    if sys.stdin.isatty():
        raise typer.BadParameter("- reads a table from standard input: pipe one in (... | aegir annotate - ...)")
    with spooled(sys.stdin.buffer) as path, errors_named(path, STDIN_NAME):
        _annotate_one(path, checkpoint, out, kw, source=STDIN_NAME)


def _annotate_one(file: Path | str, checkpoint: List[Path], out: Optional[Path], kw: dict,
                  source: str | None = None) -> None:
    """One file (or an http(s) URL, a string): a table of labels on the terminal, and with `out` the records (.csv,
    .json, or - for JSON on standard output, the terminal table then on standard error). `source` names the file
    in the output."""
    import dataclasses
    import sys

    from aegir.annotation import annotate

    term = Console(stderr=True) if out == STDIN else console
    size = file.stat().st_size if isinstance(file, Path) and file.is_file() else 0
    with _reading(term, file, size):
        # The model's own bar (tqdm, past 2 s: thousands of columns) only where no rich bar of the reading is live.
        res = annotate(file, checkpoint, **kw, progress=not _shows_reading(file, size))
    if source is not None:
        res = dataclasses.replace(res, source=source, notes=[n.replace(str(file), source) for n in res.notes])
    main = next((c.main_column for c in res.columns if c.main_column is not None), None)
    parts = " / ".join(res.parts.values())
    title = f"{res.source}{f' [{parts}]' if parts else ''} ({res.task}" + (f"; properties of column {main} as the subject)" if main is not None else ")")
    # Names from the file (a sheet or table called "[stock]", a column "[b]") are escaped, not read as rich markup.
    t = RichTable("#", "column", *[f"label {k + 1}" for k in range(kw["top_k"])], title=escape(title))
    for c in res.columns:
        cells = [escape(f"{l} ({s:.2f})") for l, s in c.labels]
        if c.abstained:
            cells[0] = f"[dim]abstain: {cells[0]}[/dim]"
        t.add_row(str(c.column), escape(c.name[:30]), *cells)
    term.print(t)
    for n in res.notes:
        term.print(f"[dim]note: {escape(n)}[/dim]")
    if out == STDIN:
        sys.stdout.write(json.dumps(res.to_records(), ensure_ascii=False) + "\n")
    elif out:
        from aegir.evaluation._io import atomic_write

        if out.suffix.lower() == ".csv":
            atomic_write(out, lambda tmp: res.to_frame().to_csv(tmp, index=False))
        else:  # .jsonl (standard input into one): a record per line; .json: one list
            recs = res.to_records()
            text = ("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
                    if out.suffix.lower() in (".jsonl", ".ndjson") else json.dumps(recs, indent=1, ensure_ascii=False))
            atomic_write(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        term.print(f"wrote {escape(str(out))}")


def _shows_reading(file: Path | str, size: int) -> bool:
    """Whether `_reading` shows a bar: a URL, or a file over BIG_FILE bytes."""
    return isinstance(file, str) or size > BIG_FILE


@contextlib.contextmanager
def _reading(term: Console, file: Path | str, size: int):
    """Reading counts every row of the file: on a big one, show what the wait is for, with the bytes read of a
    streamed file (CSV/TSV, JSON Lines, plain or compressed) on a progress bar; other formats get a spinner. A URL
    (a string) gets the spinner while it downloads, and a bar where its size is known and big."""
    url = isinstance(file, str)
    if not _shows_reading(file, size):
        yield
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

    from aegir.tables.readers.progress import reporting, task_reporter

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), console=term, transient=True) as bar:
        what = (f"downloading and annotating {escape(file)}" if url else
                f"annotating {escape(file.name)} ({size / 2**30:.1f} GiB; every row is counted, a uniform sample of "
                "them kept)")
        bar.add_task(what, total=None)
        with reporting(task_reporter(bar, lambda p: f"reading {escape(p.name)}"), min_bytes=BIG_FILE):
            yield


def _annotate_many(files: List[Path | str], checkpoint: List[Path], out: Optional[Path], resume: bool, overwrite: bool,
                   kw: dict) -> None:
    from aegir.annotate_batch import annotate_files

    if out is None:
        raise typer.BadParameter("several files or a folder need --out FILE.jsonl (one record per column)")
    res = annotate_files(files, checkpoint, out, resume=resume, overwrite=overwrite, **kw)
    console.print(f"{res.files} tables: {res.annotated} annotated ({res.columns} column{'s' if res.columns != 1 else ''}), "
                  f"{res.skipped} already in {escape(str(out))}, {len(res.errors)} unreadable")
    console.print(f"wrote {escape(str(out))}")
    if res.header_guessed:
        console.print(f"[dim]note: in {res.header_guessed} file(s) the first row was taken as column names "
                      "(guessed); pass --header or --no-header to say how the files are written[/dim]")
    if res.preamble_skipped:
        console.print(f"[dim]note: in {res.preamble_skipped} file(s) rows above the table were skipped as a title or "
                      "notes; pass --header or --no-header to read every row[/dim]")
    if res.errors:
        for e in res.errors[:10]:
            console.print(f"[red]error[/red] {escape(e.error)}")
        more = f" ({len(res.errors) - 10} more)" if len(res.errors) > 10 else ""
        console.print(f"unreadable files{more} are listed in {escape(str(res.errors_path))}; fix them and run again with --resume")
        raise typer.Exit(1)
