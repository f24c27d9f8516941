"""Export t2t chat records for VERL (cluster SFT + GRPO): parquet files, the reward module, launch scripts.

Layout written by `export_verl(records, out)` (per task = "schema" | "table"):

    out/<task>/rl_{train,val}.parquet          GRPO data: data_source, prompt, ability, reward_model, extra_info
    out/<task>/sft_<stage>_{train,val}.parquet SFT data per curriculum stage: messages, id, data_source, extra_info
    out/t2t_reward.py                          custom_reward_function.path (re-exports rewards.compute_score)
    out/sft_fsdp.sh, out/grpo.sh               launch scripts carrying the T2TTrainConfig values
    out/manifest.json                          counts, config, file list

RL rows follow VERL's documented RLHF dataset contract: `prompt` is a list of chat messages (system, user;
the gold answer is *not* in the prompt), `reward_model = {"style": "rule", "ground_truth": <JSON string>}`
and `extra_info` carries `split`, `index`, `stage` (compute_score reads the stage from it) and the id.
SFT stages are cumulative like local SFT: a record is in every stage whose context fits its estimated
length (part 1's estimate_tokens with `cfg.chars_per_token`, headroom `cfg.bucket_margin`).

VERL itself is not imported (it pins an older transformers); it stays an optional, separate environment.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aegir.t2t.config import DEFAULT_HUB_MODEL, T2TTrainConfig, check_task

RL_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")
SFT_COLUMNS = ("messages", "id", "data_source", "extra_info")
ABILITY = {"schema": "t2t_schema_induction", "table": "t2t_table_extraction"}
REWARD_FILE = "t2t_reward.py"


class VerlExportError(ValueError):
    """Records that cannot be exported (names the record and field)."""


@dataclass
class VerlExport:
    out_dir: str
    files: list[str]
    counts: dict[str, int]  # file name -> rows
    reward_module: str
    scripts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _extra(rec: dict[str, Any], task: str, split: str, index: int, est: int) -> dict[str, Any]:
    # Fixed keys and types on every row: parquet needs one struct type for the column.
    return {"split": split, "index": int(index), "stage": task, "id": str(rec.get("id", index)),
            "est_tokens": int(est)}


def rl_row(rec: dict[str, Any], task: str, split: str, index: int) -> dict[str, Any]:
    """One VERL RLHF row from a part-1 chat record."""
    from aegir.t2t.datasets import estimate_tokens

    msgs = rec.get("messages")
    if not isinstance(msgs, list) or len(msgs) < 2:
        raise VerlExportError(f"record {rec.get('id', index)}: 'messages' must be [system, user, assistant]")
    prompt = [{"role": str(m["role"]), "content": str(m["content"])} for m in msgs if m.get("role") != "assistant"]
    gt = rec.get("ground_truth")
    if not isinstance(gt, str):
        raise VerlExportError(f"record {rec.get('id', index)}: field 'ground_truth' must be a JSON string")
    return {
        "data_source": str(rec.get("data_source", f"aegir_t2t/{task}")),
        "prompt": prompt,
        "ability": ABILITY[task],
        "reward_model": {"style": "rule", "ground_truth": gt},
        "extra_info": _extra(rec, task, split, index, rec.get("est_tokens") or estimate_tokens(prompt)),
    }


def sft_row(rec: dict[str, Any], task: str, split: str, index: int, est: int) -> dict[str, Any]:
    msgs = [{"role": str(m["role"]), "content": str(m["content"])} for m in rec["messages"]]
    return {"messages": msgs, "id": str(rec.get("id", index)),
            "data_source": str(rec.get("data_source", f"aegir_t2t/{task}")),
            "extra_info": _extra(rec, task, split, index, est)}


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    tmp.replace(path)


def _split(records: list[dict[str, Any]], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    idx = list(range(len(records)))
    random.Random(seed).shuffle(idx)
    n_val = int(round(len(idx) * val_fraction))
    if val_fraction > 0 and len(idx) > 1:
        n_val = max(1, n_val)
    return sorted(idx[n_val:]), sorted(idx[:n_val])


def export_verl(
    records: list[dict[str, Any]],
    out_dir: str | Path,
    *,
    cfg: T2TTrainConfig = T2TTrainConfig(),
    val_fraction: float = 0.05,
    seed: int = 0,
    model_path: str = DEFAULT_HUB_MODEL,
) -> VerlExport:
    """Write VERL parquet files for every task present in `records` (their "stage" field), plus the reward
    module and launch scripts."""
    from aegir.t2t.datasets import estimate_tokens

    if not records:
        raise VerlExportError("no records to export")
    if not 0 <= val_fraction < 1:
        raise VerlExportError(f"val_fraction must be in [0, 1) (got {val_fraction})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_task: dict[str, list[dict[str, Any]]] = {}
    for i, r in enumerate(records):
        task = r.get("stage") if isinstance(r, dict) else None
        if task not in ("schema", "table"):
            raise VerlExportError(f"record {i} ({r.get('id') if isinstance(r, dict) else r!r}): "
                                  f"field 'stage' must be 'schema' or 'table' (got {task!r})")
        by_task.setdefault(task, []).append(r)
    files: list[str] = []
    counts: dict[str, int] = {}
    for task, recs in by_task.items():
        check_task(task)
        tdir = out / task
        tdir.mkdir(exist_ok=True)
        train_idx, val_idx = _split(recs, val_fraction, seed)
        for split, idx in (("train", train_idx), ("val", val_idx)):
            rows = [rl_row(recs[i], task, split, i) for i in idx]
            if not rows:
                continue
            p = tdir / f"rl_{split}.parquet"
            _write_parquet(rows, p)
            files.append(str(p.relative_to(out)))
            counts[str(p.relative_to(out))] = len(rows)
        est = [estimate_tokens(r["messages"], cfg.chars_per_token) for r in recs]
        for st in cfg.stages:
            for split, idx in (("train", train_idx), ("val", val_idx)):
                fit = [i for i in idx if est[i] * (1.0 + cfg.bucket_margin) <= st.max_length]
                if not fit:
                    continue
                p = tdir / f"sft_{st.name}_{split}.parquet"
                _write_parquet([sft_row(recs[i], task, split, i, est[i]) for i in fit], p)
                files.append(str(p.relative_to(out)))
                counts[str(p.relative_to(out))] = len(fit)
    reward = out / REWARD_FILE
    shutil.copyfile(Path(__file__).with_name("verl_assets") / "reward.py", reward)
    scripts = write_scripts(out, cfg, model_path=model_path)
    res = VerlExport(out_dir=str(out), files=files, counts=counts, reward_module=str(reward), scripts=scripts)
    manifest = {**res.to_dict(), "config": cfg.to_dict(), "val_fraction": val_fraction, "seed": seed,
                "model_path": model_path, "tasks": sorted(by_task)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return res


# ------------------------------------------------------------------------------------------------ checks
def validate_rl_parquet(path: str | Path) -> list[str]:
    """Problems with a VERL RL parquet file (empty list = matches the contract)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    probs = [f"missing column {c!r}" for c in RL_COLUMNS if c not in t.column_names]
    if probs:
        return probs
    sch = t.schema
    msg = pa.struct([("role", pa.string()), ("content", pa.string())])
    if sch.field("prompt").type != pa.list_(msg):
        probs.append(f"prompt must be list<struct<role, content>>, got {sch.field('prompt').type}")
    rm = sch.field("reward_model").type
    if not pa.types.is_struct(rm) or {rm.field(i).name for i in range(rm.num_fields)} != {"style", "ground_truth"}:
        probs.append(f"reward_model must be struct<style, ground_truth>, got {rm}")
    for c in ("data_source", "ability"):
        if sch.field(c).type != pa.string():
            probs.append(f"{c} must be a string column")
    ei = sch.field("extra_info").type
    if not pa.types.is_struct(ei) or "stage" not in {ei.field(i).name for i in range(ei.num_fields)}:
        probs.append("extra_info must be a struct with 'stage'")
    for i, row in enumerate(t.to_pylist()):
        if row["reward_model"]["style"] != "rule":
            probs.append(f"row {i}: reward_model.style must be 'rule'")
        if any(m["role"] == "assistant" for m in row["prompt"]):
            probs.append(f"row {i}: the prompt must not contain the assistant answer")
        try:
            json.loads(row["reward_model"]["ground_truth"])
        except (TypeError, json.JSONDecodeError):
            probs.append(f"row {i}: ground_truth is not a JSON string")
    return probs


