"""Output heads: the tied byte LM head, column pooling, and the CTA/CPA classification head.

LM head: logits are the final hidden state times the tied embedding rows of the ids that can
occur (the first `n_active` of the 65,536-row table: bytes + specials), so pretraining pays a
268-way softmax per byte instead of a 65,536-way one (architecture.md section 0).

Pooling for classification: concat(masked mean of the final hidden state over the target
column's positions, final hidden state at the last non-pad position). The backbone is causal:
target-column positions come first in a serialized input and have not read the context columns,
while the last position has read everything; the mean summarises the target column itself.

CPA option (`main_mask`): a third part, the masked mean over the main (subject) column's
positions, between the two: [target mean | main mean | last]. The main column comes first in a CPA
input, so its mean is a summary of the subject column alone, which the target mean and the last
state only carry folded into a recurrent state. The TF-IDF baseline that reads the main column as
its own features is what motivated it (docs/results/cta_analysis.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def byte_lm_logits(hidden: Tensor, embedding_weight: Tensor, n_active: int) -> Tensor:
    """(B, T, D) x (n_active, D)^T -> (B, T, n_active) logits over the ids that can occur."""
    return hidden @ embedding_weight[:n_active].to(hidden.dtype).t()  # (B, T, n_active)


def _masked_mean(hidden: Tensor, mask: Tensor, which: Tensor) -> Tensor:
    """(B, T, D) -> (B, D): mean over positions where `which & mask`; zero (never NaN) where none."""
    w = (which & mask).to(hidden.dtype)  # (B, T)
    return (hidden * w[:, :, None]).sum(dim=1) / w.sum(dim=1, keepdim=True).clamp(min=1.0)  # (B, D)


def pool_column(hidden: Tensor, mask: Tensor, target_mask: Tensor, main_mask: Tensor | None = None) -> Tensor:
    """(B, T, D) -> (B, 2D): [mean over target positions | hidden at the last valid position], or
    with `main_mask` (B, 3D): [target mean | mean over the main column's positions | last].

    Rows whose target (or main) mask is empty get a zero mean (never NaN); padding is always excluded."""
    B, T, D = hidden.shape
    parts = [_masked_mean(hidden, mask, target_mask)]  # (B, D)
    if main_mask is not None:
        parts.append(_masked_mean(hidden, mask, main_mask))  # (B, D)
    last = (mask.long().sum(dim=1) - 1).clamp(min=0)  # (B,) right padding: last valid index
    parts.append(hidden.gather(1, last[:, None, None].expand(B, 1, D)).squeeze(1))  # gather (B, 1, D) -> (B, D)
    return torch.cat(parts, dim=-1)  # (B, 2D) or (B, 3D)


class ClassificationHead(nn.Module):
    """LayerNorm -> Linear: pooled column embedding -> label logits (CTA or CPA)."""

    def __init__(self, in_dim: int, n_labels: int) -> None:
        super().__init__()
        if n_labels < 1:
            raise ValueError(f"ClassificationHead: n_labels must be >= 1, got {n_labels}")
        self.norm = nn.LayerNorm(in_dim)
        self.proj = nn.Linear(in_dim, n_labels)
        with torch.no_grad():
            if not self.proj.weight.is_meta:
                nn.init.normal_(self.proj.weight, std=0.02)
                self.proj.bias.zero_()

    def forward(self, pooled: Tensor) -> Tensor:
        return self.proj(self.norm(pooled))  # (B, n_labels)
