"""The RWKV-7 WKV operator: a chunked parallel form (default) and a naive recurrent reference.

Per head, with the state M = S^T of shape (K, V) (key rows, value columns):
    M_t = diag(w_t) M_{t-1} + b_t^T (a_t M_{t-1}) + k_t^T v_t,        o_t = r_t M_t
which is RWKV-7's S_t = S_{t-1}(diag(w_t) + a_t^T b_t) + v_t^T k_t, y_t = S_t r_t transposed.
The time-mix calls it with a = -kk and b = kk * iclr (normalised removal key).

All inputs are (B, T, H, N) and `log_w` is the log-decay (<= 0). The math runs in the dtype it is
given; callers pass fp32 (or float64 in tests): the state and the decay exponentials must never
be bf16 (architecture.md pitfall 4).

Padding: positions where `mask` is False become identity steps (log w = 0, k = v = a = b = 0),
so the state passes through them unchanged wherever they are; the output there is meaningless
and must be masked by the caller.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _mask_inputs(log_w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor, mask: Tensor | None):
    if mask is None or bool(mask.all()):  # nothing to mask: skip five full-size multiplies
        return log_w, k, v, a, b
    m = mask[:, :, None, None].to(k.dtype)  # (B, T, 1, 1)
    return log_w * m, k * m, v * m, a * m, b * m


_MASKS: dict[tuple, Tensor] = {}


def _score_mask(c: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(2c, 2c) 0/1 mask for [[A_ak, A_ab], [A_rk, A_rb]]: strictly lower on the top half,
    lower incl. the diagonal on the bottom half (cached per chunk size, dtype and device)."""
    key = (c, dtype, device)
    if key not in _MASKS:
        top = torch.ones(c, c, dtype=dtype, device=device).tril_(-1)
        bot = torch.ones(c, c, dtype=dtype, device=device).tril_()
        _MASKS[key] = torch.cat([torch.cat([top, top], 1), torch.cat([bot, bot], 1)], 0)  # (2c, 2c)
    return _MASKS[key]


