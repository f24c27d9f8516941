"""The H-Net ratio (load-balancing) loss over the *global* batch, for data-parallel training.

Per stage L = N/(N-1)·[(N-1)·F·G + (1-F)·(1-G)] with F the hard boundary fraction (no gradient) and G
the mean boundary probability (architecture.md §1). Computed per rank, F and G would be per-rank
statistics and N processes would not match one process on the same global batch. So the sums behind
F and G are all-reduced, and each rank backpropagates `W · dL/dG · (its share of G)`: DDP averages
gradients over the W ranks, which leaves exactly dL/dG · dG of the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from aegir.train.distributed import DistInfo, all_reduce_sum


@dataclass
class RatioTerm:
    objective: Tensor             # add to this rank's objective (already scaled by alpha and W)
    value: float                  # alpha · sum over stages of L (the global ratio loss, for logs)
    stages: list[dict[str, float]] = field(default_factory=list)  # boundary_fraction, mean_prob, target_ratio


def global_ratio_term(stages, info: DistInfo, alpha: float, device: torch.device) -> RatioTerm:
    if not stages:
        return RatioTerm(torch.zeros((), device=device), 0.0, [])
    local = []
    for s in stages:
        v = s.valid_mask
        local += [(s.boundary_mask & v).sum().float(), (s.boundary_prob.detach() * v).sum().float(), v.sum().float()]
    g = all_reduce_sum(torch.stack(local), info)  # (3 · n_stages,)
    W = float(info.world_size)
    objective = torch.zeros((), device=device)
    value = 0.0
    out = []
    for i, s in enumerate(stages):
        nb, sp, nv = g[3 * i], g[3 * i + 1], g[3 * i + 2].clamp(min=1.0)
        Fr, G, N = float(nb / nv), float(sp / nv), float(s.target_ratio)
        value += N / (N - 1) * ((N - 1) * Fr * G + (1 - Fr) * (1 - G))
        dL_dG = N * (N * Fr - 1) / (N - 1)
        g_local = (s.boundary_prob * s.valid_mask).sum() / nv  # this rank's share of the global G
        objective = objective + alpha * W * dL_dG * g_local
        out.append({"boundary_fraction": Fr, "mean_prob": G, "target_ratio": N})
    return RatioTerm(objective, alpha * value, out)
