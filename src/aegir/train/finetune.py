"""CTA/CPA fine-tuning from a pretrained backbone (`aegir train`).

Why from a pretrained checkpoint: trained from random on sparse classification gradients the
backbone collapses (every column gets one embedding and one label). Without `--pretrained` this
still runs — and says so loudly — because that is the failure the liveness gate exists to catch.

Same run-folder / atomic checkpoint / resume / torchrun-DDP behaviour as pretraining: a run lives
in `outputs/<run-name>/<UTC stamp>/`, step checkpoints are written atomically, `--resume RUN_DIR`
restores the run's own arguments (finetune_config.resumed_config), weights, optimizer, schedule, RNG
and the position in the epoch's (seeded) data order. Ctrl-C ends a step first, then saves it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aegir.checkpoint import (
    FINAL_NAME, Checkpoint, CheckpointError, capture_rng_state, load_checkpoint,
    new_run_dir, restore_rng_state, resume_point, save_checkpoint, step_checkpoint_name,
)
from aegir.config import ModelConfig
from aegir.encoding.batch import EncodedColumn, collate, encode_dataset
from aegir.eval_run import predicted_label_sets, score_label_sets, unknown_gold_note
from aegir.evaluation import TemperatureFit, fit_temperature_report
from aegir.inference import classifier_extra, predict
from aegir.model import AegirClassifier
from aegir.model.aux_heads import HierarchyHeads, path_targets
from aegir.model.wkv import describe_impl
from aegir.runtime import describe_precision
from aegir.tables.table import TableError
from aegir.train.distill import distill_loss, teacher_targets, with_unlabeled_columns
from aegir.train.head_refit import head_features, refit_classifier_head, training_views
from aegir.train.distributed import (
    DistInfo, all_reduce_sum, barrier, broadcast_object, init_distributed, load_optimizer_state, shard_range, teardown,
    unwrap, wrap_model,
)
from aegir.train.finetune_config import FinetuneConfig, resumed_config
from aegir.train.interrupt import InterruptGuard, interrupt_message
from aegir.train.metrics_log import MetricsLog
from aegir.train.optim import OptimConfig, WarmupCosine, build_optimizer
from aegir.train.ratio import global_ratio_term
from aegir.train.rebalance import balanced_class_weights, logit_adjustment
from aegir.train.sampling import epoch_examples, epoch_repeats, repeat_factors
from aegir.train.tasks import TaskData, resolve_task

log = logging.getLogger("aegir.finetune")


@dataclass
class FinetuneResult:
    run_dir: Path
    final_checkpoint: Path
    steps: int
    valid_metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    from_random: bool = False


@dataclass
class FinetuneHooks:
    """Test and research hooks: `after_step(step, net)` runs after every optimizer (and EMA) update."""

    after_step: Callable[[int, nn.Module], None] | None = None


class _TrainNet(nn.Module):
    """Classifier plus optional hierarchical heads; forward returns the loss (what DDP wraps)."""

    def __init__(self, classifier: AegirClassifier, aux: HierarchyHeads | None, g_idx, p_idx, aux_weight: float,
                 info: DistInfo, distill_weight: float = 0.0, distill_temperature: float = 1.0,
                 class_weight: torch.Tensor | None = None, logit_offset: torch.Tensor | None = None):
        super().__init__()
        self.info = info
        self.distill_weight, self.distill_temperature = distill_weight, distill_temperature
        self.classifier = classifier
        self.aux = aux
        self.register_buffer("g_idx", g_idx if g_idx is not None else torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("p_idx", p_idx if p_idx is not None else torch.zeros(0, dtype=torch.long), persistent=False)
        self.aux_weight = aux_weight
        # (n_labels,) weight of a column by its label; None: every labelled column weighs 1.
        self.register_buffer("class_weight", class_weight, persistent=False)
        # (n_labels,) tau * log(prior), added to the logits of the labelled columns' CE only.
        self.register_buffer("logit_offset", logit_offset, persistent=False)

    def forward(self, ids, mask, target_mask, labels, denom: float, teacher=None, main_mask=None):
        out = self.classifier(ids, mask, target_mask, main_mask)
        if self.classifier.multi_label:
            task = F.binary_cross_entropy_with_logits(out.logits.float(), labels, reduction="sum") / labels.shape[1]
        else:
            ok = labels >= 0  # (B,) unlabelled columns (-1) learn from teachers only
            cw = ok.float() if self.class_weight is None else torch.where(ok, self.class_weight[labels.clamp(min=0)], 0.0)
            z = out.logits.float()  # (B, L)
            if self.logit_offset is not None:
                z = z + self.logit_offset
            nll = F.cross_entropy(z, labels, reduction="none", ignore_index=-1)  # (B,)
            if self.aux is not None:
                aux = self.aux(out.pooled.float())
                y = labels.clamp(min=0)  # (B,) masked by cw where unlabelled
                nll = nll + self.aux_weight * (
                    F.cross_entropy(aux.group, self.g_idx[y], reduction="none")
                    + F.cross_entropy(aux.property, self.p_idx[y], reduction="none"))
            task = (cw * nll).sum()
        soft = None
        if teacher is not None:
            w = self.distill_weight
            soft = distill_loss(out.logits, teacher, self.distill_temperature, self.classifier.multi_label)
            task = (1 - w) * task + w * soft
            soft = soft.detach() / denom
        # The ratio loss over the global batch, so N processes equal one (see train/ratio.py).
        ratio = global_ratio_term(out.stages, self.info, self.classifier.cfg.ratio_loss_weight, ids.device)
        return task / denom, ratio, out.stages, soft


@dataclass
class PretrainedBackbone:
    """What `--pretrained` starts a run from: the model config, the backbone's weights, and the
    provenance recorded in the run's checkpoints."""

    config: ModelConfig
    state: dict[str, torch.Tensor]
    meta: dict[str, Any]


