"""Fine-tuning tasks: which data, which label vocabulary, which loss.

`resolve_task(task, data)` returns train/validation `LabeledDataset`s plus the `LabelVocab`.
Defaults read `../shared/data` when present and fall back to the embedded synthetic tables.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from aegir.paths import shared_data_dir
from aegir.tables.labels import LabelVocab
from aegir.tables.load import load_labeled, merge, resolve_sotab
from aegir.tables.readers import gittables_folds, read_gittables, read_sotab, read_turl
from aegir.tables.table import LabeledDataset, TableError

TASKS = ("sotab-cta", "sotab-cpa", "gittables-dbpedia", "gittables-schema", "wikitables-cta", "synthetic-cta", "custom")


@dataclass
class TaskData:
    task: str
    train: LabeledDataset
    valid: LabeledDataset | None
    vocab: LabelVocab
    multi_label: bool
    cpa: bool
    note: str = ""
    # The seed of the by-table hash that carved the validation set out of the training data; None
    # when validation came from its own files (SOTAB CTA, GitTables folds, --valid-data).
    split_seed: int | None = None
    # (fold, folds) when that hold-out was one part of a k-fold partition of the tables.
    cv: tuple[int, int] | None = None
    # Things about the data the user should read before trusting the run (`aegir train` prints them).
    notes: list[str] = field(default_factory=list)


def split_by_table(ds: LabeledDataset, valid_fraction: float, seed: int = 0,
                   cv: tuple[int, int] | None = None) -> tuple[LabeledDataset, LabeledDataset]:
    """Deterministic split by table (never by column: columns of one table share context).

    Without `cv`, a table is held out when its hash falls below `valid_fraction`. With cv = (fold, folds),
    the tables are partitioned into `folds` parts by the same hash and part `fold` is held out, so the
    runs of folds 0..folds-1 together score every table exactly once (k-fold cross-validation).
    """
    if cv is not None:
        check_cv(*cv)

    def is_valid(ti: int) -> bool:
        h = zlib.crc32(f"{seed}:{ds.tables[ti].name}:{ti}".encode())
        return h % cv[1] == cv[0] if cv is not None else (h % 10_000) / 10_000 < valid_fraction

    tr = [t for t in ds.targets if not is_valid(t.table_index)]
    va = [t for t in ds.targets if is_valid(t.table_index)]
    return replace(ds, targets=tr), replace(ds, targets=va)


def check_cv(fold: int, folds: int) -> None:
    if folds < 2 or not 0 <= fold < folds:
        raise ValueError(f"cross-validation needs --cv-folds >= 2 and 0 <= --cv-fold < --cv-folds, got fold {fold} of {folds}")


def dedupe_targets(ds: LabeledDataset) -> LabeledDataset:
    """Drop repeated (table name, column cells, labels) targets.

    SOTAB's Train and Train50 share tables (Train renumbers columns, Train50 keeps them all), so a
    merged training set would silently double-count those columns. Two columns of one table that hold the same
    cells under the same label (unitCode "INH" twice) are two targets: the k-th such column of a table is matched
    only with the k-th of its copy (before, the second was dropped: 11 of SOTAB CPA's 2,154 pairs).
    """
    seen: set = set()
    keep = []
    nth: Counter = Counter()  # (table object, key) -> how many such columns that table has shown so far
    for t in ds.targets:
        tab = ds.tables[t.table_index]
        key = (tab.name, tuple(tab.columns[t.column]), t.labels, t.main_column is not None)
        k = nth[(t.table_index, key)]
        nth[(t.table_index, key)] += 1
        if (key, k) not in seen:
            seen.add((key, k))
            keep.append(t)
    return replace(ds, targets=keep)


def _sotab_root(data: str | None) -> Path:
    if data:
        return Path(data)
    shared = shared_data_dir()
    if shared is None:
        raise TableError("SOTAB data not found: pass --data PATH (a SOTAB root such as ../shared/data/sotab_v2_sample)")
    return shared / "sotab_v2_sample"


def _existing(path: str | Path, flag: str) -> Path:
    """`path` when it exists, else the one-line error naming the flag it came from."""
    p = Path(path)
    if not p.exists():
        raise TableError(f"{flag} {p}: no such file or folder")
    return p


def _sotab_splits(path: str | Path, flag: str) -> dict[str, tuple[Path, Path]]:
    """resolve_sotab, with an error that fits training (it has no --gold to name a split's gold CSV)."""
    p = _existing(path, flag)
    try:
        return resolve_sotab(p)
    except TableError:
        raise TableError(f"{flag} {p}: not a SOTAB root (CTA/ and CPA/ split folders with their gold CSVs) "
                         "or one of its split folders") from None


def _custom_format(path: str | Path, flag: str) -> str:
    """'csv' for a folder of CSV files with labels.csv, 'sotab' for a SOTAB root or split; else the
    error saying what `--data` of the custom task takes."""
    p = _existing(path, flag)
    if p.is_file():
        if p.name == "labels.csv":
            raise TableError(f"{flag} {p}: name the folder that holds labels.csv ({p.parent}), not the file")
        raise TableError(f"{flag} {p}: task custom takes a folder of CSV files with a labels.csv (or a SOTAB "
                         "root or split folder), not a file")
    if (p / "labels.csv").is_file():
        return "csv"
    try:
        resolve_sotab(p)
    except TableError:
        raise TableError(f"{flag} {p}: no labels.csv in this folder, and not a SOTAB root or split folder; task "
                         "custom takes a folder of CSV files with a labels.csv (table_name,column_index,label)") from None
    return "sotab"


def _multi_label_note(ds: LabeledDataset, shown: int = 5) -> str | None:
    """Why a custom task became multi-label: the columns labels.csv gives several labels (a duplicate
    row with another label is enough, and turns the whole task into per-label sigmoids, BCE)."""
    multi = [t for t in ds.targets if len(t.labels) > 1]
    if not multi:
        return None
    named = "; ".join(f"{ds.tables[t.table_index].name} column {t.column}: {', '.join(t.labels)}" for t in multi[:shown])
    more = f" (and {len(multi) - shown} more)" if len(multi) > shown else ""
    return (f"task custom is multi-label (a sigmoid per label, BCE) because {len(multi)} column(s) have several "
            f"labels: {named}{more}; if a column should have one label, keep one row for it in labels.csv")


def _filter_to_vocab(ds: LabeledDataset, vocab: LabelVocab) -> LabeledDataset:
    keep = [t for t in ds.targets if all(l in vocab for l in t.labels)]
    return replace(ds, targets=keep, skipped=ds.skipped + len(ds.targets) - len(keep))


def resolve_task(task: str, data: str | None = None, valid_data: str | None = None, *,
                 n_synthetic: int = 600, seed: int = 0, valid_fraction: float = 0.15, add_synthetic: int = 0,
                 split_seed: int = 0, cv: tuple[int, int] | None = None) -> TaskData:
    """Train/validation data and label vocabulary of a task.

    seed: the synthetic generator's seed (synthetic-cta, add_synthetic). split_seed: the by-table hash
    that holds out `valid_fraction` of the tables where a task has no validation files (sotab-cpa on
    the sample, custom, wikitables-cta, synthetic-cta). It is not the training seed, so runs with
    different seeds share one validation set: their scores compare, and one seed's training tables
    are never another's validation tables (teachers, ensembles). cv=(fold, folds): hold out that part
    of a k-fold partition of the tables instead of `valid_fraction` (tasks without validation files only).

    add_synthetic: also train on this many embedded synthetic tables (SOTAB CTA labels; for
    sotab-cta and custom tasks, only the synthetic columns whose label is in the task's vocabulary).
    Validation data is never augmented.
    """
    td = _resolve(task, data, valid_data, n_synthetic=n_synthetic, seed=seed, valid_fraction=valid_fraction,
                  split_seed=split_seed, cv=cv)
    if cv is not None and td.split_seed is None:
        raise TableError(f"task {task}: --cv-folds is for data without a validation split; this one has its own "
                         "(SOTAB CTA validation, the last GitTables fold, or --valid-data)")
    td.cv = cv if td.split_seed is not None else None
    if add_synthetic > 0:
        if task == "synthetic-cta":
            raise TableError("--add-synthetic is for real-data tasks; use --n-synthetic for synthetic-cta")
        syn = _filter_to_vocab(load_labeled("synthetic", n_synthetic=add_synthetic, seed=seed + 1)["synthetic"], td.vocab)
        if not syn.targets:
            raise TableError(f"task {task}: no synthetic column has a label in its vocabulary")
        td.train = merge([td.train, syn])
        td.note += f"; + {len(syn.targets)} synthetic training columns from {add_synthetic} tables"
    return td


def _resolve(task: str, data: str | None, valid_data: str | None, *, n_synthetic: int, seed: int,
             valid_fraction: float, split_seed: int, cv: tuple[int, int] | None) -> TaskData:
    if task not in TASKS:
        raise TableError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if task == "synthetic-cta":
        ds = load_labeled("synthetic", n_synthetic=n_synthetic, seed=seed)["synthetic"]
        tr, va = split_by_table(ds, valid_fraction, split_seed, cv)
        return TaskData(task, tr, va, LabelVocab.benchmark("sotab-cta"), False, False,
                        note=f"{n_synthetic} synthetic tables (seed {seed})", split_seed=split_seed)
    if task in ("sotab-cta", "sotab-cpa"):
        root = _sotab_root(data)
        splits = _sotab_splits(root, "--data")
        kind = task.split("-")[1]
        vocab = LabelVocab.benchmark(task)
        train_parts = [read_sotab(*splits[k]) for k in (f"{kind}-train", f"{kind}-train50") if k in splits]
        if not train_parts:
            raise TableError(f"{root}: no {kind.upper()} training split found")
        train = _filter_to_vocab(dedupe_targets(merge(train_parts)), vocab)
        hashed = None
        if valid_data:
            valid = read_sotab(*next(iter(_sotab_splits(valid_data, "--valid-data").values())))
        elif f"{kind}-validation" in splits:
            valid = read_sotab(*splits[f"{kind}-validation"])
        else:
            train, valid = split_by_table(train, valid_fraction, split_seed, cv)
            hashed = split_seed
        return TaskData(task, train, _filter_to_vocab(valid, vocab), vocab, False, kind == "cpa", note=str(root),
                        split_seed=hashed)
    if task.startswith("gittables-"):
        ontology = "dbpedia" if task.endswith("dbpedia") else "schema"
        root = Path(data) if data else (shared_data_dir() / "gittables_semtab22" if shared_data_dir() else None)
        if root is None:
            raise TableError("GitTables folds not found: pass --data PATH (folder with the fold CSVs)")
        folds = gittables_folds(root, ontology)
        if len(folds) < 2:
            raise TableError(f"{root}: need at least 2 {ontology} fold CSVs (train on all but the last)")
        vocab = LabelVocab.benchmark(task)
        train = read_gittables(folds[:-1])
        valid = read_gittables([Path(valid_data)] if valid_data else folds[-1:])
        return TaskData(task, _filter_to_vocab(train, vocab), _filter_to_vocab(valid, vocab), vocab, False, False,
                        note=f"train {[f.name for f in folds[:-1]]}, evaluate {valid_data or folds[-1].name}")
    if task == "wikitables-cta":
        if not data:
            raise TableError("wikitables-cta needs --data PATH to TURL CTA JSON (see docs/data_formats.md)")
        train = read_turl(data)
        valid = read_turl(valid_data) if valid_data else None
        if valid is None:
            train, valid = split_by_table(train, valid_fraction, split_seed, cv)
        vocab = LabelVocab.from_labels([l for t in train.targets for l in t.labels], name="wikitables-cta")
        # Validation keeps labels training never saw: they are scored as misses, not dropped (the
        # vocabulary is the training data's, so dropping them would score only what the model can say).
        return TaskData(task, train, valid, vocab, True, False,
                        note="label list built from the training data (the 255-type list is not available offline)",
                        split_seed=None if valid_data else split_seed)
    # custom: a labelled CSV folder, or a SOTAB layout split
    if not data:
        raise TableError("task custom needs --data PATH (a folder of CSVs with labels.csv, or a SOTAB split)")
    p = Path(data)
    fmt = _custom_format(p, "--data")
    parts = list(load_labeled(fmt, p).values())
    ds = merge(parts)
    if valid_data:
        valid = merge(list(load_labeled(_custom_format(valid_data, "--valid-data"), valid_data).values()))
        train = ds
    else:
        train, valid = split_by_table(ds, valid_fraction, split_seed, cv)
    labels = [l for t in train.targets for l in t.labels]
    if not labels:
        raise TableError(f"{data}: no labelled columns found")
    vocab = LabelVocab.from_labels(labels, name="custom")
    cpa = ds.task == "cpa"
    note = _multi_label_note(ds) if ds.multi_label else None
    # As for wikitables-cta: validation labels training never saw count as misses, they are not dropped.
    return TaskData(task, train, valid, vocab, ds.multi_label, cpa,
                    note=f"{fmt} data at {data}; vocabulary of {len(vocab)} labels built from it",
                    split_seed=None if valid_data else split_seed, notes=[note] if note else [])