def load_reward_module(path: str | Path) -> Any:
    """Import a reward file by path, the way VERL's custom_reward_function loader does."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("aegir_verl_custom_reward", str(path))
    if spec is None or spec.loader is None:
        raise VerlExportError(f"{path}: cannot be imported as a Python module")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------------------------------------ scripts
_HEADER = """#!/usr/bin/env bash
# Generated by `aegir t2t export-verl` from T2TTrainConfig. Needs a VERL environment (pip install verl==0.9.1,
# CUDA + vLLM); VERL pins transformers<5.11, so keep it apart from aegir's own venv and `pip install -e` aegir
# into it (the reward module imports aegir.t2t.rewards).
set -euo pipefail
HERE="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
TASK="${{TASK:-table}}"           # schema (pi_1) | table (pi_2)
MODEL="${{MODEL:-{model}}}"
NGPU="${{NGPU:-8}}"
OUT="${{OUT:-$HERE/runs/$TASK}}"
TARGETS="[{targets}]"
"""

SFT_TEMPLATE = _HEADER + """
# LoRA: rank {r}, alpha {alpha}, targets as above. VERL's SFT trainer builds its LoraConfig from
# model.lora_rank / lora_alpha / target_modules only: it has NO dropout key, so these runs use LoRA dropout 0
# (peft's default) instead of the configured {dropout}. Passing +model.lora_dropout would be ignored or
# rejected depending on the VERL version, so it is not passed; use `aegir t2t sft` (TRL) where the dropout
# matters.
# Curriculum: one run per stage; stage k+1 starts from stage k's last saved checkpoint.
INIT="$MODEL"
run_stage() {{  # name max_length lr warmup_ratio steps micro_batch
  local name=$1 len=$2 lr=$3 warm=$4 steps=$5 mb=$6
  [ -f "$HERE/$TASK/sft_${{name}}_train.parquet" ] || {{ echo "skip $name: no records fit"; return; }}
  local val="$HERE/$TASK/sft_${{name}}_val.parquet"
  [ -f "$val" ] || val="$HERE/$TASK/sft_${{name}}_train.parquet"
  torchrun --standalone --nnodes=1 --nproc_per_node="$NGPU" -m verl.trainer.fsdp_sft_trainer \\
    data.train_files="$HERE/$TASK/sft_${{name}}_train.parquet" data.val_files="$val" \\
    data.multiturn.enable=true data.multiturn.messages_key=messages \\
    data.max_length="$len" data.truncation=error \\
    data.train_batch_size={global_batch} data.micro_batch_size_per_gpu="$mb" \\
    model.partial_pretrain="$INIT" model.strategy=fsdp \\
    model.lora_rank={r} model.lora_alpha={alpha} model.target_modules="$TARGETS" \\
    optim.lr="$lr" optim.warmup_steps_ratio="$warm" \\
    trainer.total_training_steps="$steps" trainer.default_local_dir="$OUT/$name" \\
    trainer.project_name=aegir-t2t trainer.experiment_name="$TASK-sft-$name" trainer.logger='[console]'
  INIT="$(ls -d "$OUT/$name"/global_step_* | sort -V | tail -1)"
}}
{stage_calls}
echo "final SFT checkpoint: $INIT"
"""

GRPO_TEMPLATE = _HEADER + """
SFT_ADAPTER="${{SFT_ADAPTER:?set SFT_ADAPTER to the SFT LoRA adapter directory}}"
python3 -m verl.trainer.main_ppo \\
  algorithm.adv_estimator=grpo algorithm.use_kl_in_reward=False \\
  data.train_files="$HERE/$TASK/rl_train.parquet" data.val_files="$HERE/$TASK/rl_val.parquet" \\
  data.train_batch_size={global_batch} data.max_prompt_length={max_prompt} \\
  data.max_response_length="$([ "$TASK" = schema ] && echo {new_schema} || echo {new_table})" \\
  data.filter_overlong_prompts=True data.truncation=error \\
  actor_rollout_ref.model.path="$MODEL" \\
  actor_rollout_ref.model.lora_rank={r} actor_rollout_ref.model.lora_alpha={alpha} \\
  actor_rollout_ref.model.target_modules="$TARGETS" actor_rollout_ref.model.lora_adapter_path="$SFT_ADAPTER" \\
  actor_rollout_ref.actor.optim.lr={rl_lr} actor_rollout_ref.actor.ppo_mini_batch_size={global_batch} \\
  actor_rollout_ref.actor.use_kl_loss={use_kl} actor_rollout_ref.actor.kl_loss_coef={beta} \\
  actor_rollout_ref.rollout.name=vllm actor_rollout_ref.rollout.n={n_gen} \\
  actor_rollout_ref.rollout.temperature={temperature} actor_rollout_ref.rollout.load_format=safetensors \\
  custom_reward_function.path="$HERE/{reward_file}" custom_reward_function.name=compute_score \\
  trainer.n_gpus_per_node="$NGPU" trainer.nnodes=1 trainer.total_training_steps={rl_steps} \\
  trainer.project_name=aegir-t2t trainer.experiment_name="$TASK-grpo" trainer.logger='[console]' \\
  trainer.default_local_dir="$OUT/grpo" "$@"
