"""GitTables SemTab-22 folds: `table_id,col_idx,class,class_id,data` rows, one per column.

`data` holds the column's cells joined by ';' (possibly truncated upstream); `class` is the label or
the string "NaN" for an unlabelled context column. Headers are not part of the benchmark files.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable

from aegir.tables.readers.common import SkipCounter
from aegir.tables.table import LabeledColumn, LabeledDataset, Table, TableError

csv.field_size_limit(1 << 24)


def read_gittables(paths: str | Path | Iterable[str | Path], *, on_error: str = "raise") -> LabeledDataset:
    """Read one or more fold CSVs. Columns missing from a table's index range are filled empty."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    skip = SkipCounter(on_error)
    cols_by_table: dict[str, dict[int, list[str]]] = {}
    labels_by_table: dict[str, dict[int, str]] = {}
    origin: dict[str, str] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise TableError(f"{path}: GitTables fold file not found")
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            need = {"table_id", "col_idx", "class", "data"}
            if not need <= set(reader.fieldnames or []):
                raise TableError(f"{path}: expected columns {sorted(need)}, got {reader.fieldnames}")
            for row in reader:
                where = f"{path}, line {reader.line_num}"
                tid = (row["table_id"] or "").strip()
                if not tid:
                    raise TableError(f"{where}: empty table_id")
                try:
                    j = int(row["col_idx"])
                except (TypeError, ValueError):
                    raise TableError(f"{where}: col_idx {row['col_idx']!r} is not an integer") from None
                if j < 0 or j > 10_000:
                    skip(f"{where}: col_idx {j} out of range", "index out of range")
                    continue
                cells = (row["data"] or "").split(";")
                tcols = cols_by_table.setdefault(tid, {})
                if j in tcols:
                    skip(f"{where}: duplicate column {j} of table {tid}", "duplicate column")
                    continue
                tcols[j] = cells
                origin.setdefault(tid, path.name)
                cls = (row["class"] or "").strip()
                if cls and cls != "NaN":
                    labels_by_table.setdefault(tid, {})[j] = cls
    tables: list[Table] = []
    targets: list[LabeledColumn] = []
    for tid, cols in cols_by_table.items():
        width = max(cols) + 1
        n = max(len(c) for c in cols.values())
        columns = [(cols.get(j, []) + [""] * n)[:n] for j in range(width)]
        ti = len(tables)
        tables.append(Table(columns=columns, header=None,
                            meta={"source": "gittables", "name": tid, "fold_file": origin[tid]}))
        for j, lab in sorted(labels_by_table.get(tid, {}).items()):
            targets.append(LabeledColumn(ti, j, (lab,)))
    return LabeledDataset(tables, targets, task="cta", source="gittables", skipped=skip.count)


def gittables_folds(root: str | Path, ontology: str = "dbpedia") -> list[Path]:
    """The fold files of one ontology ("dbpedia" or "schema") under a GitTables root, in fold order."""
    sub = {"dbpedia": ("gt-semtab22-dbpedia-all", "db_semi1_cv_"),
           "schema": ("gt-semtab22-schema-property-all", "sp_semi1_cv_")}
    if ontology not in sub:
        raise ValueError(f"ontology must be 'dbpedia' or 'schema', got {ontology!r}")
    d, prefix = sub[ontology]
    return sorted((Path(root) / d).glob(f"{prefix}*.csv"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
