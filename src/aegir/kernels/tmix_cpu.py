"""The RWKV-7 time-mix's elementwise work as fused CPU ops (`tmix_cpu.cpp`), wired into autograd.

Why: with the WKV recurrence compiled (`wkv_cpu`), about half of a time-mix's fwd+bwd on CPU was
~150 full-size elementwise passes of eager PyTorch between the GEMMs. Here they are C++ ops, each
reading its inputs once per row:

- `shift_lerp`: the token shift and the lerps that feed the projections (six in the time-mix,
  one in the channel-mix), with the block's pre-norm (LayerNorm) fused in front;
- `time_mix_core`: everything from the time-mix projections' outputs to the input of the output
  projection, as one autograd function: decay, in-context learning rate, value residual,
  removal key, key update and padding (`prep`), the WKV recurrence (the `wkv_cpu` kernel), and
  the per-head GroupNorm, bonus and gate (`post`);
- `relu_square`: the channel-mix activation (also on bf16 activations).

The eager code in `aegir.model.rwkv7` is the reference: tests hold the fused path to it in
float64 (outputs and every gradient). A block takes the fused path when its WKV runs on the CPU
kernel and its input is fp32 or float64; under CPU bf16 autocast (`cpu_bf16`) the projections
stay bf16 and the fused ops compute in fp32, where the eager path has its fp32 islands.
`AEGIR_FUSED_TMIX=0` or `fused_time_mix(False)` turns it off.
Built with the WKV kernel into one extension (`wkv_cpu.load`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from aegir.kernels import wkv_cpu

_enabled = os.environ.get("AEGIR_FUSED_TMIX", "1") != "0"


@contextlib.contextmanager
def fused_time_mix(enabled: bool) -> Iterator[None]:
    """Turn the fused time-mix on or off inside a `with` block (benchmarks compare the two)."""
    global _enabled
    before, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = before


def usable(x: Tensor) -> bool:
    """Whether a block whose WKV resolved to the CPU kernel can take the fused path for its input x
    (the fp32 residual stream; float64 in tests). Under CPU bf16 autocast it can: the projections
    still run in bf16, and the fused ops take their outputs in fp32, the precision the eager path's
    fp32 islands compute in."""
    return _enabled and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and wkv_cpu.available()


def _hi(t: Tensor) -> Tensor:
    """bf16 projection outputs (under autocast) -> fp32; fp32 and float64 as they are."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0)


def _flat(t: Tensor | None, like: Tensor) -> Tensor:
    return _empty(like) if t is None else t.contiguous()


class _ShiftLerp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, mu: Tensor, ln_w: Tensor | None, ln_b: Tensor | None, eps: float,
                bf16_out: tuple[bool, ...], starts: Tensor | None):
        norm = (ln_w, ln_b) if ln_w is not None else (_empty(x), _empty(x))
        st = _empty(x).bool() if starts is None else starts
        *outs, mean, rstd = wkv_cpu.load().shift_lerp_forward(x, mu, *norm, eps, list(bf16_out), st)
        ctx.save_for_backward(x, mu, *norm, mean, rstd, st)
        ctx.has_norm = ln_w is not None
        return tuple(outs)

    @staticmethod
    @once_differentiable  # hand-written C++ backward: no double backward
    def backward(ctx, *grads):
        x, mu, ln_w, ln_b, mean, rstd, st = ctx.saved_tensors
        gs = [_empty(x) if g is None else g.contiguous() for g in grads]  # bf16 for the bf16 outputs
        dx, dmu, dw, db = wkv_cpu.load().shift_lerp_backward(x, mu, gs, ln_w, ln_b, mean, rstd, st)
        return dx, dmu, (dw if ctx.has_norm else None), (db if ctx.has_norm else None), None, None, None


def autocast_bf16(x: Tensor) -> bool:
    """Whether fp32 x is under CPU bf16 autocast (ModelConfig.cpu_bf16): the projections then cast
    their inputs to bf16, so shift_lerp can write those inputs in bf16 itself."""
    return (x.dtype == torch.float32 and x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16)


