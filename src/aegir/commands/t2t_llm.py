"""`aegir t2t sft|rl|pipeline-rl|export-verl` and `aegir extract`: the LLM half of text -> schema -> table.

Each command parses flags and calls one library function (aegir.t2t.sft.run_sft, rl.run_grpo,
pipeline.run_pipeline_rl, verl.export_verl, extract.extract_file). Heavy imports happen inside the commands
so `aegir --help` stays fast. Trainers show their own tqdm progress bars.
"""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console

console = Console(stderr=True)

DATA_HELP = "e2e | wikitabletext | rotowire | synthetic | a JSONL of examples (any layout part 1 reads)."
RECORDS_HELP = "A JSONL of chat records written by `aegir t2t build-sft` (instead of --data)."


def _run_dir(kind: str, out: Optional[Path]) -> Path:
    if out is not None:
        return out
    ts = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path("outputs") / kind / ts


def _guard(fn: Callable[[], Any]) -> Any:
    """User mistakes (bad data, model spec, config value) -> one line on stderr and exit code 2."""
    from aegir.tables.table import TableError
    from aegir.t2t.config import T2TConfigError
    from aegir.t2t.extract import ExtractionError
    from aegir.t2t.models import ModelLoadError
    from aegir.t2t.sft import SFTDataError
    from aegir.t2t.verl import VerlExportError

    try:
        return fn()
    except (TableError, T2TConfigError, ExtractionError, ModelLoadError, SFTDataError, VerlExportError) as e:
        typer.echo(f"error: {e}", err=True)  # unwrapped: paths in messages stay greppable
        raise typer.Exit(2) from None


def _read_records(path: Path) -> list[dict[str, Any]]:
    from aegir.t2t.datasets import read_jsonl_objects
    from aegir.t2t.sft import SFTDataError

    return [rec for _, rec in read_jsonl_objects(path, SFTDataError, missing="no such records file")]


def load_task_records(task: str, data: Optional[str], records: Optional[Path], limit: Optional[int],
                      seed: int = 0) -> list[dict[str, Any]]:
    """Records for `task` from --records (filtered by their "stage") or built from --data examples."""
    from aegir.t2t.datasets import build_sft_records, load_examples
    from aegir.t2t.sft import SFTDataError

    if records is not None:
        recs = [r for r in _read_records(records) if r.get("stage", task) == task]
        if not recs:
            raise SFTDataError(f"{records}: no records with stage {task!r}")
    elif data is not None:
        recs = build_sft_records(load_examples(data, limit=limit, seed=seed), task)
    else:
        raise SFTDataError("give --data or --records")
    return recs[:limit] if limit is not None else recs


