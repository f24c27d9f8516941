"""The pretraining loop: next-byte loss + H-Net ratio loss on the mixed corpus.

One code path for 1 process and for `torchrun` data parallelism. What makes a run reproducible:
  * the batch at step s is corpus samples [s*B, (s+1)*B) (B = global batch), each rank taking a
    fixed slice, so the data order needs no sampler state and survives resume and re-sharding;
  * the objective is normalised by *global* counts: CE summed over this rank's targets / global
    target count, and the ratio loss uses the global boundary fraction F and mean probability G.
    (The model's own `ratio_loss` uses per-batch F and G; per-rank F*G products would not add up
    to the global one, so 2 processes would not match 1.) Its gradient equals the model's:
    L = N/(N-1)((N-1)FG + (1-F)(1-G)) with F detached is linear in G, dL/dG = N(NF-1)/(N-1);
  * checkpoints hold weights, optimizer, scheduler step, RNG and data position; resume rewinds
    metrics.jsonl and TensorBoard to the checkpoint's step.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Collection

import torch
from torch import Tensor, nn

from aegir.checkpoint import (
    FINAL_NAME,
    Checkpoint,
    CheckpointError,
    capture_rng_state,
    git_commit,
    list_checkpoints,
    load_checkpoint,
    load_weights,
    new_run_dir,
    restore_rng_state,
    resume_point,
    save_checkpoint,
    step_checkpoint_name,
)
from aegir.encoding.corpus import CorpusConfig, build_corpus, corpus_summary
from aegir.model.wkv import describe_impl
from aegir.paths import absolute_path, same_path
from aegir.runtime import describe_precision
from aegir.train import distributed as D
from aegir.train.interrupt import InterruptGuard, interrupt_message
from aegir.train.metrics_log import MetricsLog
from aegir.train.optim import OptimConfig, WarmupCosine, build_optimizer, lr_mult_of
from aegir.train.ratio import global_ratio_term

log = logging.getLogger("aegir.pretrain")
LN2 = math.log(2.0)
DEFAULT_STEPS = 1000                    # without --steps and --hours; with --hours alone the clock decides
# Fields a resumed run may change; everything else is taken from the checkpoint's run args.
RESUME_OVERRIDABLE = ("steps", "hours", "out", "progress", "tensorboard", "device", "threads",
                      "eval_every", "ckpt_every", "log_every", "keep_checkpoints", "cpu_bf16")


class TrainingDiverged(RuntimeError):
    """Loss or gradient became NaN/inf; the message names the step and the last usable checkpoint."""


class PretrainConfigError(ValueError):
    pass


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the run; `signum` says which (the CLI exits 128 + signum)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


@dataclass
class PretrainConfig:
    run_name: str = "mixed-v2"
    corpus: str = "mixed-v2"
    data: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()       # tables in these files/folders are skipped in `data` (eval tables)
    embedded: bool | None = None
    model_size: str = "nano"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None            # None: 1000 for a fresh run (no cap with --hours), the stored value on resume
    hours: float | None = None          # wall-clock budget; the cosine then runs on elapsed time
    batch_size: int = 8                 # global (all processes together)
    seq_len: int = 512
    max_cell_bytes: int = CorpusConfig.max_cell_bytes  # longest cell in table serializations (match the fine-tune's)
    lr: float = 2e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    seed: int = 0
    out: str = "outputs"
    resume: str | None = None
    # Continued (domain-adaptive) pretraining: start a NEW run from this checkpoint's weights and
    # model config, with a fresh optimizer and schedule. --resume continues the same run instead.
    init: str | None = None
    eval_every: int = 100
    eval_windows: int = 8               # held-out windows per corpus kind
    ckpt_every: int = 200
    log_every: int = 1
    keep_checkpoints: int = 3           # step files kept (final.pt is always kept)
    strategy: str = "auto"              # auto (fsdp for base, else ddp) | ddp | fsdp | none
    device: str = "auto"
    threads: int | None = None
    cpu_bf16: bool = False              # bf16 autocast on CPU too (ModelConfig.cpu_bf16; a run-time choice)
    progress: bool = True
    tensorboard: bool = True
    corpus_overrides: dict[str, Any] = field(default_factory=dict)  # extra CorpusConfig fields (tests)

    def __post_init__(self) -> None:
        self.data = tuple(str(d) for d in self.data)
        self.exclude = tuple(str(d) for d in self.exclude)
        for name in ("batch_size", "seq_len", "eval_every", "ckpt_every", "log_every"):
            if getattr(self, name) < 1:
                raise PretrainConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise PretrainConfigError(f"--steps must be >= 1, got {self.steps}")
        if self.hours is not None and not self.hours > 0:
            raise PretrainConfigError(f"--hours must be > 0, got {self.hours}")
        # Checked here, before a run folder is made or the corpus read, so a typo costs nothing.
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise PretrainConfigError(f"--lr must be a positive number, got {self.lr}")
        if self.warmup_steps < 0:
            raise PretrainConfigError(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        if self.threads is not None and self.threads < 1:
            raise PretrainConfigError(f"--threads must be >= 1, got {self.threads}")
        if self.strategy not in ("auto", "ddp", "fsdp", "none"):
            raise PretrainConfigError(f"--strategy must be auto, ddp, fsdp or none, got {self.strategy!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["data"] = list(self.data)
        d["exclude"] = list(self.exclude)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PretrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def corpus_config(self) -> CorpusConfig:
        return CorpusConfig(preset=self.corpus, data=self.data, exclude=self.exclude, embedded=self.embedded,
                            seq_len=self.seq_len, seed=self.seed, max_cell_bytes=self.max_cell_bytes,
                            **self.corpus_overrides)


@dataclass
class PretrainHooks:
    """Extension points (also how tests inject faults): called on every rank."""

    before_step: Callable[[int, nn.Module], None] | None = None
    after_step: Callable[[int, dict[str, Any]], None] | None = None


@dataclass
class PretrainResult:
    run_dir: Path
    final_checkpoint: Path | None
    steps_done: int
    last_loss: float
    initial_bpb: dict[str, float]
    final_bpb: dict[str, float]
    train_bytes_per_s: float
    wall_s: float
    stopped: str                        # "steps" | "time"


@dataclass
class StepStats:
    """Globally reduced values of one forward pass."""

    loss: float                          # CE nats per predicted token
    ratio_loss: float                    # weighted
    n_tokens: int
    stages: list[dict[str, float]]       # per router: boundary_fraction, mean_prob, target


# --------------------------------------------------------------------------------------------------
# objective
# --------------------------------------------------------------------------------------------------
class LMObjective(nn.Module):
    """Wraps a model with `lm_loss(ids, mask)` so DDP/FSDP see the whole objective in `forward`.

    Returns (objective to backpropagate on this rank, StepStats of the global batch).
    """

    def __init__(self, model: nn.Module, info: D.DistInfo) -> None:
        super().__init__()
        self.model = model
        self.info = info

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> tuple[Tensor, StepStats]:
        out = self.model.lm_loss(ids, mask)
        info, W = self.info, float(self.info.world_size)
        ce_local = out.loss * out.n_tokens  # sum over this rank's targets
        counts = torch.stack([ce_local.detach().float(), torch.tensor(float(out.n_tokens), device=ids.device)])
        g = D.all_reduce_sum(counts, info)
        n_glob = g[1].clamp(min=1.0)
        alpha = float(getattr(getattr(self.model, "cfg", None), "ratio_loss_weight", 0.0))
        ratio = global_ratio_term(out.stages, info, alpha, ids.device)
        objective = W * ce_local / n_glob + ratio.objective
        stats = StepStats(loss=float(g[0] / n_glob), ratio_loss=ratio.value, n_tokens=int(g[1]), stages=ratio.stages)
        return objective, stats


def build_model(cfg: PretrainConfig) -> nn.Module:
    from aegir.config import ModelConfig
    from aegir.model import AegirModel

    return AegirModel(ModelConfig.preset(cfg.model_size, **cfg.model_overrides))


def _init_checkpoint(path: str) -> Checkpoint:
    """The --init checkpoint: a pretraining checkpoint with a model config, loaded strictly."""
    from aegir.config import ModelConfig

    if not Path(path).is_file():
        raise PretrainConfigError(f"--init {path}: no such checkpoint file")
    ck = load_checkpoint(path)
    if ck.kind != "pretrain" or not isinstance(ck.config, ModelConfig):
        raise PretrainConfigError(f"--init {path}: a {ck.kind!r} checkpoint; continued pretraining starts "
                                  "from a pretraining checkpoint of the byte-level backbone")
    return ck


@torch.no_grad()
def evaluate_bpb(obj: nn.Module, corpus, cfg: PretrainConfig, info: D.DistInfo) -> dict[str, float]:
    """Held-out bits per predicted id, per corpus kind, plus "mixed" (weighted by the mixture).

    Specials (BOS/EOS/CLS/SEP/...) count as predicted ids like bytes: they are a few percent of
    the stream and are part of what the model must learn. Goes through the (possibly wrapped)
    objective on every rank in lockstep, so DDP and FSDP need no special case; its statistics
    are already summed over ranks.
    """
    was_training = obj.training
    obj.eval()
    out: dict[str, float] = {}
    W = info.world_size
    n_win = -(-cfg.eval_windows // W) * W  # round up so every rank runs the same number of batches
    bs = max(1, cfg.batch_size // W)
    for kind in corpus.kinds:
        windows = corpus.heldout_batch(kind, n_win)  # (n_win, T)
        per = n_win // W
        mine = windows[info.rank * per : (info.rank + 1) * per]
        ce, n = 0.0, 0
        for i in range(0, per, bs):
            _, st = obj(torch.from_numpy(mine[i : i + bs]).to(info.device))
            ce += st.loss * st.n_tokens
            n += st.n_tokens
        out[kind] = ce / max(n, 1) / LN2
    out["mixed"] = sum(corpus.weights[k] * out[k] for k in corpus.kinds)
    obj.train(was_training)
    return out


# --------------------------------------------------------------------------------------------------
# run folder bookkeeping
# --------------------------------------------------------------------------------------------------
def _health(stats: StepStats, step: int, warned: dict[tuple[int, str], int]) -> list[str]:
    """Warnings for routers that drifted to all-boundary or no-boundary (at most every 100 steps)."""
    msgs = []
    for i, st in enumerate(stats.stages):
        F = st["boundary_fraction"]
        what = "all-boundary (no compression)" if F >= 0.95 else "no-boundary (collapsed)" if F <= 0.02 else None
        if what and step - warned.get((i, what), -10**9) >= 100:
            warned[(i, what)] = step
            msgs.append(f"step {step}: router {i} is degenerate, {what}: boundary fraction {F:.3f}, "
                        f"mean p {st['mean_prob']:.3f} (target 1/{st['target_ratio']:g})")
    return msgs


def _short_stream_warnings(corpus, seq_len: int) -> list[str]:
    """A stream shorter than a window is repeated to fill it: training sees the same bytes over and
    over, and held-out bits/byte measures a few hundred bytes seen many times."""
    out = []
    for kind in corpus.kinds:
        for what, stream in (("training", corpus.train[kind]), ("held-out", corpus.heldout[kind])):
            if stream.size < seq_len:
                out.append(f"the {kind} {what} stream is {int(stream.size):,} ids, shorter than --seq-len {seq_len}: "
                           f"every window repeats it{', so held-out bits/byte for ' + kind + ' means little' if what == 'held-out' else ''}"
                           f" (give more {kind} data or a smaller --seq-len)")
    return out


def _flat(stats: StepStats) -> dict[str, float]:
    d = {"loss": stats.loss, "bpb": stats.loss / LN2, "ratio_loss": stats.ratio_loss}
    for i, st in enumerate(stats.stages):
        d[f"stage{i}.boundary_fraction"] = st["boundary_fraction"]
        d[f"stage{i}.mean_prob"] = st["mean_prob"]
    return d


# CLI spelling of the PretrainConfig fields whose flag is not simply --field-name.
_FLAG_NAMES = {"corpus": "--config", "model_overrides": "--set", "cpu_bf16": "--bf16", "embedded": "--embedded"}
_PATH_FIELDS = ("data", "exclude", "init")


def _flag(name: str) -> str:
    return _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def _absolute_paths(cfg: PretrainConfig) -> PretrainConfig:
    """--data/--exclude/--init made absolute, so the stored run args work for --resume from any folder."""
    return replace(cfg, data=tuple(map(absolute_path, cfg.data)), exclude=tuple(map(absolute_path, cfg.exclude)),
                   init=absolute_path(cfg.init))


def _is_given(cfg: PretrainConfig, k: str, given: Collection[str] | None) -> bool:
    """Was field `k` set by the caller? The CLI says which flags were typed (`given`); without that
    (library calls) a value equal to the default cannot be told from "not given" and counts as not."""
    return k in given if given is not None else getattr(cfg, k) != getattr(PretrainConfig(), k)


def _resume_conflicts(cfg: PretrainConfig, stored: PretrainConfig, given: Collection[str] | None) -> list[str]:
    """Non-overridable fields given with a value other than the stored one.

    Paths compare resolved, as new runs store them (older runs stored them as typed, relative to the
    folder they started in).
    """
    out = []
    for f in fields(PretrainConfig):
        k = f.name
        if k in RESUME_OVERRIDABLE or k in ("resume", "run_name"):
            continue
        given_v, was = getattr(cfg, k), getattr(stored, k)
        if not _is_given(cfg, k, given):
            continue
        if k in _PATH_FIELDS:
            now_paths, run_paths = ((given_v,), (was,)) if k == "init" else (tuple(given_v), tuple(was))
            if len(now_paths) == len(run_paths) and all(map(same_path, now_paths, run_paths)):
                continue
        elif given_v == was:
            continue
        show = (lambda v: " ".join(v) if v else "(none)") if k in ("data", "exclude") else (lambda v: v)
        out.append(f"{_flag(k)} {show(given_v)} (the run has {show(was)})")
    return out


def _resolve(cfg: PretrainConfig, given: Collection[str] | None = None) -> tuple[PretrainConfig, Any]:
    """Apply --resume: the stored run args win except for RESUME_OVERRIDABLE fields given now;
    any other field given with a different value is refused rather than silently dropped."""
    if cfg.resume is None:
        if cfg.init and cfg.model_overrides:
            raise PretrainConfigError("--init takes the architecture from the checkpoint; drop the --set overrides")
        return _absolute_paths(cfg), None
    run_dir = Path(cfg.resume)
    try:
        ck = resume_point(run_dir, "pretrain")
    except CheckpointError as e:  # a --resume mistake, reported as the other flag errors are
        raise PretrainConfigError(str(e)) from None
    stored = PretrainConfig.from_dict(ck.run_args)
    bad = _resume_conflicts(cfg, stored, given)
    if bad:
        raise PretrainConfigError(f"--resume {run_dir} continues the run with its own settings; these flags differ "
                                  f"from it: {'; '.join(bad)}. Drop them, or start a new run (--init CKPT "
                                  "starts one from a checkpoint's weights)")
    if cfg.steps is not None and cfg.steps < ck.step:
        raise PretrainConfigError(f"--steps {cfg.steps} is below the checkpoint's step {ck.step} ({ck.path})")
    over = {k: getattr(cfg, k) for k in RESUME_OVERRIDABLE if _is_given(cfg, k, given)}
    merged = PretrainConfig.from_dict({**stored.to_dict(), **over, "resume": str(run_dir)})
    if ck.path.name == FINAL_NAME:
        # A finished run trains on only with a larger --steps or --hours; otherwise the session would do no
        # step and overwrite final.pt with its empty metrics (loss nan, 0 bytes/s).
        steps = merged.steps or (None if merged.hours else DEFAULT_STEPS)
        elapsed = float((ck.data_state or {}).get("elapsed_s", 0.0))
        if (steps is not None and steps <= ck.step) or (merged.hours and elapsed >= merged.hours * 3600.0):
            raise PretrainConfigError(f"{run_dir}: this run finished ({FINAL_NAME} at step {ck.step}); nothing to resume "
                                      "(a larger --steps or --hours trains it further)")
    return merged, ck


def _check_device(device: str) -> None:
    try:
        D.resolve_device(device)
    except ValueError as e:  # CUDA asked for but missing
        raise PretrainConfigError(f"--device {device}: {e}") from None
    except RuntimeError:  # torch.device("tpu"): a long list of torch's device types
        raise PretrainConfigError(f"--device {device}: not a device (use auto, cpu, cuda or cuda:N)") from None


def _check_out(out: str) -> None:
    """--out must be (or be creatable as) a folder: its nearest existing ancestor must be a folder."""
    p = Path(out).absolute()
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                raise PretrainConfigError(f"--out {out}: {q} is a file, not a folder")
            return


# --------------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------------
def pretrain(
    cfg: PretrainConfig,
    hooks: PretrainHooks | None = None,
    model_factory: Callable[[PretrainConfig], nn.Module] | None = None,
    kind: str = "pretrain",
    given: Collection[str] | None = None,
) -> PretrainResult:
    """Run (or resume) pretraining; returns where the run lives and what it measured.

    model_factory: build a different model with the same `lm_loss` contract (the benchmark's
    Transformer baseline); default `AegirModel(ModelConfig.preset(cfg.model_size, ...))`.
    given: on --resume, the PretrainConfig fields the user set (the CLI's typed flags); a field given
    with a value other than the run's is refused unless it is in RESUME_OVERRIDABLE. None: fields that
    differ from their default count as given.
    """
    hooks = hooks or PretrainHooks()
    cfg, ck = _resolve(cfg, given)
    _check_device(cfg.device)
    if ck is None:
        _check_out(cfg.out)
    # With --hours alone the clock decides (no step cap), so the lr reaches its floor at the deadline.
    steps = cfg.steps or (None if cfg.hours else DEFAULT_STEPS)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info = D.init_distributed(cfg.device)
    try:
        return _run(cfg, ck, steps, info, hooks, model_factory or build_model, kind)
    finally:
        D.teardown(info)


def _run(cfg, ck, steps: int | None, info: D.DistInfo, hooks: PretrainHooks, factory, kind: str) -> PretrainResult:
    if cfg.batch_size % info.world_size:
        raise PretrainConfigError(f"--batch-size {cfg.batch_size} must be divisible by the {info.world_size} processes")
    corpus = build_corpus(cfg.corpus_config())
    fingerprint = corpus.fingerprint()
    if info.is_main:
        for msg in _short_stream_warnings(corpus, cfg.seq_len):
            log.warning(msg)
    torch.manual_seed(cfg.seed)
    init_ck = _init_checkpoint(cfg.init) if cfg.init and ck is None else None
    if cfg.init:
        # The architecture is the checkpoint's (the init one, or on resume the run's own), not --model-size.
        from aegir.model import AegirModel

        arch = (init_ck or ck).config
        model = AegirModel(arch).to(info.device)
        cfg = replace(cfg, model_size=arch.name)  # run args say what was built
    else:
        model = factory(cfg).to(info.device)
    if hasattr(getattr(model, "cfg", None), "cpu_bf16"):
        model.cfg.cpu_bf16 = cfg.cpu_bf16  # precision is the run's choice, not the checkpoint's
    start = 0
    elapsed_before = 0.0
    if ck is not None:
        run_dir = Path(cfg.resume)
        load_weights(model, ck)
        start = ck.step
        elapsed_before = float((ck.data_state or {}).get("elapsed_s", 0.0))
        if (ck.data_state or {}).get("corpus_fingerprint") != fingerprint and info.is_main:
            log.warning("the corpus differs from the one this run started with: the data order "
                        "after resume will not match an uninterrupted run")
    else:
        if init_ck is not None:
            load_weights(model, init_ck)
        run_dir = D.broadcast_object(new_run_dir(cfg.out, cfg.run_name) if info.is_main else None, info)
    size = getattr(getattr(model, "cfg", None), "name", cfg.model_size)
    strategy = cfg.strategy if cfg.strategy != "auto" else ("fsdp" if size == "base" else "ddp")
    inner = LMObjective(model, info)
    lr_mults = {n: lr_mult_of(p) for n, p in inner.named_parameters()}  # before FSDP replaces params
    obj = D.wrap_model(inner, info, strategy)
    ocfg = OptimConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
                       total_steps=steps or DEFAULT_STEPS,  # unused by time-budget runs (steps None)
                       min_lr_ratio=cfg.min_lr_ratio)
    opt = build_optimizer(D.unwrap(obj), ocfg, lr_mults)
    sched = WarmupCosine(opt, ocfg)
    if ck is not None:
        if ck.optimizer_state is not None:
            D.load_optimizer_state(obj, opt, ck.optimizer_state)
        restore_rng_state(ck.rng_state)
    model_cfg = getattr(model, "cfg", None)
    run_args = {**cfg.to_dict(), "steps": steps, "resume": None}
    wkv_path = describe_impl(model_cfg.wkv_impl, info.device) if hasattr(model_cfg, "wkv_impl") else None
    precision = describe_precision(model_cfg, info.device) if hasattr(model_cfg, "cpu_bf16") else None
    if info.is_main:
        meta = {"run_args": run_args, "model_config": model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else None,
                "corpus": corpus_summary(corpus), "corpus_fingerprint": fingerprint, "sources": corpus.sources,
                "world_size": info.world_size, "git_commit": git_commit(), "torch": str(torch.__version__),
                "n_params": sum(p.numel() for p in model.parameters()),
                "wkv": wkv_path, "precision": precision,
                "init": {"path": cfg.init, "step": init_ck.step, "metrics": init_ck.metrics} if init_ck else None}
        (run_dir / "config.json").write_text(json.dumps(meta, indent=2, default=str))
    # The eval record at the checkpoint's step is written before that checkpoint: keep it on resume.
    mlog = MetricsLog(run_dir, start, cfg.tensorboard, info.is_main, keep_events_at_start=("eval",))
    say = _printer(info)
    say(f"run folder {run_dir} | {info.world_size} process(es) on {info.device} | "
        f"{meta['n_params'] if info.is_main else 0:,} parameters | {corpus_summary(corpus)}")
    if wkv_path is not None:
        say(f"WKV: {wkv_path} | precision: {precision}")

    def save(path_name: str, step: int, metrics: dict[str, Any]) -> Path | None:
        state = D.model_state(obj)  # collective under FSDP: every rank gathers, rank 0 writes
        ostate = D.optimizer_state(obj, opt)
        if not info.is_main:
            D.barrier(info)
            return None
        p = save_checkpoint(
            run_dir / path_name, {k.removeprefix("model."): v for k, v in state.items()}, model_cfg or {},
            kind=kind, step=step, run_args=run_args, metrics=metrics,
            optimizer_state=ostate, scheduler_state=sched.state_dict(),
            rng_state=capture_rng_state(),
            data_state={"next_sample": step * cfg.batch_size, "elapsed_s": elapsed_before + (time.time() - t0),
                        "corpus_fingerprint": fingerprint},
        )
        steps_files = [q for q in list_checkpoints(run_dir) if q.name != FINAL_NAME]
        for old in steps_files[: max(0, len(steps_files) - cfg.keep_checkpoints)]:
            old.unlink(missing_ok=True)
        D.barrier(info)
        return p

    t0 = time.time()
    initial_bpb = evaluate_bpb(obj, corpus, cfg, info) if start == 0 else dict((ck.metrics or {}).get("initial_bpb", {}))
    if start == 0:
        mlog.write({"step": 0, "event": "eval", **{f"heldout_bpb.{k}": v for k, v in initial_bpb.items()}})
    t0 = time.time()  # the time budget and bytes/s count training, not the initial evaluation
    budget_s = cfg.hours * 3600.0 if cfg.hours else None
    shard = D.shard_range(cfg.batch_size, info.rank, info.world_size)
    warned: dict[tuple[int, str], int] = {}
    last_loss = float((ck.metrics or {}).get("loss", float("nan"))) if ck is not None else float("nan")
    last_bpb = dict((ck.metrics or {}).get("heldout_bpb", initial_bpb)) if ck is not None else dict(initial_bpb)
    tokens_done, train_time = 0, 0.0
    bar = _progress(info, cfg, start, steps)
    step, stopped = start, "steps"
    limit = steps if steps is not None else math.inf  # None: --hours alone, the time budget stops the run
    # Ctrl-C / SIGTERM (a cluster's pre-emption) finish the step under way and save it. One process only:
    # under torchrun the ranks would not agree on the step, so there only the message (as `aegir train`).
    guard = InterruptGuard(enabled=info.world_size == 1, signals=(signal.SIGINT, signal.SIGTERM))
    try:
        with guard:
            while step < limit:
                elapsed = elapsed_before + (time.time() - t0)
                if budget_s is not None:
                    # Clocks differ between processes: rank 0's reading decides for all, else one rank
                    # could stop while the others wait in the next all-reduce forever.
                    elapsed = float(D.all_reduce_sum(torch.tensor(elapsed if info.is_main else 0.0, dtype=torch.float64), info))
                    if elapsed >= budget_s:
                        stopped = "time"
                        break
                guard.begin()  # a Ctrl-C/SIGTERM from here waits for the step (and its eval/checkpoint) to end
                # Time-budget runs put the cosine on elapsed time, so the lr still decays by the deadline.
                lr = sched.set_step(step, None if budget_s is None else elapsed / budget_s)
                if hooks.before_step:
                    hooks.before_step(step, model)
                ts = time.time()
                ids = torch.from_numpy(corpus.batch([step * cfg.batch_size + i for i in shard])).to(info.device)  # (B/W, T)
                objective, stats = obj(ids)
                if not math.isfinite(stats.loss) or not math.isfinite(stats.ratio_loss):
                    _diverged(step, f"loss {stats.loss} (ratio loss {stats.ratio_loss})", model, save, mlog, run_dir, info,
                              cfg.lr, cfg.warmup_steps)
                opt.zero_grad(set_to_none=True)
                objective.backward()
                gnorm = D.local_value(torch.nn.utils.clip_grad_norm_(obj.parameters(), cfg.grad_clip))
                if not math.isfinite(gnorm):
                    _diverged(step, f"gradient norm {gnorm}", model, save, mlog, run_dir, info,
                              cfg.lr, cfg.warmup_steps)
                opt.step()
                dt = time.time() - ts
                tokens_done += cfg.batch_size * cfg.seq_len
                train_time += dt
                rec = {"step": step, "lr": lr, "grad_norm": gnorm, "bytes_per_s": cfg.batch_size * cfg.seq_len / max(dt, 1e-9),
                       "elapsed_s": elapsed_before + time.time() - t0, **_flat(stats)}
                for msg in _health(stats, step, warned):
                    if info.is_main:  # stats are global: one warning, not one per process
                        log.warning(msg)
                    rec.setdefault("warnings", []).append(msg)
                if step % cfg.log_every == 0 or step == start or rec.get("warnings"):
                    mlog.write(rec)
                last_loss = stats.loss
                step += 1
                if hooks.after_step:
                    hooks.after_step(step, rec)
                if step % cfg.eval_every == 0 and step < limit:
                    last_bpb = evaluate_bpb(obj, corpus, cfg, info)
                    mlog.write({"step": step, "event": "eval", **{f"heldout_bpb.{k}": v for k, v in last_bpb.items()}})
                if step % cfg.ckpt_every == 0 and step < limit:
                    save(step_checkpoint_name(step), step, {"loss": last_loss, "heldout_bpb": last_bpb, "initial_bpb": initial_bpb})
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{stats.loss:.3f}", F0=f"{stats.stages[0]['boundary_fraction']:.2f}" if stats.stages else "-",
                                    Bps=f"{tokens_done / max(train_time, 1e-9):,.0f}")
                guard.end()
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        if info.world_size == 1 and not guard.torn and step > start and not (run_dir / step_checkpoint_name(step)).exists():
            save(step_checkpoint_name(step), step, {"loss": last_loss, "heldout_bpb": last_bpb,
                                                    "initial_bpb": initial_bpb, "interrupted": True})
        mlog.close()
        msg = interrupt_message(run_dir, step, "aegir pretrain") if info.is_main else ""
        say(msg)
        raise Interrupted(msg, guard.signum or signal.SIGINT) from None
    if bar is not None:
        bar.close()
    final_bpb = evaluate_bpb(obj, corpus, cfg, info)
    mlog.write({"step": step, "event": "eval", **{f"heldout_bpb.{k}": v for k, v in final_bpb.items()}})
    bps = tokens_done / max(train_time, 1e-9)
    final = save(FINAL_NAME, step, {"loss": last_loss, "heldout_bpb": final_bpb, "initial_bpb": initial_bpb,
                                    "train_bytes_per_s": bps, "stopped": stopped})
    mlog.close()
    say(f"done: {step} steps, held-out bpb {initial_bpb.get('mixed', float('nan')):.3f} -> "
        f"{final_bpb['mixed']:.3f}, {bps:,.0f} bytes/s, checkpoint {final or run_dir / FINAL_NAME}")
    return PretrainResult(run_dir=run_dir, final_checkpoint=final, steps_done=step, last_loss=last_loss,
                          initial_bpb=initial_bpb, final_bpb=final_bpb, train_bytes_per_s=bps,
                          wall_s=time.time() - t0, stopped=stopped)


def _diverged(step: int, what: str, model: nn.Module, save, mlog: MetricsLog, run_dir: Path, info: D.DistInfo,
              lr: float, warmup: int):
    """Stop on NaN/inf. Saves the current weights only if they are still finite (the bad update
    was not applied); otherwise the newest earlier checkpoint is the one to resume from."""
    finite = all(bool(torch.isfinite(getattr(p, "_local_tensor", p)).all()) for p in model.parameters())
    if info.is_distributed:  # every rank must agree before the (collective) save
        finite = bool(D.all_reduce_sum(torch.tensor(float(not finite)), info) == 0)
    path = save(step_checkpoint_name(step), step, {"stopped": f"non-finite {what}"}) if finite else None
    if path is None and info.is_main:
        older = [p for p in list_checkpoints(run_dir)]
        path = older[-1] if older else None
    mlog.write({"step": step, "event": "diverged", "what": what})
    mlog.close()
    # --resume keeps the run's lr and warmup, so it would diverge again: the way on is a new run from
    # the last usable weights (--init: fresh optimizer and schedule) with a gentler lr.
    if path:
        hint = (f"last usable checkpoint: {path}). Start a new run from it with a lower lr or a longer warmup: "
                f"aegir pretrain --init {path} --lr {lr / 10:g} --warmup-steps {max(2 * warmup, 100)} ...")
    else:
        hint = ("no usable checkpoint was written before this step). Start again with a lower lr or a longer "
                f"warmup: --lr {lr / 10:g} --warmup-steps {max(2 * warmup, 100)}")
    raise TrainingDiverged(f"non-finite {what} at step {step}; training stopped ({hint}")


def _printer(info: D.DistInfo) -> Callable[[str], None]:
    def say(msg: str) -> None:
        if info.is_main:
            from tqdm import tqdm

            tqdm.write(msg)
    return say


def _progress(info: D.DistInfo, cfg: PretrainConfig, start: int, steps: int | None):
    if not (info.is_main and cfg.progress):
        return None
    from tqdm import tqdm

    return tqdm(total=steps, initial=start, desc="pretrain", unit="step", dynamic_ncols=True)

