"""CTA / CPA evaluation: micro- and macro-F1 over labelled columns, per-label scores, confusion
matrices (array + PNG) and prediction files.

This is the one metrics implementation for column annotation: fine-tuning, `aegir eval`, the
liveness gate and the benchmarks all call it.

Conventions (chosen to match how the SOTAB authors report CTA/CPA; documented in
docs/current/ontology/charter.md):

* A *column* is one labelled target (CTA: a column; CPA: a (main column, column) pair). Only
  labelled columns are scored; unlabelled context columns never enter the metrics.
* Micro-F1 pools true/false positives and false negatives over every label. A prediction of
  `None` / "" / () is an *abstention*: it costs recall (a false negative for the gold label) but
  not precision. Without abstentions single-label micro-P = micro-R = micro-F1 = accuracy.
  A predicted label outside the gold vocabulary is an ordinary false positive.
* Macro-F1 is the unweighted mean of per-label F1 over the labels **present in the gold
  annotations** (or over an explicit `labels=` list). A gold label that is never predicted scores
  F1 = 0; labels that occur only in predictions do not enter the macro average (they still lower
  micro precision). This is sklearn's `f1_score(average="macro", labels=sorted(set(gold)),
  zero_division=0)`; averaging over the whole vocabulary instead would reward nothing and punish
  labels the evaluation split simply does not contain.
* Multi-label (WikiTables): the same definitions over label-indicator matrices (N, L).

Nothing here imports torch; plots use matplotlib's object API with the Agg canvas so no global
pyplot state or backend switch leaks into the caller.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterable, Sequence

import numpy as np

from aegir.tables import TableError

__all__ = [
    "LabelScore",
    "ClassificationReport",
    "classification_report",
    "multilabel_report",
    "multilabel_report_from_indicators",
    "indicator_matrix",
    "ConfusionMatrix",
    "confusion_matrix",
    "plot_confusion_matrix",
    "Prediction",
    "write_predictions",
    "read_predictions",
    "report_from_predictions",
    "format_classification_report",
    "OTHER_LABEL",
    "NONE_LABEL",
]

OTHER_LABEL = "(other)"  # confusion-matrix bucket for labels outside the top-N
NONE_LABEL = "(none)"  # confusion-matrix column for abstentions


# ------------------------------------------------------------------------------------------------
# Scores
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelScore:
    """Per-label counts and scores. support = number of gold occurrences."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    tp: int
    fp: int
    fn: int


