"""RWKV-7 ("x070") blocks: time-mix, channel-mix, block, and a stack of blocks.

One `w` in an arch_layout = `RWKV7Block` = LayerNorm -> time-mix -> residual, LayerNorm ->
channel-mix (4x hidden) -> residual. Written from the equations in architecture.md section 2.

Deviations from the reference (BlinkDL/RWKV-LM train_temp):
- head size is configurable (the reference asserts 64); `nano` uses 32 so a 96-wide stage works;
- `v_first` (value residual) is per stack, not per model: H-Net stacks differ in length and width;
- there is no `ln0` per stack; AegirModel applies one LayerNorm after the embedding;
- padded positions are identity steps of the WKV state (see wkv.py), so inner H-Net stages can be
  right-padded to the batch's longest chunk sequence; a stack packs a padded batch into one row of
  its valid positions instead (aegir.model.packing), so its projections run no padding.
Precision: the decay (log w) and the WKV op always run in fp32 with autocast off; on CUDA the
projections run under bf16 autocast and the residual stream stays fp32.
Fused path: where the WKV runs on the compiled CPU kernel, the blocks' elementwise work (pre-norm,
token shift and lerps, everything between the time-mix projections and its output projection, relu²)
runs as fused C++ ops (aegir.kernels.tmix_cpu); the eager code in this file is their reference
(float64 tests) and runs everywhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from aegir.model import packing
from aegir.model.packing import Packing, min_padding
from aegir.model.wkv import resolve_impl, wkv, wkv_chunked, wkv_naive, wkv_step  # noqa: F401  (re-exported)

LOG_W_SCALE = -math.exp(-0.5)  # log w = -e^{-0.5} * sigmoid(.) in (-0.6065, 0): bounded decay


def _orthogonal_(w: Tensor, gain: float = 1.0) -> None:
    if w.is_meta:  # parameter counting builds on the meta device: no values to initialise
        return
    nn.init.orthogonal_(w, gain=gain)


def _hi(x: Tensor) -> Tensor:
    """fp32, or float64 when the model runs in float64 (equivalence tests); never bf16/fp16."""
    return x if x.dtype == torch.float64 else x.float()


def _fp32_off(x: Tensor):
    """An autocast-off context on x's device type (decay, WKV and router math stay fp32)."""
    return torch.autocast(device_type=x.device.type, enabled=False)


