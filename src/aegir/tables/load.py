"""One entry point for labelled data: `load_labeled(format, path)` -> LabeledDataset(s).

Used by `aegir data stats`, training and evaluation so every command accepts the same paths.
"""

from __future__ import annotations

from pathlib import Path

from aegir.tables.readers import (
    gittables_folds, read_gittables, read_labeled_csv_folder, read_sotab, read_turl, sotab_splits,
)
from aegir.tables.table import LabeledDataset, TableError

FORMATS = ("sotab", "gittables", "csv", "turl", "synthetic")


def resolve_sotab(path: str | Path, gold: str | Path | None = None) -> dict[str, tuple[Path, Path]]:
    """Split name -> (table folder, gold CSV). PATH is a SOTAB root, or one split folder (+ gold)."""
    path = Path(path)
    if gold is not None:
        return {path.name: (path, Path(gold))}
    splits = sotab_splits(path)
    if splits:
        return splits
    # A split folder such as .../CTA/Train: find its gold CSV through the root two levels up.
    for name, (d, g) in sotab_splits(path.parent.parent).items():
        if d.resolve() == path.resolve():
            return {name: (d, g)}
    if not path.exists():
        raise TableError(f"{path}: no such file or folder")
    if (path / "labels.csv").is_file() or path.name == "labels.csv":
        raise TableError(f"{path}: a folder of tables with labels.csv is read with --format csv (name the folder), "
                         "not as SOTAB")
    raise TableError(f"{path}: not a SOTAB root or split folder with a known gold CSV (CTA/CTA_training_gt.csv, ...); "
                     "aegir data stats takes the gold CSV with --gold")


def load_labeled(fmt: str, path: str | Path | None = None, *, gold: str | Path | None = None,
                 n_synthetic: int = 500, seed: int = 0, ontology: str = "dbpedia") -> dict[str, LabeledDataset]:
    """Load labelled data; returns {part name: dataset} (SOTAB roots and GitTables folders have several)."""
    if fmt not in FORMATS:
        raise TableError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "synthetic":
        from aegir.tables.synth import generate_tables

        return {"synthetic": generate_tables(n_synthetic, seed=seed)}
    if path is None:
        raise TableError(f"format {fmt!r} needs a PATH")
    path = Path(path)
    if not path.exists():
        raise TableError(f"{path}: no such file or folder")
    if fmt == "sotab":
        return {name: read_sotab(d, g) for name, (d, g) in resolve_sotab(path, gold).items()}
    if fmt == "gittables":
        if path.is_dir():
            files = gittables_folds(path, ontology) or sorted(path.glob("*.csv"))
            if not files:
                raise TableError(f"{path}: no GitTables fold CSVs found")
            return {f.stem: read_gittables(f) for f in files}
        return {path.stem: read_gittables(path)}
    if fmt == "turl":
        return {path.stem: read_turl(path)}
    # csv: a folder of tables with labels.csv (or --gold)
    if path.is_file():
        raise TableError(f"{path}: for --format csv pass a folder of CSV files with a labels.csv"
                         + (" (a GitTables fold CSV is --format gittables)" if path.suffix.lower() == ".csv" else ""))
    return {path.name: read_labeled_csv_folder(path, gold)}


def merge(datasets: list[LabeledDataset]) -> LabeledDataset:
    """Concatenate datasets, re-indexing targets."""
    from dataclasses import replace

    tables, targets, skipped = [], [], 0
    for ds in datasets:
        off = len(tables)
        tables += ds.tables
        targets += [replace(t, table_index=t.table_index + off) for t in ds.targets]
        skipped += ds.skipped
    first = datasets[0]
    return LabeledDataset(tables, targets, task=first.task, multi_label=any(d.multi_label for d in datasets),
                          source="+".join(d.source for d in datasets), skipped=skipped)
