"""AegirModel (embedding + nested H-Net of RWKV-7 stacks) and AegirClassifier (CTA/CPA head).

Pure single-device PyTorch: no I/O, no optimizer. CPU fp32 is the reference; on CUDA (and on CPU
with cfg.cpu_bf16) the forward pass runs under bf16 autocast (cfg.bf16_autocast) with the decay,
WKV, router, dechunk and residual projection kept in fp32 (see rwkv7.py / hnet.py).

Every parameter carries `_aegir_stage` (int) and `_aegir_lr_mult` (cfg.lr_multipliers[stage]);
the embedding, its LayerNorm and the heads belong to stage 0. Use `named_lr_multipliers(model)`
where attributes may have been lost (e.g. after copy.deepcopy).
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aegir.config import ModelConfig
from aegir.model.embedding import TiedByteEmbedding
from aegir.model.heads import ClassificationHead, byte_lm_logits, pool_column
from aegir.model.hnet import HNetStage, StageState, StageStats


class ModelInputError(ValueError):
    """Malformed model input (shape, dtype, id range, padding layout)."""


@dataclass
class BackboneOutput:
    hidden: Tensor  # (B, T, d_model[0]) after the outer decoder's final norm
    stages: list[StageStats]  # one per router, outer first
    ratio_loss: Tensor  # scalar, already multiplied by cfg.ratio_loss_weight: add it to the task loss
    state: StageState | None = None  # with return_state: step-mode state after each row's last valid byte


@dataclass
class LMOutput:
    loss: Tensor  # next-byte cross-entropy in nats, mean over non-pad targets
    ratio_loss: Tensor  # weighted, as in BackboneOutput
    n_tokens: int  # number of predicted (non-pad) targets
    stages: list[StageStats]

    @property
    def bits_per_byte(self) -> float:
        return float(self.loss.detach()) / math.log(2.0)


@dataclass
class StepOutput:
    """One byte per row through the backbone in step (recurrent) mode."""

    hidden: Tensor  # (B, d_model[0]): the last position's hidden state, as `forward` gives it
    state: StageState  # pass back into the next `step`
    boundaries: list[Tensor]  # per router, outer first: (B,) bool, this byte opened a chunk there

    def lm_logits(self, model: "AegirModel") -> Tensor:
        return model.lm_logits(self.hidden)  # (B, n_active)


@dataclass
class ClassifierOutput:
    logits: Tensor  # (B, n_labels)
    pooled: Tensor  # (B, 2 * d_model[0]) pooled column embedding; (B, 3 * d_model[0]) with pool_main
    stages: list[StageStats]
    ratio_loss: Tensor  # weighted


def _tag(params, stage: int, mult: float) -> None:
    for p in params:
        p._aegir_stage = stage
        p._aegir_lr_mult = mult


def check_inputs(ids: Tensor, mask: Tensor | None, vocab_size: int) -> Tensor:
    """Validate (ids, mask) and return the bool mask (all True when None)."""
    if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.dtype not in (torch.long, torch.int32, torch.int64):
        raise ModelInputError(f"ids must be an integer tensor of shape (B, T), got {getattr(ids, 'shape', type(ids))}")
    if ids.shape[1] == 0 or ids.shape[0] == 0:
        raise ModelInputError(f"ids must be non-empty, got shape {tuple(ids.shape)}")
    if mask is None:
        mask = torch.ones_like(ids, dtype=torch.bool)
    if mask.shape != ids.shape:
        raise ModelInputError(f"mask shape {tuple(mask.shape)} does not match ids shape {tuple(ids.shape)}")
    mask = mask.bool()
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= vocab_size:
        raise ModelInputError(f"ids must be in [0, {vocab_size}), found values in [{lo}, {hi}]")
    if not bool(mask[:, 0].all()):
        raise ModelInputError("every row needs at least one valid position (mask[:, 0] must be True)")
    if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise ModelInputError("mask must be right-padded (True then False in each row)")
    return mask


class _KeepsParamTags:
    """copy.deepcopy drops Python attributes of Parameters (Parameter.__deepcopy__ clones data
    only), which would silently reset every `_aegir_lr_mult` to the optimizer's default. Pickling
    keeps them already; this restores them, including values set by callers, after a deepcopy."""

    def __deepcopy__(self, memo: dict):
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        new.__dict__.update({k: copy.deepcopy(v, memo) for k, v in self.__dict__.items()})
        for p, q in zip(self.parameters(), new.parameters()):
            for k, v in vars(p).items():
                if k.startswith("_aegir_"):
                    setattr(q, k, v)
        return new


class AegirModel(_KeepsParamTags, nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        d0 = cfg.d_model[0]
        # One 65,536-row table, tied with the LM head; only rows < n_active are trainable (embedding.py).
        self.embedding = TiedByteEmbedding(cfg.vocab_size, cfg.n_active, d0)
        self.ln_in = nn.LayerNorm(d0, eps=cfg.norm_eps)  # RWKV's ln0: block input scale independent of the table
        self.hnet = HNetStage(cfg, 0)
        # Small init because the table doubles as the LM head (logit std ~ 0.02 * sqrt(d0)); drawn
        # after the stages, as it always was, so seeds keep giving the same initial weights.
        self.embedding.reset_parameters(std=0.02)
        self._tag_parameters()

    def _tag_parameters(self) -> None:
        mults = self.cfg.lr_multipliers
        _tag(list(self.embedding.parameters()) + list(self.ln_in.parameters()), 0, mults[0])
        stage = self.hnet
        while True:
            _tag(stage.own_parameters(), stage.stage, mults[stage.stage])
            if stage.is_innermost:
                break
            if stage.pad_dimension is not None:  # the pad lives at the inner stage's width
                _tag([stage.pad_dimension], stage.stage + 1, mults[stage.stage + 1])
            stage = stage.inner

    @property
    def pooled_dim(self) -> int:
        return 2 * self.cfg.d_model[0]

    def _autocast(self, ids: Tensor):
        """bf16 autocast on CUDA (cfg.bf16_autocast) and, when asked, on CPU (cfg.cpu_bf16); the
        fp32 islands inside (decay, WKV, router, dechunk) switch it off on whichever device runs."""
        dev = ids.device.type
        if self.cfg.bf16_autocast_on(dev):
            return torch.autocast(device_type=dev, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, ids: Tensor, mask: Tensor | None = None, return_state: bool = False) -> BackboneOutput:
        """With `return_state`, also the step-mode state after each row's last valid position
        (a parallel prefill: `step` continues from it as if every byte had been stepped)."""
        mask = check_inputs(ids, mask, self.cfg.vocab_size)
        with self._autocast(ids):
            x = self.ln_in(self.embedding(ids.long()))  # (B, T, d0), fp32 residual stream
            hidden, stages, state = self.hnet.run(x, mask, return_state)
        w = self.cfg.ratio_loss_weight
        rl = sum((s.ratio_loss for s in stages), hidden.new_zeros((), dtype=torch.float32))
        return BackboneOutput(hidden=hidden, stages=stages, ratio_loss=w * rl, state=state)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> StageState:
        """Empty step-mode state for `batch_size` rows (before the first byte)."""
        w = self.embedding.live
        return self.hnet.initial_state(batch_size, torch.device(device) if device else w.device, w.dtype)

    def step(self, ids: Tensor, state: StageState) -> StepOutput:
        """Step-mode inference: the next id of every row, ids (B,), with the state of the bytes so
        far. O(1) work per byte, against re-running `forward` on the whole prefix; the result equals
        `forward(prefix).hidden[:, -1]` (tests: float64, to rounding). Rows have no padding here.
        For a whole model on one device: blocks sharded by FSDP gather their weights only in their
        own forward, which step mode (and the prefill state) bypasses."""
        if not isinstance(ids, Tensor) or ids.dim() != 1 or ids.dtype not in (torch.long, torch.int32):
            raise ModelInputError(f"step takes one id per row, an integer tensor of shape (B,), got "
                                  f"{getattr(ids, 'shape', type(ids))}")
        check_inputs(ids[:, None], None, self.cfg.vocab_size)
        with self._autocast(ids):
            x = self.ln_in(self.embedding(ids.long()[:, None]))[:, 0]  # (B, 1, d0) -> (B, d0)
            st = self.hnet.step(x, state)
        return StepOutput(hidden=st.y, state=st.state, boundaries=st.boundaries)

    def lm_logits(self, hidden: Tensor) -> Tensor:
        return byte_lm_logits(hidden, self.embedding.live, self.cfg.n_active)  # (B, T, n_active)

    def lm_loss(self, ids: Tensor, mask: Tensor | None = None) -> LMOutput:
        """Next-byte cross-entropy: position t predicts ids[t+1] where both are non-pad."""
        mask = check_inputs(ids, mask, self.cfg.vocab_size)
        if ids.shape[1] < 2:
            raise ModelInputError("lm_loss needs sequences of at least 2 positions")
        tgt_ok = mask[:, 1:] & mask[:, :-1]  # (B, T-1)
        targets = ids[:, 1:].long()
        if bool((targets[tgt_ok] >= self.cfg.n_active).any()):
            raise ModelInputError(f"LM targets must be < n_active={self.cfg.n_active} (bytes + specials)")
        out = self(ids, mask)
        with self._autocast(ids):
            logits = self.lm_logits(out.hidden[:, :-1])  # (B, T-1, n_active)
        n = int(tgt_ok.sum())
        # Masked targets are ignored rather than gathered: boolean indexing of the (B, T-1, n_active)
        # logits and its index_put backward cost ~1% of a tiny step; the sum is over the same terms.
        ce = F.cross_entropy(logits.float().flatten(0, 1), targets.masked_fill(~tgt_ok, -100).flatten(),
                             ignore_index=-100, reduction="sum")  # (B * (T-1), n_active) vs (B * (T-1),)
        loss = ce / max(n, 1)
        return LMOutput(loss=loss, ratio_loss=out.ratio_loss, n_tokens=n, stages=out.stages)

    def pool(self, hidden: Tensor, mask: Tensor, target_mask: Tensor, main_mask: Tensor | None = None) -> Tensor:
        return pool_column(hidden, mask.bool(), target_mask.bool(),
                           None if main_mask is None else main_mask.bool())  # (B, 2 * d0) or (B, 3 * d0)


class AegirClassifier(_KeepsParamTags, nn.Module):
    """Backbone + pooled column embedding + linear head. multi_label selects BCE over CE.
    pool_main (CPA) adds the mean over the main column's positions to the pooled embedding
    (`pool_column`); forward then needs `main_mask`."""

    def __init__(self, cfg: ModelConfig, n_labels: int, multi_label: bool = False, pool_main: bool = False) -> None:
        super().__init__()
        self.backbone = AegirModel(cfg)
        self.n_labels, self.multi_label, self.pool_main = n_labels, multi_label, pool_main
        self.head = ClassificationHead(self.pooled_dim, n_labels)
        _tag(self.head.parameters(), 0, cfg.lr_multipliers[0])

    @classmethod
    def for_labels(cls, cfg: ModelConfig, label_dims: Mapping[str, int], key: str,
                   multi_label: bool = False) -> "AegirClassifier":
        """A classifier sized for a label vocabulary, e.g. `for_labels(cfg, LABEL_DIMS, "sotab-cta")`.
        The mapping is passed in because `model/` does not import `tables/`."""
        if key not in label_dims:
            raise ValueError(f"unknown label vocabulary {key!r}; known: {', '.join(sorted(label_dims))}")
        n = int(label_dims[key])
        if n < 1:
            raise ValueError(f"label vocabulary {key!r} has no labels yet (build it from the training data)")
        return cls(cfg, n, multi_label)

    @property
    def cfg(self) -> ModelConfig:
        return self.backbone.cfg

    @property
    def pooled_dim(self) -> int:
        return self.backbone.pooled_dim + (self.cfg.d_model[0] if self.pool_main else 0)

    def forward(self, ids: Tensor, mask: Tensor | None, target_mask: Tensor,
                main_mask: Tensor | None = None) -> ClassifierOutput:
        """main_mask (B, T) marks the CPA main column; used only by a pool_main classifier, which
        requires it (all False for inputs without a main column)."""
        if mask is None:
            mask = torch.ones_like(ids, dtype=torch.bool)
        if target_mask.shape != ids.shape:
            raise ModelInputError(f"target_mask shape {tuple(target_mask.shape)} does not match ids {tuple(ids.shape)}")
        if self.pool_main and main_mask is None:
            raise ModelInputError("this classifier pools the main column (pool_main): pass main_mask")
        if self.pool_main and main_mask.shape != ids.shape:
            raise ModelInputError(f"main_mask shape {tuple(main_mask.shape)} does not match ids {tuple(ids.shape)}")
        out = self.backbone(ids, mask)
        pooled = self.backbone.pool(out.hidden, mask, target_mask,
                                    main_mask if self.pool_main else None)  # (B, 2 * d0) or (B, 3 * d0)
        logits = self.head(pooled.float())  # (B, n_labels)
        return ClassifierOutput(logits=logits, pooled=pooled, stages=out.stages, ratio_loss=out.ratio_loss)

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """CE on class indices (B,), or BCE-with-logits on {0,1} targets (B, n_labels) if multi_label."""
        if self.multi_label:
            if targets.shape != logits.shape:
                raise ModelInputError(f"multi-label targets must be (B, {self.n_labels}), got {tuple(targets.shape)}")
            return F.binary_cross_entropy_with_logits(logits.float(), targets.float())
        if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
            raise ModelInputError(f"targets must be class indices of shape (B,), got {tuple(targets.shape)}")
        return F.cross_entropy(logits.float(), targets.long())


def named_lr_multipliers(model: nn.Module) -> dict[str, float]:
    """name -> lr multiplier for every parameter (falls back to 1.0 for untagged ones)."""
    return {n: float(getattr(p, "_aegir_lr_mult", 1.0)) for n, p in model.named_parameters()}
