"""Parameter counts by H-Net stage, computed from a model built on the meta device (no memory,
no init), so `aegir model info --size base` is instant."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from aegir.config import ModelConfig


@dataclass
class StageCount:
    stage: int
    d_model: int
    blocks: int  # RWKV-7 blocks in this stage (encoder + decoder, or main)
    params: int  # everything tagged with this stage (routing, residual_proj, pad included)


@dataclass
class ParamCounts:
    name: str
    embedding: int  # the tied vocab x d0 table (+ its input LayerNorm)
    stages: list[StageCount] = field(default_factory=list)
    total: int = 0

    @property
    def backbone(self) -> int:
        """Everything except the embedding table."""
        return self.total - self.embedding

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "embedding": self.embedding,
            "backbone": self.backbone,
            "total": self.total,
            "stages": [vars(s) for s in self.stages],
        }


def parameter_counts(cfg: ModelConfig) -> ParamCounts:
    from aegir.model.aegir import AegirModel

    with torch.device("meta"):
        model = AegirModel(cfg)
    emb = sum(p.numel() for p in list(model.embedding.parameters()) + list(model.ln_in.parameters()))
    lay = cfg.layout
    by_stage = [0] * lay.n_stages
    for name, p in model.named_parameters():
        if name.startswith(("embedding.", "ln_in.")):
            continue
        by_stage[p._aegir_stage] += p.numel()
    stages = [StageCount(s, cfg.d_model[s], lay.blocks_in_stage(s), by_stage[s]) for s in range(lay.n_stages)]
    total = sum(p.numel() for p in model.parameters())
    return ParamCounts(name=cfg.name, embedding=emb, stages=stages, total=total)


def _m(n: int) -> str:
    return f"{n / 1e6:.2f}M"


def format_parameter_counts(pc: ParamCounts, cfg: ModelConfig | None = None) -> str:
    lines = [f"model {pc.name}" + (f": d_model {cfg.d_model}, layout {cfg.arch_layout}" if cfg else "")]
    lines.append(f"{'part':<22}{'width':>7}{'blocks':>8}{'params':>14}")
    lines.append(f"{'embedding (tied head)':<22}{pc.stages[0].d_model if pc.stages else '':>7}{'':>8}{pc.embedding:>14,}")
    for s in pc.stages:
        label = f"stage {s.stage}" + (" (main)" if s.stage == len(pc.stages) - 1 else " (enc+dec)")
        lines.append(f"{label:<22}{s.d_model:>7}{s.blocks:>8}{s.params:>14,}")
    lines.append(f"{'backbone':<22}{'':>7}{'':>8}{pc.backbone:>14,}  ({_m(pc.backbone)})")
    lines.append(f"{'total':<22}{'':>7}{'':>8}{pc.total:>14,}  ({_m(pc.total)})")
    return "\n".join(lines)


@dataclass
class FlopsPerByte:
    """Analytic forward FLOPs per input byte (2 x matmul MACs + 9*N*C per token for the recurrent
    WKV, the convention of ../shared/docs/architecture.md section 3), at given compression ratios."""

    name: str
    compression: list[float]  # per router, relative to that stage's input
    stages: list[float]  # per stage, already scaled by the fraction of bytes that reach it
    head: float  # the 268-way tied LM head
    backbone_forward: float = 0.0
    train: float = 0.0  # 3 x (backbone + head): forward + backward

    def to_dict(self) -> dict:
        return dict(vars(self))


def block_flops_per_token(width: int, cfg: ModelConfig, first_in_stack: bool) -> float:
    lora = cfg.lora_dims(width)
    macs = 4 * width * width  # r, k, v, o
    macs += 2 * width * (lora["w"] + lora["a"] + lora["g"]) + (0 if first_in_stack else 2 * width * lora["v"])
    macs += 2 * cfg.ffn_mult * width * width  # channel-mix key + value
    return 2.0 * macs + 9.0 * cfg.head_size * width


def flops_per_byte(cfg: ModelConfig, compression: list[float] | None = None) -> FlopsPerByte:
    lay = cfg.layout
    comp = list(compression) if compression is not None else list(cfg.ratio_targets)
    if len(comp) != lay.n_stages - 1:
        raise ValueError(f"compression: expected {lay.n_stages - 1} ratios, got {comp}")
    stages, reach = [], 1.0
    for s in range(lay.n_stages):
        d = cfg.d_model[s]
        stacks = [lay.main] if s == lay.n_stages - 1 else [lay.encoders[s], lay.decoders[s]]
        per_tok = sum(block_flops_per_token(d, cfg, l == 0) for n in stacks for l in range(n))
        if s < lay.n_stages - 1:
            per_tok += 2.0 * 3 * d * d  # router q, k and residual_proj
        stages.append(per_tok * reach)
        if s < lay.n_stages - 1:
            reach /= comp[s]
    head = 2.0 * cfg.n_active * cfg.d_model[0]
    fwd = sum(stages)
    return FlopsPerByte(cfg.name, comp, stages, head, fwd, 3.0 * (fwd + head))
