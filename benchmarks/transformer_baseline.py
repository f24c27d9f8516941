"""A plain PyTorch byte-level Transformer: the baseline the pretraining benchmark compares against.

Decoder-only, pre-LayerNorm, causal `scaled_dot_product_attention`, GELU MLP (4x), learned absolute
positions, embedding tied with the LM head over the same 268 active ids (bytes + specials) the
Aegir model scores. It exposes the same `lm_loss(ids, mask)` contract as `AegirModel`, so the one
pretraining loop (`aegir.train.pretrain.pretrain(model_factory=...)`) trains both on identical
batches with the identical optimizer and schedule.

Parameter matching: `matched_config(target)` picks the depth/width whose count is closest to
`target`. The benchmark passes Aegir's *usable* parameter count (its 65,536-row embedding minus
the rows no byte or special can ever index), so neither model is credited with dead rows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aegir.encoding.vocab import N_ACTIVE


@dataclass
class TransformerConfig:
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    max_len: int = 1024
    vocab_size: int = N_ACTIVE
    ratio_loss_weight: float = 0.0  # read by the pretraining loop; no routers here

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BaselineLMOutput:
    loss: Tensor  # next-byte CE in nats, mean over non-pad targets
    ratio_loss: Tensor  # always 0 (keeps the AegirModel contract)
    n_tokens: int
    stages: list  # empty: no routers


class Block(nn.Module):
    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x: Tensor) -> Tensor:
        B, T, D = x.shape
        H = self.n_heads
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, H, D // H).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, Dh)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, Dh)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, D))  # (B, T, D)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class ByteTransformer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        if cfg.d_model % cfg.n_heads:
            raise ValueError(f"d_model {cfg.d_model} must be divisible by n_heads {cfg.n_heads}")
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(cfg.max_len, cfg.d_model))
        self.blocks = nn.ModuleList(Block(cfg.d_model, cfg.n_heads) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        # GPT-2 style init: N(0, 0.02), residual projections scaled by 1/sqrt(2 * layers).
        for name, p in self.named_parameters():
            if p.ndim >= 2:
                std = 0.02 / math.sqrt(2 * cfg.n_layers) if name.endswith(("proj.weight", "fc2.weight")) else 0.02
                nn.init.normal_(p, std=std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        B, T = ids.shape
        if T > self.cfg.max_len:
            raise ValueError(f"sequence length {T} exceeds max_len {self.cfg.max_len}")
        x = self.embedding(ids) + self.pos[:T]  # (B, T, D)
        for blk in self.blocks:
            x = blk(x)
        return self.ln_f(x) @ self.embedding.weight.t()  # (B, T, V) tied head

    def lm_loss(self, ids: Tensor, mask: Tensor | None = None) -> BaselineLMOutput:
        if mask is None:
            mask = torch.ones_like(ids, dtype=torch.bool)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if ids.is_cuda else torch.autocast("cpu", enabled=False)
        with autocast:
            logits = self(ids)[:, :-1]  # (B, T-1, V)
        ok = mask[:, 1:] & mask[:, :-1]  # (B, T-1)
        n = int(ok.sum())
        ce = F.cross_entropy(logits.float()[ok], ids[:, 1:][ok], reduction="sum")  # gather (N, V)
        return BaselineLMOutput(loss=ce / max(n, 1), ratio_loss=ce.new_zeros(()), n_tokens=n, stages=[])


def n_params(cfg: TransformerConfig) -> int:
    d, L = cfg.d_model, cfg.n_layers
    per_block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)
    return cfg.vocab_size * d + cfg.max_len * d + L * per_block + 2 * d


def matched_config(target: int, max_len: int) -> TransformerConfig:
    """The (width, depth) with head size 32 whose parameter count is closest to `target`;
    ties favour depth about width/32 (a usual aspect ratio)."""
    best = None
    for d in range(64, 1025, 32):
        for L in range(1, 25):
            c = TransformerConfig(d_model=d, n_layers=L, n_heads=d // 32, max_len=max_len)
            key = (abs(n_params(c) - target) / target > 0.05, abs(L - d / 32), abs(n_params(c) - target))
            if best is None or key < best[0]:
                best = (key, c)
    return best[1]
