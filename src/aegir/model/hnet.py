"""H-Net dynamic chunking around RWKV-7 stacks: router, chunk, parallel dechunk, STE, ratio loss,
and the nested stages built from `arch_layout` (grammar: aegir.config / docs/architecture.md).

One non-innermost stage s (width d_s), as in goombalab/hnet (architecture.md section 1):
    h   = encoder(x)
    res = residual_proj(h)                   fp32, weight zero-initialised
    p,b = router(h)                          fp32 cosine of adjacent states; p_0 = 1; b = p > 0.5
    hc  = chunk(h, b) ++ pad                 keep boundary positions; widen with a learned pad
    z   = inner(hc)[..., :d_s]               recursive; truncate back to d_s
    u   = dechunk(z, b, p)                   EMA over chunks, computed in parallel (segment sums)
    y   = decoder(u * STE(c) + res)          c = max(p, 1 - p); STE is 1 forward, identity backward

Deviations: batches are right-padded, so inner sequences are padded to the longest chunk sequence
in the batch and every statistic (boundary fraction, mean p, ratio loss) is taken over valid
positions only (the RWKV stacks pack a padded batch into one row of its valid positions,
aegir.model.packing; routing, chunk and dechunk stay padded); the dechunk EMA runs in fp32 as dense (64 x 64) blocks built from segment
sums plus a block-level EMA between them (`ema_blocked`), instead of Mamba-2's SSD kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aegir.config import ModelConfig, ParsedLayout, parse_layout  # noqa: F401  (parse_layout re-exported)
from aegir.model.rwkv7 import BlockState, RWKV7Stack, _fp32_off, _hi

P_CLAMP = 1e-4  # dechunk clamps p to [1e-4, 1 - 1e-4] so log(1 - p) stays finite


@dataclass
class StageStats:
    """Routing statistics of one router (stage s -> s+1), on that stage's positions."""

    stage: int
    boundary_mask: Tensor  # (B, T_s) bool, False on padding
    boundary_prob: Tensor  # (B, T_s) float, 0 on padding
    valid_mask: Tensor  # (B, T_s) bool
    ratio_loss: Tensor  # scalar, unweighted (AegirModel applies ratio_loss_weight)
    target_ratio: float

    def n_valid(self) -> int:
        return int(self.valid_mask.sum())

    def boundary_fraction(self) -> float:
        """F = boundaries / valid positions (padding excluded)."""
        return float((self.boundary_mask & self.valid_mask).sum()) / max(self.n_valid(), 1)

    def mean_prob(self) -> float:
        """G = mean boundary probability over valid positions."""
        return float((self.boundary_prob.detach() * self.valid_mask).sum()) / max(self.n_valid(), 1)

    def compression(self) -> float:
        """Valid positions per boundary (the achieved N; inf if no boundary)."""
        f = self.boundary_fraction()
        return 1.0 / f if f > 0 else float("inf")


@dataclass
class RouterOutput:
    prob: Tensor  # (B, T) fp32
    boundary: Tensor  # (B, T) bool