class RWKV7TimeMix(nn.Module):
    def __init__(self, width: int, head_size: int, layer: int, n_layers: int, lora: dict[str, int],
                 wkv_impl: str = "auto", wkv_chunk: int = 64, wkv_recompute: bool = False) -> None:
        super().__init__()
        C, N = width, head_size
        self.wkv_recompute = wkv_recompute
        self.width, self.head_size, self.n_heads = C, N, C // N
        self.layer = layer  # index within its stack: layer 0 defines v_first
        self.wkv_impl, self.wkv_chunk = wkv_impl, wkv_chunk
        # Static token-shift lerps for r, w, k, v, a, g (rows in that order).
        self.mu = nn.Parameter(torch.empty(6, C))
        self.w0 = nn.Parameter(torch.empty(C))
        self.w1 = nn.Parameter(torch.empty(C, lora["w"]))
        self.w2 = nn.Parameter(torch.empty(lora["w"], C))
        self.a0 = nn.Parameter(torch.empty(C))
        self.a1 = nn.Parameter(torch.empty(C, lora["a"]))
        self.a2 = nn.Parameter(torch.empty(lora["a"], C))
        if layer > 0:  # value residual towards the stack's first-layer v
            self.v0 = nn.Parameter(torch.empty(C))
            self.v1 = nn.Parameter(torch.empty(C, lora["v"]))
            self.v2 = nn.Parameter(torch.empty(lora["v"], C))
        self.g1 = nn.Parameter(torch.empty(C, lora["g"]))
        self.g2 = nn.Parameter(torch.empty(lora["g"], C))
        self.k_k = nn.Parameter(torch.empty(C))
        self.k_a = nn.Parameter(torch.empty(C))
        self.r_k = nn.Parameter(torch.empty(self.n_heads, N))
        self.receptance = nn.Linear(C, C, bias=False)
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)
        # eps = 1e-5 * head_size, as the reference (64e-5 for N = 64); do not "fix" it to 1e-5.
        self.ln_x = nn.GroupNorm(self.n_heads, C, eps=1e-5 * N)
        self._n_layers = n_layers
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        if self.w0.is_meta:
            return
        C, N, L, l = self.width, self.head_size, self._n_layers, self.layer
        r01 = l / (L - 1) if L > 1 else 0.0
        r10 = 1.0 - l / L
        i = torch.arange(C, dtype=torch.float64)
        ddd = i / C
        expo = torch.tensor([0.2, 0.9, 0.7, 0.7, 0.9, 0.2], dtype=torch.float64) * r10  # r w k v a g
        self.mu.copy_(1.0 - ddd[None, :] ** expo[:, None])
        lin = i / (C - 1) - 0.5
        zig = ((i % N) - (N - 1) / 2) / ((N - 1) / 2)
        zig = zig * zig.abs()
        decay = -6 + 6 * (i / (C - 1)) ** (1 + r01**0.3)
        self.w0.copy_(decay + 0.5 + 2.5 * zig)
        self.a0.copy_(-0.19 + 0.3 * zig + 0.4 * lin)
        self.k_k.copy_(0.71 - 0.1 * lin)
        self.k_a.fill_(1.02)
        self.r_k.fill_(-0.04)
        for first, second in ((self.w1, self.w2), (self.a1, self.a2), (self.g1, self.g2)):
            first.zero_()
            _orthogonal_(second, 0.1)
        if self.layer > 0:
            self.v0.copy_(0.73 - 0.4 * lin)
            self.v1.zero_()
            _orthogonal_(self.v2, 0.1)
        _orthogonal_(self.receptance.weight)
        _orthogonal_(self.key.weight, 0.1)
        _orthogonal_(self.value.weight)
        self.output.weight.zero_()  # every block starts as the identity
        self.ln_x.weight.fill_(((l + 1) / L) ** 0.7)
        self.ln_x.bias.zero_()

    def _mix(self, x: Tensor, xx: Tensor, v_first: Tensor | None) -> tuple["_Mixed", Tensor]:
        """Projections of (..., C) positions, x the input and xx = previous input - x (token shift).
        Shared by the parallel forward (..., = B, T) and step mode (..., = B)."""
        H, N = self.n_heads, self.head_size
        mu = self.mu.to(x.dtype)
        xr, xw, xk, xv, xa, xg = (x + xx * mu[j] for j in range(6))  # (measured faster than addcmul here)
        r = self.receptance(xr)
        k = self.key(xk)
        v = self.value(xv)
        with _fp32_off(x):
            # Decay in fp32: the chunk factors exponentiate cumulative sums of log w.
            w_hat = self.w0 + torch.tanh(_hi(xw) @ self.w1) @ self.w2
            log_w = LOG_W_SCALE * torch.sigmoid(w_hat)  # (..., C)
        if self.layer == 0:
            v_first = v
        else:
            if v_first is None:
                raise ValueError("RWKV7TimeMix: layers after the first need the stack's v_first")
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        iclr = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)  # in-context learning rate a
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        kk = F.normalize((k * self.k_k).unflatten(-1, (H, N)), dim=-1, eps=1e-12)  # (..., C) -> (..., H, N)
        k = k * (1 + (iclr - 1) * self.k_a)
        return _Mixed(r=r, log_w=log_w, k=k, v=v, kk=kk, iclr=iclr, g=g), v_first

    def _wkv_inputs(self, m: "_Mixed") -> tuple[Tensor, ...]:
        """(r, log w, k, v, a, b) per head in fp32 (float64 in tests), each (..., C) -> (..., H, N);
        call with autocast off."""
        heads = (self.n_heads, self.head_size)
        r32, k32, v32 = (_hi(t).unflatten(-1, heads) for t in (m.r, m.k, m.v))  # (..., H, N)
        kk32, iclr32 = _hi(m.kk), _hi(m.iclr).unflatten(-1, heads)  # (..., H, N)
        return r32, m.log_w.unflatten(-1, heads), k32, v32, -kk32, kk32 * iclr32

    def _out(self, y: Tensor, r32: Tensor, k32: Tensor, v32: Tensor, g: Tensor) -> Tensor:
        """WKV output y (..., H, N) -> per-head GroupNorm + bonus r.(r_k k) v -> gated output (..., C)."""
        H, N = self.n_heads, self.head_size
        with _fp32_off(y):
            # GroupNorm with one group per head, written as a layer norm over each head's N channels
            # plus the per-channel affine: the same function (equal to 1e-15 in float64) and its
            # backward is ~1.6x faster on CPU than native_group_norm's. ln_x keeps the parameters.
            y = F.layer_norm(y, (N,), eps=self.ln_x.eps)  # (..., H, N)
            y = torch.addcmul(self.ln_x.bias.view(H, N), y, self.ln_x.weight.view(H, N))  # (..., H, N)
            bonus = (r32 * k32 * self.r_k).sum(-1, keepdim=True) * v32  # (..., H, N)
            y = (y + bonus).flatten(-2)  # (..., H, N) -> (..., C)
        return self.output(y.to(g.dtype) * g)

    def forward(self, x: Tensor, v_first: Tensor | None, mask: Tensor | None, seqs: Packing | None = None
                ) -> tuple[Tensor, Tensor]:
        out, v_first, _ = self.run(x, v_first, mask, seqs=seqs)
        return out, v_first

    def run(self, x: Tensor, v_first: Tensor | None, mask: Tensor | None, want_state: bool = False,
            norm: nn.LayerNorm | None = None, seqs: Packing | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """The parallel forward pass of norm(x) (x itself without a norm: the block passes its
        pre-norm so that the fused path can fold it into the token shift); with `want_state` also
        each row's WKV state after its last valid position (B, H, K, V), for step mode (prefill).
        With `seqs`, x (1, N, C) holds packed sequences (mask is then None; no step state)."""
        if seqs is not None and (mask is not None or want_state or x.shape[0] != 1):
            raise ValueError("packed sequences need x (1, N, C), no mask and no step state")
        if not want_state and _fused_ok(self.wkv_impl, x):
            out, v_first = self._run_fused(x, v_first, mask, norm, seqs)
            return out, v_first, None
        if norm is not None:
            x = norm(x)
        xx = _prev(x, seqs) - x  # (B, T, C): previous position minus current (zero at each start)
        m, v_first = self._mix(x, xx, v_first)
        state = None
        with _fp32_off(x):
            args = self._wkv_inputs(m)  # (B, T, H, N) each
            run = _wkv_packed if seqs is not None else wkv
            extra = (seqs,) if seqs is not None else (mask,)
            if want_state:
                y, state = wkv(*args, mask, impl=self.wkv_impl, chunk=self.wkv_chunk, return_state=True)
            elif self.wkv_recompute and torch.is_grad_enabled():
                y = checkpoint(run, *args, *extra, impl=self.wkv_impl, chunk=self.wkv_chunk, use_reentrant=False)
            else:
                y = run(*args, *extra, impl=self.wkv_impl, chunk=self.wkv_chunk)  # (B, T, H, N)
        return self._out(y, args[0], args[2], args[3], m.g), v_first, state

    def _run_fused(self, x: Tensor, v_first: Tensor | None, mask: Tensor | None, norm: nn.LayerNorm | None,
                   seqs: Packing | None = None) -> tuple[Tensor, Tensor]:
        """`run` with the elementwise work in fused CPU ops: the same function as the eager path
        (float64 tests), the GEMMs unchanged. v_first at layer 0 is the value projection itself."""
        from aegir.kernels.tmix_cpu import autocast_bf16, shift_lerp, time_mix_core

        # Under CPU bf16 autocast the lerps feeding bf16 projections are written in bf16; xw stays
        # fp32 (the decay's LoRA runs in fp32).
        low = (True, False, True, True, True, True) if autocast_bf16(x) else ()  # r w k v a g
        starts = None if seqs is None else seqs.starts
        xr, xw, xk, xv, xa, xg = shift_lerp(x, self.mu, norm, low, starts)  # (B, T, C) each, from norm(x)
        r, k, v = self.receptance(xr), self.key(xk), self.value(xv)  # bf16 under autocast
        with _fp32_off(x):  # the decay's LoRA in fp32, as on the eager path
            w_l = torch.tanh(_hi(xw) @ self.w1) @ self.w2
        a_l = (xa @ self.a1) @ self.a2
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        if self.layer == 0:
            v_first, vf, v_l, v0 = v, None, None, None
        else:
            if v_first is None:
                raise ValueError("RWKV7TimeMix: layers after the first need the stack's v_first")
            vf, v_l, v0 = v_first, (xv @ self.v1) @ self.v2, self.v0
        y = time_mix_core(r, k, w_l, a_l, v, vf, v_l, g, mask, self.w0, self.a0, v0, self.k_k, self.k_a, self.r_k,
                          self.ln_x.weight, self.ln_x.bias, self.ln_x.eps, self.head_size,
                          recompute=self.wkv_recompute and torch.is_grad_enabled(),
                          cu_seqlens=None if seqs is None else seqs.cu_seqlens)  # (B, T, C)
        return self.output(y), v_first

    def step(self, x: Tensor, v_first: Tensor | None, x_prev: Tensor, state: Tensor
             ) -> tuple[Tensor, Tensor, Tensor]:
        """One position per row: x, x_prev (B, C), WKV state (B, H, K, V) -> (output, v_first, state)."""
        m, v_first = self._mix(x, x_prev - x, v_first)
        with _fp32_off(x):
            r32, log_w, k32, v32, a32, b32 = self._wkv_inputs(m)  # (B, H, N) each
            y, state = wkv_step(r32, log_w, k32, v32, a32, b32, state)  # (B, H, V), (B, H, K, V)
        return self._out(y, r32, k32, v32, m.g), v_first, state


def _fused_ok(wkv_impl: str, x: Tensor) -> bool:
    """Blocks take the fused CPU ops (aegir.kernels.tmix_cpu) where their WKV runs on the CPU
    kernel (same extension) and x is fp32/float64 (also under CPU bf16 autocast); elsewhere the
    eager code here, which is the reference, runs."""
    if resolve_impl(wkv_impl, x.device) != "kernel":
        return False
    from aegir.kernels import tmix_cpu

    return tmix_cpu.usable(x)


def _prev(x: Tensor, seqs: Packing | None) -> Tensor:
    """The token shift's input: each position's predecessor in its sequence, zero at the start."""
    if seqs is not None:
        return seqs.shift(x)  # (1, N, C)
    return F.pad(x, (0, 0, 1, -1))  # (B, T, C): previous position (zero at t = 0)


def _wkv_packed(r: Tensor, log_w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor, seqs: Packing,
                impl: str, chunk: int) -> Tensor:
    """The WKV of packed sequences (1, N, H, N) on the eager path: the CPU kernel takes them as they
    are (cu_seqlens); the other forms (chunked, naive, fla) run them padded, (B, T, H, N) with the
    batch's mask, and the output is packed again. Only the WKV sees padding there; the projections
    around it run packed."""
    if resolve_impl(impl, r.device) == "kernel":
        from aegir.kernels.wkv_cpu import wkv_cpu

        return wkv_cpu(r, log_w, k, v, a, b, cu_seqlens=seqs.cu_seqlens)  # (1, N, H, N)
    padded = [seqs.unpack(t) for t in (r, log_w, k, v, a, b)]  # (1, N, H, N) -> (B, T, H, N)
    return seqs.pack(wkv(*padded, seqs.mask, impl=impl, chunk=chunk))  # (B, T, H, N) -> (1, N, H, N)


def _at(x: Tensor, pos: Tensor) -> Tensor:
    """x (B, T, C) at one position per row, pos (B,) -> (B, C)."""
    return x[torch.arange(x.shape[0], device=x.device), pos]  # gather -> (B, C)


@dataclass
class _Mixed:
    """The time-mix projections of some positions, each (..., C) except kk (..., H, N)."""

    r: Tensor
    log_w: Tensor  # fp32
    k: Tensor
    v: Tensor
    kk: Tensor  # normalised removal key
    iclr: Tensor  # in-context learning rate a
    g: Tensor  # output gate


@dataclass
class BlockState:
    """Step-mode state of one block: the token-shift inputs and the WKV state."""

    att_x: Tensor  # (B, C) previous time-mix input (after ln1); zero before the first position
    wkv: Tensor  # (B, H, K, V) fp32 (float64 in tests)
    ffn_x: Tensor  # (B, C) previous channel-mix input (after ln2)


class _ReluSquare(torch.autograd.Function):
    """relu(x)^2 saving only relu(x): autograd's relu -> square keeps two full-size (B, T, 4C)
    tensors and runs four elementwise passes in backward; this keeps one and runs two."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        r = torch.relu(x)
        ctx.save_for_backward(r)
        return r * r

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (r,) = ctx.saved_tensors
        return grad * (r + r)  # d/dx relu(x)^2 = 2 relu(x)


def relu_square(x: Tensor) -> Tensor:
    return _ReluSquare.apply(x)


class RWKV7ChannelMix(nn.Module):
    def __init__(self, width: int, layer: int, n_layers: int, ffn_mult: int = 4, wkv_impl: str = "auto") -> None:
        super().__init__()
        self.width, self.layer, self._n_layers = width, layer, n_layers
        self.wkv_impl = wkv_impl  # the block's WKV path: the CPU kernel's extension also fuses this module
        self.mu_k = nn.Parameter(torch.empty(width))
        self.key = nn.Linear(width, ffn_mult * width, bias=False)
        self.value = nn.Linear(ffn_mult * width, width, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        if self.mu_k.is_meta:
            return
        C = self.width
        r10 = 1.0 - self.layer / self._n_layers
        i = torch.arange(C, dtype=torch.float64)
        self.mu_k.copy_(1.0 - (i / C) ** (r10**4))
        nn.init.uniform_(self.key.weight, -0.5 / C**0.5, 0.5 / C**0.5)
        self.value.weight.zero_()

    def forward(self, x: Tensor, norm: nn.LayerNorm | None = None, seqs: Packing | None = None) -> Tensor:
        """The channel-mix of norm(x) (x without a norm; see RWKV7TimeMix.run); with `seqs`, of
        packed sequences x (1, N, C)."""
        if _fused_ok(self.wkv_impl, x):
            from aegir.kernels import tmix_cpu

            low = (True,) if tmix_cpu.autocast_bf16(x) else ()  # the key projection's input, in bf16
            starts = None if seqs is None else seqs.starts
            (xk,) = tmix_cpu.shift_lerp(x, self.mu_k.view(1, -1), norm, low, starts)  # (B, T, C), from norm(x)
            h = self.key(xk)  # (B, T, 4C); bf16 under autocast
            return self.value(tmix_cpu.relu_square(h))  # fp32, or bf16 under autocast
        if norm is not None:
            x = norm(x)
        xx = _prev(x, seqs) - x  # (B, T, C) token shift
        return self._ffn(x, xx)

    def _ffn(self, x: Tensor, xx: Tensor) -> Tensor:
        h = relu_square(self.key(x + xx * self.mu_k.to(x.dtype)))  # (..., 4C)
        return self.value(h)

    def step(self, x: Tensor, x_prev: Tensor) -> Tensor:
        """One position per row: x, x_prev (B, C)."""
        return self._ffn(x, x_prev - x)


class RWKV7Block(nn.Module):
    """Pre-norm block; the residual stream is kept in the dtype it arrives in (fp32)."""

    def __init__(self, width: int, head_size: int, layer: int, n_layers: int, lora: dict[str, int],
                 ffn_mult: int = 4, eps: float = 1e-5, wkv_impl: str = "auto", wkv_chunk: int = 64,
                 wkv_recompute: bool = False) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width, eps=eps)
        self.ln2 = nn.LayerNorm(width, eps=eps)
        self.att = RWKV7TimeMix(width, head_size, layer, n_layers, lora, wkv_impl, wkv_chunk, wkv_recompute)
        self.ffn = RWKV7ChannelMix(width, layer, n_layers, ffn_mult, wkv_impl)

    def forward(self, x: Tensor, v_first: Tensor | None, mask: Tensor | None, seqs: Packing | None = None
                ) -> tuple[Tensor, Tensor]:
        x, v_first, _ = self.run(x, v_first, mask, seqs=seqs)
        return x, v_first

    def run(self, x: Tensor, v_first: Tensor | None, mask: Tensor | None, last: Tensor | None = None,
            seqs: Packing | None = None) -> tuple[Tensor, Tensor, BlockState | None]:
        """The parallel forward pass; given `last` (B,), each row's last valid position, also the
        step-mode state there (prefill). With `seqs`, x (1, N, C) holds packed sequences."""
        if last is None:
            # The mixers apply the pre-norms themselves: on the fused CPU path the norm runs inside
            # the token-shift op (no normalised copy of the stream is written, one backward pass).
            dx, v_first, _ = self.att.run(x, v_first, mask, norm=self.ln1, seqs=seqs)
            x = x + dx
            return x + self.ffn(x, norm=self.ln2, seqs=seqs), v_first, None
        xa = self.ln1(x)
        dx, v_first, wkv_state = self.att.run(xa, v_first, mask, want_state=True)
        x = x + dx
        xf = self.ln2(x)
        x = x + self.ffn(xf)
        return x, v_first, BlockState(att_x=_at(xa, last), wkv=wkv_state, ffn_x=_at(xf, last))

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> BlockState:
        C, H, N = self.att.width, self.att.n_heads, self.att.head_size
        zeros = torch.zeros(batch, C, device=device, dtype=dtype)
        wkv_dtype = torch.float64 if dtype == torch.float64 else torch.float32
        return BlockState(att_x=zeros, wkv=torch.zeros(batch, H, N, N, device=device, dtype=wkv_dtype), ffn_x=zeros)

    def step(self, x: Tensor, v_first: Tensor | None, state: BlockState) -> tuple[Tensor, Tensor, BlockState]:
        """x (B, C), one position per row -> (x, v_first, next state); equals `forward` position by position."""
        xa = self.ln1(x)
        dx, v_first, wkv_state = self.att.step(xa, v_first, state.att_x, state.wkv)
        x = x + dx
        xf = self.ln2(x)
        x = x + self.ffn.step(xf, state.ffn_x)
        return x, v_first, BlockState(att_x=xa, wkv=wkv_state, ffn_x=xf)


class RWKV7Stack(nn.Module):
    """A run of blocks ending in a LayerNorm (H-Net's Isotropic: every stack ends with a norm).
    Layer indices for init restart at 0 in every stack, and so does v_first."""

    def __init__(self, width: int, n_layers: int, head_size: int, lora: dict[str, int], ffn_mult: int = 4,
                 eps: float = 1e-5, wkv_impl: str = "auto", wkv_chunk: int = 64, recompute: str = "none") -> None:
        super().__init__()
        self.recompute_blocks = recompute == "block"
        # Pack padded batches (aegir.model.packing): None = where measured to pay, True = always
        # (from 3% padding), False = never. Tests and benchmarks compare True with False.
        self.packs: bool | None = None
        self.blocks = nn.ModuleList(
            RWKV7Block(width, head_size, l, n_layers, lora, ffn_mult, eps, wkv_impl, wkv_chunk, recompute == "wkv")
            for l in range(n_layers)
        )
        self.norm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if mask is not None and bool(mask.all()):
            mask = None  # no padding: the WKV can skip masking (checked once per stack)
        if mask is not None and self.packs is not False and packing.ENABLED:
            least = min_padding(resolve_impl(self.blocks[0].att.wkv_impl, x.device), x.device, self.packs is True)
            seqs = None if least is None else Packing.of(mask, least)
            if seqs is not None:  # right padding, enough of it: run the valid positions only, zero on padding
                return seqs.unpack(self._run(seqs.pack(x), None, seqs))  # (B, T, C) -> (1, N, C) -> (B, T, C)
        return self._run(x, mask, None)

    def _run(self, x: Tensor, mask: Tensor | None, seqs: Packing | None) -> Tensor:
        v_first = None
        for blk in self.blocks:
            if self.recompute_blocks and torch.is_grad_enabled():
                x, v_first = checkpoint(blk, x, v_first, mask, seqs, use_reentrant=False)
            else:
                x, v_first = blk(x, v_first, mask, seqs)
        return self.norm(x)

    def prefill(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, list[BlockState]]:
        """`forward`, plus every block's step-mode state at each row's last valid position."""
        last = (mask.long().sum(1) - 1 if mask is not None  # (B,)
                else torch.full((x.shape[0],), x.shape[1] - 1, dtype=torch.long, device=x.device))
        if mask is not None and bool(mask.all()):
            mask = None
        v_first, states = None, []
        for blk in self.blocks:
            x, v_first, st = blk.run(x, v_first, mask, last)
            states.append(st)
        return self.norm(x), states

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> list[BlockState]:
        return [blk.initial_state(batch, device, dtype) for blk in self.blocks]

    def step(self, x: Tensor, states: list[BlockState]) -> tuple[Tensor, list[BlockState]]:
        """x (B, C), one position per row, through every block and the final norm."""
        v_first, new = None, []
        for blk, st in zip(self.blocks, states):
            x, v_first, st = blk.step(x, v_first, st)
            new.append(st)
        return self.norm(x), new
