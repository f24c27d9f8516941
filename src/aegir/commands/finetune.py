"""`aegir train` (CTA/CPA fine-tuning) and `aegir eval`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from aegir.commands import BF16_HELP, INFER_BF16_HELP, given_fields

console = Console()

# `aegir train` parameter -> FinetuneConfig field, where the names differ.
_FIELD_OF = {"teacher": "teachers", "bf16": "cpu_bf16"}


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        ctx: typer.Context,
        task: str = typer.Option("synthetic-cta", help="sotab-cta | sotab-cpa | gittables-dbpedia | gittables-schema | wikitables-cta | synthetic-cta | custom"),
        model_size: str = typer.Option("nano", help="Preset when training from random (nano|tiny|small|base); ignored with --pretrained."),
        pretrained: Optional[Path] = typer.Option(None, help="Pretrained checkpoint (outputs/mixed-v2/<ts>/final.pt or its run folder), or a fine-tuned classifier (final.pt or an exported specialist folder) whose backbone starts this run (intermediate-task transfer)."),
        data: Optional[str] = typer.Option(None, help="Training data (default: ../shared/data/... when present, else synthetic)."),
        valid_data: Optional[str] = typer.Option(None, help="Validation data (default: the task's validation split or a 15% table split)."),
        epochs: int = typer.Option(10),
        max_steps: Optional[int] = typer.Option(None, help="Stop after this many optimizer steps."),
        batch_size: int = typer.Option(32, min=1, help="Global batch size (split over torchrun processes)."),
        lr: float = typer.Option(1e-4),
        head_lr_mult: float = typer.Option(10.0, help="LR multiplier of the freshly initialised head(s)."),
        warmup_steps: int = typer.Option(500),
        weight_decay: float = typer.Option(1e-4),
        freeze_backbone: bool = typer.Option(False, help="Train only the head (linear probe)."),
        loss: str = typer.Option("ce", help="ce | hierarchical (auxiliary group/property heads)."),
        class_weight: str = typer.Option("none", help="none | balanced: weight each labelled column by N / (K * n_label), as scikit-learn's class_weight='balanced' (macro-F1 on long-tailed labels; single-label tasks)."),
        logit_adjust: float = typer.Option(0.0, help="Logit-adjusted loss (Menon et al. 2021): the CE reads logits + TAU * log(label prior); 1 is the paper's choice, 0 = off (macro-F1 on long-tailed labels; single-label tasks)."),
        repeat_threshold: float = typer.Option(0.0, help="Repeat-factor sampling (LVIS): columns of a label with a share f < T of the labelled training columns repeat sqrt(T / f) times per epoch, each copy a new row view; 0 = off (macro-F1 on long-tailed labels)."),
        refit_head: str = typer.Option("none", help="none | balanced | plain: after the last epoch, refit the head's linear layer on the frozen backbone's features of the labelled training columns (L2 logistic regression; balanced = labels weighted N / (K * n_label)); final.pt gets it, the last step checkpoint keeps the joint-trained head (single-label tasks)."),
        refit_l2: float = typer.Option(1e-2, help="L2 strength of the head refit (per-example-mean loss + l2/2 * ||W||^2; 1e-2 was chosen on a held-out GitTables fold)."),
        refit_views: int = typer.Option(4, min=1, help="Row views of each training column in the head refit."),
        calibrate: bool = typer.Option(False, help="After training, fit a temperature on the validation columns (temperature scaling: softmax, or per-label sigmoids for multi-label tasks) and store it in final.pt, so annotate scores match accuracy; predictions and F1 unchanged (`aegir calibrate` fits on other held-out data)."),
        max_bytes: int = typer.Option(512, help="Serialization budget per column."),
        max_target_bytes: int = typer.Option(256, help="Cap on the target column's segment; context columns get the rest of --max-bytes (at 256 or less, a long target column leaves them nothing unless this is lower)."),
        max_cell_bytes: int = typer.Option(128, help="Longest cell kept, in bytes (long-text columns: fewer, longer cells)."),
        pool_main: bool = typer.Option(False, help="CPA: also pool the main (subject) column's positions into the pair embedding ([target mean | main mean | last])."),
        n_synthetic: int = typer.Option(600, help="Tables for synthetic-cta."),
        add_synthetic: int = typer.Option(0, help="Real-data tasks: also train on this many synthetic tables (labels in the task's vocabulary)."),
        row_views: bool = typer.Option(True, help="Each epoch after the first sees a new random row view of every column (augmentation)."),
        ema: float = typer.Option(0.0, help="Decay of an exponential moving average of the weights (e.g. 0.998; 0 = off). Validation and final.pt use the average."),
        teacher: Optional[List[Path]] = typer.Option(None, help="Distil from this fine-tuned classifier (repeat for an ensemble): the student also learns the teachers' softened mean probability."),
        distill_weight: float = typer.Option(0.5, help="Weight of the distillation term (1 - weight goes to the hard labels)."),
        distill_temperature: float = typer.Option(2.0, help="Softmax temperature of teachers and student in the distillation term."),
        teacher_views: int = typer.Option(1, min=1, help="Row views each teacher's logits are averaged over (per training column, computed once)."),
        distill_unlabeled: bool = typer.Option(False, help="Also train on the training tables' unlabelled columns, teacher targets only (single-label CTA)."),
        teacher_cache: Optional[Path] = typer.Option(None, help="Folder of teacher targets shared between runs (found by content): more student seeds on the same data and teachers skip the teacher pass."),
        seed: int = typer.Option(0),
        split_seed: int = typer.Option(0, help="Seed of the by-table validation hold-out where the task has no validation files (sotab-cpa on the sample, custom, wikitables-cta, synthetic-cta); apart from --seed, so seeds share one validation set."),
        cv_folds: int = typer.Option(0, help="k-fold cross-validation over those tables instead of the 15% hold-out (0 = off): run once per --cv-fold 0..k-1 and every table is scored once."),
        cv_fold: int = typer.Option(0, help="The part held out for validation in this run (with --cv-folds)."),
        out: Path = typer.Option(Path("outputs")),
        run_name: Optional[str] = typer.Option(None),
        resume: Optional[Path] = typer.Option(None, help="Run folder to resume: its stored settings apply; only --device, --parallel, --bf16/--fp32, --checkpoint-every and --teacher-cache may change, another flag that differs from the run's is refused."),
        device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
        bf16: bool = typer.Option(False, "--bf16/--fp32", help=BF16_HELP),
        parallel: str = typer.Option("ddp", help="ddp | none (under torchrun; FSDP is for pretraining base)."),
        checkpoint_every: int = typer.Option(200, help="Steps between step checkpoints."),
    ) -> None:
        """Fine-tune a CTA/CPA classifier (from --pretrained; without it, from random, and it says so)."""
        from aegir.train.finetune import FinetuneConfig, finetune

        try:  # a bad flag value is a user mistake: one line, no traceback
            cfg = FinetuneConfig(task=task, model_size=model_size, pretrained=str(pretrained) if pretrained else None,
                                 data=data, valid_data=valid_data, epochs=epochs, max_steps=max_steps,
                                 batch_size=batch_size, lr=lr, head_lr_mult=head_lr_mult, warmup_steps=warmup_steps,
                                 weight_decay=weight_decay, freeze_backbone=freeze_backbone, loss=loss,
                                 class_weight=class_weight, logit_adjust=logit_adjust, repeat_threshold=repeat_threshold,
                                 refit_head=refit_head, refit_l2=refit_l2, refit_views=refit_views, calibrate=calibrate, max_bytes=max_bytes,
                                 max_target_bytes=max_target_bytes, max_cell_bytes=max_cell_bytes, pool_main=pool_main,
                                 n_synthetic=n_synthetic, add_synthetic=add_synthetic, row_views=row_views, ema=ema,
                                 teachers=tuple(str(t) for t in teacher or ()), distill_weight=distill_weight,
                                 distill_temperature=distill_temperature, teacher_views=teacher_views,
                                 distill_unlabeled=distill_unlabeled,
                                 teacher_cache=str(teacher_cache) if teacher_cache else None, seed=seed, split_seed=split_seed, cv_folds=cv_folds, cv_fold=cv_fold, out=str(out), run_name=run_name,
                                 resume=str(resume) if resume else None, device=device, cpu_bf16=bf16,
                                 parallel=parallel, checkpoint_every=checkpoint_every)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            raise typer.Exit(2) from None
        try:
            res = finetune(cfg, given=given_fields(ctx, _FIELD_OF))
        except KeyboardInterrupt:  # finetune printed where the run stands and how to resume it
            raise typer.Exit(130) from None
        console.print(f"final checkpoint: {res.final_checkpoint}")
        if res.valid_metrics:
            console.print({k: round(v, 4) if isinstance(v, float) else v for k, v in res.valid_metrics.items()})

    @app.command("eval")
    def eval_cmd(
        checkpoint: List[Path] = typer.Option(..., help="Classifier checkpoint (final.pt, run folder or exported specialist); repeat it to score an ensemble (mean probability)."),
        task: Optional[str] = typer.Option(None, help="Task whose validation data to use (default: the checkpoint's)."),
        data: Optional[str] = typer.Option(None, help="Data to evaluate (SOTAB split folder, GitTables fold CSV, CSV folder)."),
        format: Optional[str] = typer.Option(None, help="Format of --data: sotab | gittables | csv | turl | synthetic."),
        out: Optional[Path] = typer.Option(None, help="Folder for report.json, predictions.jsonl, confusion.png (default: eval/ in the checkpoint's run folder, or inside an exported specialist folder; eval-<data name>/ with --data, so the run's own report stays)."),
        batch_size: int = typer.Option(64, min=1),
        views: int = typer.Option(1, min=1, help="Average over this many row views per column (1 = deterministic rows only)."),
        max_bytes: Optional[int] = typer.Option(None, min=8, help="Bytes read per column (default: the budget each checkpoint was trained with)."),
        bf16: Optional[bool] = typer.Option(None, "--bf16/--fp32", help=INFER_BF16_HELP),
    ) -> None:
        """Micro/macro-F1, per-label P/R/F1, confusion matrix (PNG) and a predictions file."""
        from aegir.eval_run import run_eval

        rep = run_eval(checkpoint, task=task, data=data, fmt=format, out=out, batch_size=batch_size, views=views,
                       max_bytes=max_bytes, bf16=bf16)
        console.print(rep.text)
        console.print(f"wrote {rep.out_dir}")

    @app.command("calibrate")
    def calibrate_cmd(
        checkpoint: Path = typer.Option(..., help="Classifier checkpoint (final.pt or run folder)."),
        out: Path = typer.Option(..., help="Where to write the calibrated copy (a new .pt file)."),
        task: Optional[str] = typer.Option(None, help="Task whose validation data to fit on (default: the checkpoint's)."),
        data: Optional[str] = typer.Option(None, help="Labelled data to fit on instead (held out from training)."),
        format: Optional[str] = typer.Option(None, help="Format of --data: sotab | gittables | csv | turl | synthetic."),
        views: int = typer.Option(1, min=1, help="Row views per column, as you will annotate with."),
        batch_size: int = typer.Option(64, min=1),
    ) -> None:
        """Fit a temperature on labelled data so scores match accuracy (temperature scaling; per-label sigmoids for multi-label models); write a calibrated copy."""
        from aegir.eval_run import calibrate

        r = calibrate(checkpoint, out, task=task, data=data, fmt=format, views=views, batch_size=batch_size)
        console.print(f"temperature {r.temperature:.3f} fitted on {r.n_columns} columns"
                      + (f" ({r.n_skipped} with gold labels outside the vocabulary skipped)" if r.n_skipped else ""))
        console.print(f"  NLL {r.nll_before:.3f} -> {r.nll_after:.3f}   ECE {r.ece_before:.3f} -> {r.ece_after:.3f}"
                      "   (on the fitting columns; predictions unchanged)")
        console.print(f"wrote {r.checkpoint}")