def shift_lerp(x: Tensor, mu: Tensor, norm: nn.LayerNorm | None = None,
               bf16_out: Sequence[bool] = (), starts: Tensor | None = None) -> tuple[Tensor, ...]:
    """x (B, T, C), mu (K, C) -> K tensors (B, T, C), y + (y_prev - y) * mu[j] with y_prev the
    previous position (zero at t = 0): the token shift and its lerps (K = 6 in the time-mix, for
    the r, w, k, v, a, g projections; 1 in the channel-mix). y = x, or with `norm` (the block's
    pre-norm, an affine nn.LayerNorm over C) y = norm(x), fused: the normalised rows are never
    written out and the backward goes through the norm in the same pass.
    bf16_out (one flag per output, fp32 x only): write those outputs in bf16, rounded as autocast
    would round them before their (bf16) projection, which then casts nothing; their gradients come
    back in bf16 and are read as such. Values are computed in fp32 either way.
    starts (B * T,) bool: where sequences start (y_prev is zero there), for packed sequences
    (`aegir.model.packing`); None: at every t = 0."""
    x = x.contiguous()
    flags = tuple(bool(f) for f in bf16_out)
    st = None if starts is None else starts.reshape(-1).to(torch.bool).contiguous()
    if norm is None:
        return _ShiftLerp.apply(x, mu.to(x.dtype).contiguous(), None, None, 0.0, flags, st)
    if norm.weight is None or norm.bias is None or tuple(norm.normalized_shape) != (x.shape[-1],):
        raise ValueError("shift_lerp: the fused norm must be an affine LayerNorm over the last dimension")
    return _ShiftLerp.apply(x, mu.to(x.dtype).contiguous(), norm.weight.to(x.dtype).contiguous(),
                            norm.bias.to(x.dtype).contiguous(), float(norm.eps), flags, st)


class _ReluSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor):
        out = wkv_cpu.load().relu_square_forward(x)
        ctx.save_for_backward(out)  # the next projection keeps it too: one tensor, not two
        return out

    @staticmethod
    @once_differentiable  # hand-written C++ backward: no double backward
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return wkv_cpu.load().relu_square_backward(grad.contiguous(), out)


class _ReluSquareBf16(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor):
        ctx.save_for_backward(x)  # sqrt(out) is not relu(x) once out is rounded to bf16: keep x
        return wkv_cpu.load().relu_square_bf16_forward(x)

    @staticmethod
    @once_differentiable  # hand-written C++ backward: no double backward
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return wkv_cpu.load().relu_square_bf16_backward(grad.to(torch.bfloat16).contiguous(), x)


def relu_square(x: Tensor) -> Tensor:
    """relu(x)^2 in one pass (and its backward in one). fp32 or float64: keeps only its output for
    the backward (d/dx = 2 sqrt(out)). bf16 (CPU bf16 autocast): computes in fp32 and rounds once,
    equal to eager bf16 relu -> square and their backward, keeping its input."""
    if x.dtype == torch.bfloat16:
        return _ReluSquareBf16.apply(x.contiguous())
    return _ReluSquare.apply(x.contiguous())


