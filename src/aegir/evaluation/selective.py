"""Selective prediction: how good are the top-1 labels a classifier is sure of, and how sure should it be?

Users annotating their own tables want the model to abstain on columns it cannot label (a column
outside the label vocabulary, or an ambiguous one) rather than guess. `annotate(..., min_score=t)`
abstains below a score threshold; this module tells them which threshold to pick, on labelled data:

- the risk-coverage table: for each threshold t, the share of columns whose top-1 score is >= t
  (coverage), the top-1 accuracy on those columns, and macro-F1 over the gold labels with every
  abstention counted as a miss (the figure comparable with an unthresholded run);
- the expected calibration error (ECE) of the top-1 score: equal-width confidence bins, the
  column-weighted mean of |accuracy - mean score| per bin (Guo et al., 2017). An ECE near 0 means a
  score of 0.8 is right about 80% of the time.
Single-label classifiers only (a multi-label model already abstains per label at its threshold).

A model whose scores are off (ECE well above 0) can be recalibrated by temperature scaling (Guo et
al., 2017): scores = softmax(logits / T) with the one scalar T that minimises the negative
log-likelihood on held-out labelled columns (`fit_temperature`; `aegir calibrate` stores T in a copy
of the checkpoint, `aegir train --calibrate` fits it on the run's validation columns). Multi-label
models get one T for their per-label sigmoids (`sigmoid_nll`), which moves no label across 0.5.
T changes no argmax, so accuracy and F1 stay as they are; only the scores move.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from aegir.evaluation.metrics import classification_report

TEMPERATURE_BOUNDS = (0.05, 20.0)

DEFAULT_THRESHOLDS = (0.0, 0.3, 0.5, 0.7, 0.9)


@dataclass(frozen=True)
class CoverageRow:
    threshold: float
    answered: int  # columns whose top-1 score is >= threshold
    coverage: float  # answered / all columns
    accuracy: float | None  # top-1 accuracy on the answered columns; None when none is answered
    macro_f1: float  # over gold labels, abstentions counted as misses


@dataclass(frozen=True)
class SelectiveReport:
    n: int
    ece: float
    n_bins: int
    rows: list[CoverageRow]

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        lines = [f"selective prediction over {self.n} columns (top-1 score >= threshold; abstentions count as misses)",
                 f"  ECE of the top-1 score ({self.n_bins} bins): {self.ece:.3f}",
                 f"  {'threshold':>9}  {'coverage':>8}  {'accuracy':>8}  {'macro-F1':>8}"]
        for r in self.rows:
            acc = "-" if r.accuracy is None else f"{r.accuracy:.3f}"
            lines.append(f"  {r.threshold:>9.2f}  {r.coverage:>8.3f}  {acc:>8}  {r.macro_f1:>8.3f}")
        return "\n".join(lines)


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 15) -> float:
    """sum over bins b of (n_b / N) |accuracy_b - mean confidence_b|, bins (k/n, (k+1)/n] (a score of
    exactly 0 joins the first bin)."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.shape != hit.shape or conf.ndim != 1:
        raise ValueError(f"confidence and correct must be 1-d and equally long, got {conf.shape} and {hit.shape}")
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    if conf.size == 0:
        return 0.0
    if (conf < 0).any() or (conf > 1).any():
        raise ValueError("confidence scores must lie in [0, 1]")
    b = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)  # (N,) bin index
    ece = 0.0
    for k in range(n_bins):
        sel = b == k
        if sel.any():
            ece += sel.mean() * abs(hit[sel].mean() - conf[sel].mean())
    return float(ece)


def selective_report(gold: Sequence[str], predicted: Sequence[str], scores: Sequence[float],
                     thresholds: Sequence[float] = DEFAULT_THRESHOLDS, n_bins: int = 15) -> SelectiveReport:
    """The risk-coverage table and the ECE for single-label predictions: `predicted[i]` is column i's
    top-1 label and `scores[i]` its score (a probability)."""
    if not (len(gold) == len(predicted) == len(scores)):
        raise ValueError(f"gold, predicted and scores differ in length: {len(gold)}, {len(predicted)}, {len(scores)}")
    s = np.asarray(scores, dtype=np.float64)
    correct = np.array([g == p for g, p in zip(gold, predicted)], dtype=bool)
    rows = []
    for t in thresholds:
        keep = s >= t
        kept = [p if k else None for p, k in zip(predicted, keep)]  # None: abstained
        rep = classification_report(list(gold), kept)
        n_kept = int(keep.sum())
        rows.append(CoverageRow(float(t), n_kept, n_kept / len(s) if len(s) else 0.0,
                                float(correct[keep].mean()) if n_kept else None, float(rep.macro_f1)))
    return SelectiveReport(len(s), expected_calibration_error(s, correct, n_bins), n_bins, rows)


