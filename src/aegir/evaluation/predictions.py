"""Prediction files: CSV in the SOTAB gold layout (`table_name,column_index,...,label`) or JSONL.

Errors on reading name the file and line (`TableError`), so `aegir eval --predictions FILE` can
report a user's broken file in one line.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from aegir.evaluation._io import atomic_write
from aegir.evaluation.metrics import ClassificationReport, classification_report, multilabel_report
from aegir.tables import TableError


@dataclass(frozen=True)
class Prediction:
    """One scored column.

    predicted: one label (CTA/CPA) or several (multi-label); () = abstained.
    score: the model's score for the first predicted label (probability or sigmoid), if any.
    gold: the gold label(s) when known, else ().
    main_column: CPA's subject column; None for CTA.
    candidates: the top-k (label, score) alternatives, best first.
    """

    table: str
    column: int
    predicted: tuple[str, ...]
    score: float | None = None
    gold: tuple[str, ...] = ()
    main_column: int | None = None
    candidates: tuple[tuple[str, float], ...] = field(default=())

    @property
    def correct(self) -> bool | None:
        if not self.gold:
            return None
        return set(self.predicted) == set(self.gold)


_SEP = "|"
_CSV_FIELDS = ["table_name", "column_index", "main_column_index", "label", "score", "gold", "correct", "top_k"]


def _join(labels: Iterable[str], where: str) -> str:
    out = []
    for lab in labels:
        if _SEP in lab:
            raise ValueError(f"{where}: label {lab!r} contains {_SEP!r}; write JSONL for such labels")
        out.append(lab)
    return _SEP.join(out)


def write_predictions(path: str | Path, predictions: Sequence[Prediction], fmt: str | None = None) -> Path:
    """Write predictions as CSV (`table_name,column_index,...,label` like the SOTAB gold files,
    multi-labels joined by '|') or JSONL (one object per column). Format from `fmt` or the file
    suffix. The write is atomic (temp file + rename)."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"{path}: unknown predictions format {fmt!r} (use .csv or .jsonl)")

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            if fmt == "jsonl":
                for p in predictions:
                    fh.write(json.dumps({
                        "table_name": p.table, "column_index": p.column, "main_column_index": p.main_column,
                        "labels": list(p.predicted), "score": p.score, "gold": list(p.gold),
                        "correct": p.correct, "top_k": [[lab, s] for lab, s in p.candidates],
                    }, ensure_ascii=False) + "\n")
            else:
                w = csv.writer(fh)
                w.writerow(_CSV_FIELDS)
                for k, p in enumerate(predictions):
                    where = f"{path} prediction #{k}"
                    w.writerow([
                        p.table, p.column, "" if p.main_column is None else p.main_column,
                        _join(p.predicted, where), "" if p.score is None else repr(float(p.score)),
                        _join(p.gold, where), "" if p.correct is None else int(p.correct),
                        _join((f"{lab}={s!r}" for lab, s in p.candidates), where),
                    ])

    return atomic_write(path, write)


def _opt_int(v: Any, where: str, name: str) -> int | None:
    if v is None or v == "":
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        raise TableError(f"{where}: field {name!r} must be an integer, got {v!r}") from None


def _opt_float(v: Any, where: str, name: str) -> float | None:
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise TableError(f"{where}: field {name!r} must be a number, got {v!r}") from None
    if math.isnan(f):
        raise TableError(f"{where}: field {name!r} is NaN")
    return f


def _split(s: str) -> tuple[str, ...]:
    return tuple(x for x in s.split(_SEP) if x) if s else ()


def read_predictions(path: str | Path) -> list[Prediction]:
    """Read a file written by `write_predictions` (CSV or JSONL). Errors name file and line."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: predictions file not found")
    fmt = path.suffix.lstrip(".").lower()
    out: list[Prediction] = []
    with open(path, encoding="utf-8", newline="") as fh:
        if fmt == "jsonl":
            for ln, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{ln}"
                try:
                    d = json.loads(line)
                except json.JSONDecodeError as e:
                    raise TableError(f"{where}: not valid JSON ({e.msg})") from None
                if not isinstance(d, dict) or "table_name" not in d or "column_index" not in d:
                    raise TableError(f"{where}: expected an object with 'table_name' and 'column_index'")
                col = _opt_int(d["column_index"], where, "column_index")
                if col is None:
                    raise TableError(f"{where}: field 'column_index' is empty")
                try:
                    cands = tuple((str(a), float(b)) for a, b in d.get("top_k") or ())
                except (TypeError, ValueError):
                    raise TableError(f"{where}: field 'top_k' must be a list of [label, score] pairs") from None
                out.append(Prediction(
                    table=str(d["table_name"]), column=col,
                    predicted=tuple(str(x) for x in d.get("labels") or ()),
                    score=_opt_float(d.get("score"), where, "score"),
                    gold=tuple(str(x) for x in d.get("gold") or ()),
                    main_column=_opt_int(d.get("main_column_index"), where, "main_column_index"),
                    candidates=cands,
                ))
        elif fmt == "csv":
            reader = csv.DictReader(fh)
            missing = {"table_name", "column_index", "label"} - set(reader.fieldnames or ())
            if missing:
                raise TableError(f"{path}:1: header lacks the field(s) {sorted(missing)}")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                col = _opt_int(row.get("column_index"), where, "column_index")
                if col is None:
                    raise TableError(f"{where}: field 'column_index' is empty")
                cands = []
                for item in _split(row.get("top_k") or ""):
                    lab, eq, s = item.rpartition("=")
                    if not eq:
                        raise TableError(f"{where}: field 'top_k' entry {item!r} is not label=score")
                    cands.append((lab, _opt_float(s, where, "top_k") or 0.0))
                out.append(Prediction(
                    table=row["table_name"], column=col, predicted=_split(row.get("label") or ""),
                    score=_opt_float(row.get("score"), where, "score"), gold=_split(row.get("gold") or ""),
                    main_column=_opt_int(row.get("main_column_index"), where, "main_column_index"),
                    candidates=tuple(cands),
                ))
        else:
            raise TableError(f"{path}: unknown predictions format {fmt!r} (use .csv or .jsonl)")
    return out


def report_from_predictions(
    predictions: Sequence[Prediction],
    labels: Sequence[str] | None = None,
    multi_label: bool | None = None,
) -> ClassificationReport:
    """Score predictions that carry gold labels. Predictions without gold are skipped (they are
    unlabelled columns). multi_label defaults to True when any gold or prediction has >1 label."""
    scored = [p for p in predictions if p.gold]
    if not scored:
        raise ValueError("no prediction carries a gold label; nothing to score")
    if multi_label is None:
        multi_label = any(len(p.gold) > 1 or len(p.predicted) > 1 for p in scored)
    if multi_label:
        return multilabel_report([p.gold for p in scored], [p.predicted for p in scored], labels)
    return classification_report(
        [p.gold[0] for p in scored], [p.predicted[0] if p.predicted else None for p in scored], labels
    )
