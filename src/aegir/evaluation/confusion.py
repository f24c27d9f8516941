"""Confusion matrices (array + PNG) for single-label CTA/CPA.

Plots use matplotlib's object API on an Agg canvas: no pyplot global state and no backend switch
leak into the caller's process. With 80+ labels only the top-N most frequent gold labels get their
own row/column; the rest are pooled into OTHER_LABEL so the picture stays readable.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from aegir.evaluation._io import atomic_write
from aegir.evaluation.metrics import _is_abstain

OTHER_LABEL = "(other)"  # confusion-matrix bucket for labels outside the top-N
NONE_LABEL = "(none)"  # confusion-matrix column for abstentions


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
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