def load_pretrained(path: str) -> PretrainedBackbone:
    """The backbone of a pretraining checkpoint, of a fine-tuned classifier (its head is dropped) or of
    an exported specialist folder; a run folder stands for its final.pt."""
    p = Path(path)
    if p.is_dir():
        if (p / "specialist.json").is_file():
            from aegir.inference import load_classifier

            lc = load_classifier(p)
            return PretrainedBackbone(lc.model.cfg, lc.model.backbone.state_dict(),
                                      {"pretrained": str(p), "pretrained_step": lc.meta.get("step"),
                                       "pretrained_metrics": lc.meta.get("metrics") or {}})
        if not (p / FINAL_NAME).is_file():
            raise CheckpointError(f"--pretrained {p}: a folder with neither final.pt (a run folder) nor "
                                  "specialist.json (an exported specialist); pass a checkpoint file such as final.pt")
        p = p / FINAL_NAME
    elif not p.exists():
        raise CheckpointError(f"--pretrained {p}: no such checkpoint file")
    ck = load_checkpoint(p)
    state = ck.model_state
    if ck.kind == "classifier":  # continue from another classifier's backbone
        state = {k[len("classifier.backbone."):]: v for k, v in state.items() if k.startswith("classifier.backbone.")}
    elif ck.kind != "pretrain":
        raise CheckpointError(f"{p}: checkpoint kind {ck.kind!r} cannot initialise a backbone")
    if not isinstance(ck.config, ModelConfig):
        raise CheckpointError(f"{p}: checkpoint has no Aegir model config")
    return PretrainedBackbone(ck.config, state, {"pretrained": str(path), "pretrained_step": ck.step,
                                                 "pretrained_metrics": ck.metrics})


def _load_backbone(clf: AegirClassifier, pre: PretrainedBackbone) -> dict[str, Any]:
    res = clf.backbone.load_state_dict(pre.state, strict=False)
    if res.missing_keys or res.unexpected_keys:
        raise CheckpointError(f"{pre.meta['pretrained']}: backbone weights do not fit: missing {res.missing_keys[:6]}, "
                              f"unexpected {res.unexpected_keys[:6]}")
    return pre.meta


