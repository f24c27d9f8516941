"""Label rebalancing for long-tailed label sets, from the labelled training columns' label counts:
scikit-learn's "balanced" class weights (the fine-tuning loss, `--class-weight balanced`, and the head
refit, `--refit-head balanced`) and the logit-adjustment offsets (`--logit-adjust`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def balanced_class_weights(label_ids: Sequence[int], n_labels: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n_labels,) N / (K * n_c) for the K labels present among the N labelled columns (1 for absent
    labels, which no column carries): scikit-learn's "balanced", so the weights average 1 per column."""
    from sklearn.utils.class_weight import compute_class_weight

    y = np.asarray(label_ids)
    present = np.unique(y)
    w = np.ones(n_labels)
    w[present] = compute_class_weight("balanced", classes=present, y=y)
    return torch.tensor(w, dtype=dtype)


def logit_adjustment(label_ids: Sequence[int], n_labels: int, tau: float) -> torch.Tensor:
    """(n_labels,) tau * log(n_c / N) over the N labelled columns; a label no column carries counts as
    one column (its offset stays finite; it is never a target, so the value only sets how strongly
    its plain logit is pushed down)."""
    if not len(label_ids):
        raise ValueError("--logit-adjust needs labelled training columns to estimate the label priors from")
    counts = np.maximum(np.bincount(np.asarray(label_ids, dtype=np.int64), minlength=n_labels), 1)
    return torch.tensor(tau * np.log(counts / len(label_ids)), dtype=torch.float32)