def _diag_blocks(N: Tensor, s: int) -> Tensor:
    """The diagonal (s x s) blocks of (..., c, c) as (..., c/s, s, s)."""
    c = N.shape[-1]
    Nv = N.reshape(*N.shape[:-2], c // s, s, c // s, s)  # (..., nb, s, nb, s)
    # diagonal over the two block axes -> (..., s, s, nb) -> (..., nb, s, s)
    return torch.diagonal(Nv, dim1=-4, dim2=-2).permute(*range(N.dim() - 2), -1, -3, -2)


def unit_lower_inverse(N: Tensor, base: int = 16) -> Tensor:
    """(I - N)^{-1} for strictly lower-triangular N (..., c, c), c a power of two, from matmuls only.

    Why not solve_triangular: batched on CPU it runs one small trsm per matrix and its backward
    another, well below the GEMM rate. Here: every diagonal (base x base) block D is nilpotent
    (D^base = 0), so (I - D)^{-1} = (I + D)(I + D^2)(I + D^4)...; then adjacent blocks merge pairwise,
    [[L1, 0], [-N21, L2]]^{-1} = [[T1, 0], [T2 N21 T1, T2]], doubling the block size up to c.
    Exact in exact arithmetic (no series is truncated); tests compare it with the solve in float64.
    """
    c = N.shape[-1]
    s = min(base, c)
    D = _diag_blocks(N, s)  # (..., c/s, s, s)
    T = torch.eye(s, dtype=N.dtype, device=N.device) + D
    P, k = D, 1
    while 2 * k < s:  # T = (I + D)(I + D^2)...(I + D^k'), all powers below s
        P = P @ P
        T = T + T @ P
        k *= 2
    while s < c:
        T1, T2 = T.reshape(*T.shape[:-3], -1, 2, s, s).unbind(-3)  # (..., nb/2, s, s) each
        N21 = _diag_blocks(N, 2 * s)[..., s:, :s]  # (..., nb/2, s, s): below-diagonal block of each pair
        X = T2 @ (N21 @ T1)
        T = torch.cat([torch.cat([T1, torch.zeros_like(T1)], -1), torch.cat([X, T2], -1)], -2)  # (..., nb/2, 2s, 2s)
        s *= 2
    return T.squeeze(-3)  # (..., c, c)


def wkv_naive(r: Tensor, log_w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor,
              mask: Tensor | None = None, return_state: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Reference recurrence, one Python step per position. Returns o (B, T, H, N), and with
    `return_state` also the final state (B, H, K, V) (padding steps leave it unchanged)."""
    log_w, k, v, a, b = _mask_inputs(log_w, k, v, a, b, mask)
    B, T, H, N = r.shape
    M = r.new_zeros(B, H, N, v.shape[-1])  # (B, H, K, V)
    w = log_w.exp()
    outs = []
    for t in range(T):
        u = torch.einsum("bhk,bhkv->bhv", a[:, t], M)  # (B, H, V): a_t M_{t-1}
        M = (w[:, t, :, :, None] * M  # (B, H, K, 1) * (B, H, K, V)
             + b[:, t, :, :, None] * u[:, :, None, :]
             + k[:, t, :, :, None] * v[:, t, :, None, :])
        outs.append(torch.einsum("bhk,bhkv->bhv", r[:, t], M))  # (B, H, V)
    o = torch.stack(outs, dim=1)  # (B, T, H, V)
    return (o, M) if return_state else o


def wkv_step(r: Tensor, log_w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor,
             M: Tensor) -> tuple[Tensor, Tensor]:
    """One recurrent step for step-mode inference: inputs (B, H, N), state M (B, H, K, V).
    Returns (o (B, H, V), the next state); the same update as one iteration of `wkv_naive`."""
    u = torch.einsum("bhk,bhkv->bhv", a, M)  # (B, H, V): a_t M_{t-1}
    M = log_w.exp()[..., None] * M + b[..., None] * u[:, :, None, :] + k[..., None] * v[:, :, None, :]  # (B, H, K, V)
    return torch.einsum("bhk,bhkv->bhv", r, M), M  # (B, H, V)


def wkv_chunked(r: Tensor, log_w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor,
                mask: Tensor | None = None, chunk: int = 64, return_state: bool = False
                ) -> Tensor | tuple[Tensor, Tensor]:
    """Chunked parallel form: all chunk-local (c x c) work is batched over chunks; only a
    (K x K)-by-(K x V) product per chunk is sequential (T/c steps).

    Within a chunk, with G = inclusive cumsum of log w and G- = G - log w (exclusive):
        u = U0 + W M0,  o = O0 + Qe M0,  M_end = P M0 + Q
    where (I - A_ab)[U0 | W] = [A_ak V | a e^{G-}] is a unit-lower-triangular solve. The decay
    factors are centred on the chunk midpoint (`ref`) so e^{+-(G-ref)} stays within e^{+-c/2*0.61}
    for c = 64 in fp32; products of a pair (t, s) then equal e^{G_t - G_s} up to rounding.
    Derivation: architecture.md section 2; tests check it against `wkv_naive` to 1e-10 in float64.
    With `return_state`, also returns the state after the last position (B, H, K, V): padding and
    the ragged tail are identity steps, so it is each row's state after its last valid position.
    """
    log_w, k, v, a, b = _mask_inputs(log_w, k, v, a, b, mask)
    B, T, H, K = r.shape
    V = v.shape[-1]
    c = max(1, min(chunk, T))
    n = -(-T // c)
    pad = n * c - T

    def prep(x: Tensor) -> Tensor:
        x = x.transpose(1, 2)  # (B, H, T, N)
        if pad:
            # Ragged tail: identity steps (zeros for log w, k, v, a, b; r is irrelevant there).
            x = torch.nn.functional.pad(x, (0, 0, 0, pad))
        return x.reshape(B, H, n, c, x.shape[-1])  # (B, H, n, c, N)

    r, log_w, k, v, a, b = (prep(x) for x in (r, log_w, k, v, a, b))
    G = log_w.cumsum(dim=-2)  # (B, H, n, c, K) inclusive
    ref = G[..., c // 2 : c // 2 + 1, :]  # (B, H, n, 1, K)
    Gr = G - ref
    r_s = r * Gr.exp()  # r e^{G - ref}
    a_s = a * (Gr - log_w).exp()  # a e^{G- - ref}
    inv = (-Gr).exp()  # e^{ref - G}
    k_s = k * inv
    b_s = b * inv

    # The four chunk-local score matrices come from ONE (2c x K)(K x 2c) product per chunk:
    #   [a_s; r_s] [k_s; b_s]^T = [[A_ak, A_ab], [A_rk, A_rb]]
    # masked strictly lower for the a rows (u_t sees s < t) and lower incl. the diagonal for the
    # r rows (o_t sees s <= t). Fewer, larger batched matmuls run much closer to the GEMM rate on
    # CPU than eleven separate (c x c) ones.
    X = torch.cat([a_s, r_s], dim=-2)  # (B, H, n, 2c, K)
    Y = torch.cat([k_s, b_s], dim=-2)  # (B, H, n, 2c, K)
    S = (X @ Y.transpose(-1, -2)) * _score_mask(c, r.dtype, r.device)  # (B, H, n, 2c, 2c)
    # split, not indexing: the backward of a split is one cat, while each index op's backward
    # zero-fills a full-size (2c x 2c) gradient buffer.
    A_a, A_r = S.split(c, dim=-2)  # (B, H, n, c, 2c) each: [A_ak | A_ab], [A_rk | A_rb]
    A_ak, A_ab = A_a.split(c, dim=-1)  # (B, H, n, c, c) each

    e_ref = ref.exp()  # (B, H, n, 1, K): small broadcasts instead of full-size exps below
    rhs = torch.cat([A_ak @ v, a_s * e_ref], dim=-1)  # (B, H, n, c, V + K); a_s e^{ref} = a e^{G-}
    if c >= 16 and c & (c - 1) == 0:  # power-of-two chunks (the default 64): matmuls only
        sol = unit_lower_inverse(A_ab) @ rhs  # (B, H, n, c, V + K): [U0 | W]
    else:  # short sequences give odd chunk lengths
        eye = torch.eye(c, dtype=r.dtype, device=r.device)
        sol = torch.linalg.solve_triangular(eye - A_ab, rhs, upper=False, unitriangular=True)  # [U0 | W]

    # Z = [[v, 0], [U0, W]] (2c x (V + K)) serves both remaining products:
    #   [A_rk | A_rb] Z = [A_rk v + A_rb U0 | A_rb W]   -> O0 and the M0-coefficient of o
    #   [k_d | b_d]^T Z = [k_d^T v + b_d^T U0 | b_d^T W] -> Q and P - diag(e^{Gc})
    # (the zero block costs a quarter of these two products; still fewer passes than four calls).
    Z = torch.cat([torch.cat([v, torch.zeros_like(v[..., :1]).expand(*v.shape[:-1], K)], dim=-1), sol], dim=-2)  # (B, H, n, 2c, V + K)
    OQ = A_r @ Z  # (B, H, n, c, V + K)
    O0, Qe = OQ.split([V, K], dim=-1)  # (B, H, n, c, V), (B, H, n, c, K)
    Qe = r_s * e_ref + Qe  # r_s e^{ref} = r e^{G}
    Gc = G[..., -1:, :]  # (B, H, n, 1, K) decay over the whole chunk
    e_end = (Gc - ref).exp()  # (B, H, n, 1, K)
    KB = (Y * e_end).transpose(-1, -2)  # (B, H, n, K, 2c): [k e^{Gc-G} | b e^{Gc-G}]
    PQ = KB @ Z  # (B, H, n, K, V + K)
    Q, P = PQ.split([V, K], dim=-1)  # (B, H, n, K, V), (B, H, n, K, K)
    P = P + torch.diag_embed(Gc.squeeze(-2).exp())

    # Sequential part: one (K x K) @ (K x V) per chunk, on (B*H)-batched 3-D views.
    O0, Qe = O0.reshape(B * H, n, c, V), Qe.reshape(B * H, n, c, K)  # (BH, n, c, V), (BH, n, c, K)
    P, Q = P.reshape(B * H, n, K, K), Q.reshape(B * H, n, K, V)  # (BH, n, K, K), (BH, n, K, V)
    # unbind, not O0[:, i]: the backward of n separate index ops would zero-fill n full-size
    # gradient buffers; unbind's backward is a single stack.
    M = r.new_zeros(B * H, K, V)  # (BH, K, V)
    outs = []
    for O0_i, Qe_i, P_i, Q_i in zip(O0.unbind(1), Qe.unbind(1), P.unbind(1), Q.unbind(1)):  # n x (BH, ...)
        outs.append(torch.baddbmm(O0_i, Qe_i, M))  # (BH, c, V)
        M = torch.baddbmm(Q_i, P_i, M)  # (BH, K, V)
    o = torch.stack(outs, dim=1).reshape(B, H, n * c, V)[:, :, :T]  # (BH, n, c, V) -> (B, H, T, V)
    if return_state:
        return o.transpose(1, 2), M.reshape(B, H, K, V)  # (B, T, H, V), (BH, K, V) -> (B, H, K, V)
    return o.transpose(1, 2)  # (B, T, H, V)


def fla_available() -> bool:
    try:
        import fla.ops.rwkv7  # noqa: F401
    except Exception:  # ImportError, or triton failing to find a driver
        return False
    return True


def wkv_fla(r: Tensor, log_w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor,
            mask: Tensor | None = None, return_state: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """fla's Triton chunk kernel (CUDA only; opt-in with wkv_impl="fla"). Untested here: no GPU
    was available while writing it. fla takes the same (r, log w, k, v, a, b) convention."""
    if not r.is_cuda:
        raise ValueError("wkv_impl='fla' needs CUDA tensors; use 'chunked' on CPU")
    from fla.ops.rwkv7 import chunk_rwkv7

    log_w, k, v, a, b = _mask_inputs(log_w, k, v, a, b, mask)
    o, state = chunk_rwkv7(r=r, w=log_w, k=k, v=v, a=a, b=b, scale=1.0, initial_state=None,
                           output_final_state=return_state)
    # fla documents its final state as [N, H, K, V]: the layout of this module's M (untested here).
    return (o, state) if return_state else o  # (B, T, H, V), (B, H, K, V)


def wkv_kernel(r: Tensor, log_w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor,
               mask: Tensor | None = None, return_state: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """The recurrence as a compiled C++ CPU kernel (`aegir.kernels.wkv_cpu`): forward and a
    hand-written backward, same convention and padding semantics as `wkv_naive`."""
    from aegir.kernels.wkv_cpu import wkv_cpu

    log_w, k, v, a, b = _mask_inputs(log_w, k, v, a, b, mask)
    return wkv_cpu(r, log_w, k, v, a, b, return_state=return_state)


def resolve_impl(impl: str, device: torch.device | str) -> str:
    """"auto" -> the CPU kernel for CPU tensors where it builds, else the chunked form (fla stays
    opt-in on CUDA: it has not been run here)."""
    if impl != "auto":
        return impl
    if torch.device(device).type == "cpu":
        from aegir.kernels import wkv_cpu

        if wkv_cpu.available():
            return "kernel"
    return "chunked"


def describe_impl(impl: str, device: torch.device | str) -> str:
    """One line for run logs: which WKV path `impl` resolves to on `device`, and why."""
    resolved = resolve_impl(impl, device)
    if resolved == "kernel":
        return "compiled CPU kernel"
    if impl == "auto" and torch.device(device).type == "cpu":
        from aegir.kernels import wkv_cpu

        return f"chunked PyTorch form (CPU kernel unavailable: {wkv_cpu.unavailable_reason()})"
    return {"chunked": "chunked PyTorch form", "naive": "naive recurrence (reference; slow)",
            "fla": "fla Triton kernel"}.get(resolved, resolved)


def wkv(r: Tensor, log_w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor,
        mask: Tensor | None = None, impl: str = "auto", chunk: int = 64,
        return_state: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    impl = resolve_impl(impl, r.device)
    if impl == "kernel":
        return wkv_kernel(r, log_w, k, v, a, b, mask, return_state)
    if impl == "chunked":
        return wkv_chunked(r, log_w, k, v, a, b, mask, chunk, return_state)
    if impl == "naive":
        return wkv_naive(r, log_w, k, v, a, b, mask, return_state)
    if impl == "fla":
        return wkv_fla(r, log_w, k, v, a, b, mask, return_state)
    raise ValueError(f"unknown wkv impl {impl!r}")
