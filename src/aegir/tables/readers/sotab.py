"""SOTAB native layout: one gzipped JSON-lines file per table + a gold CSV.

Table files: one JSON object per table row, keys are column indices as strings, no header row.
Gold CTA: `table_name,column_index,label`; gold CPA: `table_name,main_column_index,column_index,label`.
"""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from pathlib import Path

from aegir.tables.readers.common import SkipCounter, cell_text, safe_member_name
from aegir.tables.table import LabeledColumn, LabeledDataset, Table, TableError


def read_sotab_table(path: str | Path) -> Table:
    """One SOTAB table file (gzipped or plain JSON lines) -> headerless Table."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    rows: list[dict[int, str]] = []
    width = 0
    lineno = 0
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise TableError(f"{path}, line {lineno}: invalid JSON ({e.msg})") from None
                if not isinstance(obj, dict):
                    raise TableError(f"{path}, line {lineno}: expected a JSON object keyed by column index")
                row: dict[int, str] = {}
                for k, v in obj.items():
                    try:
                        j = int(k)
                    except ValueError:
                        raise TableError(f"{path}, line {lineno}: key {k!r} is not a column index") from None
                    if j < 0:
                        raise TableError(f"{path}, line {lineno}: negative column index {j}")
                    row[j] = cell_text(v)
                    width = max(width, j + 1)
                rows.append(row)
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise TableError(f"{path}: table file not found") from None
        raise TableError(f"{path}: corrupt or unreadable gzip file after line {lineno} ({e})") from None
    if not rows or width == 0:
        raise TableError(f"{path}: empty table")
    cols = [[r.get(j, "") for r in rows] for j in range(width)]
    stem = path.name
    domain = stem.split("_", 1)[0] if "_" in stem else ""
    return Table(columns=cols, header=None, meta={"source": "sotab", "name": stem, "domain": domain, "path": str(path)})


def read_sotab(
    split_dir: str | Path,
    gold_csv: str | Path,
    *,
    on_error: str = "skip",
    include_unlabelled_tables: bool = False,
) -> LabeledDataset:
    """Read a SOTAB split. The task (CTA/CPA) is taken from the gold CSV's columns.

    on_error="skip" counts and warns on gold rows whose table file is missing or whose column
    index is out of range (what users training on partial downloads want); "raise" stops at the
    first one. Malformed files and unsafe table names always raise.
    """
    split_dir, gold_csv = Path(split_dir), Path(gold_csv)
    if not split_dir.is_dir():
        raise TableError(f"{split_dir}: SOTAB split folder not found")
    if not gold_csv.is_file():
        raise TableError(f"{gold_csv}: gold CSV not found")
    skip = SkipCounter(on_error)
    tables: list[Table] = []
    index: dict[str, int] = {}
    targets: list[LabeledColumn] = []
    with open(gold_csv, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        if {"table_name", "main_column_index", "column_index", "label"} <= set(fields):
            task = "cpa"
        elif {"table_name", "column_index", "label"} <= set(fields):
            task = "cta"
        else:
            raise TableError(
                f"{gold_csv}: expected a SOTAB gold header (table_name,column_index,label for CTA or "
                f"table_name,main_column_index,column_index,label for CPA); got {fields}"
            )
        for row in reader:
            where = f"{gold_csv}, line {reader.line_num}"
            name = safe_member_name((row["table_name"] or "").strip(), where)
            try:
                col = int(row["column_index"])
                main = int(row["main_column_index"]) if task == "cpa" else None
            except (TypeError, ValueError):
                raise TableError(f"{where}: column index is not an integer: {row}") from None
            label = (row["label"] or "").strip()
            if not label:
                raise TableError(f"{where}: empty label")
            if name not in index:
                p = split_dir / name
                if not p.is_file():
                    skip(f"{where}: table file {p} is missing", "missing table")
                    continue
                index[name] = len(tables)
                tables.append(read_sotab_table(p))
            t = tables[index[name]]
            bad = [c for c in (col, main) if c is not None and not 0 <= c < t.n_cols]
            if bad:
                skip(f"{where}: column index {bad[0]} out of range for {name} ({t.n_cols} columns)", "index out of range")
                continue
            targets.append(LabeledColumn(index[name], col, (label,), main_column=main))
    if include_unlabelled_tables:
        for p in sorted(split_dir.glob("*.json*")):
            if p.name not in index:
                index[p.name] = len(tables)
                tables.append(read_sotab_table(p))
    return LabeledDataset(tables, targets, task=task, source=f"sotab:{split_dir}", skipped=skip.count)


def sotab_splits(root: str | Path) -> dict[str, tuple[Path, Path]]:
    """Known (split folder, gold CSV) pairs under a SOTAB root such as ../shared/data/sotab_v2_sample."""
    root = Path(root)
    known = {
        "cta-train": ("CTA/Train", "CTA/CTA_training_gt.csv"),
        "cta-train50": ("CTA/Train50", "CTA/CTA_training50_gt.csv"),
        "cta-validation": ("CTA/Validation", "CTA/CTA_validation_gt.csv"),
        "cta-test": ("CTA/Test", "CTA/CTA_test_gt.csv"),
        "cpa-train": ("CPA/Train", "CPA/CPA_training_gt.csv"),
        "cpa-validation": ("CPA/Validation", "CPA/CPA_validation_gt.csv"),
        "cpa-test": ("CPA/Test", "CPA/CPA_test_gt.csv"),
    }
    return {k: (root / d, root / g) for k, (d, g) in known.items() if (root / d).is_dir() and (root / g).is_file()}
