"""`aegir train`'s settings: one typed dataclass, checked on construction (ValueError names the flag).

Kept apart from train/finetune.py (the loop) so the CLI, the demo and the benchmarks can build and
validate a run's configuration without reading the training code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Collection

from aegir.encoding.serialize import SerializeConfig
from aegir.paths import absolute_path, same_path
from aegir.train.head_refit import REFIT_MODES
from aegir.train.sampling import check_threshold
from aegir.train.tasks import TASKS, check_cv


@dataclass
class FinetuneConfig:
    task: str = "synthetic-cta"
    model_size: str = "nano"            # used only without --pretrained (else the checkpoint's config)
    pretrained: str | None = None
    data: str | None = None
    valid_data: str | None = None
    epochs: int = 10
    max_steps: int | None = None        # stop early after this many optimizer steps
    batch_size: int = 32                # global batch (split over torchrun processes)
    lr: float = 1e-4
    head_lr_mult: float = 10.0          # the new head starts from scratch: let it move faster
    warmup_steps: int = 500
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    freeze_backbone: bool = False
    loss: str = "ce"                    # "ce" | "hierarchical"; multi-label tasks always use BCE
    aux_weight: float = 0.5             # weight of each auxiliary hierarchical head
    # "balanced": each labelled column's CE (and hierarchical terms) weighted by N / (K * n_label), as
    # scikit-learn's class_weight="balanced" (the weights average 1 over the training columns, so the
    # learning rate keeps its meaning). For macro-F1 on long-tailed label sets (GitTables); single-label only.
    class_weight: str = "none"
    # Logit adjustment (Menon et al., ICLR 2021, "Long-tail learning via logit adjustment"): the CE of
    # labelled columns reads logits + tau * log(prior of each label), the prior being the label's share
    # of the labelled training columns; inference reads the plain logits, which then estimate a
    # label-balanced posterior. Unlike class weights it leaves the frequent labels' gradient scale alone.
    # tau = 1 is the paper's choice; 0 = off. Single-label only; hierarchical and distillation terms are
    # not adjusted.
    logit_adjust: float = 0.0
    # Repeat-factor sampling (train/sampling.py, LVIS): a label carried by a share f < T of the labelled
    # training columns has its columns repeated sqrt(T / f) times per epoch, each copy a new row view.
    # 0 = off. Epochs get longer by the copies (the run reports how many).
    repeat_threshold: float = 0.0
    # Classifier re-training after the last epoch (train/head_refit.py; Kang et al., ICLR 2020): the
    # backbone is frozen and the head's linear layer refitted by L2 logistic regression on the pooled
    # features of the labelled training columns over refit_views row views, "balanced" (labels weighted
    # N / (K * n_label)) or "plain". final.pt gets the refitted head, the last step checkpoint keeps the
    # joint-trained one. Single-label only.
    refit_head: str = "none"
    refit_l2: float = 1e-2  # chosen on a held-out GitTables fold (docs/finetuning.md)
    refit_views: int = 4
    # Temperature scaling after training (evaluation/selective.py): one scalar T fitted on the run's
    # validation columns, stored in final.pt, so annotate scores are softmax(logits / T). No argmax
    # moves (F1 unchanged); multi-label: sigmoid(logits / T) per label, no label crosses 0.5. `aegir
    # calibrate` does the same on other held-out data.
    calibrate: bool = False
    max_bytes: int = 512                # serialization budget per column
    # Cap on the target column's segment; context columns get what it leaves. At budgets of 256 or less
    # the default lets a long target column take the whole budget (no context at all): GitTables' median
    # column is about 280 bytes (docs/results/cta_analysis.md). Stored in the checkpoint like max_bytes.
    max_target_bytes: int = 256
    # Longest cell kept (bytes). Short-value columns never reach it; for long-text columns
    # (descriptions, reviews) it trades more cells for more of each cell within max_bytes. 128, not
    # the serializer's 48: on SOTAB it lifted macro-F1 on three of three paired seeds (cta_analysis.md).
    max_cell_bytes: int = 128
    # CPA: pool the main (subject) column's positions into the pair embedding as well (model/heads.py),
    # [target mean | main mean | last] instead of [target mean | last]. CPA tasks only.
    pool_main: bool = False
    n_synthetic: int = 600
    add_synthetic: int = 0              # real-data tasks: also train on this many synthetic tables
    row_views: bool = True              # epochs after the first train on new random row views (augmentation)
    # Exponential moving average of the weights (0 = off): validation and final.pt use the average.
    # Validation F1 of one fine-tune swings by ~0.03 between late epochs; the average smooths that.
    ema: float = 0.0
    # Distillation (train/distill.py): teacher classifiers whose softened mean probability the
    # student also learns from, with this weight and temperature; teacher logits averaged over
    # teacher_views row views. distill_unlabeled adds the training tables' unlabelled columns (CTA).
    teachers: tuple[str, ...] = ()
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    teacher_views: int = 1
    distill_unlabeled: bool = False
    # A folder several runs share for teacher targets (found by content; see train/distill.py), so
    # more student seeds on the same data and teachers skip the teacher pass. None: run folder only.
    teacher_cache: str | None = None
    seed: int = 0
    # The by-table hash holding out validation tables where a task has no validation files
    # (tasks.resolve_task). Kept apart from `seed` so that seeds share one validation set.
    split_seed: int = 0
    # k-fold cross-validation over those tables instead (0 = off): hold out part cv_fold of cv_folds.
    cv_folds: int = 0
    cv_fold: int = 0
    out: str = "outputs"
    run_name: str | None = None         # default: the task name
    resume: str | None = None
    device: str = "auto"
    # bf16 autocast on CPU too (ModelConfig.cpu_bf16): a run-time choice; the saved model config records it.
    cpu_bf16: bool = False
    parallel: str = "ddp"
    checkpoint_every: int = 200         # steps
    eval_batch_size: int = 64
    progress: bool = True

    @property
    def cv(self) -> tuple[int, int] | None:
        """(fold, folds) of a cross-validation run, or None."""
        return (self.cv_fold, self.cv_folds) if self.cv_folds else None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        if self.class_weight not in ("none", "balanced"):
            raise ValueError(f"--class-weight must be 'none' or 'balanced', got {self.class_weight!r}")
        if not (self.logit_adjust >= 0 and math.isfinite(self.logit_adjust)):
            raise ValueError(f"--logit-adjust must be a finite number >= 0, got {self.logit_adjust}")
        check_threshold(self.repeat_threshold)
        if self.cv_folds or self.cv_fold:
            check_cv(self.cv_fold, self.cv_folds)
        if self.refit_head not in REFIT_MODES:
            raise ValueError(f"--refit-head must be one of {', '.join(REFIT_MODES)}, got {self.refit_head!r}")
        if not (self.refit_l2 > 0 and math.isfinite(self.refit_l2)):
            raise ValueError(f"--refit-l2 must be a finite number > 0, got {self.refit_l2}")
        if self.refit_views < 1:
            raise ValueError(f"--refit-views must be >= 1, got {self.refit_views}")
        if self.loss not in ("ce", "hierarchical"):
            raise ValueError(f"--loss must be 'ce' or 'hierarchical', got {self.loss!r}")
        if self.parallel not in ("ddp", "none"):
            # FSDP is for pretraining `base`; classifiers of the design's sizes fit one device and DDP is exact.
            raise ValueError(f"--parallel for fine-tuning must be 'ddp' or 'none', got {self.parallel!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch size must be >= 1")
        self.serialize_config()  # the serializer checks its own fields (ValueError)
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"--ema must be in [0, 1), got {self.ema}")
        self.teachers = tuple(str(t) for t in self.teachers)
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(f"--distill-weight must be in [0, 1], got {self.distill_weight}")
        if not self.distill_temperature > 0:
            raise ValueError(f"--distill-temperature must be > 0, got {self.distill_temperature}")
        if self.teacher_views < 1:
            raise ValueError(f"--teacher-views must be >= 1, got {self.teacher_views}")
        if self.distill_unlabeled and not self.teachers:
            raise ValueError("--distill-unlabeled needs at least one --teacher (the unlabelled columns' only targets)")
        if self.teacher_cache and not self.teachers:
            raise ValueError("--teacher-cache needs at least one --teacher")
        # Recorded absolute, so eval/liveness of the run's own validation split and a resume work from
        # any directory (a relative path meant the directory training was started in).
        for name in ABSOLUTE_PATH_FIELDS:
            setattr(self, name, absolute_path(getattr(self, name)))
        self.teachers = tuple(absolute_path(t) for t in self.teachers)

    def serialize_config(self) -> SerializeConfig:
        return SerializeConfig(max_bytes=self.max_bytes, max_target_bytes=self.max_target_bytes,
                               max_cell_bytes=self.max_cell_bytes)


# Fields a resumed run may change (`aegir train --resume RUN_DIR --device cpu`): where and how the same
# computation runs, and how often it is saved. Everything else is the run's own: the stored value when a
# flag is not given, and a given flag that differs is refused (it would silently make another run, e.g.
# --epochs rebuilds the learning-rate schedule for another step count).
RESUME_OVERRIDABLE = ("device", "parallel", "cpu_bf16", "progress", "checkpoint_every", "eval_batch_size",
                      "teacher_cache")
# Where a new run's folder would go: a resumed run continues in RUN_DIR, so these are neither compared nor
# changed (the stored values stay, as a record of where the run was started).
RESUME_IGNORED = ("out", "run_name")
# Paths recorded absolute (run from anywhere, `aegir eval` of the run's own validation split included) and
# compared resolved on resume (`my_tables`, `my_tables/` and `/abs/my_tables` are one folder).
ABSOLUTE_PATH_FIELDS = ("pretrained", "data", "valid_data")
_PATH_FIELDS = ABSOLUTE_PATH_FIELDS + ("teacher_cache",)
_FLAGS = {"cpu_bf16": "--bf16/--fp32", "teachers": "--teacher"}


def flag_of(name: str) -> str:
    """The `aegir train` flag that sets config field `name`."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def same_setting(name: str, stored: Any, given: Any) -> bool:
    """Whether a stored run argument and a given one are the same setting (paths compared resolved,
    tuples equal to the lists a JSON round trip gives back)."""
    if name in _PATH_FIELDS:
        return same_path(stored, given)
    if name == "teachers":
        s, g = list(stored or ()), list(given or ())
        return len(s) == len(g) and all(same_path(a, b) for a, b in zip(s, g))
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    return norm(stored) == norm(given)


