"""H-Net pieces: router, chunk, parallel dechunk vs a loop, STE, ratio loss, boundary statistics."""

from __future__ import annotations

import math

import pytest
import torch

from aegir.config import ModelConfigError, parse_layout
from aegir.model.hnet import (
    P_CLAMP,
    Router,
    StageStats,
    chunk,
    dechunk,
    dechunk_sequential,
    ema_blocked,
    ema_weights,
    ratio_loss,
    ste,
)


def test_layout_parsing_and_errors():
    lay = parse_layout(["w2", ["w2", ["w4"], "w2"], "w2"])
    assert (lay.encoders, lay.decoders, lay.main, lay.n_stages) == ((2, 2), (2, 2), 4, 3)
    assert [lay.blocks_in_stage(s) for s in range(3)] == [4, 4, 4]
    lay = parse_layout(["w2", ["w1w1", ["w4"], "w3"], "w2"])
    assert lay.encoders == (2, 2) and lay.decoders == (2, 3) and lay.main == 4 and lay.n_stages == 3
    assert parse_layout(["w5"]).n_stages == 1
    with pytest.raises(ModelConfigError, match=r"arch_layout\[1\]\[0\]"):
        parse_layout(["w2", ["m2", ["w4"], "w2"], "w2"])
    with pytest.raises(ModelConfigError, match="stage must be"):
        parse_layout(["w2", ["w4"]])
    with pytest.raises(ModelConfigError, match=">= 1"):
        parse_layout(["w0"])


def test_router_identity_init_first_forced_and_pads_excluded():
    torch.manual_seed(0)
    r = Router(8)
    h = torch.randn(2, 6, 8)
    h[0, 2] = h[0, 1] * 3.0  # same direction as its predecessor: cos = 1 -> p = 0
    h[0, 3] = -h[0, 2]  # opposite direction: cos = -1 -> p = 1
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    out = r(h, mask)
    assert out.prob.dtype == torch.float32
    assert out.prob[:, 0].tolist() == [1.0, 1.0] and out.boundary[:, 0].all()
    assert out.prob[0, 2].item() == pytest.approx(0.0, abs=1e-6) and not out.boundary[0, 2]
    assert out.prob[0, 3].item() == pytest.approx(1.0, abs=1e-6) and out.boundary[0, 3]
    cos = torch.nn.functional.cosine_similarity(h[1, 1], h[1, 2], dim=0)  # identity q/k
    assert out.prob[1, 2].item() == pytest.approx(float((1 - cos) / 2), abs=1e-6)
    assert not out.boundary[1, 4:].any() and (out.prob[1, 4:] == 0).all()
    assert torch.equal(out.boundary, (out.prob > 0.5) & mask)