def _core_forward(lib, prep_in: tuple, r: Tensor, head_size: int, cu: Tensor) -> tuple[Tensor, ...]:
    """prep, then the WKV: (w, k_wkv, v_wkv, a, b, k', v') each (B, T, C), checkpoints, o (B, T, C)."""
    B, T, C = r.shape
    heads = (B, T, C // head_size, head_size)
    w, kw, vw, a, b, kb, vb = lib.prep_forward(*prep_in, head_size)  # (B, T, C) each
    wkv_in = tuple(t.view(heads) for t in (r, w, kw, vw, a, b))  # (B, T, C) -> (B, T, H, N)
    o, ckpts, _ = lib.forward(*wkv_in, wkv_cpu.SEGMENT, cu)  # (B, T, H, N)
    return w, kw, vw, a, b, kb, vb, ckpts, o.view(B, T, C)  # o: (B, T, H, N) -> (B, T, C)


class _TimeMixCore(torch.autograd.Function):
    @staticmethod
    def forward(ctx, r, k_raw, w_l, a_l, v, v_first, v_l, g, mask, cu_seqlens, w0, a0, v0, k_k, k_a, r_k, ln_w,
                ln_b, eps: float, head_size: int, recompute: bool):
        lib = wkv_cpu.load()
        vf, vl, v0_ = _flat(v_first, r), _flat(v_l, r), _flat(v0, r)
        m = _empty(r).bool() if mask is None else mask.reshape(-1).contiguous()
        cu = _empty(r).long() if cu_seqlens is None else cu_seqlens
        prep_in = (k_raw, w_l, a_l, v, vf, vl, m, w0, a0, v0_, k_k, k_a)
        inner = _core_forward(lib, prep_in, r, head_size, cu)
        w, kw, vw, a, b, kb, vb, ckpts, o = inner
        out = lib.post_forward(o, r, kb, vb, g, ln_w, ln_b, r_k, eps, head_size)
        # recompute (ModelConfig.recompute="wkv"): keep only the inputs; the backward runs prep and
        # the WKV forward again (identical results: every op here is deterministic).
        ctx.save_for_backward(*prep_in, r, g, ln_w, ln_b, r_k, cu, *(() if recompute else inner))
        ctx.eps, ctx.head_size = eps, head_size
        ctx.layer0 = v_first is None
        return out

    @staticmethod
    @once_differentiable  # hand-written C++ backward: no double backward
    def backward(ctx, d_out):
        lib = wkv_cpu.load()
        saved = ctx.saved_tensors
        prep_in, (r, g, ln_w, ln_b, r_k, cu), inner = saved[:12], saved[12:18], saved[18:]
        N = ctx.head_size
        if not inner:
            inner = _core_forward(lib, prep_in, r, N, cu)
        w, kw, vw, a, b, kb, vb, ckpts, o = inner
        B, T, C = r.shape
        heads = (B, T, C // N, N)
        d_o, d_r, d_kb, d_vb, d_g, d_lnw, d_lnb, d_rk = lib.post_backward(
            d_out.contiguous(), o, r, kb, vb, g, ln_w, ln_b, r_k, ctx.eps, N)
        wkv_in = tuple(t.view(heads) for t in (r, w, kw, vw, a, b))  # (B, T, C) -> (B, T, H, N)
        dr_wkv, dlw, dkw, dvw, da, db = lib.backward(*wkv_in, ckpts, d_o.view(heads), _empty(r), wkv_cpu.SEGMENT, cu)
        d_r += dr_wkv.view(B, T, C)  # (B, T, H, N) -> (B, T, C)
        flat = (t.view(B, T, C) for t in (dlw, dkw, dvw, da, db))  # (B, T, H, N) -> (B, T, C)
        dlw, dkw, dvw, da, db = flat
        dk_raw, dw_l, da_l, dv, dvf, dv_l, dw0, da0, dv0, dk_k, dk_a = lib.prep_backward(
            *prep_in, N, dlw, dkw, d_kb, dvw, d_vb, da, db)
        first = ctx.layer0
        return (d_r, dk_raw, dw_l, da_l, dv, None if first else dvf, None if first else dv_l, d_g, None, None,
                dw0, da0, None if first else dv0, dk_k, dk_a, d_rk, d_lnw, d_lnb, None, None, None)


def time_mix_core(r: Tensor, k_raw: Tensor, w_l: Tensor, a_l: Tensor, v: Tensor, v_first: Tensor | None,
                  v_l: Tensor | None, g: Tensor, mask: Tensor | None, w0: Tensor, a0: Tensor, v0: Tensor | None,
                  k_k: Tensor, k_a: Tensor, r_k: Tensor, ln_w: Tensor, ln_b: Tensor, eps: float,
                  head_size: int, recompute: bool = False, cu_seqlens: Tensor | None = None) -> Tensor:
    """From the time-mix projections to the output projection's input, fused.

    Rows (B, T, C): r, k_raw (the key projection), w_l = tanh(xw w1) w2, a_l = (xa a1) a2, v (the
    value projection), g (the gate), fp32/float64 or bf16 (autocast; computed in fp32 here); for
    layers after the first v_first and v_l = (xv v1) v2, else None. mask (B, T) bool or None
    (padding: identity WKV steps). Parameters (C,): w0, a0, v0 (None for the first layer), k_k, k_a,
    ln_w, ln_b; r_k (H, N). Returns (B, T, C) (bf16 when k_raw is bf16, else k_raw's dtype), equal to
    `RWKV7TimeMix`'s eager `_out(wkv(...))` before the output projection. With `recompute` the
    backward recomputes the WKV (and its inputs) instead of keeping them. cu_seqlens (S + 1,) int64:
    the rows of B = 1 are S packed sequences (`aegir.model.packing`), each WKV starting from zero.
    """
    # Under CPU bf16 autocast the projection outputs k_raw, a_l, v, v_first, v_l, g arrive in bf16:
    # they go in as they are (the C++ ops read bf16, compute in fp32, and return their gradients in
    # bf16), and the result comes out in bf16 for the output projection: no casts either way, the same
    # values as casting to fp32 first. r (the WKV reads it) and w_l (the decay's fp32 LoRA) are fp32.
    low = k_raw.dtype == torch.bfloat16

    def proj(t: Tensor | None) -> Tensor | None:
        if t is None:
            return None
        return (t.to(torch.bfloat16) if low else _hi(t)).contiguous()

    m = None if mask is None else mask.to(torch.bool)
    params = [p.reshape(-1).contiguous() for p in (w0, a0)]
    v0_ = None if v0 is None else v0.contiguous()
    k_params = [p.contiguous() for p in (k_k, k_a)]
    cu = None if cu_seqlens is None else cu_seqlens.to(torch.long).contiguous()
    return _TimeMixCore.apply(_hi(r).contiguous(), proj(k_raw), _hi(w_l).contiguous(), proj(a_l), proj(v),
                              proj(v_first), proj(v_l), proj(g), m, cu, *params, v0_, *k_params, r_k.reshape(-1),
                              ln_w.contiguous(), ln_b.contiguous(), float(eps), int(head_size), bool(recompute))
