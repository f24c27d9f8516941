"""LoRA SFT of pi_1 (schema) or pi_2 (table) with the context-length curriculum (TRL SFTTrainer + PEFT).

Input records are part 1's chat records (`messages` = [system, user, assistant]). Each curriculum stage
(2048 -> 4096 -> 8192 tokens by default) trains on the records whose *exact* chat-template token length fits
its context (cumulative buckets: short records keep appearing in later stages, long ones only enter when they
fit, so nothing is ever truncated); records longer than the last stage are dropped and counted. Each stage
continues the previous stage's adapter (the same PeftModel is handed to the next trainer) and saves it to
`<out>/<stage>/adapter`; the final adapter is also written to `<out>/adapter`.

Loss is assistant-only: the chat template in models.py carries `{% generation %}` markers.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from aegir.t2t.config import StagePlan, T2TConfigError, T2TTrainConfig, check_task
from aegir.t2t.models import LoadedModel, load_adapter, load_model, write_adapter_meta


class SFTDataError(ValueError):
    """Training records that cannot be used (names the record id / field)."""


@dataclass
class StageResult:
    name: str
    max_length: int
    n_records: int
    n_too_long: int  # records longer than this stage's context (left for later stages or dropped)
    steps: int
    learning_rate: float
    warmup_steps: int
    losses: list[float]  # training loss at every logging step
    seconds: float
    tokens: int  # non-pad tokens the trainer consumed
    tokens_per_s: float
    adapter_dir: str
    eval_loss: float | None = None


@dataclass
class SFTResult:
    task: str
    base_spec: str
    out_dir: str
    adapter_dir: str  # the final (last stage) adapter
    stages: list[StageResult] = field(default_factory=list)
    sanity: dict[str, Any] | None = None  # pi_2 quick table sanity report (task == "table" with eval records)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------ data
def _check_records(records: list[dict[str, Any]]) -> None:
    for i, r in enumerate(records):
        rid = r.get("id", f"#{i}") if isinstance(r, dict) else f"#{i}"
        msgs = r.get("messages") if isinstance(r, dict) else None
        if not isinstance(msgs, list) or not msgs:
            raise SFTDataError(f"record {rid}: field 'messages' must be a non-empty list of chat messages")
        for j, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise SFTDataError(f"record {rid}: messages[{j}] needs string fields 'role' and 'content'")
        if msgs[-1]["role"] != "assistant":
            raise SFTDataError(f"record {rid}: the last message must be the assistant's answer (got {msgs[-1]['role']!r})")


def token_lengths(records: list[dict[str, Any]], tokenizer: Any) -> list[int]:
    """Exact chat-template token count of every record (what the trainer will see)."""
    out = []
    for r in records:
        ids = tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"]
        out.append(len(ids))
    return out


@dataclass
class Buckets:
    """Per-stage record indices (cumulative) and the records too long for every stage."""

    per_stage: dict[str, list[int]]
    dropped: list[int]


def bucket_by_length(lengths: list[int], plan: list[StagePlan]) -> Buckets:
    per = {p.name: [i for i, n in enumerate(lengths) if n <= p.max_length] for p in plan}
    longest = max(p.max_length for p in plan)
    return Buckets(per_stage=per, dropped=[i for i, n in enumerate(lengths) if n > longest])


# ------------------------------------------------------------------------------------------------ training
def _precision_flags(cfg: T2TTrainConfig) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and cuda and torch.cuda.is_bf16_supported())
    return {"use_cpu": not cuda, "bf16": bool(bf16)}


def _lora_config(cfg: T2TTrainConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def attach_lora(loaded: LoadedModel, cfg: T2TTrainConfig) -> Any:
    """The trainable PeftModel: a fresh LoRA on the base, or the loaded adapter made trainable."""
    from peft import PeftModel, get_peft_model

    if isinstance(loaded.model, PeftModel):
        for n, p in loaded.model.named_parameters():
            p.requires_grad = "lora_" in n
        return loaded.model
    return get_peft_model(loaded.model, _lora_config(cfg))


def _dataloader_kwargs(cfg: T2TTrainConfig) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "dataloader_num_workers": cfg.num_workers,
        "dataloader_persistent_workers": cfg.persistent_workers and cfg.num_workers > 0,
    }
    if cfg.num_workers > 0:  # torch refuses prefetch_factor without workers
        kw["dataloader_prefetch_factor"] = cfg.prefetch_factor
    return kw


def run_sft(
    records: list[dict[str, Any]],
    task: str,
    out_dir: str | Path,
    *,
    model: str | LoadedModel = "smollm2",
    cfg: T2TTrainConfig = T2TTrainConfig(),
    max_steps: int | None = None,
    stage_names: list[str] | None = None,
    init_adapter: str | Path | None = None,
    eval_records: list[dict[str, Any]] | None = None,
    sanity_fn: Callable[[LoadedModel, list[dict[str, Any]], T2TTrainConfig], dict[str, Any]] | None = None,
) -> SFTResult:
    """Train pi_1 (`task="schema"`) or pi_2 (`task="table"`) through the curriculum; returns per-stage results.

    `model` is a spec for `load_model` or an already loaded model; `init_adapter` continues a saved adapter.
    `sanity_fn(loaded, eval_records[:final_eval_samples], cfg)` runs after the last stage for the table task
    (default: generation + part 1's quick table sanity).
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    check_task(task)
    if not records:
        raise SFTDataError("no training records")
    _check_records(records)
    if eval_records:
        _check_records(eval_records)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = cfg.plan(max_steps=max_steps, stage_names=stage_names)

    if init_adapter is not None:
        loaded = load_adapter(init_adapter, trainable=True)
    elif isinstance(model, LoadedModel):
        loaded = model
    else:
        loaded = load_model(model)
    tok = loaded.tokenizer
    tok.padding_side = "right"  # training pads on the right (generation code sets left again)
    peft_model = attach_lora(loaded, cfg)
    loaded.model = peft_model

    lengths = token_lengths(records, tok)
    buckets = bucket_by_length(lengths, plan)
    eval_lengths = token_lengths(eval_records, tok) if eval_records else []
    (out / "t2t_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    result = SFTResult(task=task, base_spec=loaded.base_spec, out_dir=str(out), adapter_dir="")

    for sp in plan:
        idx = buckets.per_stage[sp.name]
        if not idx:
            raise SFTDataError(
                f"stage {sp.name}: no record fits in {sp.max_length} tokens "
                f"(shortest record has {min(lengths) if lengths else 0} tokens)"
            )
        ds = Dataset.from_list([{"messages": records[i]["messages"]} for i in idx])
        ev = None
        if eval_records and cfg.eval_freq > 0:
            ev_idx = [i for i, n in enumerate(eval_lengths) if n <= sp.max_length][: cfg.per_step_eval_samples]
            ev = Dataset.from_list([{"messages": eval_records[i]["messages"]} for i in ev_idx]) if ev_idx else None
        stage_dir = out / sp.name
        args = SFTConfig(
            output_dir=str(stage_dir / "trainer"),
            max_steps=sp.max_steps,
            learning_rate=sp.learning_rate,
            warmup_steps=sp.warmup_steps,
            lr_scheduler_type="cosine",
            per_device_train_batch_size=sp.micro_batch,
            per_device_eval_batch_size=sp.micro_batch,
            gradient_accumulation_steps=sp.grad_accum,
            max_length=sp.max_length,
            assistant_only_loss=True,
            packing=False,
            logging_steps=max(1, min(cfg.log_freq, sp.max_steps)),
            eval_strategy="steps" if ev is not None else "no",
            eval_steps=cfg.eval_freq if ev is not None else None,
            save_strategy="no",  # adapters are saved explicitly per stage below
            report_to="none",
            seed=cfg.seed,
            activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
            include_num_input_tokens_seen="non_padding",
            disable_tqdm=False,
            **_precision_flags(cfg),
            **_dataloader_kwargs(cfg),
        )
        trainer = SFTTrainer(model=peft_model, args=args, train_dataset=ds, eval_dataset=ev, processing_class=tok)
        t0 = time.perf_counter()
        trainer.train()
        secs = time.perf_counter() - t0
        losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
        eval_loss = None
        if ev is not None:
            eval_loss = float(trainer.evaluate()["eval_loss"])
        tokens = int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
        adir = stage_dir / "adapter"
        peft_model.save_pretrained(str(adir))
        write_adapter_meta(adir, loaded.base_spec, {"task": task, "stage": sp.name, "steps": sp.max_steps})
        tok.save_pretrained(str(adir))
        result.stages.append(
            StageResult(
                name=sp.name,
                max_length=sp.max_length,
                n_records=len(idx),
                n_too_long=len(records) - len(idx),
                steps=sp.max_steps,
                learning_rate=sp.learning_rate,
                warmup_steps=sp.warmup_steps,
                losses=losses,
                seconds=secs,
                tokens=tokens,
                tokens_per_s=tokens / secs if secs > 0 else math.nan,
                adapter_dir=str(adir),
                eval_loss=eval_loss,
            )
        )
    final = out / "adapter"
    peft_model.save_pretrained(str(final))
    write_adapter_meta(final, loaded.base_spec, {"task": task, "stages": [s.name for s in plan]})
    tok.save_pretrained(str(final))
    result.adapter_dir = str(final)

    if task == "table" and eval_records:
        fn = sanity_fn or default_table_sanity
        result.sanity = fn(loaded, eval_records[: cfg.final_eval_samples], cfg)
    (out / "sft_result.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return result


def default_table_sanity(loaded: LoadedModel, eval_records: list[dict[str, Any]], cfg: T2TTrainConfig) -> dict[str, Any]:
    """Generate pi_2 tables (unconstrained: this measures the model, not the grammar) for the eval records
    and summarise them with part 1's quick table sanity check (JSON validity, key order, types)."""
    from aegir.t2t.decoding import generate_batch
    from aegir.t2t.sanity import quick_table_sanity

    recs = eval_records
    schemas = []
    for r in recs:
        try:
            schemas.append(json.dumps(json.loads(r["ground_truth"])["schema"]))
        except (KeyError, TypeError, json.JSONDecodeError):
            raise SFTDataError(f"eval record {r.get('id')}: table ground_truth must be JSON with a 'schema'") from None
    prompts = [r["messages"][:-1] for r in recs]
    texts = generate_batch(loaded, prompts, max_new_tokens=cfg.max_new_tokens_table)
    rep = quick_table_sanity(texts, schemas)
    rep["n_eval_records"] = len(recs)
    return rep


__all__ = [
    "SFTResult", "StageResult", "SFTDataError", "run_sft", "token_lengths", "bucket_by_length", "attach_lora",
    "T2TConfigError",
]