@dataclass(frozen=True)
class ClassificationReport:
    """Headline and per-label scores for one evaluation.

    macro_labels: the labels the macro average runs over (gold-present labels unless the caller
    passed `labels=`). per_label covers every label seen in gold or predictions, sorted by gold
    support (descending) then name.
    """

    n: int
    n_abstained: int
    multi_label: bool
    accuracy: float  # single-label: correct / n; multi-label: exact-set match / n
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    macro_labels: tuple[str, ...]
    per_label: tuple[LabelScore, ...]
    macro_over: str = "gold"  # "gold" | "given"

    def label(self, name: str) -> LabelScore:
        for s in self.per_label:
            if s.label == name:
                return s
        raise KeyError(f"label {name!r} occurs in neither gold nor predictions")

    def summary(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "n_abstained": self.n_abstained,
            "accuracy": self.accuracy,
            "micro_precision": self.micro_precision,
            "micro_recall": self.micro_recall,
            "micro_f1": self.micro_f1,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "macro_f1": self.macro_f1,
            "n_macro_labels": len(self.macro_labels),
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["macro_labels"] = list(self.macro_labels)
        d["per_label"] = [asdict(s) for s in self.per_label]
        return d


def _safe_div(a: float, b: float) -> float:
    return float(a) / float(b) if b else 0.0


def _f1(p: float, r: float) -> float:
    return 2.0 * p * r / (p + r) if (p + r) > 0 else 0.0


def _is_abstain(p: object) -> bool:
    return p is None or (isinstance(p, str) and p == "")


def _from_counts(
    labels: list[str],
    tp: np.ndarray,
    fp: np.ndarray,
    fn: np.ndarray,
    *,
    n: int,
    n_abstained: int,
    n_correct: int,
    multi_label: bool,
    macro_labels: list[str],
    macro_over: str,
) -> ClassificationReport:
    """Turn per-label TP/FP/FN counts (aligned with `labels`) into a report."""
    per: dict[str, LabelScore] = {}
    for i, lab in enumerate(labels):
        t, f_p, f_n = int(tp[i]), int(fp[i]), int(fn[i])
        p = _safe_div(t, t + f_p)
        r = _safe_div(t, t + f_n)
        per[lab] = LabelScore(lab, p, r, _f1(p, r), support=t + f_n, predicted=t + f_p, tp=t, fp=f_p, fn=f_n)
    TP, FP, FN = int(tp.sum()), int(fp.sum()), int(fn.sum())
    mp, mr = _safe_div(TP, TP + FP), _safe_div(TP, TP + FN)
    zero = LabelScore("", 0.0, 0.0, 0.0, 0, 0, 0, 0, 0)
    macro_scores = [per.get(lab, zero) for lab in macro_labels]
    k = len(macro_scores)
    ordered = sorted(per.values(), key=lambda s: (-s.support, s.label))
    return ClassificationReport(
        n=n,
        n_abstained=n_abstained,
        multi_label=multi_label,
        accuracy=_safe_div(n_correct, n),
        micro_precision=mp,
        micro_recall=mr,
        micro_f1=_f1(mp, mr),
        macro_precision=sum(s.precision for s in macro_scores) / k if k else 0.0,
        macro_recall=sum(s.recall for s in macro_scores) / k if k else 0.0,
        macro_f1=sum(s.f1 for s in macro_scores) / k if k else 0.0,
        macro_labels=tuple(macro_labels),
        per_label=tuple(ordered),
        macro_over=macro_over,
    )


def classification_report(
    gold: Sequence[str],
    pred: Sequence[str | None],
    labels: Sequence[str] | None = None,
) -> ClassificationReport:
    """Single-label CTA/CPA scores. `pred[i]` None or "" means the model abstained.

    labels: the labels to macro-average over (default: those present in `gold`).
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} columns but predictions have {len(pred)}")
    for i, g in enumerate(gold):
        if not isinstance(g, str) or not g:
            raise ValueError(f"gold label #{i} is {g!r}; every scored column needs a non-empty label")
    universe = sorted(set(gold) | {p for p in pred if not _is_abstain(p)} | set(labels or ()))
    index = {lab: i for i, lab in enumerate(universe)}
    tp = np.zeros(len(universe), dtype=np.int64)
    fp = np.zeros_like(tp)
    fn = np.zeros_like(tp)
    n_abst = n_correct = 0
    for g, p in zip(gold, pred):
        if _is_abstain(p):
            n_abst += 1
            fn[index[g]] += 1
        elif p == g:
            n_correct += 1
            tp[index[g]] += 1
        else:
            fp[index[p]] += 1  # type: ignore[index]
            fn[index[g]] += 1
    macro = sorted(set(gold)) if labels is None else list(dict.fromkeys(labels))
    return _from_counts(
        universe, tp, fp, fn, n=len(gold), n_abstained=n_abst, n_correct=n_correct,
        multi_label=False, macro_labels=macro, macro_over="gold" if labels is None else "given",
    )


def indicator_matrix(label_sets: Sequence[Collection[str]], labels: Sequence[str]) -> np.ndarray:
    """(N, L) bool matrix: row i has True at the columns of the labels in label_sets[i]."""
    index = {lab: j for j, lab in enumerate(labels)}
    out = np.zeros((len(label_sets), len(labels)), dtype=bool)
    for i, s in enumerate(label_sets):
        if isinstance(s, str):
            raise ValueError(f"row {i}: expected a collection of labels, got the string {s!r}")
        for lab in s:
            if lab not in index:
                raise ValueError(f"row {i}: label {lab!r} is not in the label list")
            out[i, index[lab]] = True
    return out


def multilabel_report_from_indicators(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    labels: Sequence[str],
    macro_labels: Sequence[str] | None = None,
) -> ClassificationReport:
    """Multi-label scores from (N, L) 0/1 indicator matrices whose columns are `labels`.

    macro_labels: labels to macro-average over (default: labels with at least one gold row).
    A row with no predicted label counts as an abstention.
    """
    yt = np.asarray(y_true).astype(bool)
    yp = np.asarray(y_pred).astype(bool)
    if yt.shape != yp.shape or yt.ndim != 2 or yt.shape[1] != len(labels):
        raise ValueError(
            f"indicator matrices must both be (N, {len(labels)}); got {yt.shape} and {yp.shape}"
        )
    tp = (yt & yp).sum(axis=0)
    fp = (~yt & yp).sum(axis=0)
    fn = (yt & ~yp).sum(axis=0)
    gold_present = [lab for j, lab in enumerate(labels) if yt[:, j].any()]
    macro = gold_present if macro_labels is None else list(dict.fromkeys(macro_labels))
    missing = set(macro) - set(labels)
    if missing:
        raise ValueError(f"macro labels not among the matrix columns: {sorted(missing)}")
    # Report only labels that occur somewhere, so per_label does not list the whole vocabulary.
    keep = [j for j in range(len(labels)) if yt[:, j].any() or yp[:, j].any() or labels[j] in macro]
    return _from_counts(
        [labels[j] for j in keep], tp[keep], fp[keep], fn[keep],
        n=yt.shape[0], n_abstained=int((~yp.any(axis=1)).sum()),
        n_correct=int((yt == yp).all(axis=1).sum()), multi_label=True,
        macro_labels=macro, macro_over="gold" if macro_labels is None else "given",
    )


def multilabel_report(
    gold: Sequence[Collection[str]],
    pred: Sequence[Collection[str]],
    labels: Sequence[str] | None = None,
) -> ClassificationReport:
    """Multi-label scores from label sets per column (WikiTables CTA)."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} columns but predictions have {len(pred)}")
    universe = sorted({lab for s in gold for lab in s} | {lab for s in pred for lab in s} | set(labels or ()))
    return multilabel_report_from_indicators(
        indicator_matrix(gold, universe), indicator_matrix(pred, universe), universe, macro_labels=labels
    )