class Router(nn.Module):
    """p_t = clamp((1 - cos(W_q h_{t-1}, W_k h_t)) / 2, 0, 1), p_0 = 1, boundary iff p > 0.5."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.q = nn.Linear(width, width, bias=False)
        self.k = nn.Linear(width, width, bias=False)
        with torch.no_grad():  # identity: at init p measures how much adjacent states differ
            self.q.weight.copy_(torch.eye(width))
            self.k.weight.copy_(torch.eye(width))

    def forward(self, h: Tensor, mask: Tensor) -> RouterOutput:
        with _fp32_off(h):  # p sits near 0.5: bf16 rounding would flip boundaries
            p = self.prob(h[:, :-1], h[:, 1:])  # (B, T-1)
            p = torch.cat([p.new_ones(p.shape[0], 1), p], dim=1)  # (B, T): first position forced (T = 1 too)
            p = p * mask
        return RouterOutput(prob=p, boundary=(p > 0.5) & mask)

    def prob(self, h_prev: Tensor, h: Tensor) -> Tensor:
        """Boundary probability of h (..., D) after h_prev (..., D), in fp32 (float64 in tests)."""
        cos = F.cosine_similarity(self.q(_hi(h_prev)), self.k(_hi(h)), dim=-1)  # (...)
        return ((1 - cos) / 2).clamp(0.0, 1.0)


@dataclass
class Chunked:
    hidden: Tensor  # (B, Tc, D) boundary positions in order, zero on padding
    mask: Tensor  # (B, Tc) bool
    index: Tensor  # (B, Tc) long: source position of each kept element


def chunk(h: Tensor, boundary: Tensor) -> Chunked:
    """Keep the boundary positions (a boundary is a chunk's first byte), right-padded."""
    B, T, D = h.shape
    nb = boundary.sum(dim=1)  # (B,)
    Tc = max(int(nb.max()), 1)
    pos = torch.arange(T, device=h.device)
    key = pos[None, :] + (~boundary).long() * T  # (B, T): boundaries sort first, in order
    index = key.argsort(dim=1)[:, :Tc]  # (B, Tc)
    cmask = torch.arange(Tc, device=h.device)[None, :] < nb[:, None]  # (B, Tc)
    hc = h.gather(1, index[:, :, None].expand(B, Tc, D))  # (B, Tc, D)
    return Chunked(hidden=hc * cmask[:, :, None].to(hc.dtype), mask=cmask, index=index)


DECHUNK_BLOCK = 64  # chunk positions per block of the blocked EMA (dense within a block)


def segment_decay(logq: Tensor) -> Tensor:
    """(..., L) log-decays -> (..., L, L) lower-triangular M[j, i] = exp(sum_{i<m<=j} logq_m) (j >= i).

    From segment sums (cumsum of a strictly-lower masked matrix), never from e^{A} * e^{-A}, which
    would overflow/underflow (pitfall 6)."""
    L = logq.shape[-1]
    tri_strict = torch.ones(L, L, dtype=torch.bool, device=logq.device).tril(-1)  # [j, i]: j > i
    X = logq[..., :, None].expand(*logq.shape, L).masked_fill(~tri_strict, 0.0)  # (..., L, L): X[j, i] = logq_j
    seg = X.cumsum(dim=-2)  # (..., L, L): sum_{i<m<=j} logq_m
    seg = seg.masked_fill(~torch.ones_like(tri_strict).tril(), float("-inf"))  # j < i: no weight
    return seg.exp()


def ema_weights(P: Tensor) -> Tensor:
    """(B, Tc, Tc) lower-triangular weights of zbar_j = sum_{i<=j} P_i prod_{i<m<=j} (1-P_m) z_i."""
    return segment_decay(torch.log1p(-P)) * P[:, None, :]  # (B, Tc, Tc)


def ema_blocked(P: Tensor, z: Tensor, block: int = DECHUNK_BLOCK) -> Tensor:
    """zbar_j = P_j z_j + (1 - P_j) zbar_{j-1} for P (B, Tc), z (B, Tc, D), in O(Tc * block) memory.

    The dense form (`ema_weights(P) @ z`) builds a (Tc x Tc) matrix per row: quadratic in the
    sequence length. Here the positions are cut into blocks of `block`: a dense EMA inside each
    block, then the state entering each block from the states leaving the earlier ones (a second,
    block-level EMA: decay = the block's product of (1 - P), input = the block's local final value),
    all parallel over positions (no Python loop). Tests compare it with a sequential loop (float64)."""
    B, Tc, D = z.shape
    n = -(-Tc // block)
    pad = n * block - Tc
    if pad:  # trailing steps after every real position: they cannot change it (P = 0.5 keeps logs finite)
        P = torch.nn.functional.pad(P, (0, pad), value=0.5)
        z = torch.nn.functional.pad(z, (0, 0, 0, pad))
    Pb = P.reshape(B, n, block)  # (B, n, L)
    zb = z.reshape(B, n, block, D)  # (B, n, L, D)
    logq = torch.log1p(-Pb)  # (B, n, L)
    local = (segment_decay(logq) * Pb[..., None, :]) @ zb  # (B, n, L, L) @ (B, n, L, D) -> (B, n, L, D)
    if n == 1:
        return local.reshape(B, block, D)[:, :Tc]
    cum = logq.cumsum(dim=-1)  # (B, n, L): log prod_{block start <= m <= j} (1 - P_m)
    out_state = segment_decay(cum[..., -1]) @ local[:, :, -1]  # (B, n, n) @ (B, n, D): state leaving block b
    carry = torch.nn.functional.pad(out_state[:, :-1], (0, 0, 1, 0))  # (B, n, D): state entering block b
    zbar = local + cum.exp()[..., None] * carry[:, :, None, :]  # (B, n, L, D)
    return zbar.reshape(B, n * block, D)[:, :Tc]  # (B, Tc, D)


def dechunk(z: Tensor, boundary: Tensor, prob: Tensor, index: Tensor) -> Tensor:
    """Upsample chunk outputs z (B, Tc, D) back to (B, T, D): EMA over chunks with the boundary
    probabilities, then byte t takes the smoothed value of the chunk it belongs to."""
    with _fp32_off(z):
        P = prob.gather(1, index).clamp(P_CLAMP, 1 - P_CLAMP)  # (B, Tc)
        zf = _hi(z)
        zbar = ema_blocked(P.to(zf.dtype), zf)  # (B, Tc, D)
        which = (boundary.long().cumsum(dim=1) - 1).clamp(min=0)  # (B, T): chunk of each byte
        return zbar.gather(1, which[:, :, None].expand(-1, -1, z.shape[-1]))  # (B, T, D)


def dechunk_sequential(z: Tensor, boundary: Tensor, prob: Tensor, index: Tensor) -> Tensor:
    """Reference loop over chunks (used by tests to check `dechunk`)."""
    P = prob.gather(1, index).clamp(P_CLAMP, 1 - P_CLAMP)  # (B, Tc)
    prev = torch.zeros_like(z[:, 0])
    rows = []
    for j in range(z.shape[1]):
        prev = P[:, j, None] * z[:, j] + (1 - P[:, j, None]) * prev  # (B, D)
        rows.append(prev)
    zbar = torch.stack(rows, dim=1)  # (B, Tc, D)
    which = (boundary.long().cumsum(dim=1) - 1).clamp(min=0)  # (B, T)
    return zbar.gather(1, which[:, :, None].expand(-1, -1, z.shape[-1]))  # (B, T, D)


class _STE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        return torch.ones_like(x)

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:  # type: ignore[override]
        return g


def ste(x: Tensor) -> Tensor:
    """Straight-through: exactly 1 in the forward pass, identity gradient."""
    return _STE.apply(x)


def ratio_loss(boundary: Tensor, prob: Tensor, valid: Tensor, target: float) -> Tensor:
    """H-Net's load-balancing loss, over valid positions only. F (hard fraction) carries no
    gradient; G (mean p) does. Equals 1 at F = G = 1/N."""
    n = valid.sum().clamp(min=1)
    Fr = ((boundary & valid).sum() / n).detach()
    G = (prob * valid).sum() / n
    N = target
    return N / (N - 1) * ((N - 1) * Fr * G + (1 - Fr) * (1 - G))


@dataclass
class StageState:
    """Step-mode state of one stage and, recursively, the stages inside it. Every tensor has the
    batch first, so rows can be selected and written back (`select_rows` / `put_rows`): an inner
    stage advances only in the rows whose byte opened a chunk."""

    blocks: list[BlockState]  # the encoder; the main stack of the innermost stage
    decoder: list[BlockState]  # empty for the innermost stage
    started: Tensor | None = None  # (B,) bool: the router has seen a position (p_0 = 1 is forced)
    h_prev: Tensor | None = None  # (B, d) previous encoder output, for the router's cosine
    zbar: Tensor | None = None  # (B, d) fp32 dechunk EMA over the chunks so far
    inner: "StageState | None" = None


def select_rows(state, idx: Tensor):
    """The rows idx (long, (n,)) of a step-mode state (dataclasses, lists and tensors, batch first)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.index_select(0, idx)  # (n, ...)
    if isinstance(state, list):
        return [select_rows(s, idx) for s in state]
    return type(state)(**{f.name: select_rows(getattr(state, f.name), idx) for f in fields(state)})


def put_rows(state, idx: Tensor, rows):
    """`state` with rows idx replaced by `rows` (as returned by `select_rows`, then advanced)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.index_copy(0, idx, rows)  # (B, ...)
    if isinstance(state, list):
        return [put_rows(s, idx, r) for s, r in zip(state, rows)]
    return type(state)(**{f.name: put_rows(getattr(state, f.name), idx, getattr(rows, f.name))
                          for f in fields(state)})


@dataclass
class StageStep:
    """One step of a stage: its output and state, and where chunks opened (outer router first)."""

    y: Tensor  # (B, d_stage)
    state: StageState
    boundaries: list[Tensor]  # per router at or inside this stage: (B,) bool, this byte opened a chunk there


class HNetStage(nn.Module):
    """Stage `stage` of the nested H-Net; holds the inner stage recursively."""

    def __init__(self, cfg: ModelConfig, stage: int = 0) -> None:
        super().__init__()
        lay: ParsedLayout = cfg.layout
        self.stage = stage
        self.is_innermost = stage == lay.n_stages - 1
        d = cfg.d_model[stage]
        self.width = d

        def stack(n: int) -> RWKV7Stack:
            return RWKV7Stack(d, n, cfg.head_size, cfg.lora_dims(d), cfg.ffn_mult, cfg.norm_eps,
                              cfg.wkv_impl, cfg.wkv_chunk, cfg.recompute)

        if self.is_innermost:
            self.main = stack(lay.main)
            return
        self.target_ratio = cfg.ratio_targets[stage]
        self.encoder = stack(lay.encoders[stage])
        self.router = Router(d)
        self.residual_proj = nn.Linear(d, d)  # bias keeps its default init, as the reference
        with torch.no_grad():
            self.residual_proj.weight.zero_()
        d_next = cfg.d_model[stage + 1]
        # Zero-init learned pad: entering a wider stage concatenates it (no projection).
        self.pad_dimension = nn.Parameter(torch.zeros(d_next - d)) if d_next > d else None
        self.inner = HNetStage(cfg, stage + 1)
        self.decoder = stack(lay.decoders[stage])

    def own_parameters(self) -> list[nn.Parameter]:
        """Parameters of this stage, excluding the inner stages (for lr multipliers / counts)."""
        inner = {id(p) for p in self.inner.parameters()} if not self.is_innermost else set()
        return [p for p in self.parameters() if id(p) not in inner]

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, list[StageStats]]:
        y, stats, _ = self.run(x, mask)
        return y, stats

    def run(self, x: Tensor, mask: Tensor, want_state: bool = False
            ) -> tuple[Tensor, list[StageStats], StageState | None]:
        """The parallel forward pass; with `want_state` also the step-mode state after each row's
        last valid position (prefill): `step` then continues exactly where the sequence ends."""
        if self.is_innermost:
            if want_state:
                y, blocks = self.main.prefill(x, mask)
                return y, [], StageState(blocks=blocks, decoder=[])
            return self.main(x, mask), [], None
        enc = None
        if want_state:
            h, enc = self.encoder.prefill(x, mask)  # (B, T, d)
        else:
            h = self.encoder(x, mask)  # (B, T, d)
        with _fp32_off(h):
            res = self.residual_proj(_hi(h))  # (B, T, d) fp32 residual path
        route = self.router(h, mask)
        ch = chunk(h, route.boundary)
        hc = ch.hidden
        if self.pad_dimension is not None:
            pad = self.pad_dimension.to(hc.dtype).expand(*hc.shape[:2], -1)  # (B, Tc, d_next - d)
            hc = torch.cat([hc, pad * ch.mask[:, :, None].to(hc.dtype)], dim=-1)  # (B, Tc, d_next)
        z, inner_stats, inner_state = self.inner.run(hc, ch.mask, want_state)
        z = z[..., : self.width]  # (B, Tc, d)
        u = dechunk(z, route.boundary, route.prob, ch.index)  # (B, T, d) fp32
        conf = torch.where(route.boundary, route.prob, 1 - route.prob)  # (B, T)
        state = None
        if want_state:
            y, dec = self.decoder.prefill(u * ste(conf)[:, :, None] + res, mask)
            last = mask.long().sum(1) - 1  # (B,)
            rows = torch.arange(x.shape[0], device=x.device)
            # the EMA of the last chunk is what the last byte decoded from: u at the last position
            state = StageState(blocks=enc, decoder=dec, started=torch.ones_like(last, dtype=torch.bool),
                               h_prev=h[rows, last], zbar=u[rows, last], inner=inner_state)  # (B, d) each
        else:
            y = self.decoder(u * ste(conf)[:, :, None] + res, mask)
        stats = StageStats(
            stage=self.stage,
            boundary_mask=route.boundary,
            boundary_prob=route.prob,
            valid_mask=mask,
            ratio_loss=ratio_loss(route.boundary, route.prob, mask, self.target_ratio),
            target_ratio=self.target_ratio,
        )
        return y, [stats] + inner_stats, state

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> StageState:
        if self.is_innermost:
            return StageState(blocks=self.main.initial_state(batch, device, dtype), decoder=[])
        hi = torch.float64 if dtype == torch.float64 else torch.float32
        return StageState(
            blocks=self.encoder.initial_state(batch, device, dtype),
            decoder=self.decoder.initial_state(batch, device, dtype),
            started=torch.zeros(batch, dtype=torch.bool, device=device),
            h_prev=torch.zeros(batch, self.width, device=device, dtype=dtype),
            zbar=torch.zeros(batch, self.width, device=device, dtype=hi),
            inner=self.inner.initial_state(batch, device, dtype),
        )

    def step(self, x: Tensor, state: StageState) -> StageStep:
        """Step-mode inference: one new position per row, x (B, d_stage). Equal to `forward` on
        the sequence so far, at its last position (every operation is causal): the router compares
        with the previous encoder output, a boundary sends the byte into the inner stage (only
        those rows advance there) and updates the dechunk EMA, and every byte decodes from the EMA
        of the chunk it belongs to. The STE confidence is exactly 1 in the forward pass: omitted."""
        if self.is_innermost:
            y, blocks = self.main.step(x, state.blocks)
            return StageStep(y=y, state=StageState(blocks=blocks, decoder=[]), boundaries=[])
        h, enc = self.encoder.step(x, state.blocks)  # (B, d)
        with _fp32_off(h):
            res = self.residual_proj(_hi(h))  # (B, d) fp32 residual path
            p = torch.where(state.started, self.router.prob(state.h_prev, h), 1.0)  # (B,) first position: 1
        boundary = p > 0.5  # (B,)
        inner_state, zbar = state.inner, state.zbar
        inner_bounds = [torch.zeros_like(boundary) for _ in range(self.inner_routers)]
        idx = boundary.nonzero().squeeze(1)  # (n,) rows that open a chunk
        if idx.numel():
            hc = h.index_select(0, idx)  # (n, d)
            if self.pad_dimension is not None:
                hc = torch.cat([hc, self.pad_dimension.to(hc.dtype).expand(hc.shape[0], -1)], dim=-1)  # (n, d_next)
            sub = self.inner.step(hc, select_rows(inner_state, idx))
            inner_state = put_rows(inner_state, idx, sub.state)
            inner_bounds = [full.index_copy(0, idx, b) for full, b in zip(inner_bounds, sub.boundaries)]
            with _fp32_off(h):
                P = p.index_select(0, idx).clamp(P_CLAMP, 1 - P_CLAMP)[:, None].to(zbar.dtype)  # (n, 1)
                z = _hi(sub.y[:, : self.width])  # (n, d)
                zbar = zbar.index_copy(0, idx, P * z + (1 - P) * zbar.index_select(0, idx))  # (B, d)
        y, dec = self.decoder.step(zbar.to(res.dtype) + res, state.decoder)
        new = StageState(blocks=enc, decoder=dec, started=torch.ones_like(boundary), h_prev=h, zbar=zbar,
                         inner=inner_state)
        return StageStep(y=y, state=new, boundaries=[boundary] + inner_bounds)

    @property
    def inner_routers(self) -> int:
        """Routers inside this stage's inner stage (0 for the innermost and the one around it)."""
        n, st = 0, self.inner
        while not st.is_innermost:
            n, st = n + 1, st.inner
        return n
