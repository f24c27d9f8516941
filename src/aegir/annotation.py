"""`annotate(df | path, checkpoint)`: per column, the top-k labels with scores.

A CPA (column-pair) checkpoint annotates the relation of every other column to a main (subject)
column, `main_column` (default 0, the subject column's place in SOTAB and most web tables): each pair
is serialized as in training (`[MAIN] main [SEP] [TGT] column [SEP] context`).

Wide tables: every column is annotated (each one serialized as the target, with MMR-chosen context
within the byte budget), in batches — nothing is dropped. Long tables: each column is read through
`max_rows` evenly spaced rows (the serializer's row sampling); the result says how many rows were
read of how many, so sampling is never silent. The byte budget can hold fewer of a column's values than
the rows read (long cells); `values_read` counts those that reached the model, and a note says when the
budget, not the rows, was the limit.

Abstention: with `min_score`, a column whose best score is below it gets no label (`abstained`),
for columns outside the label vocabulary or too ambiguous to call; `aegir eval` prints, on labelled
data, the coverage and accuracy each threshold gives and how well the scores are calibrated.
The module is `annotation`, not `annotate` as in design.md's layout: a submodule named `annotate`
would, once imported, replace the package attribute `aegir.annotate` (the function users call) with
the module itself, so a second `aegir.annotate(df, ...)` raised "'module' object is not callable".
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

import numpy as np

from aegir.encoding.batch import encode_column, view_seed
from aegir.encoding.serialize import row_sample
from aegir.inference import (LoadedClassifier, inference_precision, load_classifier, load_classifiers, predict_ensemble,
                             read_at_budget)
from aegir.tables.readers import from_dataframe
from aegir.tables.readers.common import errors_named, spread_rows
from aegir.tables.readers.files import read_table_file
from aegir.tables.readers.remote import downloaded, is_url
from aegir.tables.table import Table, TableError


# Files that hold several tables, and the argument that names one: (argument, the file, its tables, what it names).
PARTS = (("member", "archive", "table files", "a table file in a zip archive"),
         ("sheet", "workbook", "worksheets", "a worksheet of a workbook (Excel, OpenDocument)"),
         ("table", "file", "tables", "a table of a SQLite file, an array of objects in a JSON document or a <table> of "
                                     "an HTML page"))


@dataclass
class ColumnAnnotation:
    column: int
    name: str
    labels: list[tuple[str, float]]  # top-k (label, score), best first
    rows_read: int  # distinct rows sampled for the table (all views and members)
    rows_total: int
    truncated: bool  # some cell or context did not fit the byte budget
    main_column: int | None = None  # CPA: the subject column this column's property is relative to
    abstained: bool = False  # the best score was below annotate's min_score: no label (labels still lists the top-k)
    values_read: int = 0  # distinct rows whose cell of this column reached the model (whole or cut), <= rows_read

    @property
    def label(self) -> str | None:
        """The best label, or None where the annotation abstained."""
        return None if self.abstained else self.labels[0][0]


@dataclass
class AnnotationResult:
    source: str
    columns: list[ColumnAnnotation]
    checkpoint: str
    task: str
    restricted_to: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    min_score: float | None = None  # abstention threshold on the best label's score (None: always label)
    header_guessed: bool = False  # a file's first row was taken for column names on weak evidence (header=None)
    preamble_rows: int = 0  # leading rows of a file skipped as a title or notes above the table (header=None)
    sheet: str | None = None  # an Excel workbook's worksheet that was annotated
    table: str | None = None  # the database table (or view), JSON document's array or HTML <table> annotated
    member: str | None = None  # a zip archive's table file that was annotated

    @property
    def parts(self) -> dict[str, str]:
        """Which part of its file the table was: {"member": ..., "sheet": ..., "table": ...}, those that apply."""
        return {k: getattr(self, k) for k, *_ in PARTS if getattr(self, k) is not None}

    def to_records(self) -> list[dict[str, Any]]:
        return [{"column_index": c.column, "column_name": c.name,
                 **({"main_column_index": c.main_column} if c.main_column is not None else {}),
                 "label": c.label, "score": c.labels[0][1],
                 **({"abstained": c.abstained} if self.min_score is not None else {}),
                 "top_k": [{"label": l, "score": s} for l, s in c.labels], "values_read": c.values_read,
                 "rows_read": c.rows_read, "rows_total": c.rows_total} for c in self.columns]

    def to_frame(self):
        import pandas as pd

        rows = []
        for c in self.columns:
            r = {"column_index": c.column, "column_name": c.name}
            if c.main_column is not None:
                r["main_column_index"] = c.main_column
            if self.min_score is not None:
                r["abstained"] = c.abstained
            for k, (l, s) in enumerate(c.labels, 1):
                r[f"label_{k}"], r[f"score_{k}"] = l, round(s, 4)
            r["values_read"], r["rows_read"], r["rows_total"] = c.values_read, c.rows_read, c.rows_total
            rows.append(r)
        return pd.DataFrame(rows)


_CACHE: dict[str, LoadedClassifier] = {}


def _as_table(data, max_rows_read: int | None, header: bool | None = None, encoding: str | None = None,
              sheet: str | int | None = None, table: str | None = None, member: str | None = None
              ) -> tuple[Table, str]:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None
    if isinstance(data, Table):
        return data, data.name
    if pd is not None and isinstance(data, pd.DataFrame):
        n = len(data)
        if max_rows_read is not None and n > max_rows_read:
            # As for files: a seeded uniform sample of the rows, in order, before every cell becomes text.
            sample = data.iloc[spread_rows(n, max_rows_read)]
            return from_dataframe(sample, meta={"rows_total": n, "row_sample": "spread"}), "DataFrame"
        return from_dataframe(data), "DataFrame"
    def read(p: Path) -> Table:
        # A uniform sample of a long file's rows, not its first ones: sorted exports are seen end to end.
        return read_table_file(p, max_rows=max_rows_read, header="infer" if header is None else header,
                               spread=True, encoding=encoding, sheet=sheet, table=table, member=member)
    if is_url(data):
        with downloaded(data) as p, errors_named(p, data):
            t = read(p)
        t.meta.update(path=data, name=PurePosixPath(urllib.parse.urlsplit(data).path).name or data)
        return t, data
    scheme = urllib.parse.urlsplit(data).scheme if isinstance(data, str) and "://" in data else ""
    if len(scheme) > 1:  # one letter is a Windows drive (C://...)
        raise TableError(f"{data}: only http(s) URLs are downloaded; fetch {scheme}: files first (s3/gs/ftp tools) and "
                         "annotate the local copy")
    if isinstance(data, (str, Path)):
        p = Path(data)
        if not p.exists():
            raise TableError(f"{p}: no such file")
        if p.is_dir():
            raise TableError(f"{p}: is a folder; annotate_files (aegir annotate FOLDER --out x.jsonl) annotates folders")
        return read(p), str(p)
    raise TableError("annotate() takes a pandas DataFrame, a Table, or the path or http(s) URL of a CSV/TSV, JSON, "
                     f"Excel, OpenDocument, Parquet, SQLite or HTML file, not {type(data).__name__}")


def budget_note(short: Sequence[ColumnAnnotation], max_bytes: int, max_cell_bytes: int) -> str:
    """Say which columns' values did not all fit their byte budget (their `values_read` < `rows_read`)."""
    worst = min(short, key=lambda c: (c.values_read / c.rows_read, c.column))
    few = ", ".join(repr(c.name) for c in short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")
    return (f"the byte budget ({max_bytes} bytes per column, cells cut at {max_cell_bytes}) held fewer values than the "
            f"rows read for {len(short)} column(s): {few}; fewest: {worst.name!r}, {worst.values_read} of "
            f"{worst.rows_read} (values_read); views=K (--views K) shows other rows, max_bytes (--max-bytes) more bytes")


Checkpoint = str | Path | LoadedClassifier


def _cached(c: Checkpoint) -> LoadedClassifier:
    if isinstance(c, LoadedClassifier):
        return c
    key = str(Path(c).resolve())
    return _CACHE.get(key) or _CACHE.setdefault(key, load_classifier(c))


def loaded_members(checkpoint: Checkpoint | Sequence[Checkpoint]) -> list[LoadedClassifier]:
    """One classifier or an ensemble's members, loaded once per process (`_CACHE`) and checked to go together."""
    single = isinstance(checkpoint, (str, Path, LoadedClassifier))
    return load_classifiers([_cached(c) for c in ([checkpoint] if single else checkpoint)])


def checked_options(members: Sequence[LoadedClassifier], labels: Any, top_k: Any, views: Any, batch_size: Any,
                    min_score: Any) -> list[str] | None:
    """The options `annotate` and `annotate_files` share, checked before any file is read or output written, each
    error naming its argument. Returns `labels` as a list (an iterator is read once, here)."""
    for name, v in (("top_k", top_k), ("views", views), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {v!r}")
    if min_score is not None and (isinstance(min_score, bool) or not isinstance(min_score, (int, float, np.floating))
                                  or not 0.0 <= min_score <= 1.0):
        raise ValueError(f"min_score must be a number in [0, 1] (a probability), got {min_score!r}")
    if labels is None:
        return None
    if isinstance(labels, (str, bytes)):
        raise ValueError(f"labels must be a list of label names, not one string: labels=[{labels!r}]")
    labels = list(labels)
    if not labels:
        raise ValueError("labels is empty: name at least one label, or pass None to choose from the whole vocabulary")
    vocab = members[0].vocab
    unknown = [l for l in labels if l not in vocab]
    if unknown:
        raise TableError(f"labels not in the model's vocabulary ({len(vocab.labels)} labels): "
                         + ", ".join(_with_hint(str(u), vocab.labels) for u in unknown[:10]))
    return labels


def _with_hint(name: str, vocab: Sequence[str]) -> str:
    """An unknown label, with the vocabulary's label it was probably meant to be (other case, a typo)."""
    import difflib

    near = {v.lower(): v for v in vocab}.get(name.lower()) or next(iter(difflib.get_close_matches(name, vocab, 1)), None)
    return f"{name!r} (did you mean {near!r}?)" if near else repr(name)


def _main_index(table: Table, main_column: int | str, source: str) -> int:
    """The main column by index or by header name, checked against the table."""
    if isinstance(main_column, str) and not main_column.lstrip("-").isdigit():
        names = [table.column_name(j) for j in range(table.n_cols)]
        if main_column not in names:
            raise TableError(f"{source}: main column {main_column!r} is not a column name; columns: {names[:20]}")
        same = [j for j, n in enumerate(names) if n == main_column]
        if len(same) > 1:
            raise TableError(f"{source}: columns {', '.join(map(str, same))} are all named {main_column!r}; pass the "
                             "main column's index")
        return names.index(main_column)
    j = int(main_column)
    if not 0 <= j < table.n_cols:
        raise TableError(f"{source}: main column {j} out of range (the table has columns 0..{table.n_cols - 1})")
    return j


def annotate(data, checkpoint: Checkpoint | Sequence[Checkpoint], labels: Sequence[str] | None = None, top_k: int = 3,
             batch_size: int = 64, max_rows_read: int | None = 100_000, views: int = 1,
             main_column: int | str | None = None, max_bytes: int | None = None,
             bf16: bool | None = None, min_score: float | None = None, header: bool | None = None,
             encoding: str | None = None, sheet: str | int | None = None, table: str | None = None,
             member: str | None = None, progress: bool = False) -> AnnotationResult:
    """Annotate every column of `data` (DataFrame, Table, or a CSV/TSV, JSON Lines, Excel (.xlsx, .xls), OpenDocument
    (.ods), Parquet/Arrow/ORC, SQLite or HTML file's path, or its http(s) URL as a string, downloaded first
    (`readers.remote`); `read_table_file` says which suffixes are which).

    checkpoint: a classifier (final.pt, run folder, exported specialist or a loaded one), or a list
    of them sharing one label vocabulary: an ensemble whose scores are the members' mean probability.
    views: average the scores over this many row views per column (view 0 = evenly spaced rows,
    the others random row subsets); more views read more of a long table's rows.
    labels: restrict predictions to this subset of the model's vocabulary (unknown names raise).
    max_rows_read: rows kept from a file, a uniform sample of a longer file's rows (the serializer
    samples `max_rows` of them per column); every row is counted.
    main_column: CPA checkpoints only: the subject column (index or header name; default 0). Every
    other column is annotated with its property relative to it.
    max_bytes: bytes read per column instead of each checkpoint's trained budget (None: as trained); the
    target column's share grows with it (`at_budget`).
    bf16: run in bf16 autocast (True) or fp32 (False) instead of the precision each checkpoint was
    trained with (None); for this call only (`inference_precision`).
    min_score: abstain (`ColumnAnnotation.abstained`, label None) on columns whose best score is below
    this; the top-k list is still given. `aegir eval` prints coverage and accuracy per threshold on
    labelled data (aegir.evaluation.selective) to choose it. With `labels`, scores are those of the
    full vocabulary (not renormalised over the subset).
    header: whether a CSV/TSV file's or worksheet's first row holds column names (None: guessed, skipping a preamble).
    encoding: a CSV/TSV file's text encoding (None: detected; say it when the detection guesses wrong).
    sheet: a workbook's (.xlsx, .xlsm, .ods) worksheet, by name or position (None: the first that holds a table, two or
    more non-blank rows; a note lists the others; `annotate_files` annotates each such worksheet).
    table: a SQLite database's table or view, by name (None: the first table holding a row; a note lists the
    others; `annotate_files` annotates each such table); or a JSON document's array of objects, by its key
    (`{"users": [...], "orders": [...]}`; None: the first); or an HTML page's <table>, by its id, caption or
    position (`table 2`; None: the first holding a table).
    member: a zip archive's table file, by its name in the archive (None: the first; a note lists the others;
    `annotate_files` annotates each); sheet and table apply to it.
    progress: show a progress bar (standard error) over the model's batches when they take more than 2 s (a table of
    thousands of columns); `aegir annotate FILE` turns it on.
    """
    members = [read_at_budget(m, max_bytes) for m in loaded_members(checkpoint)]
    lc = members[0]
    labels = checked_options(members, labels, top_k, views, batch_size, min_score)
    named = {"member": member, "sheet": sheet, "table": table}
    for kind, _, _, names in PARTS:
        if named[kind] is not None and not isinstance(data, (str, Path)):
            raise TableError(f"{kind}= names {names}; the data given is not a file path")
    tab, source = _as_table(data, max_rows_read, header, encoding, sheet, table, member)
    if tab.n_cols == 0:
        raise TableError(f"{source}: table has no columns")
    main = None
    if lc.cpa:  # members share the task kind (load_classifiers checks)
        if tab.n_cols < 2:
            raise TableError(f"{source}: a CPA (column-pair) checkpoint needs at least two columns; the table has one")
        main = _main_index(tab, 0 if main_column is None else main_column, source)
    elif main_column is not None:
        raise TableError("main_column (--main-column) is for CPA (column-pair) checkpoints; this one annotates "
                         f"column types ({lc.task})")
    targets = [j for j in range(tab.n_cols) if j != main]
    vocab = lc.vocab.labels
    mask = None
    if labels is not None:
        mask = np.isin(np.array(vocab, dtype=object), np.array(list(labels), dtype=object))

    examples = [encode_column(tab, j, lc.serialize_cfg, main=main, row_seed=view_seed(0, 0)) for j in targets]
    seen = [set(e.target_rows) for e in examples]  # per target: rows whose value any view of any member showed

    def encode_view(m: LoadedClassifier, v: int):
        if m is lc and v == 0:
            return examples
        ex = [encode_column(tab, j, m.serialize_cfg, main=main, row_seed=view_seed(v, 0)) for j in targets]
        for r, e in enumerate(ex):
            seen[r].update(e.target_rows)
        return ex
    with inference_precision(members, bf16):
        raw = predict_ensemble(members, encode_view, views, batch_size, label_mask=mask, progress=progress)
    k = min(top_k, len(vocab) if mask is None else int(mask.sum()))
    idx, scores = raw.top_k(k, lc.multi_label)
    total = int(tab.meta.get("rows_total", tab.n_rows))
    rows_read = len(set().union(*(row_sample(tab.n_rows, m.serialize_cfg.max_rows, view_seed(v, 0))
                                  for m in members for v in range(views))))
    cols = [ColumnAnnotation(j, tab.column_name(j) or f"column_{j}",
                             [(vocab[i], float(s)) for i, s in zip(idx[r], scores[r])], rows_read, total,
                             examples[r].truncated, main, min_score is not None and float(scores[r][0]) < min_score,
                             len(seen[r]))
            for r, j in enumerate(targets)]
    notes = []
    if total > rows_read:
        how = "evenly spaced" if views == 1 else f"evenly spaced and randomly sampled ({views} views)"
        where, sample = ("DataFrame" if tab.meta.get("source") == "dataframe" else "file"), tab.meta.get("row_sample")
        of = (f"{tab.n_rows} kept (a uniform sample of the {total} in the {where})" if sample == "spread" else
              f"{tab.n_rows} kept (the first of {total} in the {where})" if sample == "first" else
              f"{tab.n_rows}" + (f" ({total} in the {where})" if total != tab.n_rows else ""))
        notes.append(f"each column was read through {rows_read} {how} rows of {of}")
    if tab.meta.get("long_rows"):
        n = tab.meta["header_fields"]
        notes.append(f"{tab.meta['long_rows']} of the rows read have more fields than the header's {n} (the first: "
                     f"data row {tab.meta['first_long_row']}), so columns {n} on have no name; is a delimiter inside "
                     "an unquoted value?")
    if tab.n_rows == 0:
        notes.append("the table has no data rows: every label comes from the column names alone")
    else:
        if main is not None and not any(v.strip() for v in tab.columns[main]):
            notes.append(f"the main (subject) column {main} ({tab.column_name(main) or 'no name'!r}) holds no values in "
                         "the rows read: every property is read against an empty subject; pick another (main_column=)")
        blank = [c for c in cols if not any(v.strip() for v in tab.columns[c.column])]
        if blank:
            few = ", ".join(repr(c.name) for c in blank[:5]) + (f" and {len(blank) - 5} more" if len(blank) > 5 else "")
            notes.append(f"{len(blank)} column(s) hold no values in the rows read ({few}): their labels come from "
                         "their names and the other columns only")
    short = [c for c in cols if c.values_read < c.rows_read]
    if short:
        notes.append(budget_note(short, lc.serialize_cfg.max_bytes, lc.serialize_cfg.max_cell_bytes))
    for kind, where, what, _ in PARTS:
        parts = tab.meta.get(kind + "s", [])
        if named[kind] is None and len(parts) > 1:
            notes.append(f"the {where} has {len(parts)} {what} ({', '.join(parts[:10])}{', ...' if len(parts) > 10 else ''}); "
                         f"annotated {tab.meta[kind]!r}; pass {kind}= (--{kind}) for another, or annotate it with "
                         "--out x.jsonl for all")
    n_index = int(tab.meta.get("index_columns", 0))
    if n_index:
        names = ", ".join(repr(tab.column_name(j)) for j in range(n_index))
        whose = "DataFrame's index" if tab.meta.get("source") == "dataframe" else "pandas index stored in the file"
        notes.append(f"the {whose} ({names}) holds data and was annotated as the first "
                     f"{'column' if n_index == 1 else f'{n_index} columns'}; column numbers count it")
    detected = tab.meta.get("encoding")
    if encoding is None and detected and detected.replace("_", "-") not in ("utf-8", "utf-8-sig", "ascii"):
        notes.append(f"the file is not UTF-8; its text was read as {detected} (detected, a guess); if names or values "
                     "look garbled, pass its encoding (encoding=, --encoding)")
    header_guessed = tab.meta.get("header") == "names"  # the reader's weakest guess: say so
    if header_guessed:
        notes.append("the first row was taken as column names (guessed: its cells are unique and non-numeric); "
                     "if it is data, pass header=False (--no-header)")
    skipped = int(tab.meta.get("preamble_rows", 0))
    if skipped:
        notes.append(f"{skipped} leading row(s) above the table were skipped as a title or notes (fewer filled cells "
                     "than the table's rows); pass header=True or False (--header/--no-header) to read every row")
    if min_score is not None:
        n_abst = sum(c.abstained for c in cols)
        notes.append(f"{n_abst} of {len(cols)} columns abstained (best score below {min_score:g})")
    return AnnotationResult(source, cols, " + ".join(m.source for m in members), lc.task,
                            list(labels) if labels is not None else None, notes, min_score, header_guessed, skipped,
                            tab.meta.get("sheet"), tab.meta.get("table"), tab.meta.get("member"))
