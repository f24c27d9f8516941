"""Local RL: TRL GRPOTrainer on pi_1 or pi_2, starting from an SFT adapter, rewarded by part 1's rewards.

The policy is a PeftModel: starting from `aegir t2t sft`'s adapter (made trainable again), or a fresh LoRA
with the config's settings when no adapter is given. Rollouts are unconstrained on purpose: with grammar
constraints the validity parts of the reward become constant and the sampling distribution no longer matches
the log-probs the trainer computes (docs/shared tooling notes). The reward functions give partial credit,
so GRPO groups have reward variance even for a weak policy.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from aegir.t2t.config import T2TTrainConfig, check_task
from aegir.t2t.models import LoadedModel, load_adapter, load_model, write_adapter_meta
from aegir.t2t.sft import SFTDataError, _dataloader_kwargs, _precision_flags, attach_lora

RewardFn = Callable[..., list[float]]


@dataclass
class RLStep:
    step: int
    reward: float  # mean reward of the step's completions
    reward_std: float  # mean over groups of the within-group reward std (0 -> no learning signal)
    loss: float | None = None


@dataclass
class RLResult:
    task: str
    base_spec: str
    out_dir: str
    adapter_dir: str
    steps: list[RLStep] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def mean_reward(self) -> float:
        return sum(s.reward for s in self.steps) / len(self.steps) if self.steps else math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_reward(task: str) -> RewardFn:
    from aegir.t2t.rewards import trl_schema_reward, trl_table_reward

    return trl_schema_reward if check_task(task) == "schema" else trl_table_reward


def grpo_dataset(records: list[dict[str, Any]], extra_columns: tuple[str, ...] = ()) -> Any:
    """Chat records -> a TRL conversational prompt dataset: `prompt` (messages without the answer), the
    `ground_truth` column and `extra_columns`; TRL passes every column to the reward function by name."""
    from datasets import Dataset

    rows = []
    for i, r in enumerate(records):
        msgs = r.get("messages")
        if not isinstance(msgs, list) or len(msgs) < 2:
            raise SFTDataError(f"record {r.get('id', i)}: 'messages' must hold at least [system/user, ...]")
        prompt = msgs[:-1] if msgs[-1].get("role") == "assistant" else msgs
        gt = r.get("ground_truth")
        if not isinstance(gt, str):
            raise SFTDataError(f"record {r.get('id', i)}: field 'ground_truth' must be a JSON string")
        row = {"prompt": prompt, "ground_truth": gt}
        for c in extra_columns:
            if c not in r:
                raise SFTDataError(f"record {r.get('id', i)}: missing field {c!r}")
            row[c] = r[c]
        rows.append(row)
    return Dataset.from_list(rows)


def _policy(model: str | LoadedModel, adapter: str | Path | None, cfg: T2TTrainConfig) -> LoadedModel:
    if adapter is not None:
        loaded = load_adapter(adapter, trainable=True)
    elif isinstance(model, LoadedModel):
        loaded = model
    else:
        loaded = load_model(model)
    loaded.model = attach_lora(loaded, cfg)
    return loaded


def run_grpo(
    records: list[dict[str, Any]],
    task: str,
    out_dir: str | Path,
    *,
    model: str | LoadedModel = "smollm2",
    adapter: str | Path | None = None,
    cfg: T2TTrainConfig = T2TTrainConfig(),
    max_steps: int | None = None,
    num_generations: int | None = None,
    max_completion_length: int | None = None,
    learning_rate: float | None = None,
    reward_fn: RewardFn | None = None,
    extra_columns: tuple[str, ...] = (),
    save: bool = True,
) -> RLResult:
    """GRPO on `records` (part 1's chat records with `ground_truth`). Returns per-step reward statistics."""
    from trl import GRPOConfig, GRPOTrainer

    check_task(task)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded = _policy(model, adapter, cfg)
    tok = loaded.tokenizer
    tok.padding_side = "left"
    g = num_generations or cfg.rl_num_generations
    if g < 2:
        raise SFTDataError(f"num_generations must be >= 2 for group-relative advantages (got {g})")
    args = GRPOConfig(
        output_dir=str(out / "trainer"),
        max_steps=max_steps or cfg.rl_max_steps,
        learning_rate=learning_rate or cfg.rl_learning_rate,
        # One prompt group per device step: batch = num_generations completions of one prompt.
        per_device_train_batch_size=g,
        gradient_accumulation_steps=1,
        num_generations=g,
        max_completion_length=max_completion_length or cfg.max_new_tokens(task),
        temperature=cfg.rl_temperature,
        beta=cfg.rl_beta,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=cfg.seed,
        activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
        disable_tqdm=False,
        **_precision_flags(cfg),
        **_dataloader_kwargs(cfg),
    )
    trainer = GRPOTrainer(
        model=loaded.model,
        reward_funcs=[reward_fn or default_reward(task)],
        args=args,
        train_dataset=grpo_dataset(records, extra_columns),
        processing_class=tok,
    )
    t0 = time.perf_counter()
    trainer.train()
    secs = time.perf_counter() - t0
    steps = []
    for h in trainer.state.log_history:
        if "reward" in h:
            steps.append(
                RLStep(step=int(h.get("step", len(steps) + 1)), reward=float(h["reward"]),
                       reward_std=float(h.get("reward_std", 0.0)), loss=float(h["loss"]) if "loss" in h else None)
            )
    adir = out / "adapter"
    if save:
        loaded.model.save_pretrained(str(adir))
        write_adapter_meta(adir, loaded.base_spec, {"task": task, "rl": "grpo", "steps": args.max_steps})
        tok.save_pretrained(str(adir))
    res = RLResult(task=task, base_spec=loaded.base_spec, out_dir=str(out), adapter_dir=str(adir) if save else "",
                   steps=steps, seconds=secs)
    (out / "rl_result.json").write_text(json.dumps(res.to_dict(), indent=2, default=str))
    return res


__all__ = ["RLResult", "RLStep", "run_grpo", "grpo_dataset", "default_reward"]