def test_chunk_keeps_boundaries_in_order_right_padded():
    h = torch.arange(2 * 7, dtype=torch.float32).view(2, 7, 1)
    b = torch.tensor([[1, 0, 1, 1, 0, 0, 1], [1, 0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    ch = chunk(h, b)
    assert ch.hidden.shape == (2, 4, 1)
    assert ch.hidden[0, :, 0].tolist() == [0.0, 2.0, 3.0, 6.0]
    assert ch.hidden[1, :, 0].tolist() == [7.0, 0.0, 0.0, 0.0]  # padding zeroed
    assert ch.mask.tolist() == [[True] * 4, [True, False, False, False]]
    assert ch.index[0].tolist() == [0, 2, 3, 6]


def test_parallel_dechunk_equals_sequential_loop_with_gradients():
    torch.manual_seed(1)
    B, T, D = 3, 40, 5
    prob = torch.rand(B, T, dtype=torch.float64)
    prob[:, 0] = 1.0
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[2, 25:] = False
    prob = prob * mask
    b = (prob > 0.5) & mask
    ch = chunk(torch.zeros(B, T, D, dtype=torch.float64), b)
    z = torch.randn(B, ch.mask.shape[1], D, dtype=torch.float64, requires_grad=True)
    p = prob.clone().requires_grad_()
    out = dechunk(z, b, p, ch.index)
    ref = dechunk_sequential(z, b, p, ch.index)
    assert out.dtype == torch.float64
    assert torch.allclose(out[mask], ref[mask], rtol=0, atol=1e-12)
    g = torch.randn_like(ref) * mask[:, :, None]
    g1 = torch.autograd.grad((out * g).sum(), [z, p])
    g2 = torch.autograd.grad((ref * g).sum(), [z, p])
    for x, y in zip(g1, g2):
        assert torch.allclose(x, y, rtol=0, atol=1e-12)
    # Hand check of one EMA step: byte t in chunk j reads P_j z_j + (1 - P_j) zbar_{j-1}.
    P = prob.gather(1, ch.index).clamp(P_CLAMP, 1 - P_CLAMP)
    zbar0 = P[0, 0] * z[0, 0]
    zbar1 = P[0, 1] * z[0, 1] + (1 - P[0, 1]) * zbar0
    t1 = int(ch.index[0, 1])  # first byte of chunk 1
    assert torch.allclose(out[0, t1], zbar1)
    assert torch.allclose(out[0, t1 - 1], zbar0)  # last byte of chunk 0


def test_dechunk_is_stable_for_long_sequences_of_sure_boundaries():
    # p close to 1 everywhere: log(1 - P) = log(1e-4) per step; products must underflow to 0, not NaN.
    B, Tc, D = 1, 600, 4
    prob = torch.ones(B, Tc)
    b = torch.ones(B, Tc, dtype=torch.bool)
    z = torch.randn(B, Tc, D)
    out = dechunk(z, b, prob, torch.arange(Tc)[None])
    assert torch.isfinite(out).all()
    assert torch.allclose(out, dechunk_sequential(z, b, prob, torch.arange(Tc)[None]), atol=1e-5)


def test_ste_is_one_forward_identity_backward():
    c = torch.tensor([0.6, 0.9, 0.51], requires_grad=True)
    y = ste(c)
    assert y.tolist() == [1.0, 1.0, 1.0]
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert c.grad.tolist() == [1.0, 2.0, 3.0]


def test_ratio_loss_hand_values_and_padding():
    N = 3.0
    valid = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    b = torch.tensor([[1, 0, 0, 1, 0, 0], [1, 0, 0, 1, 1, 1]], dtype=torch.bool)  # pads "boundaries" ignored
    p = torch.tensor([[0.9, 0.2, 0.1, 0.7, 0.3, 0.1], [0.8, 0.4, 0.2, 0.9, 0.9, 0.9]], requires_grad=True)
    loss = ratio_loss(b, p, valid, N)
    Fr = 3 / 9  # boundaries over the 9 valid positions
    G = (0.9 + 0.2 + 0.1 + 0.7 + 0.3 + 0.1 + 0.8 + 0.4 + 0.2) / 9
    expect = N / (N - 1) * ((N - 1) * Fr * G + (1 - Fr) * (1 - G))
    assert loss.item() == pytest.approx(expect, rel=1e-6)
    loss.backward()
    dG = N * (N * Fr - 1) / (N - 1)  # = 0 at F = 1/N: gradient only through G
    assert torch.allclose(p.grad[valid], torch.full((9,), dG / 9), atol=1e-7)
    assert (p.grad[~valid] == 0).all()
    # At F = G = 1/N the loss is exactly 1.
    b2 = torch.tensor([[1, 0, 0, 1, 0, 0]], dtype=torch.bool)
    p2 = torch.full((1, 6), 1 / 3)
    assert ratio_loss(b2, p2, torch.ones(1, 6, dtype=torch.bool), 3.0).item() == pytest.approx(1.0)


def test_stage_stats_exclude_padding():
    b = torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    p = torch.tensor([[1.0, 0.2, 0.8, 0.4], [1.0, 0.9, 0.9, 0.9]])
    valid = torch.tensor([[True] * 4, [True, False, False, False]])
    st = StageStats(0, b, p, valid, torch.tensor(0.0), 3.0)  # raw values on the pads
    assert st.boundary_fraction() == pytest.approx(3 / 5)
    assert st.mean_prob() == pytest.approx((1.0 + 0.2 + 0.8 + 0.4 + 1.0) / 5)
    assert st.compression() == pytest.approx(5 / 3)
    # Computed naively over all 8 positions it would be 6/8: padding must not count.
    assert not math.isclose(st.boundary_fraction(), 6 / 8)


@pytest.mark.parametrize("Tc,block", [(1, 4), (7, 4), (8, 4), (50, 8), (130, 64), (130, 16)])
def test_blocked_ema_equals_the_dense_form_and_a_loop_float64(Tc, block):
    """The O(Tc * block) dechunk EMA against the recurrence and the dense (Tc x Tc) form: values and
    gradients, over block edges, ragged tails and probabilities near 0 and 1."""
    g = torch.Generator().manual_seed(Tc + block)
    B, D = 2, 3
    P = torch.rand(B, Tc, generator=g, dtype=torch.float64).clamp(P_CLAMP, 1 - P_CLAMP)
    P[0, ::5] = 1 - P_CLAMP
    P[1, 1::3] = P_CLAMP
    P.requires_grad_()
    z = torch.randn(B, Tc, D, generator=g, dtype=torch.float64, requires_grad=True)
    rows, prev = [], torch.zeros(B, D, dtype=torch.float64)
    for j in range(Tc):
        prev = P[:, j, None] * z[:, j] + (1 - P[:, j, None]) * prev
        rows.append(prev)
    ref = torch.stack(rows, 1)
    out = ema_blocked(P, z, block=block)
    dense = ema_weights(P) @ z
    assert out.shape == (B, Tc, D)
    assert torch.allclose(out, ref, rtol=0, atol=1e-12) and torch.allclose(dense, ref, rtol=0, atol=1e-12)
    w = torch.randn(B, Tc, D, generator=g, dtype=torch.float64)
    for x, y in zip(torch.autograd.grad((out * w).sum(), [P, z]), torch.autograd.grad((ref * w).sum(), [P, z])):
        assert torch.allclose(x, y, rtol=0, atol=1e-10)
