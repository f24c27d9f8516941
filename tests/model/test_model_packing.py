"""Packed sequences (aegir.model.packing): a right-padded batch runs through each RWKV stack as one
row of its valid positions. Float64 against the padded eager reference: the WKV kernel with
cu_seqlens against the naive recurrence of each sequence alone (outputs, final states, every
gradient; lengths 0, 1 and around the recompute segment; 1 and 2 threads), the token shift with
sequence starts, and whole stacks on the fused path and on the eager path with each WKV form
(outputs, input and parameter gradients, all recompute modes); when a stack packs and when not."""

from __future__ import annotations

import shutil

import pytest
import torch

from aegir.kernels import tmix_cpu, wkv_cpu
from aegir.model import packing
from aegir.model.packing import Packing
from aegir.model.rwkv7 import RWKV7Stack
from aegir.model.wkv import wkv_naive

from test_model_tmix_kernel import perturbed
from test_model_wkv import TOL, make_inputs, rel_err

if shutil.which("c++") is None:  # no compiler: nothing packs (the eager path runs padded)
    pytest.skip("no C++ compiler on this machine", allow_module_level=True)

SEG = wkv_cpu.SEGMENT


def right_padded(lengths: list[int], T: int | None = None) -> torch.Tensor:
    T = max(lengths) if T is None else T
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)


def test_packing_of_a_right_padded_batch():
    mask = right_padded([3, 0, 2, 4], T=5)
    p = Packing.of(mask)
    assert p.cu_seqlens.tolist() == [0, 3, 3, 5, 9]
    assert p.index.tolist() == [0, 1, 2, 10, 11, 15, 16, 17, 18]  # flat b * 5 + t
    assert p.starts.tolist() == [True, False, False, True, False, True, False, False, False]
    x = torch.randn(4, 5, 2)
    packed = p.pack(x)  # (1, 9, 2)
    assert packed.shape == (1, 9, 2) and torch.equal(packed[0, 3:5], x[2, :2])
    back = p.unpack(packed)
    assert torch.equal(back[mask], x[mask]) and back[~mask].abs().max() == 0


def test_left_padding_does_not_pack():
    mask = torch.tensor([[False, True, True], [True, True, True]])
    assert Packing.of(mask) is None


def test_little_padding_does_not_pack():
    mask = right_padded([10, 9])  # 1 of 20 positions
    assert Packing.of(mask, min_padding=0.06) is None and Packing.of(mask, min_padding=0.05) is not None


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("N", [8, 32])  # a generic and a specialised head size
def test_wkv_kernel_packed_equals_each_sequence_alone_float64(threads, N):
    """cu_seqlens: each packed sequence starts from a zero state and equals the naive recurrence
    run on it alone, outputs, final states and every gradient (through both)."""
    torch.set_num_threads(threads)  # the task queue hands out sequences of unequal length
    lengths = [SEG + 1, 0, 1, 2 * SEG, 5, 3 * SEG + 7]
    H = 2
    total = sum(lengths)
    inputs = make_inputs(1, total, H, N, seed=N)
    cu = torch.tensor([0] + lengths).cumsum(0)
    o, s = wkv_cpu.wkv_cpu(*inputs, return_state=True, cu_seqlens=cu)
    assert o.shape == (1, total, H, N) and s.shape == (len(lengths), H, N, N)
    g_o, g_s = torch.randn_like(o), torch.randn_like(s)
    grads = torch.autograd.grad((o * g_o).sum() + (s * g_s).sum(), inputs)
    for i, L in enumerate(lengths):
        if L == 0:  # an empty sequence ends in the zero state
            assert s[i].abs().max() == 0
            continue
        a, b = int(cu[i]), int(cu[i + 1])
        part = [x.detach()[:, a:b].clone().requires_grad_() for x in inputs]  # (1, L, H, N) each
        o_ref, s_ref = wkv_naive(*part, return_state=True)
        assert rel_err(o[:, a:b], o_ref) <= TOL and rel_err(s[i], s_ref[0]) <= TOL
        ref = torch.autograd.grad((o_ref * g_o[:, a:b]).sum() + (s_ref * g_s[i]).sum(), part)
        for name, got, want in zip("r log_w k v a b".split(), grads, ref):
            assert rel_err(got[:, a:b], want) <= TOL, (L, name)


