"""Chunker health: is each H-Net stage's router still chunking, or has it degenerated?

Per stage s the router marks boundaries b_t in a sequence of valid length L (the first position
is always a boundary: H-Net forces p_0 = 1). Two failure modes (architecture notes, pitfall 7):

* all-boundary: every position is a boundary, the stage does no compression and the inner
  stages run at full length;
* no-boundary: only the forced first position survives, the inner network sees one token per
  sequence and the decoder receives a constant.

Raw boundary fractions hide both on short sequences (a 4-byte cell with only the forced boundary
still shows F = 0.25), so the verdict uses the *free* boundary rate: boundaries beyond the forced
first position divided by positions beyond it, summed over sequences (pads never count; a
sequence of length 1 has no free position and is ignored). A stage is degenerate when that rate
is >= `all_boundary_at` or <= `no_boundary_at`.

Inputs are per-sequence counts, built from the model's StageStats masks (numpy arrays or torch
tensors; no torch import here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from aegir.diagnostics.collapse import as_numpy

__all__ = ["BoundaryConfig", "StageBoundaryCounts", "StageHealth", "BoundaryAccumulator", "stage_health", "chunker_health"]


@dataclass(frozen=True)
class BoundaryConfig:
    all_boundary_at: float = 0.98  # free rate at or above: degenerate (no compression)
    no_boundary_at: float = 0.01  # free rate at or below: degenerate (nothing beyond position 0)
    forced_first: bool = True  # H-Net forces a boundary at each sequence's first position


@dataclass
class StageBoundaryCounts:
    """Per-sequence boundary counts and valid lengths for one stage."""

    boundaries: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (S,)
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (S,)

    def __post_init__(self) -> None:
        self.boundaries = np.asarray(self.boundaries, dtype=np.int64).reshape(-1)
        self.lengths = np.asarray(self.lengths, dtype=np.int64).reshape(-1)
        if self.boundaries.shape != self.lengths.shape:
            raise ValueError(
                f"boundary counts {self.boundaries.shape} and lengths {self.lengths.shape} differ in shape"
            )
        if (self.lengths < 0).any() or (self.boundaries < 0).any() or (self.boundaries > self.lengths).any():
            raise ValueError("boundary counts must satisfy 0 <= boundaries <= length per sequence")

    @classmethod
    def from_masks(cls, boundary_mask: Any, valid_mask: Any) -> "StageBoundaryCounts":
        """From (B, T_s) bool masks (numpy or torch): boundaries counted on valid positions only."""
        b = as_numpy(boundary_mask, dtype=bool)
        v = as_numpy(valid_mask, dtype=bool)
        if b.shape != v.shape or b.ndim != 2:
            raise ValueError(f"boundary and valid masks must both be (B, T); got {b.shape} and {v.shape}")
        return cls((b & v).sum(axis=1), v.sum(axis=1))

    def extend(self, other: "StageBoundaryCounts") -> None:
        self.boundaries = np.concatenate([self.boundaries, other.boundaries])
        self.lengths = np.concatenate([self.lengths, other.lengths])


@dataclass(frozen=True)
class StageHealth:
    stage: int
    n_sequences: int
    n_positions: int  # valid positions
    boundary_fraction: float  # boundaries / valid positions (what the model logs; includes position 0)
    free_rate: float  # boundaries beyond the forced first / positions beyond it
    share_no_boundary: float  # sequences (length > 1) with no free boundary
    share_all_boundary: float  # sequences (length > 1) where every position is a boundary
    mean_length: float
    degenerate: bool
    reason: str  # "" | "all-boundary" | "no-boundary" | "no data"


def stage_health(stage: int, counts: StageBoundaryCounts, cfg: BoundaryConfig | None = None) -> StageHealth:
    cfg = cfg or BoundaryConfig()
    b, L = counts.boundaries, counts.lengths
    nonempty = L > 0
    forced = nonempty.astype(np.int64) if cfg.forced_first else np.zeros_like(L)
    # Clamp at 0: a sequence without even the forced boundary counts as "no free boundary"
    # rather than a negative count (only possible if a model does not force position 0).
    free_b = np.maximum(b - forced, 0)  # (S,)
    free_L = L - forced  # (S,)
    multi = free_L > 0
    n_pos = int(L.sum())
    if not multi.any():
        return StageHealth(stage, int(L.size), n_pos, float(b.sum()) / n_pos if n_pos else 0.0, 0.0, 0.0, 0.0,
                           float(L.mean()) if L.size else 0.0, True, "no data")
    rate = float(free_b[multi].sum()) / float(free_L[multi].sum())
    reason = ""
    if rate >= cfg.all_boundary_at:
        reason = "all-boundary"
    elif rate <= cfg.no_boundary_at:
        reason = "no-boundary"
    return StageHealth(
        stage=stage,
        n_sequences=int(L.size),
        n_positions=n_pos,
        boundary_fraction=float(b.sum()) / n_pos,
        free_rate=rate,
        share_no_boundary=float((free_b[multi] == 0).mean()),
        share_all_boundary=float((free_b[multi] == free_L[multi]).mean()),
        mean_length=float(L.mean()),
        degenerate=bool(reason),
        reason=reason,
    )


def chunker_health(counts: Sequence[StageBoundaryCounts], cfg: BoundaryConfig | None = None) -> list[StageHealth]:
    return [stage_health(s, c, cfg) for s, c in enumerate(counts)]


class BoundaryAccumulator:
    """Collects per-sequence counts over evaluation batches, one list entry per stage.

    acc.add_stages(output.stages) takes the backbone's StageStats list (anything with
    `boundary_mask` and `valid_mask` attributes); acc.add(stage, boundary_mask, valid_mask) a
    single stage.
    """

    def __init__(self) -> None:
        self.stages: list[StageBoundaryCounts] = []

    def add(self, stage: int, boundary_mask: Any, valid_mask: Any) -> None:
        while len(self.stages) <= stage:
            self.stages.append(StageBoundaryCounts())
        self.stages[stage].extend(StageBoundaryCounts.from_masks(boundary_mask, valid_mask))

    def add_stages(self, stages: Iterable[Any]) -> None:
        for s, st in enumerate(stages):
            self.add(s, st.boundary_mask, st.valid_mask)

    def result(self) -> list[StageBoundaryCounts]:
        return list(self.stages)
