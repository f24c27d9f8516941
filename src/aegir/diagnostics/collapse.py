"""Collapse statistics of pooled column embeddings and of the predicted labels.

A classifier trained from random weights on sparse classification gradients tends to map every
column to (almost) the same embedding and the same label. These figures make that visible:

* spread: max and mean pairwise L2 distance between embeddings, divided by their mean L2 norm.
  Dividing by the norm makes the figure scale-free (a collapsed model can have large but equal
  embeddings); a constant embedding gives 0.
* mode share: the share of the most frequent predicted label among all predictions.
* distinct predicted labels: how many different labels the model uses at all.

Pairwise distances are computed exactly in float64 in row blocks (O(n^2) time, O(block * n)
memory); above `max_points` a fixed-seed random subsample is used and flagged.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Collection, Sequence

import numpy as np

__all__ = ["CollapseStats", "collapse_stats", "pairwise_l2_stats", "as_numpy"]


def as_numpy(x: object, dtype: type = np.float64) -> np.ndarray:
    """Accept numpy arrays, lists or CPU/GPU torch tensors without importing torch here."""
    if hasattr(x, "detach"):  # a torch tensor: detach, move to host
        x = x.detach().cpu().numpy()  # type: ignore[attr-defined]
    return np.asarray(x, dtype=dtype)


@dataclass(frozen=True)
class CollapseStats:
    n: int  # number of embeddings (columns)
    n_used: int  # embeddings used for the pairwise figures (< n when subsampled)
    dim: int
    mean_norm: float
    max_pairwise_l2: float
    mean_pairwise_l2: float
    max_spread: float  # max_pairwise_l2 / mean_norm (0 when everything is identical)
    mean_spread: float  # mean_pairwise_l2 / mean_norm
    n_predictions: int
    mode_label: str | None
    mode_share: float
    n_distinct_predicted: int


def pairwise_l2_stats(x: np.ndarray, block: int = 512) -> tuple[float, float]:
    """(max, mean) of ||x_i - x_j|| over pairs i < j, exact in float64."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 2:
        return 0.0, 0.0
    sq = np.einsum("nd,nd->n", x, x)  # (N,)
    total, best = 0.0, 0.0
    for s in range(0, n, block):
        xb = x[s : s + block]  # (b, D)
        # ||a-b||^2 = |a|^2 + |b|^2 - 2ab; clip tiny negatives from cancellation.
        d2 = sq[s : s + block, None] + sq[None, :] - 2.0 * (xb @ x.T)  # (b, N)
        np.maximum(d2, 0.0, out=d2)
        rows = np.arange(s, s + xb.shape[0])
        upper = np.arange(n)[None, :] > rows[:, None]  # (b, N) pairs i < j only
        d = np.sqrt(d2[upper])
        if d.size:
            total += float(d.sum())
            best = max(best, float(d.max()))
    return best, total / (n * (n - 1) / 2)


def _flatten_predictions(predicted: Sequence[str | Collection[str] | None]) -> list[str]:
    """One entry per predicted label; multi-label rows contribute each of their labels."""
    out: list[str] = []
    for p in predicted:
        if p is None or p == "":
            continue
        if isinstance(p, str):
            out.append(p)
        else:
            out.extend(str(x) for x in p)
    return out


def collapse_stats(
    embeddings: object,
    predicted: Sequence[str | Collection[str] | None],
    max_points: int = 4000,
    seed: int = 0,
) -> CollapseStats:
    """Collapse figures for (N, D) embeddings and their predicted labels."""
    x = as_numpy(embeddings)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D (N, D) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or inf; the model diverged before the diagnostics")
    n = x.shape[0]
    used = x
    if n > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
        used = x[idx]
    mx, mean = pairwise_l2_stats(used)
    mean_norm = float(np.linalg.norm(x, axis=1).mean()) if n else 0.0
    labs = _flatten_predictions(predicted)
    counts = Counter(labs)
    mode, mode_n = (counts.most_common(1)[0] if counts else (None, 0))
    return CollapseStats(
        n=n,
        n_used=used.shape[0],
        dim=x.shape[1],
        mean_norm=mean_norm,
        max_pairwise_l2=mx,
        mean_pairwise_l2=mean,
        max_spread=mx / mean_norm if mean_norm > 0 else 0.0,
        mean_spread=mean / mean_norm if mean_norm > 0 else 0.0,
        n_predictions=len(labs),
        mode_label=mode,
        mode_share=mode_n / len(labs) if labs else 0.0,
        n_distinct_predicted=len(counts),
    )
