"""CTA / CPA scores: micro- and macro-F1 over labelled columns, per-label precision/recall/F1,
single- and multi-label.

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

Nothing here imports torch.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any, Collection, Sequence

import numpy as np


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
