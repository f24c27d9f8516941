"""Chunked WKV vs the naive recurrence (float64): outputs and gradients, ragged lengths, padding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aegir.model.rwkv7 import LOG_W_SCALE, RWKV7TimeMix
from aegir.model.wkv import unit_lower_inverse, wkv_chunked, wkv_naive

TOL = 1e-10


def rel_err(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.detach(), y.detach()
    return float((x - y).abs().max() / y.abs().max().clamp(min=1e-300))


def make_inputs(B: int, T: int, H: int, N: int, seed: int, dtype=torch.float64, extreme_decay: bool = False):
    g = torch.Generator().manual_seed(seed)
    r, k, v = (torch.randn(B, T, H, N, generator=g, dtype=dtype) for _ in range(3))
    if extreme_decay:  # the fastest decay the bounded parameterisation allows, everywhere
        log_w = torch.full((B, T, H, N), LOG_W_SCALE, dtype=dtype)
    else:
        log_w = LOG_W_SCALE * torch.rand(B, T, H, N, generator=g, dtype=dtype)
    kk = F.normalize(torch.randn(B, T, H, N, generator=g, dtype=dtype), dim=-1)
    iclr = torch.rand(B, T, H, N, generator=g, dtype=dtype)
    a, b = -kk, kk * iclr  # the time-mix's normalised removal key
    return [t.requires_grad_() for t in (r, log_w, k, v, a, b)]


@pytest.mark.parametrize(
    "B,T,H,N,chunk,extreme",
    [(2, 100, 2, 16, 16, False),  # ragged: 100 = 6 * 16 + 4
     (1, 37, 1, 8, 64, False),  # shorter than one chunk
     (2, 64, 2, 8, 64, True),  # exactly one chunk, maximum decay
     (3, 90, 1, 8, 32, True)],
)
def test_chunked_matches_naive_float64(B, T, H, N, chunk, extreme):
    inputs = make_inputs(B, T, H, N, seed=T, extreme_decay=extreme)
    o_ref = wkv_naive(*inputs)
    o = wkv_chunked(*inputs, chunk=chunk)
    assert rel_err(o, o_ref) <= TOL
    g_out = torch.randn_like(o_ref)
    grads_ref = torch.autograd.grad((o_ref * g_out).sum(), inputs)
    grads = torch.autograd.grad((o * g_out).sum(), inputs)
    for name, gx, gr in zip("r log_w k v a b".split(), grads, grads_ref):
        assert rel_err(gx, gr) <= TOL, name


def test_padding_is_an_identity_step_and_does_not_leak():
    B, T, H, N = 3, 75, 2, 8
    inputs = make_inputs(B, T, H, N, seed=3)
    lengths = [75, 40, 9]
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T) right-padded
    o_ref = wkv_naive(*inputs, mask=mask)
    o = wkv_chunked(*inputs, mask=mask, chunk=16)
    g_out = torch.randn_like(o) * mask[:, :, None, None]
    grads = torch.autograd.grad((o * g_out).sum(), inputs)
    grads_ref = torch.autograd.grad((o_ref * g_out).sum(), inputs)
    assert rel_err(o[mask], o_ref[mask]) <= TOL
    for gx, gr in zip(grads, grads_ref):
        assert rel_err(gx, gr) <= TOL
    # Each padded row equals the same row run alone, unpadded.
    for i, L in enumerate(lengths):
        alone = wkv_chunked(*(x[i : i + 1, :L] for x in inputs), chunk=16)
        assert rel_err(o[i : i + 1, :L], alone) <= TOL
    # A masked step in the middle leaves the state untouched: same as deleting that position.
    mid = torch.ones(1, T, dtype=torch.bool)
    mid[0, 30] = False
    o_mid = wkv_chunked(*(x[:1] for x in inputs), mask=mid, chunk=16)
    o_del = wkv_naive(*(torch.cat([x[:1, :30], x[:1, 31:]], dim=1) for x in inputs))
    assert rel_err(torch.cat([o_mid[:, :30], o_mid[:, 31:]], dim=1), o_del) <= TOL


@pytest.mark.parametrize("extreme", [False, True])
def test_fp32_chunked_close_to_float64_reference(extreme):
    # fp32 at chunk 64 (the default), including the fastest decay everywhere (largest e^{+-G}).
    inputs = [x.detach() for x in make_inputs(1, 192, 2, 64, seed=5, extreme_decay=extreme)]
    with torch.no_grad():
        o_ref = wkv_naive(*inputs)
        o32 = wkv_chunked(*(x.float() for x in inputs), chunk=64)
    assert rel_err(o32.double(), o_ref) < 2e-5


def time_mix_outputs(impl: str, C: int, N: int, T: int = 45) -> tuple[list, list]:
    """The whole time-mix (lerps, LoRAs, value residual, GroupNorm, bonus) with WKV path `impl` and
    with the naive reference, same weights and input: (output, d input, d w0) of each, float64."""
    torch.manual_seed(0)
    lora = {"w": 8, "a": 8, "v": 8, "g": 8}
    tm = {name: RWKV7TimeMix(C, N, layer=1, n_layers=3, lora=lora, wkv_impl=name, wkv_chunk=16).double()
          for name in (impl, "naive")}
    with torch.no_grad():  # leave the zero init (W_o = 0) so every path is exercised
        for p in tm[impl].parameters():
            p.add_(0.1 * torch.randn_like(p))
    tm["naive"].load_state_dict(tm[impl].state_dict())
    x = torch.randn(2, T, C, dtype=torch.float64, requires_grad=True)
    v_first = torch.randn(2, T, C, dtype=torch.float64)
    mask = torch.ones(2, T, dtype=torch.bool)
    mask[1, 30:] = False
    outs = {}
    for name, m in tm.items():
        y = m(x, v_first, mask)[0] * mask[:, :, None]
        gx, gw = torch.autograd.grad(y.square().sum(), (x, m.w0))
        outs[name] = [y, gx, gw]
    return outs[impl], outs["naive"]


def test_time_mix_chunked_equals_naive_float64():
    got, ref = time_mix_outputs("chunked", C=32, N=16)
    for g, r in zip(got, ref):
        assert rel_err(g, r) <= TOL


@pytest.mark.parametrize("c,base", [(16, 16), (64, 16), (128, 16), (64, 8), (8, 16)])
def test_unit_lower_inverse_matches_triangular_solve_float64(c, base):
    """The matmul-only inverse the chunked WKV uses for power-of-two chunks, against LAPACK's solve,
    on entries as large as the removal-key scores get (|a||b| <= 1) and with gradients."""
    g = torch.Generator().manual_seed(c + base)
    N = (torch.rand(5, c, c, generator=g, dtype=torch.float64) * 2 - 1).tril(-1).requires_grad_()
    rhs = torch.randn(5, c, 7, generator=g, dtype=torch.float64)
    eye = torch.eye(c, dtype=torch.float64)
    ref = torch.linalg.solve_triangular(eye - N, rhs, upper=False, unitriangular=True)
    got = unit_lower_inverse(N, base=base) @ rhs
    assert rel_err(got, ref) <= TOL
    g_ref, = torch.autograd.grad(ref.square().sum(), N)
    g_got, = torch.autograd.grad(got.square().sum(), N)
    assert rel_err(g_got.tril(-1), g_ref.tril(-1)) <= TOL


def test_time_mix_output_norm_is_the_reference_group_norm_float64():
    """`_out` normalises each head by layer_norm + affine: the same function as RWKV-7's
    GroupNorm(n_heads, C) (ln_x, whose parameters it uses), bonus term included."""
    torch.manual_seed(0)
    C, N = 48, 16
    tm = RWKV7TimeMix(C, N, layer=1, n_layers=3, lora={"w": 8, "a": 8, "v": 8, "g": 8}).double()
    with torch.no_grad():
        for p in tm.parameters():
            p.add_(0.3 * torch.randn_like(p))
    y, r, k, v = (torch.randn(2, 7, C // N, N, dtype=torch.float64) for _ in range(4))
    g = torch.rand(2, 7, C, dtype=torch.float64)
    got = tm._out(y, r, k, v, g)
    bonus = ((r * k * tm.r_k).sum(-1, keepdim=True) * v).flatten(-2)  # (2, 7, C)
    ref = tm.output((tm.ln_x(y.reshape(-1, C)).view(2, 7, C) + bonus) * g)
    assert rel_err(got, ref) <= TOL
