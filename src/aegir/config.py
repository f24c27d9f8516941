"""Model configuration: `ModelConfig` and its presets (nano, tiny, small, base).

Pure Python (no torch) so that checkpoints, the CLI and run folders can read and validate a
config without building a model. The H-Net layout grammar is parsed here for the same reason;
`aegir.model.hnet` builds modules from the parsed form.

Layout grammar (see docs/architecture.md):
    stage  := [stack]                    innermost stage ("main network")
            | [stack, stage, stack]      encoder, inner stage, decoder
    stack  := one or more "w<N>" tokens, e.g. "w2" or "w1w3" (counts add up), N >= 1
`w` is one RWKV-7 block = time-mix + 4x channel-mix. (In H-Net lowercase letters mean
"mixer only"; here `w` always includes the channel-mix because the design's parameter counts
require it, architecture.md section 4.)
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

# Mirrors aegir.encoding.vocab (tests assert they agree); duplicated as literals so this module
# stays at the bottom of the import graph.
DEFAULT_VOCAB_SIZE = 65536
DEFAULT_N_ACTIVE = 268

WKV_IMPLS = ("auto", "kernel", "chunked", "naive", "fla")
RECOMPUTE = ("none", "wkv", "block")
_TOKEN = re.compile(r"w(\d+)")


class ModelConfigError(ValueError):
    """A model configuration that cannot be built; the message names the field."""


@dataclass(frozen=True)
class ParsedLayout:
    """`arch_layout` flattened per stage: encoders[s]/decoders[s] are block counts of the
    outer stages (s = 0 .. n_stages-2), `main` the block count of the innermost stack."""

    encoders: tuple[int, ...]
    decoders: tuple[int, ...]
    main: int

    @property
    def n_stages(self) -> int:
        return len(self.encoders) + 1

    def blocks_in_stage(self, s: int) -> int:
        if s == self.n_stages - 1:
            return self.main
        return self.encoders[s] + self.decoders[s]


def parse_stack(spec: Any, where: str) -> int:
    """Number of RWKV-7 blocks in one stack string such as "w2" or "w1w3"."""
    if not isinstance(spec, str) or not spec:
        raise ModelConfigError(f"arch_layout{where}: expected a stack string like 'w2', got {spec!r}")
    pos, total = 0, 0
    while pos < len(spec):
        m = _TOKEN.match(spec, pos)
        if m is None:
            raise ModelConfigError(
                f"arch_layout{where}: cannot parse {spec!r} at character {pos}; a stack is one or "
                f"more 'w<N>' tokens (w = RWKV-7 time-mix + 4x channel-mix), e.g. 'w2'"
            )
        n = int(m.group(1))
        if n < 1:
            raise ModelConfigError(f"arch_layout{where}: block count must be >= 1 in {spec!r}")
        total += n
        pos = m.end()
    return total


def parse_layout(layout: Any) -> ParsedLayout:
    """Parse a nested `arch_layout`, raising ModelConfigError with the path of a bad element."""
    enc: list[int] = []
    dec: list[int] = []
    node, where = layout, ""
    while True:
        if not isinstance(node, (list, tuple)) or len(node) not in (1, 3):
            raise ModelConfigError(
                f"arch_layout{where}: a stage must be [stack] or [encoder, inner_stage, decoder], got {node!r}"
            )
        if len(node) == 1:
            return ParsedLayout(tuple(enc), tuple(dec), parse_stack(node[0], f"{where}[0]"))
        enc.append(parse_stack(node[0], f"{where}[0]"))
        dec.append(parse_stack(node[2], f"{where}[2]"))
        node, where = node[1], f"{where}[1]"


def lora_dim(width: int, mult: float) -> int:
    """RWKV-7's low-rank size rule: max(32, round(mult*sqrt(C)/32)*32). Python's round() rounds
    half to even, like the reference (architecture.md section 2)."""
    return max(32, int(round(mult * width**0.5 / 32)) * 32)


@dataclass
class ModelConfig:
    """Everything needed to build an `AegirModel`. Lists are per H-Net stage (outer first)."""

    d_model: list[int]
    arch_layout: list
    name: str = "custom"
    vocab_size: int = DEFAULT_VOCAB_SIZE
    n_active: int = DEFAULT_N_ACTIVE  # LM head scores only ids < n_active (bytes + specials)
    head_size: int = 64  # RWKV-7 head size N; every d_model must be a multiple
    ffn_mult: int = 4  # channel-mix hidden = ffn_mult * width
    # Target compression N per router (one per outer stage), relative to that stage's input.
    # None -> 3 for the outer router and 2 for the others, e.g. (3, 2) for three stages.
    ratio_targets: list[float] | None = None
    ratio_loss_weight: float = 0.03
    # Per-stage learning-rate multipliers; None -> evenly from 2.0 (outer) to 1.0 (innermost),
    # e.g. [2.0, 1.5, 1.0]: outer stages see fewer, noisier gradient paths (H-Net uses [3.0, 1.7, 0.9]).
    lr_multipliers: list[float] | None = None
    wkv_chunk: int = 64
    # "auto" (default): the compiled CPU kernel on CPU where it builds, else "chunked" (pure PyTorch,
    # any device); "kernel" (CPU only, aegir.kernels), "naive" (reference loop), "fla" (CUDA only).
    # A run-time choice: every path computes the same function (tested in float64).
    wkv_impl: str = "auto"
    # Activation recomputation in the backward pass, trading time for memory:
    #   "none"  keep everything (fastest; small at B=8, T=1024 peaks at ~16 GB on CPU);
    #   "wkv"   recompute only the WKV in the backward: frees the chunked form's ~45 chunk-sized
    #           intermediates (+40% WKV time); next to nothing with the CPU kernel, which already
    #           keeps only its inputs and one state per 16 steps;
    #   "block" keep only each block's input and recompute the block (about +1 forward pass).
    recompute: str = "none"
    bf16_autocast: bool = True  # bf16 autocast on CUDA (decay, WKV, router and residual stream stay fp32)
    # The same bf16 autocast on CPU: off by default (CPU fp32 is the reference). A run-time choice
    # (`aegir pretrain/train --bf16`): where the CPU multiplies bf16 natively (AVX512-BF16 or AMX),
    # GEMMs run ~2-3x faster than fp32 (measured in results/backbone_bf16.md); elsewhere they are slower.
    cpu_bf16: bool = False
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        self.arch_layout = _as_lists(self.arch_layout)
        S = parse_layout(self.arch_layout).n_stages
        if self.ratio_targets is None:
            self.ratio_targets = [3.0] + [2.0] * (S - 2) if S > 1 else []
        if self.lr_multipliers is None:
            self.lr_multipliers = [2.0 - i / (S - 1) for i in range(S)] if S > 1 else [1.0]
        for name in ("d_model", "ratio_targets", "lr_multipliers"):
            val = getattr(self, name)
            conv = int if name == "d_model" else float
            try:
                setattr(self, name, [conv(x) for x in val])
            except (TypeError, ValueError):
                raise ModelConfigError(f"{name}: expected a list of numbers, got {val!r}") from None
        self.validate()

    # --- validation ----------------------------------------------------------------------
    @property
    def layout(self) -> ParsedLayout:
        return parse_layout(self.arch_layout)

    @property
    def n_stages(self) -> int:
        return self.layout.n_stages

    def validate(self) -> None:
        lay = parse_layout(self.arch_layout)
        S = lay.n_stages
        if not isinstance(self.d_model, list) or len(self.d_model) != S:
            raise ModelConfigError(f"d_model: expected {S} widths (one per stage of arch_layout), got {self.d_model!r}")
        for s, d in enumerate(self.d_model):
            if d <= 0 or d % self.head_size:
                raise ModelConfigError(f"d_model[{s}]={d}: must be a positive multiple of head_size={self.head_size}")
        for s in range(1, S):
            if self.d_model[s] < self.d_model[s - 1]:
                # Widths grow by concatenating a learned pad, and shrink by truncation: no projection.
                raise ModelConfigError(f"d_model must be non-decreasing, got {self.d_model}")
        if len(self.ratio_targets) != S - 1:
            raise ModelConfigError(f"ratio_targets: expected {S - 1} values (one per router), got {self.ratio_targets}")
        for i, n in enumerate(self.ratio_targets):
            if not n > 1.0:
                raise ModelConfigError(f"ratio_targets[{i}]={n}: a target compression must be > 1")
        if len(self.lr_multipliers) != S:
            raise ModelConfigError(f"lr_multipliers: expected {S} values (one per stage), got {self.lr_multipliers}")
        if any(not m > 0 for m in self.lr_multipliers):
            raise ModelConfigError(f"lr_multipliers must be positive, got {self.lr_multipliers}")
        if not 0 < self.n_active <= self.vocab_size:
            raise ModelConfigError(f"n_active={self.n_active} must be in 1..vocab_size={self.vocab_size}")
        if self.head_size < 1 or self.ffn_mult < 1 or self.wkv_chunk < 1:
            raise ModelConfigError("head_size, ffn_mult and wkv_chunk must be >= 1")
        if self.recompute not in RECOMPUTE:
            raise ModelConfigError(f"recompute={self.recompute!r}: expected one of {RECOMPUTE}")
        if self.wkv_impl not in WKV_IMPLS:
            raise ModelConfigError(f"wkv_impl={self.wkv_impl!r}: expected one of {WKV_IMPLS}")
        if self.ratio_loss_weight < 0 or self.norm_eps <= 0:
            raise ModelConfigError("ratio_loss_weight must be >= 0 and norm_eps > 0")

    def bf16_autocast_on(self, device_type: str) -> bool:
        """Whether the forward pass runs under bf16 autocast on a device of this type ("cuda", "cpu")."""
        return (device_type == "cuda" and self.bf16_autocast) or (device_type == "cpu" and self.cpu_bf16)

    # --- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        if not isinstance(d, dict):
            raise ModelConfigError(f"model config must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelConfigError(f"model config: unknown keys {unknown} (known: {sorted(known)})")
        missing = [k for k in ("d_model", "arch_layout") if k not in d]
        if missing:
            raise ModelConfigError(f"model config: missing keys {missing}")
        try:
            return cls(**copy.deepcopy(d))
        except TypeError as e:  # e.g. a string where a list is expected
            raise ModelConfigError(f"model config: {e}") from None

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "ModelConfig":
        if name not in PRESETS:
            raise ModelConfigError(f"unknown model size {name!r}; choose one of {sorted(PRESETS)}")
        d = copy.deepcopy(PRESETS[name])
        d["name"] = name
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise ModelConfigError(f"unknown ModelConfig override(s) {unknown}")
        d.update(overrides)
        return cls(**d)

    def lora_dims(self, width: int) -> dict[str, int]:
        """Low-rank sizes of the decay (w), in-context rate (a), value residual (v) and gate (g)."""
        return {"w": lora_dim(width, 2.5), "a": lora_dim(width, 2.5), "v": lora_dim(width, 1.7), "g": lora_dim(width, 5.0)}


def _as_lists(x: Any) -> Any:
    """Tuples -> lists recursively, so to_dict()/from_dict() round-trip through JSON unchanged."""
    if isinstance(x, (list, tuple)):
        return [_as_lists(v) for v in x]
    return x


# The design's table (design.md / architecture.md section 4). `nano` exists for CPU tests and
# demos: head_size 32 so that a 96-wide stage still has whole heads.
PRESETS: dict[str, dict[str, Any]] = {
    "nano": {"d_model": [64, 96, 96], "arch_layout": ["w1", ["w1", ["w2"], "w1"], "w1"], "head_size": 32},
    "tiny": {"d_model": [128, 192, 192], "arch_layout": ["w2", ["w2", ["w4"], "w2"], "w2"]},
    "small": {"d_model": [256, 384, 384], "arch_layout": ["w4", ["w4", ["w8"], "w4"], "w4"]},
    "base": {"d_model": [768, 1024, 1024], "arch_layout": ["w4", ["w4", ["w12"], "w4"], "w4"]},
}
