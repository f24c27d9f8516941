"""Collapse figures and chunker health against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from aegir.diagnostics.boundaries import (
    BoundaryAccumulator,
    BoundaryConfig,
    StageBoundaryCounts,
    chunker_health,
    stage_health,
)
from aegir.diagnostics.collapse import collapse_stats, pairwise_l2_stats


def test_pairwise_l2_matches_scipy():
    x = np.random.default_rng(0).normal(size=(37, 5))
    mx, mean = pairwise_l2_stats(x, block=8)
    d = pdist(x)
    assert mx == pytest.approx(d.max(), rel=1e-12) and mean == pytest.approx(d.mean(), rel=1e-12)


def test_collapse_stats_hand_computed():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])  # norms 0, 5, 10; distances 5, 10, 5
    s = collapse_stats(x, ["a", "b", "a"])
    assert s.mean_norm == pytest.approx(5.0)
    assert s.max_pairwise_l2 == pytest.approx(10.0) and s.mean_pairwise_l2 == pytest.approx(20 / 3)
    assert s.max_spread == pytest.approx(2.0) and s.mean_spread == pytest.approx(4 / 3)
    assert s.mode_label == "a" and s.mode_share == pytest.approx(2 / 3) and s.n_distinct_predicted == 2


def test_collapse_stats_constant_and_multilabel_and_abstain():
    s = collapse_stats(np.full((10, 4), 3.0), [("x", "y")] * 5 + [None] * 5)
    assert s.max_pairwise_l2 == 0.0 and s.mean_spread == 0.0 and s.mean_norm == pytest.approx(6.0)
    assert s.n_predictions == 10 and s.n_distinct_predicted == 2 and s.mode_share == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        collapse_stats(np.zeros(3), ["a"] * 3)


def _counts(rows):
    """rows: list of (boundary list) per sequence; pads are -1."""
    t = max(len(r) for r in rows)
    b = np.zeros((len(rows), t), bool)
    v = np.zeros((len(rows), t), bool)
    for i, r in enumerate(rows):
        v[i, : len(r)] = True
        b[i, : len(r)] = np.array(r, bool)
    return StageBoundaryCounts.from_masks(b, v)


def test_free_rate_hand_computed_with_ragged_lengths():
    c = _counts([[1, 0, 1, 0], [1, 1], [1]])  # free: (1 of 3) + (1 of 1); length-1 ignored
    h = stage_health(0, c)
    assert h.boundary_fraction == pytest.approx(5 / 7)
    assert h.free_rate == pytest.approx(2 / 4)
    assert h.share_all_boundary == pytest.approx(0.5) and h.share_no_boundary == 0.0
    assert not h.degenerate and h.reason == ""


def test_all_boundary_detected_despite_padding():
    # Every valid position is a boundary; pads (False) must not dilute the verdict.
    c = _counts([[1] * 10, [1] * 3, [1] * 6])
    h = stage_health(0, c)
    assert h.free_rate == 1.0 and h.degenerate and h.reason == "all-boundary"


def test_only_forced_first_boundary_is_degenerate_even_though_fraction_is_positive():
    c = _counts([[1, 0, 0, 0], [1, 0], [1, 0, 0]])
    h = stage_health(1, c)
    assert h.boundary_fraction == pytest.approx(3 / 9)  # looks healthy on raw fraction
    assert h.free_rate == 0.0 and h.reason == "no-boundary" and h.share_no_boundary == 1.0


def test_thresholds_configurable_and_no_data():
    c = _counts([[1, 1, 1, 0], [1, 1, 0, 0]])  # free 3 of 6 = 0.5
    assert stage_health(0, c, BoundaryConfig(all_boundary_at=0.5)).reason == "all-boundary"
    h = stage_health(0, _counts([[1], [1]]))
    assert h.degenerate and h.reason == "no data"


def test_accumulator_over_batches_and_stage_objects():
    class Stage:  # duck-typed like the backbone's StageStats
        def __init__(self, b, v):
            self.boundary_mask, self.valid_mask = b, v

    acc = BoundaryAccumulator()
    b0 = np.array([[1, 0, 1, 0], [1, 1, 0, 0]], bool)
    v0 = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    b1 = np.array([[1, 0], [1, 0]], bool)
    v1 = np.array([[1, 1], [1, 0]], bool)
    acc.add_stages([Stage(b0, v0), Stage(b1, v1)])
    acc.add(0, np.array([[1, 1, 1]], bool), np.array([[1, 1, 0]], bool))
    counts = acc.result()
    assert counts[0].lengths.tolist() == [4, 2, 2] and counts[0].boundaries.tolist() == [2, 2, 2]
    health = chunker_health(counts)
    assert health[0].free_rate == pytest.approx(3 / 5)
    assert health[1].reason == "no-boundary"
    with pytest.raises(ValueError, match="differ in shape"):
        StageBoundaryCounts(np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="0 <= boundaries <= length"):
        StageBoundaryCounts(np.array([3]), np.array([2]))


def test_torch_tensors_accepted_without_torch_import_in_module():
    torch = pytest.importorskip("torch")
    c = StageBoundaryCounts.from_masks(torch.tensor([[True, False, True]]), torch.tensor([[True, True, True]]))
    assert c.boundaries.tolist() == [2]