def test_wkv_kernel_refuses_bad_cu_seqlens():
    inputs = make_inputs(1, 6, 1, 8, seed=0)
    for cu, match in ((torch.tensor([0, 2, 5]), "from 0 to T = 6"), (torch.tensor([0, 4, 2, 6]), "must not decrease"),
                      (torch.tensor([0.0, 6.0]), "int64")):
        with pytest.raises(RuntimeError, match=match):
            wkv_cpu.load().forward(*(x.detach() for x in inputs), SEG, cu)
    with pytest.raises(RuntimeError, match="need B = 1"):
        wkv_cpu.wkv_cpu(*make_inputs(2, 3, 1, 8, seed=0), cu_seqlens=torch.tensor([0, 3]))


@pytest.mark.parametrize("with_norm", [False, True])
def test_shift_lerp_with_sequence_starts_float64(with_norm):
    """starts: the token shift reads zero at each sequence's first row and no gradient crosses
    into the previous sequence; equal to running each sequence alone. 150 rows on 2 threads: a
    task's first row lands inside a sequence."""
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(7)
    lengths, C = [40, 1, 0, 70, 39], 16
    mask = right_padded(lengths)
    pk = Packing.of(mask)
    x = (1.0 + torch.randn(1, pk.n, C, generator=g, dtype=torch.float64)).requires_grad_()
    mu = torch.rand(6, C, generator=g, dtype=torch.float64, requires_grad=True)
    norm = torch.nn.LayerNorm(C).double() if with_norm else None
    w = torch.randn(6, 1, pk.n, C, generator=g, dtype=torch.float64)
    outs = tmix_cpu.shift_lerp(x, mu, norm, starts=pk.starts)
    got = torch.autograd.grad(sum((o * w[j]).sum() for j, o in enumerate(outs)), (x, mu))
    ref_outs = []
    for i in range(len(lengths)):  # each (non-empty) sequence alone, eager
        a, b = int(pk.cu_seqlens[i]), int(pk.cu_seqlens[i + 1])
        if a == b:
            continue
        y = x[:, a:b] if norm is None else norm(x[:, a:b])
        prev = torch.nn.functional.pad(y, (0, 0, 1, -1))  # (1, L, C): previous position, zero at t = 0
        ref_outs.append([y + (prev - y) * mu[j] for j in range(6)])
    ref_outs = [torch.cat([r[j] for r in ref_outs], dim=1) for j in range(6)]  # (1, N, C) each
    ref = torch.autograd.grad(sum((o * w[j]).sum() for j, o in enumerate(ref_outs)), (x, mu))
    for o, r in zip(outs, ref_outs):
        assert rel_err(o, r) <= TOL
    for a, b in zip(got, ref):
        assert rel_err(a, b) <= TOL


def stack_grads(stack, x, mask, fused: bool, packs: bool, weight):
    stack.zero_grad(set_to_none=True)
    stack.packs = packs
    xx = x.clone().requires_grad_()
    with tmix_cpu.fused_time_mix(fused):  # the backward too: "block" recomputes the forward there
        y = stack(xx, mask)
        ((y * weight) * mask[..., None]).sum().backward()
    return y.detach(), xx.grad, {n: p.grad.clone() for n, p in stack.named_parameters()}