def resumed_config(cfg: FinetuneConfig, stored: dict[str, Any], given: Collection[str] | None = None,
                   where: str = "") -> FinetuneConfig:
    """The configuration of a resumed run: the stored run arguments, except RESUME_OVERRIDABLE fields in
    `given`. `given` names the fields the caller set (the CLI: the flags on the command line); None means
    every field of `cfg` (a Python caller passes a whole configuration). A given field outside
    RESUME_OVERRIDABLE and RESUME_IGNORED that differs from the stored one is refused (ValueError naming
    every such flag with both values)."""
    names = [f.name for f in fields(FinetuneConfig)]
    given = set(names) if given is None else set(given)
    stored = dict(stored)
    # Runs saved before a setting existed ran as its neutral value: held out validation tables with
    # the training seed (before split_seed), the 15% hold-out (before cross-validation).
    legacy_split = "split_seed" not in stored
    stored.setdefault("split_seed", stored.get("seed", 0))
    stored.setdefault("cv_folds", 0)
    stored.setdefault("cv_fold", 0)
    merged: dict[str, Any] = {}
    conflicts: list[tuple[str, Any, Any]] = []
    for name in names:
        now = getattr(cfg, name)
        if name == "resume":
            continue
        if name not in stored:  # a setting newer than the run: this session's value
            merged[name] = now
        elif name not in given or name in RESUME_IGNORED:
            merged[name] = stored[name]
        elif name in RESUME_OVERRIDABLE:
            merged[name] = now
        else:
            if not same_setting(name, stored[name], now):
                conflicts.append((name, now, stored[name]))
            merged[name] = stored[name]  # the stored spelling: config.json and final.pt keep the run's provenance
    if conflicts:
        def why(n: str, old: Any) -> str:
            if n == "split_seed" and legacy_split:
                return f" (saved before --split-seed existed, it chose its validation tables with its seed: resume with --split-seed {old})"
            return ""

        said = ", ".join(f"{n}={now!r} but the run used {old!r}{why(n, old)}" for n, now, old in conflicts)
        flags = ", ".join(flag_of(n) for n, _, _ in conflicts)
        free = ", ".join(flag_of(n) for n in RESUME_OVERRIDABLE if n not in ("progress", "eval_batch_size"))
        raise ValueError(f"{where}: resume with {said}; drop {flags} to continue with the run's own value(s) "
                         f"(on resume only {free} may change)")
    merged["resume"] = cfg.resume
    return FinetuneConfig(**merged)
