"""Every default of the LLM half (SFT curriculum, GRPO, pipeline RL, decoding) in one typed object.

`T2TTrainConfig()` is the single place to read what a run will do; the CLI only overrides fields. The
numbers follow issue 7 (LoRA r128/a256, 2048 -> 4096 -> 8192 context curriculum with 4/5/5 hour budgets turned
into steps by `hours * 3600 / est_step_seconds`). `to_dict()` is written into every run folder so a run can be
reproduced from its output directory alone.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal

Task = Literal["schema", "table"]
TASKS: tuple[str, ...] = ("schema", "table")

# Design default where a hub is reachable; offline runs fall back to the embedded SmolLM2 (see models.py).
DEFAULT_HUB_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
OFFLINE_MODEL = "smollm2"  # alias resolved by aegir.t2t.models.load_model
TINY_MODEL = "tiny"  # alias for the tiny random Llama used by tests


class T2TConfigError(ValueError):
    """A bad configuration value, named by its field."""


@dataclass(frozen=True)
class LoraSettings:
    """PEFT LoRA on every attention and MLP projection (the Llama module names)."""

    r: int = 128
    alpha: int = 256
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class CurriculumStage:
    """One context-length stage. Micro-batch x grad-accum is kept at the global batch (32 by default)."""

    name: str
    max_length: int  # tokens; records longer than this go to a later stage (bucketing)
    hours: float  # wall-clock budget; converted into optimizer steps
    learning_rate: float
    warmup_ratio: float
    micro_batch: int
    grad_accum: int

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.grad_accum


def _default_stages() -> tuple[CurriculumStage, ...]:
    # Longer contexts -> smaller micro-batches (activation memory grows with length) and more accumulation,
    # so every stage sees the same global batch of 32 sequences per optimizer step.
    return (
        CurriculumStage("ctx2048", 2048, 4.0, 1.5e-4, 0.08, 8, 4),
        CurriculumStage("ctx4096", 4096, 5.0, 8e-5, 0.05, 4, 8),
        CurriculumStage("ctx8192", 8192, 5.0, 5e-5, 0.03, 2, 16),
    )


@dataclass(frozen=True)
class StagePlan:
    """What one curriculum stage will actually run (steps resolved from the hour budget or --max-steps)."""

    name: str
    max_length: int
    max_steps: int
    learning_rate: float
    warmup_ratio: float
    warmup_steps: int
    micro_batch: int
    grad_accum: int
    global_batch: int


@dataclass(frozen=True)
class T2TTrainConfig:
    """All LLM-side defaults. Frozen: derive variants with `.replace(**changes)`."""

    base_model: str = OFFLINE_MODEL
    lora: LoraSettings = field(default_factory=LoraSettings)
    stages: tuple[CurriculumStage, ...] = field(default_factory=_default_stages)
    est_step_seconds: float = 22.0
    global_batch: int = 32
    # Token estimate without a tokenizer (VERL export): part 1's estimate_tokens with this chars/token, and
    # a record belongs to a stage when est * (1 + bucket_margin) <= the stage's context (same rule as
    # part 1's bucket_records). Local SFT counts exact tokens with the model's tokenizer instead.
    chars_per_token: float = 4.0
    bucket_margin: float = 0.25
    # pi_2 evaluation cadence during/after SFT.
    per_step_eval_samples: int = 200
    final_eval_samples: int = 1000
    log_freq: int = 50
    eval_freq: int = 200
    # Dataloader: workers capped at 8 and at the machine's CPUs; workers are not persistent so each stage
    # (a new trainer) does not keep the previous stage's worker processes alive.
    num_workers: int = field(default_factory=lambda: min(8, os.cpu_count() or 1))
    prefetch_factor: int = 2
    persistent_workers: bool = False
    # Generation budgets per task.
    max_new_tokens_schema: int = 256
    max_new_tokens_table: int = 512
    # GRPO (local RL) defaults.
    rl_learning_rate: float = 1e-6
    rl_num_generations: int = 4
    rl_max_steps: int = 100
    rl_temperature: float = 1.0
    rl_beta: float = 0.0
    # Constrained decoding: the most consecutive whitespace characters the NDJSON grammar allows.
    max_whitespace: int = 1
    # Extraction: documents longer than this many characters are split (on paragraph/sentence ends).
    chunk_chars: int = 4000
    # Memory/speed trade-offs: on for the 8B/8192 design point (GPU); CPU runs of small models turn it off.
    gradient_checkpointing: bool = True
    # "auto": bf16 on a CUDA device that supports it, fp32 elsewhere.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.lora.r <= 0 or self.lora.alpha <= 0:
            raise T2TConfigError(f"lora.r and lora.alpha must be positive (got r={self.lora.r}, alpha={self.lora.alpha})")
        if not 0.0 <= self.lora.dropout < 1.0:
            raise T2TConfigError(f"lora.dropout must be in [0, 1) (got {self.lora.dropout})")
        if self.est_step_seconds <= 0:
            raise T2TConfigError(f"est_step_seconds must be > 0 (got {self.est_step_seconds})")
        if not self.stages:
            raise T2TConfigError("stages must not be empty")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise T2TConfigError(f"precision must be auto, fp32 or bf16 (got {self.precision!r})")
        if self.rl_num_generations < 2:
            raise T2TConfigError(f"rl_num_generations must be >= 2 (got {self.rl_num_generations})")
        for s in self.stages:
            if s.global_batch != self.global_batch:
                raise T2TConfigError(
                    f"stage {s.name}: micro_batch {s.micro_batch} x grad_accum {s.grad_accum} = {s.global_batch}, "
                    f"expected global_batch {self.global_batch}"
                )
            if s.max_length <= 0 or s.hours < 0 or s.learning_rate <= 0 or not 0 <= s.warmup_ratio < 1:
                raise T2TConfigError(f"stage {s.name}: invalid values {s}")

    # ---- derived quantities -------------------------------------------------------------------------
    def stage_steps(self, stage: CurriculumStage) -> int:
        """Hour budget -> optimizer steps: floor(hours * 3600 / est_step_seconds), at least 1."""
        return max(1, math.floor(stage.hours * 3600.0 / self.est_step_seconds))

    def plan(self, max_steps: int | None = None, stage_names: list[str] | None = None) -> list[StagePlan]:
        """Resolve every stage; `max_steps` (the CLI's --max-steps) overrides the hour budget of each stage."""
        if max_steps is not None and max_steps <= 0:
            raise T2TConfigError(f"--max-steps must be positive (got {max_steps})")
        known = {s.name for s in self.stages}
        if stage_names:
            unknown = [n for n in stage_names if n not in known]
            if unknown:
                raise T2TConfigError(f"unknown curriculum stage(s) {unknown}; known: {sorted(known)}")
        out = []
        for s in self.stages:
            if stage_names and s.name not in stage_names:
                continue
            steps = max_steps if max_steps is not None else self.stage_steps(s)
            out.append(
                StagePlan(
                    name=s.name,
                    max_length=s.max_length,
                    max_steps=steps,
                    learning_rate=s.learning_rate,
                    warmup_ratio=s.warmup_ratio,
                    # transformers rounds up: ceil(ratio * steps)
                    warmup_steps=math.ceil(s.warmup_ratio * steps),
                    micro_batch=s.micro_batch,
                    grad_accum=s.grad_accum,
                    global_batch=s.global_batch,
                )
            )
        return out

    def max_new_tokens(self, task: str) -> int:
        check_task(task)
        return self.max_new_tokens_schema if task == "schema" else self.max_new_tokens_table

    def replace(self, **changes: Any) -> "T2TTrainConfig":
        return dataclasses.replace(self, **changes)

    def with_global_batch(self, global_batch: int, micro_batch: int = 1) -> "T2TTrainConfig":
        """Shrink the global batch (tests / CPU budgets): every stage becomes micro_batch x (global/micro)."""
        if global_batch % micro_batch:
            raise T2TConfigError(f"global_batch {global_batch} not divisible by micro_batch {micro_batch}")
        stages = tuple(
            dataclasses.replace(s, micro_batch=micro_batch, grad_accum=global_batch // micro_batch) for s in self.stages
        )
        return dataclasses.replace(self, stages=stages, global_batch=global_batch)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "T2TTrainConfig":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise T2TConfigError(f"unknown T2TTrainConfig keys: {sorted(unknown)}")
        if "lora" in d and isinstance(d["lora"], dict):
            lo = dict(d["lora"])
            lo["target_modules"] = tuple(lo.get("target_modules", LoraSettings().target_modules))
            d["lora"] = LoraSettings(**lo)
        if "stages" in d:
            d["stages"] = tuple(s if isinstance(s, CurriculumStage) else CurriculumStage(**s) for s in d["stages"])
        return cls(**d)


def check_task(task: str) -> str:
    if task not in TASKS:
        raise T2TConfigError(f"--stage/task must be one of {TASKS} (got {task!r})")
    return task