def format_classification_report(report: ClassificationReport, top: int | None = 30, width: int = 100) -> str:
    """A readable text table (rich) of the headline numbers and the `top` most frequent labels."""
    from rich.console import Console
    from rich.table import Table as RichTable

    head = RichTable(title="column annotation scores", show_header=True)
    for c in ("n", "abstained", "accuracy", "micro P/R/F1", "macro P/R/F1", "macro over"):
        head.add_column(c)
    head.add_row(
        str(report.n), str(report.n_abstained), f"{report.accuracy:.4f}",
        f"{report.micro_precision:.4f} / {report.micro_recall:.4f} / {report.micro_f1:.4f}",
        f"{report.macro_precision:.4f} / {report.macro_recall:.4f} / {report.macro_f1:.4f}",
        f"{len(report.macro_labels)} labels ({report.macro_over})",
    )
    per = RichTable(title=f"per label (top {top} by support)" if top else "per label")
    for c in ("label", "support", "predicted", "precision", "recall", "f1"):
        per.add_column(c, justify="left" if c == "label" else "right")
    for s in report.per_label[: top or None]:
        per.add_row(s.label, str(s.support), str(s.predicted), f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}")
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    console.print(head)
    console.print(per)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# Confusion matrix
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfusionMatrix:
    """matrix[i, j] = number of columns with gold row_labels[i] predicted as col_labels[j].

    With top_n, labels outside the top-N most frequent gold labels fall into OTHER_LABEL (on
    either axis); abstentions get a NONE_LABEL column. n_labels_total counts every label seen.
    """

    matrix: np.ndarray
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...]
    n_labels_total: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "row_labels": list(self.row_labels),
            "col_labels": list(self.col_labels),
            "matrix": self.matrix.tolist(),
            "n_labels_total": self.n_labels_total,
        }