def softmax_nll(logits: np.ndarray, gold: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of gold label indices under softmax(logits / temperature)."""
    z = np.asarray(logits, dtype=np.float64) / temperature  # (N, L)
    g = np.asarray(gold, dtype=np.int64)  # (N,)
    if z.ndim != 2 or g.shape != (z.shape[0],):
        raise ValueError(f"logits must be (N, L) and gold (N,), got {z.shape} and {g.shape}")
    if g.size == 0:
        raise ValueError("no labelled columns to score")
    m = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]  # (N,) log-sum-exp
    return float(np.mean(lse - z[np.arange(len(g)), g]))


def sigmoid_nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean binary cross-entropy of sigmoid(logits / temperature) over every (column, label) pair
    against 0/1 targets of the same (N, L) shape: the multi-label counterpart of `softmax_nll`."""
    z = np.asarray(logits, dtype=np.float64) / temperature  # (N, L)
    y = np.asarray(targets, dtype=np.float64)  # (N, L)
    if z.ndim != 2 or y.shape != z.shape:
        raise ValueError(f"logits and targets must both be (N, L), got {z.shape} and {y.shape}")
    if y.size == 0:
        raise ValueError("no labelled columns to score")
    return float(np.mean(np.logaddexp(0.0, z) - y * z))  # softplus(z) - y z, stable for any z


def fit_temperature(logits: np.ndarray, gold: np.ndarray, bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
                    multi_label: bool = False) -> float:
    """The temperature T in `bounds` minimising the NLL of the scores at T (bounded scalar search over
    log T; the NLL is smooth and, in practice, unimodal in T). Single-label: softmax, `gold` the label
    indices (N,); multi-label: per-label sigmoids, `gold` the 0/1 targets (N, L). Dividing logits by
    T > 0 moves no argmax and no sigmoid across 0.5, so predictions stay as they are."""
    from scipy.optimize import minimize_scalar

    nll = sigmoid_nll if multi_label else softmax_nll
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    res = minimize_scalar(lambda lt: nll(logits, gold, float(np.exp(lt))), bounds=(lo, hi),
                          method="bounded", options={"xatol": 1e-4})
    t = float(np.exp(res.x))
    # the search is local: never return a T worse than leaving the scores alone
    return t if nll(logits, gold, t) <= nll(logits, gold, 1.0) else 1.0


@dataclass
class TemperatureFit:
    """A fitted temperature and what it did on the columns it was fitted on (argmax unchanged)."""

    temperature: float
    n_columns: int
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float

    def to_dict(self) -> dict:
        return asdict(self)


def fit_temperature_report(logits: np.ndarray, gold: np.ndarray, multi_label: bool = False) -> TemperatureFit:
    """`fit_temperature` on (N, L) logits, with the NLL and the ECE before and after: what `aegir
    calibrate` and `aegir train --calibrate` record. Single-label: `gold` the label indices (N,), the
    ECE of the top-1 score; multi-label: `gold` the 0/1 targets (N, L), the ECE of every (column,
    label) sigmoid against whether that label is gold (the reliability of "label present" scores)."""
    z = np.asarray(logits, dtype=np.float64)  # (N, L)
    y = np.asarray(gold, dtype=np.float64 if multi_label else np.int64)  # (N, L) targets or (N,) indices
    t = fit_temperature(z, y, multi_label=multi_label)
    nll = sigmoid_nll if multi_label else softmax_nll

    def ece(temp: float) -> float:
        if multi_label:
            p = 1.0 / (1.0 + np.exp(-z / temp))  # (N, L) per-label sigmoids
            return expected_calibration_error(p.ravel(), y.ravel() > 0.5)
        e = np.exp(z / temp - (z / temp).max(axis=1, keepdims=True))  # (N, L) shifted softmax numerators
        p = e / e.sum(axis=1, keepdims=True)
        return expected_calibration_error(p.max(axis=1), p.argmax(axis=1) == y)

    return TemperatureFit(t, len(y), nll(z, y, 1.0), nll(z, y, t), ece(1.0), ece(t))