"""


def write_scripts(out: Path, cfg: T2TTrainConfig, model_path: str = DEFAULT_HUB_MODEL) -> list[str]:
    common = {"model": model_path, "targets": ",".join(cfg.lora.target_modules), "r": cfg.lora.r,
              "alpha": cfg.lora.alpha, "global_batch": cfg.global_batch}
    calls = "\n".join(
        f"run_stage {p.name} {p.max_length} {p.learning_rate:g} {p.warmup_ratio:g} {p.max_steps} {p.micro_batch}"
        for p in cfg.plan()
    )
    sft = SFT_TEMPLATE.format(**common, dropout=cfg.lora.dropout, stage_calls=calls)
    grpo = GRPO_TEMPLATE.format(
        **common, max_prompt=cfg.stages[-1].max_length, new_schema=cfg.max_new_tokens_schema,
        new_table=cfg.max_new_tokens_table, rl_lr=f"{cfg.rl_learning_rate:g}", use_kl=str(cfg.rl_beta > 0),
        beta=cfg.rl_beta, n_gen=cfg.rl_num_generations, temperature=cfg.rl_temperature, reward_file=REWARD_FILE,
        rl_steps=cfg.rl_max_steps,
    )
    paths = []
    for name, text in (("sft_fsdp.sh", sft), ("grpo.sh", grpo)):
        p = out / name
        p.write_text(text)
        p.chmod(0o755)
        paths.append(str(p))
    return paths


__all__ = ["export_verl", "VerlExport", "VerlExportError", "rl_row", "sft_row", "validate_rl_parquet",
           "load_reward_module", "write_scripts", "RL_COLUMNS", "SFT_COLUMNS"]