def confusion_matrix(
    gold: Sequence[str],
    pred: Sequence[str | None],
    labels: Sequence[str] | None = None,
    top_n: int | None = None,
) -> ConfusionMatrix:
    """Single-label confusion matrix (rows gold, columns predicted).

    labels: explicit order of the kept labels (default: gold labels by descending frequency,
    ties by name). top_n keeps only the first top_n of them so that plots of 80+ labels stay
    readable; everything else is pooled into OTHER_LABEL.
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} columns but predictions have {len(pred)}")
    counts = Counter(gold)
    seen = set(gold) | {p for p in pred if not _is_abstain(p)}
    if labels is None:
        order = sorted(counts, key=lambda lab: (-counts[lab], lab))
        order += sorted(seen - set(order))  # predicted-only labels, after all gold labels
    else:
        order = list(dict.fromkeys(labels))
    if top_n is not None:
        if top_n < 1:
            raise ValueError(f"top_n must be >= 1, got {top_n}")
        order = order[:top_n]
    kept = set(order)
    rows = list(order) + ([OTHER_LABEL] if any(g not in kept for g in gold) else [])
    any_abst = any(_is_abstain(p) for p in pred)
    cols = list(order) + ([OTHER_LABEL] if any((not _is_abstain(p)) and p not in kept for p in pred) else [])
    cols += [NONE_LABEL] if any_abst else []
    ri = {lab: i for i, lab in enumerate(rows)}
    ci = {lab: j for j, lab in enumerate(cols)}
    m = np.zeros((len(rows), len(cols)), dtype=np.int64)
    for g, p in zip(gold, pred):
        i = ri.get(g, ri.get(OTHER_LABEL))
        j = ci[NONE_LABEL] if _is_abstain(p) else ci.get(p, ci.get(OTHER_LABEL))  # type: ignore[arg-type]
        m[i, j] += 1  # type: ignore[index]
    return ConfusionMatrix(m, tuple(rows), tuple(cols), n_labels_total=len(seen))


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
    return Path(tmp)


def plot_confusion_matrix(
    cm: ConfusionMatrix,
    path: str | Path,
    normalize: bool = True,
    title: str = "confusion matrix",
) -> Path:
    """Write a PNG heat map. Rows are normalised to recall when `normalize` (colour), and raw
    counts are printed in the cells when the matrix is small enough to read them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    m = cm.matrix.astype(np.float64)
    shown = m / np.maximum(m.sum(axis=1, keepdims=True), 1.0) if normalize else m
    r, c = m.shape
    # Scale the canvas with the label count so 50+ tick labels do not overlap.
    size = max(5.0, 0.32 * max(r, c) + 3.0)
    fig = Figure(figsize=(size, size * max(r, 1) / max(c, 1) * 0.9 + 1.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(1.0, m.max()), aspect="auto")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="row share" if normalize else "count")
    ax.set_xticks(range(c))
    ax.set_xticklabels(cm.col_labels, rotation=90, fontsize=7 if c > 25 else 9)
    ax.set_yticks(range(r))
    ax.set_yticklabels(cm.row_labels, fontsize=7 if r > 25 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    shown_n = len([x for x in cm.row_labels if x != OTHER_LABEL])
    ax.set_title(f"{title} (top {shown_n} of {cm.n_labels_total} labels)")
    if max(r, c) <= 30:
        for i in range(r):
            for j in range(c):
                if m[i, j]:
                    ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if shown[i, j] > 0.5 else "black")
    fig.tight_layout()
    tmp = _atomic_target(path)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# ------------------------------------------------------------------------------------------------
# Prediction files
# ------------------------------------------------------------------------------------------------
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
    tmp = _atomic_target(path)
    try:
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
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


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