@pytest.mark.parametrize("fused,impl,recompute", [
    (True, "auto", "none"), (True, "auto", "wkv"), (True, "auto", "block"),  # fused CPU ops, the CPU kernel
    (False, "kernel", "wkv"),  # eager ops, the kernel runs the packed sequences itself
    (False, "chunked", "none"), (False, "naive", "block"),  # eager ops, the WKV runs padded inside
])
def test_stack_packs_a_padded_batch_float64(fused, impl, recompute):
    """A stack packs a right-padded batch: at valid positions its outputs, and the gradients of its
    input and of every parameter, equal the eager padded reference; its output is zero on padding.
    A row with no valid position packs to nothing."""
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(3)
    stack = perturbed(RWKV7Stack(64, 3, 32, {"w": 16, "a": 16, "v": 16, "g": 16}, wkv_impl=impl, wkv_chunk=16,
                                 recompute=recompute).double(), 5)
    mask = right_padded([50, 17, 0, 3, 49])
    x = torch.randn(*mask.shape, 64, generator=g, dtype=torch.float64)
    weight = torch.randn(*mask.shape, 64, generator=g, dtype=torch.float64)
    y_ref, dx_ref, dp_ref = stack_grads(stack, x, mask, fused=False, packs=False, weight=weight)
    y, dx, dp = stack_grads(stack, x, mask, fused=fused, packs=True, weight=weight)
    assert rel_err(y[mask], y_ref[mask]) <= TOL
    assert y[~mask].abs().max() == 0 and y_ref[~mask].abs().max() > 0  # the padded run computes padding
    assert rel_err(dx, dx_ref) <= TOL
    assert dp.keys() == dp_ref.keys()
    for name in dp:
        assert rel_err(dp[name], dp_ref[name]) <= TOL, name


def test_stack_runs_padded_where_it_cannot_pack(monkeypatch):
    """No padding, too little of it, left padding, or packing turned off (per stack, or for all by
    AEGIR_PACK=0): the stack runs the batch as it is, on either path."""
    stack = perturbed(RWKV7Stack(32, 1, 32, {"w": 8, "a": 8, "v": 8, "g": 8}).double(), 1)
    x = torch.randn(2, 6, 32, dtype=torch.float64)
    calls = []
    pack = Packing.pack
    monkeypatch.setattr(Packing, "pack", lambda self, t: calls.append(tuple(t.shape)) or pack(self, t))
    left = torch.tensor([[False, True, True, True, True, True], [True] * 6])
    x40 = torch.randn(2, 40, 32, dtype=torch.float64)
    stack(x40, right_padded([40, 39]))  # 1 of 80 positions is padding: below MIN_PADDING
    for fused in (True, False):
        for mask, packs in ((torch.ones(2, 6, dtype=torch.bool), None), (left, None), (right_padded([6, 2]), False)):
            stack.packs = packs
            with tmix_cpu.fused_time_mix(fused):
                stack(x, mask)
    stack.packs = None
    monkeypatch.setattr(packing, "ENABLED", False)
    stack(x, right_padded([6, 2]))
    assert calls == []
    monkeypatch.setattr(packing, "ENABLED", True)
    for fused in (True, False):
        with tmix_cpu.fused_time_mix(fused):
            stack(x, right_padded([6, 2]))
    assert calls == [(2, 6, 32)] * 2


@pytest.mark.parametrize("impl", ["kernel", "chunked"])
def test_stacks_pack_by_default_where_it_was_measured_to_pay(monkeypatch, impl):
    """By default a stack with the WKV on the CPU kernel packs from 3% padding; with a WKV form that
    runs padded inside the packed block (chunked) from 25%; on CUDA, only when forced (packs = True,
    which packs from 3% on every path)."""
    calls = []
    pack = Packing.pack
    monkeypatch.setattr(Packing, "pack", lambda self, t: calls.append(tuple(t.shape)) or pack(self, t))
    stack = perturbed(RWKV7Stack(32, 1, 32, {"w": 8, "a": 8, "v": 8, "g": 8}, wkv_impl=impl).double(), 1)
    x = torch.randn(2, 40, 32, dtype=torch.float64)
    little, much = right_padded([40, 32]), right_padded([40, 8])  # 10% and 40% padding
    with tmix_cpu.fused_time_mix(False):
        for mask in (little, much):
            calls.clear()
            stack(x, mask)
            assert bool(calls) == (impl == "kernel" or mask is much), (impl, mask.sum())
        stack.packs = True
        calls.clear()
        stack(x, little)
        assert calls
    assert packing.min_padding("chunked", torch.device("cuda"), forced=False) is None
    assert packing.min_padding("fla", torch.device("cuda"), forced=True) == packing.MIN_PADDING
