"""AdamW parameter groups, per-stage learning-rate multipliers and the warmup + cosine schedule.

Generic over models: any `nn.Module` works. A parameter's lr multiplier is read from the attribute
`param._aegir_lr_mult` (the backbone tags each parameter with its H-Net stage's multiplier, as the
H-Net reference does with `_optim["lr_multiplier"]`); untagged parameters get 1.0.

Weight decay goes only to tensors with >= 2 dimensions (matrices, embeddings). The H-Net reference
excludes parameters by name (`.norm.`), which misses `norm1`/`rmsnorm`; RWKV's rule by `ndim` is
the robust one (architecture.md, pitfall 10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    warmup_steps: int = 100
    total_steps: int = 1000
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of the peak lr

    def __post_init__(self) -> None:
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {self.total_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))


@dataclass
class ParamGroupInfo:
    """One optimizer group, summarised for logs."""

    lr_mult: float
    decay: bool
    n_tensors: int
    n_params: int


def lr_mult_of(p: nn.Parameter) -> float:
    return float(getattr(p, "_aegir_lr_mult", 1.0))


def param_groups(model: nn.Module, weight_decay: float, lr_mults: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Group trainable parameters by (lr multiplier, decay?). Shared (tied) tensors appear once.

    Each group carries `lr_mult`, which the scheduler multiplies into its lr. `lr_mults` (name ->
    multiplier) overrides the attribute; wrappers that replace parameters (FSDP2) drop attributes,
    so callers record the names' multipliers before wrapping.
    """
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        mult = lr_mults[name] if lr_mults is not None and name in lr_mults else lr_mult_of(p)
        key = (mult, p.ndim >= 2)
        groups.setdefault(key, []).append(p)
    out = []
    for (mult, decay), params in sorted(groups.items(), key=lambda kv: (-kv[0][0], not kv[0][1])):
        out.append(
            {
                "params": params,
                "lr_mult": mult,
                "weight_decay": weight_decay if decay else 0.0,
                "decay": decay,
            }
        )
    return out


def describe_groups(groups: list[dict[str, Any]]) -> list[ParamGroupInfo]:
    return [
        ParamGroupInfo(
            lr_mult=g["lr_mult"],
            decay=bool(g["decay"]),
            n_tensors=len(g["params"]),
            n_params=sum(p.numel() for p in g["params"]),
        )
        for g in groups
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr_mults: dict[str, float] | None = None) -> torch.optim.AdamW:
    """AdamW over `param_groups`; each group's initial lr is `cfg.lr * lr_mult` (before warmup)."""
    groups = param_groups(model, cfg.weight_decay, lr_mults)
    if not groups:
        raise ValueError("model has no trainable parameters")
    for g in groups:
        g["lr"] = cfg.lr * g["lr_mult"]
    # foreach=True: the multi-tensor update is several times faster than the per-tensor loop that
    # torch picks by default for CPU tensors, and just as deterministic.
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, foreach=True)


def lr_factor(
    step: float, warmup_steps: int, total_steps: int, min_lr_ratio: float, time_fraction: float | None = None
) -> float:
    """Linear warmup from 1/(warmup+1) to 1, then cosine from 1 down to `min_lr_ratio`.

    The cosine position is (step - warmup) / (total - warmup), or `time_fraction` (elapsed /
    budget) for wall-clock-budget runs, where the step count at the deadline is unknown; warmup is
    always counted in steps, and the factor is the smaller of the two curves.
    Step 0 already gets a non-zero lr: a zero-lr first step would waste a batch.
    """
    s = float(step)
    warm = (s + 1.0) / (warmup_steps + 1.0) if warmup_steps > 0 and s < warmup_steps else 1.0
    if time_fraction is None:
        t = (s - warmup_steps) / max(1.0, float(total_steps - warmup_steps))
    else:
        t = float(time_fraction)
    t = min(1.0, max(0.0, t))
    cos = min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))
    return min(warm, cos)


class WarmupCosine:
    """Sets every group's lr to `base_lr * group['lr_mult'] * lr_factor(step)`.

    A pure function of the step (no hidden state besides it), so resuming needs only the step.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.step_value: float = 0.0
        self.time_fraction: float | None = None
        self.set_step(0)

    def factor(self, step: float, time_fraction: float | None = None) -> float:
        return lr_factor(step, self.cfg.warmup_steps, self.cfg.total_steps, self.cfg.min_lr_ratio, time_fraction)

    def set_step(self, step: float, time_fraction: float | None = None) -> float:
        """Apply the lr for `step` (and elapsed/budget on time-budget runs); returns the base lr."""
        self.step_value = float(step)
        self.time_fraction = time_fraction
        f = self.factor(step, time_fraction)
        for g in self.optimizer.param_groups:
            g["lr"] = self.cfg.lr * g.get("lr_mult", 1.0) * f
        return self.cfg.lr * f

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step_value, "time_fraction": self.time_fraction}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.set_step(float(state.get("step", 0.0)), state.get("time_fraction"))