def split_eval(recs: list[dict[str, Any]], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Hold out `fraction` of the records (at least one when fraction > 0 and there are 2+ records)."""
    if fraction <= 0 or len(recs) < 2:
        return recs, []
    idx = list(range(len(recs)))
    random.Random(seed).shuffle(idx)
    n = max(1, int(round(len(recs) * fraction)))
    hold = set(idx[:n])
    return [r for i, r in enumerate(recs) if i not in hold], [r for i, r in enumerate(recs) if i in hold]


def build_config(
    config: Optional[Path] = None, lora_r: Optional[int] = None, lora_alpha: Optional[int] = None,
    lora_dropout: Optional[float] = None, micro_batch: Optional[int] = None, global_batch: Optional[int] = None,
    gradient_checkpointing: Optional[bool] = None, num_workers: Optional[int] = None,
    est_step_seconds: Optional[float] = None,
) -> Any:
    """T2TTrainConfig from an optional JSON file plus flag overrides (only flags that were given)."""
    from aegir.t2t.config import T2TConfigError, T2TTrainConfig

    cfg = T2TTrainConfig()
    if config is not None:
        try:
            cfg = T2TTrainConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
        except json.JSONDecodeError as e:
            raise T2TConfigError(f"{config}: invalid JSON at line {e.lineno}: {e.msg}") from None
        except TypeError as e:
            raise T2TConfigError(f"{config}: {e}") from None
    lora = cfg.lora
    for name, v in (("r", lora_r), ("alpha", lora_alpha), ("dropout", lora_dropout)):
        if v is not None:
            lora = dataclasses.replace(lora, **{name: v})
    changes: dict[str, Any] = {"lora": lora}
    if gradient_checkpointing is not None:
        changes["gradient_checkpointing"] = gradient_checkpointing
    if num_workers is not None:
        changes["num_workers"] = num_workers
    if est_step_seconds is not None:
        changes["est_step_seconds"] = est_step_seconds
    cfg = cfg.replace(**changes)
    if global_batch is not None or micro_batch is not None:
        cfg = cfg.with_global_batch(global_batch or cfg.global_batch, micro_batch or 1)
    return cfg


_CFG_OPTS = dict(
    config=typer.Option(None, "--config", help="T2TTrainConfig JSON (as written to t2t_config.json)."),
    lora_r=typer.Option(None, "--lora-r", help="LoRA rank (default 128)."),
    lora_alpha=typer.Option(None, "--lora-alpha", help="LoRA alpha (default 256)."),
    lora_dropout=typer.Option(None, "--lora-dropout", help="LoRA dropout (default 0.05)."),
    micro_batch=typer.Option(None, "--micro-batch", help="Per-step micro-batch for every stage (CPU: 1)."),
    global_batch=typer.Option(None, "--global-batch", help="Sequences per optimizer step (default 32)."),
    gradient_checkpointing=typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing",
                                        help="Recompute activations (default on)."),
    num_workers=typer.Option(None, "--num-workers", help="Dataloader workers (default min(8, cpus))."),
)


def register_t2t(t2t_app: typer.Typer) -> None:
    @t2t_app.command("sft")
    def sft(
        stage: str = typer.Option(..., "--stage", help="schema (pi_1) | table (pi_2)."),
        data: Optional[str] = typer.Option(None, "--data", help=DATA_HELP),
        records: Optional[Path] = typer.Option(None, "--records", help=RECORDS_HELP),
        model: str = typer.Option("smollm2", "--model", help="smollm2 (offline) | tiny | HF id or path."),
        init_adapter: Optional[Path] = typer.Option(None, "--init-adapter", help="Continue this saved adapter."),
        out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default outputs/t2t-sft-<stage>/<UTC>)."),
        max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Steps per curriculum stage (overrides hours)."),
        est_step_seconds: Optional[float] = typer.Option(None, "--est-step-seconds",
                                                         help="Seconds per optimizer step: hours -> steps (default 22)."),
        curriculum: Optional[list[str]] = typer.Option(None, "--curriculum-stage",
                                                       help="Run only these stages (ctx2048, ctx4096, ctx8192)."),
        limit: Optional[int] = typer.Option(None, "--limit", help="At most this many records."),
        eval_fraction: float = typer.Option(0.05, "--eval-fraction", help="Records held out for evaluation."),
        seed: int = typer.Option(0, "--seed"),
        config: Optional[Path] = _CFG_OPTS["config"], lora_r: Optional[int] = _CFG_OPTS["lora_r"],
        lora_alpha: Optional[int] = _CFG_OPTS["lora_alpha"], lora_dropout: Optional[float] = _CFG_OPTS["lora_dropout"],
        micro_batch: Optional[int] = _CFG_OPTS["micro_batch"], global_batch: Optional[int] = _CFG_OPTS["global_batch"],
        gradient_checkpointing: Optional[bool] = _CFG_OPTS["gradient_checkpointing"],
        num_workers: Optional[int] = _CFG_OPTS["num_workers"],
    ) -> None:
        """LoRA SFT of pi_1 or pi_2 through the 2048 -> 4096 -> 8192 context curriculum."""
        from aegir.t2t.config import check_task
        from aegir.t2t.sft import run_sft

        def go() -> None:
            check_task(stage)
            cfg = build_config(config, lora_r, lora_alpha, lora_dropout, micro_batch, global_batch,
                               gradient_checkpointing, num_workers, est_step_seconds)
            recs = load_task_records(stage, data, records, limit, seed)
            train, ev = split_eval(recs, eval_fraction, seed)
            res = run_sft(train, stage, _run_dir(f"t2t-sft-{stage}", out), model=model, cfg=cfg,
                          max_steps=max_steps, stage_names=curriculum or None, init_adapter=init_adapter,
                          eval_records=ev or None)
            for s in res.stages:
                console.print(f"{s.name}: {s.steps} steps on {s.n_records} records, loss "
                              f"{s.losses[0] if s.losses else float('nan'):.3f} -> "
                              f"{s.losses[-1] if s.losses else float('nan'):.3f}, {s.tokens_per_s:.0f} tok/s")
            if res.sanity:
                console.print(f"table sanity: {json.dumps(res.sanity)}")
            console.print(f"adapter: {res.adapter_dir}")

        _guard(go)

    @t2t_app.command("rl")
    def rl(
        stage: str = typer.Option(..., "--stage", help="schema (pi_1) | table (pi_2)."),
        data: Optional[str] = typer.Option(None, "--data", help=DATA_HELP),
        records: Optional[Path] = typer.Option(None, "--records", help=RECORDS_HELP),
        adapter: Optional[Path] = typer.Option(None, "--adapter", help="SFT adapter to start from."),
        model: str = typer.Option("smollm2", "--model", help="Base model when no --adapter is given."),
        out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default outputs/t2t-rl-<stage>/<UTC>)."),
        max_steps: Optional[int] = typer.Option(None, "--max-steps", help="GRPO steps (default 100)."),
        num_generations: Optional[int] = typer.Option(None, "--num-generations", help="Completions per prompt."),
        max_completion_length: Optional[int] = typer.Option(None, "--max-completion-length"),
        lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default 1e-6)."),
        limit: Optional[int] = typer.Option(None, "--limit"),
        seed: int = typer.Option(0, "--seed"),
        config: Optional[Path] = _CFG_OPTS["config"],
        gradient_checkpointing: Optional[bool] = _CFG_OPTS["gradient_checkpointing"],
        num_workers: Optional[int] = _CFG_OPTS["num_workers"],
    ) -> None:
        """GRPO (TRL) on pi_1 or pi_2 with part 1's reward functions."""
        from aegir.t2t.config import check_task
        from aegir.t2t.rl import run_grpo

        def go() -> None:
            check_task(stage)
            cfg = build_config(config, gradient_checkpointing=gradient_checkpointing, num_workers=num_workers)
            recs = load_task_records(stage, data, records, limit, seed)
            res = run_grpo(recs, stage, _run_dir(f"t2t-rl-{stage}", out), model=model, adapter=adapter, cfg=cfg,
                           max_steps=max_steps, num_generations=num_generations,
                           max_completion_length=max_completion_length, learning_rate=lr)
            for s in res.steps:
                console.print(f"step {s.step}: reward {s.reward:.4f} (group std {s.reward_std:.4f})")
            console.print(f"adapter: {res.adapter_dir}")

        _guard(go)

    @t2t_app.command("pipeline-rl")
    def pipeline_rl(
        data: str = typer.Option(..., "--data", help=DATA_HELP),
        pi1: str = typer.Option("smollm2", "--pi1", help="pi_1: adapter dir or model spec."),
        pi2: str = typer.Option("smollm2", "--pi2", help="pi_2: adapter dir or model spec."),
        out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default outputs/t2t-pipeline-rl/<UTC>)."),
        rounds: int = typer.Option(1, "--rounds"),
        pi1_steps: Optional[int] = typer.Option(None, "--pi1-steps"),
        pi2_steps: Optional[int] = typer.Option(None, "--pi2-steps"),
        num_generations: Optional[int] = typer.Option(None, "--num-generations"),
        limit: Optional[int] = typer.Option(None, "--limit"),
        seed: int = typer.Option(0, "--seed"),
        config: Optional[Path] = _CFG_OPTS["config"],
    ) -> None:
        """pi_1 samples schemas, pi_2 executes them; pi_1 is rewarded by pi_2's accuracy, pi_2 trains on them."""
        from aegir.t2t.datasets import load_examples
        from aegir.t2t.pipeline import run_pipeline_rl

        def go() -> None:
            cfg = build_config(config)
            ex = load_examples(data, limit=limit, seed=seed)
            res = run_pipeline_rl(ex, _run_dir("t2t-pipeline-rl", out), pi1=pi1, pi2=pi2, cfg=cfg, rounds=rounds,
                                  pi1_steps=pi1_steps, pi2_steps=pi2_steps, num_generations=num_generations)
            for r in res.rounds:
                console.print(f"round {r.round}: {r.n_valid_schemas}/{r.n_sampled_schemas} schemas valid, "
                              f"pi_1 reward {r.pi1.mean_reward:.4f}, {r.n_pi2_records} pi_2 records")
            console.print(f"pi_1 adapter: {res.pi1_adapter}\npi_2 adapter: {res.pi2_adapter or '(unchanged)'}")

        _guard(go)

    @t2t_app.command("export-verl")
    def export_verl_cmd(
        data: Optional[str] = typer.Option(None, "--data", help=DATA_HELP),
        records: Optional[Path] = typer.Option(None, "--records", help=RECORDS_HELP),
        out: Path = typer.Option(..., "--out", help="Export folder."),
        stage: Optional[list[str]] = typer.Option(None, "--stage", help="schema and/or table (default both)."),
        val_fraction: float = typer.Option(0.05, "--val-fraction"),
        model_path: Optional[str] = typer.Option(None, "--model-path", help="Model the scripts train (hub id/path)."),
        limit: Optional[int] = typer.Option(None, "--limit"),
        seed: int = typer.Option(0, "--seed"),
        config: Optional[Path] = _CFG_OPTS["config"],
    ) -> None:
        """VERL parquet files (RL + per-stage SFT), reward module and FSDP SFT / GRPO launch scripts."""
        from aegir.t2t.config import DEFAULT_HUB_MODEL, check_task
        from aegir.t2t.verl import export_verl

        def go() -> None:
            cfg = build_config(config)
            recs: list[dict[str, Any]] = []
            for task in stage or ["schema", "table"]:
                check_task(task)
                recs += load_task_records(task, data, records, limit, seed)
            res = export_verl(recs, out, cfg=cfg, val_fraction=val_fraction, seed=seed,
                              model_path=model_path or DEFAULT_HUB_MODEL)
            for f, n in res.counts.items():
                console.print(f"{f}: {n} rows")
            console.print(f"reward module: {res.reward_module}\nscripts: {', '.join(res.scripts)}")

        _guard(go)