def resolve_resume(cfg: FinetuneConfig, given: Collection[str] | None = None) -> tuple[FinetuneConfig, Checkpoint | None]:
    """Apply `--resume RUN_DIR`: the run's stored arguments (`resumed_config`; `given` as there) and the
    checkpoint to continue from. A finished run (final.pt is its newest checkpoint) is refused, so its
    final.pt and validation metrics are never overwritten. Reads only: a refusal leaves the folder as it was."""
    if cfg.resume is None:
        return cfg, None
    run_dir = Path(cfg.resume)
    ck = resume_point(run_dir, "classifier")
    try:
        cfg = resumed_config(cfg, ck.run_args, given, where=str(run_dir))
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    if ck.path.name == FINAL_NAME:
        raise CheckpointError(f"{run_dir}: this run finished (final.pt at step {ck.step}); nothing to resume")
    return cfg, ck


def calibrate_on(classifier: AegirClassifier, examples: list[EncodedColumn], batch_size: int,
                 device: torch.device | str = "cpu") -> TemperatureFit:
    """Temperature scaling of a classifier on labelled columns: softmax against each column's (first)
    label id, or, multi-label, per-label sigmoids against 0/1 targets of all its label ids."""
    raw = predict(classifier, examples, batch_size=batch_size, device=device)
    logits = raw.logits.astype(np.float64)  # (N, L)
    if classifier.multi_label:
        targets = np.zeros_like(logits)  # (N, L)
        for r, e in enumerate(examples):
            targets[r, list(e.label_ids)] = 1.0
        return fit_temperature_report(logits, targets, multi_label=True)
    return fit_temperature_report(logits, np.array([e.label_ids[0] for e in examples]))


def finetune(cfg: FinetuneConfig, task_data: TaskData | None = None, hooks: FinetuneHooks | None = None,
             given: Collection[str] | None = None) -> FinetuneResult:
    """Train (or with cfg.resume, continue) a classifier. `given`: on resume, the fields the caller set
    (see `resumed_config`; the CLI passes the flags on its command line); None: all of cfg's."""
    from rich.console import Console

    console = Console(stderr=True)
    cfg, resume_ckpt = resolve_resume(cfg, given)  # before the device is chosen: --device may change on resume
    info: DistInfo = init_distributed(cfg.device)
    try:
        return _finetune(cfg, task_data, info, console, hooks or FinetuneHooks(), resume_ckpt)
    finally:
        teardown(info)


def ema_horizon_warning(decay: float, total_steps: int) -> str | None:
    """Why a weight EMA of `decay` is too long for a run of `total_steps`, or None when it fits.

    The average's horizon is ~1/(1-d) steps; past a third of the run it still weighs the early,
    undertrained weights heavily (GitTables, 438 steps at d=0.998: 0.16 macro-F1 vs 0.28 raw).
    The suggested decay is rounded *down* to three decimals so that it passes this same check
    (rounding 1 - 3/1488 = 0.99798 to nearest gave 0.998, the decay being warned about)."""
    limit = total_steps / 3
    if decay <= 0 or 1 / (1 - decay) <= limit * (1 + 1e-9):  # the tolerance: 1/(1-0.8) is 5.000000000000001
        return None
    suggested = max(0.0, math.floor((1 - 1 / limit) * 1000) / 1000)
    return (f"--ema {decay} averages over ~{1 / (1 - decay):.0f} steps but the run has {total_steps}: the average "
            f"keeps much of the early weights; use a decay d with 1/(1-d) <= {limit:.0f} (e.g. {suggested:.3f}) "
            f"or train longer")


def _epoch_view(cfg: FinetuneConfig, epoch: int) -> int:
    """Row view trained on in `epoch`: the deterministic view 0 first, then a new random view per
    epoch when cfg.row_views (seeded by the run seed, so a resumed run sees the same data)."""
    if not cfg.row_views or epoch == 0:
        return 0
    return 1 + cfg.seed * 10_007 + epoch


def _repeat_view(cfg: FinetuneConfig, epoch: int, k: int) -> int:
    """Row view of the k-th extra copy (repeat-factor sampling) in `epoch`: a random view distinct
    from every epoch's own view, even in epoch 0; the deterministic view 0 without row views."""
    if not cfg.row_views:
        return 0
    return 1 + cfg.seed * 10_007 + epoch + k * 7_777_777


