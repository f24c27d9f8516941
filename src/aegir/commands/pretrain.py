"""`aegir pretrain`: parse flags, call `aegir.train.pretrain.pretrain`. Works under torchrun."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from aegir.commands import BF16_HELP, given_fields


def _parse_sets(items: list[str]) -> dict:
    """`--set key=value` pairs (value parsed as JSON when it is valid JSON, else kept as text)."""
    out = {}
    for it in items:
        if "=" not in it:
            raise typer.BadParameter(f"--set expects KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


# `aegir pretrain` parameter -> PretrainConfig field, where the names differ.
_FIELD_OF = {"config": "corpus", "set_": "model_overrides", "bf16": "cpu_bf16"}


def pretrain_command(
    ctx: typer.Context,
    config: str = typer.Option("mixed-v2", "--config", help="Corpus mixture: mixed-v2 (text 0.4 / DDL 0.2 / tables 0.4), text, tables."),
    model_size: str = typer.Option("nano", "--model-size", help="Model preset: nano, tiny, small, base."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps (default 1000, or no cap with --hours; on --resume: the run's own)."),
    hours: Optional[float] = typer.Option(None, "--hours", help="Wall-clock budget; stops when spent (cosine follows elapsed time)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Global batch (sequences per step, all processes together)."),
    seq_len: int = typer.Option(512, "--seq-len", help="Bytes (ids) per training sequence."),
    max_cell_bytes: int = typer.Option(48, "--max-cell-bytes", help="Longest cell kept in table serializations (match the fine-tune's --max-cell-bytes)."),
    lr: float = typer.Option(2e-3, "--lr", help="Peak learning rate (per-stage multipliers apply on top)."),
    warmup_steps: int = typer.Option(100, "--warmup-steps", help="Linear warmup steps before the cosine decay."),
    out: Path = typer.Option(Path("outputs"), "--out", help="Runs go to OUT/<run-name>/<UTC stamp>/."),
    run_name: Optional[str] = typer.Option(None, "--run-name", help="Run folder name (default: the --config name)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder from its last checkpoint (its own settings; only --steps, --hours, --out, logging, device and thread flags may change)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start a new run from this pretraining checkpoint's weights and architecture (continued / domain-adaptive pretraining; fresh optimizer and schedule)."),
    data: list[Path] = typer.Option([], "--data", help="Text/table files or folders (.txt .md .jsonl .parquet .csv .tsv .sql, SOTAB .json.gz tables, GitTables fold CSVs); repeatable. Pass training splits only. Default: the embedded corpus."),
    exclude: list[Path] = typer.Option([], "--exclude", help="Skip every --data table whose file matches a table in these files/folders (file name without extension; SOTAB's _CTA/_CPA suffix ignored), e.g. the tables you will evaluate on; repeatable."),
    embedded: Optional[bool] = typer.Option(None, "--embedded/--no-embedded", help="Also mix in the embedded corpus (default: only when no --data)."),
    seed: int = typer.Option(0, "--seed", help="Data order and initialisation seed."),
    eval_every: int = typer.Option(100, "--eval-every", help="Held-out bits-per-byte every N steps."),
    ckpt_every: int = typer.Option(200, "--ckpt-every", help="Step checkpoint every N steps (final.pt always)."),
    set_: list[str] = typer.Option([], "--set", help="Model config override KEY=VALUE (JSON value), e.g. --set wkv_chunk=32; repeatable."),
    strategy: str = typer.Option("auto", "--strategy", help="Under torchrun: auto (fsdp for base, else ddp), ddp, fsdp, none."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads per process."),
    bf16: bool = typer.Option(False, "--bf16/--fp32", help=BF16_HELP + " On --resume the run's stored choice holds unless --bf16 is given."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    tensorboard: bool = typer.Option(True, "--tensorboard/--no-tensorboard", help="Write TensorBoard logs to RUN/tb."),
) -> None:
    """Pretrain the byte-level backbone on the mixed corpus (next-byte loss + ratio loss).

    Writes OUT/<run-name>/<UTC>/ with final.pt, step checkpoints, metrics.jsonl, TensorBoard logs
    and config.json. Data parallel: `torchrun --nproc-per-node N -m aegir pretrain ...`.
    """
    import logging

    from aegir.checkpoint import CheckpointError
    from aegir.config import ModelConfigError
    from aegir.tables import TableError
    from aegir.train.pretrain import Interrupted, PretrainConfig, PretrainConfigError, TrainingDiverged, pretrain

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = PretrainConfig(
            run_name=run_name or config, corpus=config, data=tuple(str(d) for d in data),
            exclude=tuple(str(d) for d in exclude), embedded=embedded,
            model_size=model_size, model_overrides=_parse_sets(set_), steps=steps, hours=hours,
            batch_size=batch_size, seq_len=seq_len, max_cell_bytes=max_cell_bytes, lr=lr, warmup_steps=warmup_steps, seed=seed, out=str(out),
            resume=str(resume) if resume else None, init=str(init) if init else None, eval_every=eval_every, ckpt_every=ckpt_every,
            strategy=strategy, device=device, threads=threads, cpu_bf16=bf16, progress=progress, tensorboard=tensorboard,
        )
        res = pretrain(cfg, given=given_fields(ctx, _FIELD_OF))
    except Interrupted as e:  # pretrain printed where the run stands and how to resume it
        raise typer.Exit(128 + int(e.signum)) from None  # 130 for Ctrl-C, 143 for SIGTERM, as shells report them
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(3) from None
    except (PretrainConfigError, CheckpointError, ModelConfigError, TableError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(2) from None
    if res.final_checkpoint is not None:
        print(f"final checkpoint: {res.final_checkpoint}")


def register(app: typer.Typer) -> None:
    app.command("pretrain", help="Pretrain the byte-level backbone on the mixed corpus.")(pretrain_command)

    @app.command("generate")
    def generate_command(
        checkpoint: Path = typer.Option(..., help="Pretraining checkpoint (final.pt or its run folder)."),
        prompt: str = typer.Option("", help="Text to continue (read byte by byte after [BOS])."),
        max_bytes: int = typer.Option(200, help="Bytes to sample at most (stops at [EOS])."),
        temperature: float = typer.Option(0.8, help="Softmax temperature; 0 is greedy."),
        top_k: int = typer.Option(40, help="Sample from the k most likely ids; 0 for all."),
        seed: int = typer.Option(0, help="Sampling seed."),
        device: str = typer.Option("cpu", help="Device to run on (cpu, cuda, cuda:1, ...)."),
        show_chunks: bool = typer.Option(False, "--show-chunks", help="Also print the text cut where each router opened chunks."),
    ) -> None:
        """Sample a continuation from the byte LM in step (recurrent) mode."""
        from rich.console import Console

        from aegir.generate import GenerateError, generate

        console = Console()
        try:
            g = generate(checkpoint, prompt, max_bytes, temperature, top_k or None, seed, device=device)
        except GenerateError as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from None
        print(prompt + g.text)
        if show_chunks:
            for s in range(len(g.boundaries)):
                print(f"--- chunks opened by router {s} (|):\n{g.chunked(s)}")
        console.print(f"[dim]{len(g.ids)} bytes sampled, stopped at {g.stopped}; "
                      f"{g.bytes_per_second:.0f} bytes/s (prompt in one pass, then step mode)[/dim]")