def register(app: typer.Typer) -> None:
    @app.command("extract")
    def extract_cmd(
        doc: Path = typer.Argument(..., help="A UTF-8 text document."),
        schema: Optional[Path] = typer.Option(None, "--schema", help="Use this schema JSON instead of pi_1."),
        model: str = typer.Option("smollm2", "--model", help="Model for both stages (smollm2 | tiny | id | adapter)."),
        pi1: Optional[str] = typer.Option(None, "--pi1", help="pi_1 adapter dir / model (default --model)."),
        pi2: Optional[str] = typer.Option(None, "--pi2", help="pi_2 adapter dir / model (default --model)."),
        out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Where DOC.schema.json / DOC.ndjson go."),
        constrained: bool = typer.Option(True, "--constrained/--no-constrained",
                                         help="Grammar-constrained NDJSON decoding (default on)."),
    ) -> None:
        """Document -> schema (pi_1, or --schema) -> NDJSON rows (pi_2); writes DOC.schema.json and DOC.ndjson."""
        from aegir.t2t.extract import extract_file

        def go() -> None:
            with console.status("extracting..."):
                res = extract_file(doc, out_dir, schema_path=schema, model=None if (pi1 and pi2) else model,
                                   schema_model=pi1, table_model=pi2, constrained=constrained)
            console.print(f"schema ({res.result.schema_source}): {res.schema_path}")
            console.print(f"{len(res.result.rows)} row(s) from {res.result.n_chunks} chunk(s): {res.ndjson_path}")
            if res.result.base_only:
                console.print(f"[yellow]note:[/yellow] {' and '.join(res.result.base_only)} ran on a model without a "
                              "trained adapter: a base model zero-shot writes schemas and rows of little use (see "
                              "docs/results/t2t.md); train adapters with `aegir t2t sft` and pass --pi1/--pi2")

        _guard(go)