def _finetune(cfg: FinetuneConfig, td: TaskData | None, info: DistInfo, console, hooks: FinetuneHooks,
              resume_ckpt: Checkpoint | None) -> FinetuneResult:
    torch.manual_seed(cfg.seed)
    td = td or resolve_task(cfg.task, cfg.data, cfg.valid_data, n_synthetic=cfg.n_synthetic, seed=cfg.seed,
                            add_synthetic=cfg.add_synthetic, split_seed=cfg.split_seed, cv=cfg.cv)
    scfg = cfg.serialize_config()
    labels = td.vocab.labels
    index = {l: i for i, l in enumerate(labels)}
    # With teachers, a column without a (known) label still teaches through its teacher targets.
    train_ds = with_unlabeled_columns(td.train) if cfg.distill_unlabeled else td.train

    def encode_train(view: int) -> tuple[list[EncodedColumn], list[int]]:
        """Training examples of one row view, and the index of each in train_ds.targets."""
        enc = encode_dataset(train_ds, index, scfg, view=view)
        keep = [i for i, e in enumerate(enc) if e.label_ids or cfg.teachers]
        return [enc[i] for i in keep], keep

    def epoch_list(epoch: int, base: list[EncodedColumn], src: list[int]) -> tuple[list[EncodedColumn], list[int]]:
        """The epoch's examples (with repeat-factor copies when on) and each one's index in train_ds.targets."""
        if factors is None:
            return base, src
        ep = epoch_examples(base, epoch_counts[epoch], lambda pos, k: encode_dataset(
            train_ds, index, scfg, view=_repeat_view(cfg, epoch, k), indices=[src[p] for p in pos]))
        return ep.examples, [src[p] for p in ep.source]

    train_ex, train_src = encode_train(0)
    # Every validation column is scored, those whose gold label training never saw too: the model
    # cannot say it, so they count as misses (as in `aegir eval`) instead of vanishing from the F1.
    valid_ex = encode_dataset(td.valid, index, scfg) if td.valid is not None else []
    valid_gold = [t.labels for t in td.valid.targets] if td.valid is not None else []
    unknown_valid = Counter(g for gold in valid_gold for g in gold if g not in index)
    valid_known = [e for e in valid_ex if e.label_ids]  # what a temperature can be fitted on
    if not train_ex:
        raise ValueError(f"task {cfg.task}: no labelled training columns")
    # Label rebalancing (class weights, logit adjustment) reads the labelled columns' label frequencies.
    class_w = offset = None
    for flag, on in (("--class-weight balanced", cfg.class_weight == "balanced"), ("--logit-adjust", cfg.logit_adjust > 0),
                     ("--refit-head", cfg.refit_head != "none")):
        if on and td.multi_label:
            raise TableError(f"{flag} is for single-label tasks; {cfg.task} is multi-label")
    if cfg.calibrate and not valid_known:
        raise TableError(f"--calibrate fits a temperature on the validation columns; task {cfg.task} has none here")
    if cfg.pool_main and not td.cpa:
        raise TableError(f"--pool-main pools the main column of a column pair (CPA); {cfg.task} is column type "
                         "annotation: its inputs have no main column")
    label_ids = [e.label_ids[0] for e in train_ex if e.label_ids]
    if cfg.class_weight == "balanced":
        class_w = balanced_class_weights(label_ids, len(labels))
    if cfg.logit_adjust > 0:
        offset = logit_adjustment(label_ids, len(labels), cfg.logit_adjust)
    factors = repeat_factors([e.label_ids for e in train_ex], cfg.repeat_threshold) if cfg.repeat_threshold > 0 else None
    # (epochs, N) copies per example and epoch, drawn once: they size the schedule and build each epoch.
    epoch_counts = [epoch_repeats(factors, cfg.seed, e) for e in range(cfg.epochs)] if factors is not None else None

    run_dir: Path
    pre: PretrainedBackbone | None = None
    if resume_ckpt is not None:
        run_dir = Path(cfg.resume)
        mcfg = resume_ckpt.config
    else:
        # Read before the run folder exists: a wrong --pretrained leaves no empty run behind.
        pre = load_pretrained(cfg.pretrained) if cfg.pretrained else None
        mcfg = pre.config if pre is not None else ModelConfig.preset(cfg.model_size)
        run_dir = broadcast_object(new_run_dir(cfg.out, cfg.run_name or cfg.task) if info.is_main else None, info)
    if not isinstance(mcfg, ModelConfig):
        raise CheckpointError("checkpoint has no Aegir model config")
    mcfg.cpu_bf16 = cfg.cpu_bf16  # precision is this run's choice, not the checkpoint's

    clf = AegirClassifier(mcfg, len(labels), multi_label=td.multi_label, pool_main=cfg.pool_main)
    init_meta: dict[str, Any] = {}
    if resume_ckpt is not None:  # the run's provenance, carried into every checkpoint it writes next
        init_meta = {k: resume_ckpt.extra[k] for k in ("pretrained", "pretrained_step", "pretrained_metrics")
                     if k in resume_ckpt.extra}
        from_random = bool(resume_ckpt.extra.get("from_random", not cfg.pretrained))
    else:
        from_random = pre is None
    if pre is not None:
        init_meta = _load_backbone(clf, pre)
    elif from_random and resume_ckpt is None and info.is_main:
        console.print("[bold yellow]warning:[/bold yellow] no --pretrained checkpoint: training the backbone FROM "
                      "RANDOM. Expect collapse (one embedding, one label); the liveness gate will tell.")
    for p in clf.head.parameters():
        p._aegir_lr_mult = cfg.head_lr_mult
    aux = g_idx = p_idx = None
    if cfg.loss == "hierarchical" and not td.multi_label:
        from importlib import resources

        parents = json.loads(resources.files("aegir.resources").joinpath("schema_hierarchy.json").read_text())["parents"]
        groups, props, g_idx, p_idx = path_targets(labels, parents)
        aux = HierarchyHeads(clf.pooled_dim, len(groups), len(props))
        for p in aux.parameters():
            p._aegir_lr_mult = cfg.head_lr_mult
    if cfg.freeze_backbone:
        for p in clf.backbone.parameters():
            p.requires_grad_(False)
    soft_targets = None
    if cfg.teachers:
        # Every process computes the targets on its own device (no rank waits on another's long
        # teacher pass at a barrier); only the main one writes the run folder's cache, all read it.
        tt = teacher_targets(cfg.teachers, train_ds, labels, td.multi_label, cfg.teacher_views, cfg.distill_temperature,
                             cache_dir=run_dir, write_cache=info.is_main, progress=cfg.progress and info.is_main,
                             device=info.device, shared_cache=Path(cfg.teacher_cache) if cfg.teacher_cache else None)
        soft_targets = torch.from_numpy(tt.probs)  # (N_targets, n_labels)
        if info.is_main:
            console.print(f"distilling from {len(tt.teachers)} teacher(s) (weight {cfg.distill_weight}, T "
                          f"{cfg.distill_temperature}, {cfg.teacher_views} view(s); targets "
                          f"{tt.n_cached} of {len(tt.probs)} from the cache) over "
                          f"{len(train_ex)} training columns")
    net = _TrainNet(clf, aux, g_idx, p_idx, cfg.aux_weight, info, cfg.distill_weight if cfg.teachers else 0.0,
                    cfg.distill_temperature, class_w, offset).to(info.device)
    ema = None
    if cfg.ema > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)

    epoch_sizes = [len(train_ex)] * cfg.epochs if epoch_counts is None else [int(c.sum()) for c in epoch_counts]
    total = sum(math.ceil(n / cfg.batch_size) for n in epoch_sizes)
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    warning = ema_horizon_warning(cfg.ema, total) if ema is not None and info.is_main else None
    if warning:
        console.print(f"[yellow]warning: {warning}[/yellow]")
    # Short runs (tests, demos) cap warmup at a fifth of the run so the peak lr is actually reached.
    ocfg = OptimConfig(lr=cfg.lr, weight_decay=cfg.weight_decay,
                       warmup_steps=min(cfg.warmup_steps, max(total // 5, 1)), total_steps=total)
    opt = build_optimizer(net, ocfg)
    sched = WarmupCosine(opt, ocfg)
    step, epoch, batch_pos = 0, 0, 0
    history: list[dict[str, Any]] = []
    if resume_ckpt is not None:
        net.load_state_dict(resume_ckpt.model_state)
        if ema is not None and "ema_state" in resume_ckpt.extra:
            ema.load_state_dict(resume_ckpt.extra["ema_state"])
        elif ema is not None:  # final.pt of a finished run holds the average itself
            ema.module.load_state_dict(resume_ckpt.model_state)
        load_optimizer_state(net, opt, resume_ckpt.optimizer_state)
        sched.load_state_dict(resume_ckpt.scheduler_state or {})
        restore_rng_state(resume_ckpt.rng_state)
        ds_state = resume_ckpt.data_state or {}
        step, epoch, batch_pos = resume_ckpt.step, int(ds_state.get("epoch", 0)), int(ds_state.get("batch", 0))
        history = list(resume_ckpt.extra.get("history", []))
        if info.is_main:
            console.print(f"resuming {run_dir} at step {step} (epoch {epoch}, batch {batch_pos})")
    model = wrap_model(net, info, cfg.parallel)
    # Records are keyed by the step count after the update; rewind past the resumed checkpoint's step.
    logger = MetricsLog(run_dir, start_step=step + 1, tensorboard=True, enabled=info.is_main)
    run_args = asdict(cfg)
    if info.is_main:
        (run_dir / "config.json").write_text(json.dumps({"finetune": run_args, "model": mcfg.to_dict(),
                                                          "task_note": td.note, "from_random": from_random}, indent=1))
        console.print(f"[bold]aegir train[/bold] task={cfg.task} labels={len(labels)} train={len(train_ex)} "
                      f"valid={len(valid_ex)} steps={total} run={run_dir}")
        console.print(f"WKV: {describe_impl(mcfg.wkv_impl, info.device)} | precision: "
                      f"{describe_precision(mcfg, info.device)}")
        if not valid_ex:
            console.print("[yellow]note:[/yellow] no validation columns (the table split left none): this run "
                          "reports no validation metrics; give more tables or --valid-data")
        if unknown_valid:
            console.print("[yellow]note:[/yellow] " + unknown_gold_note(unknown_valid, "in the validation columns never occur in training"),
                          soft_wrap=True)
        for note in td.notes:
            console.print(f"[yellow]note:[/yellow] {note}", soft_wrap=True)
        if factors is not None:
            console.print(f"repeat-factor sampling (threshold {cfg.repeat_threshold}): {int((factors > 1).sum())} of "
                          f"{len(train_ex)} columns repeated (factor up to {factors.max():.2f}); "
                          f"{sum(epoch_sizes) / cfg.epochs:.0f} examples per epoch on average")

    post: dict[str, Any] = {}  # what happened after the last epoch (the head refit), recorded in final.pt

    def extra(metrics_hist):
        return classifier_extra(td.vocab, scfg, cfg.task, td.multi_label, td.cpa, pool_main=cfg.pool_main, history=metrics_hist,
                                from_random=from_random, **init_meta, **post)

    def save(path: Path, ep: int, bpos: int, metrics: dict[str, Any], final: bool = False) -> None:
        if info.is_main:
            # With EMA, final.pt holds the averaged weights (what inference should use); step
            # checkpoints hold the raw weights plus the average, so a resumed run continues both.
            weights, ex = unwrap(model), extra(history)
            if ema is not None and final:
                weights = ema.module
            elif ema is not None:
                ex["ema_state"] = {k: v.detach().cpu() for k, v in ema.state_dict().items()}
            save_checkpoint(path, weights, mcfg, ex, kind="classifier", step=step,
                            run_args=run_args, metrics=metrics, optimizer_state=opt.state_dict(),
                            scheduler_state=sched.state_dict(), rng_state=capture_rng_state(),
                            data_state={"epoch": ep, "batch": bpos})
        barrier(info)

    valid_metrics: dict[str, Any] = {}

    def validate():
        """Report of the weights inference will use (the EMA average when on) on the validation columns."""
        scored = ema.module if ema is not None else unwrap(model)
        raw = predict(scored.classifier, valid_ex, batch_size=cfg.eval_batch_size, device=info.device)
        return score_label_sets(valid_gold, predicted_label_sets(raw, labels, td.multi_label), td.multi_label)

    from tqdm import tqdm

    bar = tqdm(total=total, initial=step, desc=f"train {cfg.task}", unit="step", disable=not (cfg.progress and info.is_main))
    t0 = time.time()
    # A Ctrl-C ends the step under way and saves it (one process: under torchrun the ranks would not agree
    # on the step, so there only the message).
    guard = InterruptGuard(enabled=info.world_size == 1)
    try:
        with guard:
            done = step >= total
            encoded_view = 0
            while not done and epoch < cfg.epochs:
                view = _epoch_view(cfg, epoch)
                if view != encoded_view:  # a fresh random row view of every training column (a function of seed and epoch: resumable)
                    train_ex, train_src = encode_train(view)
                    encoded_view = view
                epoch_ex, epoch_src = epoch_list(epoch, train_ex, train_src)
                g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
                perm = torch.randperm(len(epoch_ex), generator=g).tolist()
                n_batches = math.ceil(len(perm) / cfg.batch_size)
                net.train()
                while batch_pos < n_batches:
                    glob = perm[batch_pos * cfg.batch_size:(batch_pos + 1) * cfg.batch_size]
                    if len(glob) % info.world_size:  # last partial batch: keep it divisible across ranks
                        glob = glob[: len(glob) - len(glob) % info.world_size] or glob[:info.world_size]
                    mine_idx = [glob[i] for i in shard_range(len(glob), info.rank, info.world_size)]
                    b = collate([epoch_ex[i] for i in mine_idx], len(labels), td.multi_label).to(info.device)
                    teach = soft_targets[[epoch_src[i] for i in mine_idx]].to(info.device) if soft_targets is not None else None
                    guard.begin()  # Ctrl-C from here waits for the step's end (see InterruptGuard)
                    sched.set_step(step)
                    # Sum over examples / global count, times world size because DDP averages gradients.
                    loss, ratio, stages, soft = model(b.ids, b.mask, b.target_mask, b.labels, float(len(glob)) / info.world_size,
                                                      teach, b.main_mask)
                    total_loss = loss + ratio.objective
                    if not torch.isfinite(total_loss):
                        save(run_dir / step_checkpoint_name(step), epoch, batch_pos, {"error": "non-finite loss"})
                        raise FloatingPointError(f"non-finite loss at step {step}; last good state saved in {run_dir}")
                    opt.zero_grad(set_to_none=True)
                    total_loss.backward()
                    gn = torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], cfg.grad_clip)
                    opt.step()
                    if ema is not None:
                        ema.update_parameters(net)
                    step += 1
                    if hooks.after_step:
                        hooks.after_step(step, net)
                    batch_pos += 1
                    gl = float(all_reduce_sum(loss.detach() / info.world_size, info))
                    if soft is not None:
                        rec_soft = {"distill_kl": float(all_reduce_sum(soft / info.world_size, info))}
                    else:
                        rec_soft = {}
                    rec = {"loss": gl, **rec_soft, "ratio_loss": ratio.value, "grad_norm": float(gn), "lr": opt.param_groups[0]["lr"],
                           "epoch": epoch, **{f"boundary_frac_s{i}": st["boundary_fraction"] for i, st in enumerate(ratio.stages)}}
                    logger.write({"step": step, **rec})
                    bar.update(1)
                    bar.set_postfix(loss=f"{gl:.3f}")
                    guard.end()
                    if step % cfg.checkpoint_every == 0:
                        save(run_dir / step_checkpoint_name(step), epoch, batch_pos, rec)
                    if step >= total:
                        done = True
                        break
                if batch_pos >= n_batches or done:
                    rep = validate() if valid_ex and info.is_main else None
                    guard.begin()  # the epoch's record and the move to the next epoch: both or neither
                    if rep is not None:
                        valid_metrics = {f"valid_{k}": v for k, v in rep.summary().items()}
                        valid_metrics["epoch"] = epoch
                        if unknown_valid:  # how many of the misses were labels training never saw
                            valid_metrics["valid_n_unknown_gold"] = sum(unknown_valid.values())
                        history.append({"step": step, **valid_metrics})
                        logger.write({"step": step, **valid_metrics})
                        bar.write(f"epoch {epoch}: valid micro-F1 {rep.micro_f1:.3f} macro-F1 {rep.macro_f1:.3f}")
                    barrier(info)
                    if batch_pos >= n_batches:
                        epoch, batch_pos = epoch + 1, 0
                    guard.end()
    except KeyboardInterrupt:
        bar.close()
        if info.is_main:
            if info.world_size == 1 and not guard.torn and step > 0 and not (run_dir / step_checkpoint_name(step)).exists():
                save(run_dir / step_checkpoint_name(step), epoch, batch_pos, {"interrupted": True})
            console.print(interrupt_message(run_dir, step), soft_wrap=True)
        raise
    bar.close()
    final = run_dir / "final.pt"
    valid_metrics = dict(valid_metrics, train_seconds=time.time() - t0)
    if (ema is not None or cfg.refit_head != "none") and not (run_dir / step_checkpoint_name(step)).exists():
        # The raw, joint-trained weights, kept beside what final.pt will hold (the average, the refitted head).
        save(run_dir / step_checkpoint_name(step), epoch, batch_pos, valid_metrics)
    if cfg.refit_head != "none" and info.is_main:
        target = (ema.module if ema is not None else unwrap(model)).classifier
        feats = head_features(target, training_views(train_ds, labels, scfg, cfg.refit_views),
                              batch_size=cfg.eval_batch_size, device=info.device)
        refit = refit_classifier_head(target, feats, cfg.refit_head, cfg.refit_l2)
        post["head_refit"] = refit.summary()
        console.print(f"head refit ({cfg.refit_head}, l2 {cfg.refit_l2:g}) on {refit.fit.n_examples} training "
                      f"examples ({cfg.refit_views} row views): {refit.fit.iterations} L-BFGS iterations")
        if valid_ex:
            joint = {f"joint_{k}": v for k, v in valid_metrics.items() if k.startswith("valid_")}
            rep = validate()
            valid_metrics = {**valid_metrics, **joint, **{f"valid_{k}": v for k, v in rep.summary().items()}}
            logger.write({"step": step, **valid_metrics})
            console.print(f"after the refit: valid micro-F1 {rep.micro_f1:.3f} macro-F1 {rep.macro_f1:.3f} "
                          f"(joint head: {joint.get('joint_valid_micro_f1', float('nan')):.3f} / "
                          f"{joint.get('joint_valid_macro_f1', float('nan')):.3f})")
    if cfg.calibrate and info.is_main:
        scored = (ema.module if ema is not None else unwrap(model)).classifier
        fit = calibrate_on(scored, valid_known, cfg.eval_batch_size, info.device)
        post["temperature"] = fit.temperature
        post["calibration"] = {**fit.to_dict(), "n_skipped": len(valid_ex) - len(valid_known), "views": 1,
                               "data": f"validation split of {cfg.task} (this run's; also what valid_* report)"}
        logger.write({"step": step, "temperature": fit.temperature, "valid_ece_before": fit.ece_before,
                      "valid_ece_after": fit.ece_after})
        console.print(f"temperature {fit.temperature:.3f} fitted on {fit.n_columns} validation columns: "
                      f"NLL {fit.nll_before:.3f} -> {fit.nll_after:.3f}, ECE {fit.ece_before:.3f} -> "
                      f"{fit.ece_after:.3f} (final.pt scores {'sigmoid' if td.multi_label else 'softmax'}(logits / T); "
                      "predictions unchanged)")
    save(final, epoch, batch_pos, valid_metrics, final=True)
    logger.close()
    return FinetuneResult(run_dir, final, step, valid_metrics, history, from_random)
