"""Self-describing, atomic checkpoints and run folders.

A checkpoint is one `torch.save` file holding only plain data (dicts, lists, str, numbers, tensors),
so it loads with `torch.load(weights_only=True)`: nothing in it can run code on load. It records
everything needed to rebuild and resume a run: weights, the model config (as a dict), the vocabulary
facts, the run arguments, step, metrics, git commit, and optionally optimizer / scheduler / RNG /
data-position state. Writes go to a temp file in the same folder, are fsynced, then renamed over the
target, so a kill during a save leaves the previous file intact.

Model-agnostic on purpose: pretraining, fine-tuning and the benchmarks' baseline all save through
here, each with its own `kind` ("pretrain", "classifier", "baseline", ...).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import random
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aegir.encoding.vocab import VocabInfo

FORMAT_NAME = "aegir-checkpoint"
FORMAT_VERSION = 1
STEP_FILE_RE = re.compile(r"^step-(\d{8})\.pt$")
FINAL_NAME = "final.pt"

# Config classes a checkpoint may name. An allowlist, never an import of a name read from a file.
_CONFIG_CLASSES = {"aegir.config.ModelConfig": ("aegir.config", "ModelConfig")}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: corrupt, truncated, foreign or mismatched."""


@dataclass
class Checkpoint:
    """What `load_checkpoint` returns.

    `config` is a `ModelConfig` when the file was saved with one (parsed strictly, so a config from
    an incompatible version is refused), otherwise the saved dict. `config_dict` is always the dict.
    """

    path: Path
    kind: str
    model_state: dict[str, torch.Tensor]
    config: Any
    config_dict: dict[str, Any]
    config_class: str | None
    vocab: dict[str, Any]
    step: int
    run_args: dict[str, Any]
    metrics: dict[str, Any]
    git_commit: str | None
    created_utc: str
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    rng_state: dict[str, Any] | None = None
    data_state: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def git_commit(root: Path | None = None) -> str | None:
    """HEAD of the checkout the code runs from (with "-dirty" when files differ), or None."""
    from aegir.paths import repo_root

    root = root or repo_root()
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def utc_stamp(now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ")


def new_run_dir(out: str | Path, run_name: str) -> Path:
    """Create and return `out/<run_name>/<UTC YYYYMMDDTHHMMSSZ>/`.

    Two runs started in the same second get `-2`, `-3`, ... appended rather than sharing a folder
    (the stamp itself is never shifted: it stays the true start time).
    """
    if not run_name or "/" in run_name or run_name in (".", ".."):
        raise ValueError(f"run name {run_name!r} must be a plain folder name")
    base = Path(out) / run_name
    base.mkdir(parents=True, exist_ok=True)
    stamp = utc_stamp()
    for i in range(1, 1000):
        cand = base / (stamp if i == 1 else f"{stamp}-{i}")
        try:
            cand.mkdir()
            return cand
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a fresh run folder under {base}")


def step_checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoints in a run folder, oldest first: step files by step, then final.pt."""
    run_dir = Path(run_dir)
    steps = sorted(
        (int(m.group(1)), p) for p in run_dir.glob("step-*.pt") if (m := STEP_FILE_RE.match(p.name))
    )
    out = [p for _, p in steps]
    if (run_dir / FINAL_NAME).is_file():
        out.append(run_dir / FINAL_NAME)
    return out


def resume_point(run_dir: str | Path, kind: str) -> Checkpoint:
    """The checkpoint `--resume RUN_DIR` continues from: the run folder's newest usable one of `kind`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"--resume {run_dir}: no such run folder")
    ck = latest_checkpoint(run_dir, kind=kind)
    if ck is None:
        raise CheckpointError(f"--resume {run_dir}: no usable {kind} checkpoint in this run folder")
    return ck


def latest_checkpoint(run_dir: str | Path, kind: str | None = None) -> Checkpoint | None:
    """The newest checkpoint of a run folder that loads, skipping (with a warning) unreadable ones.

    Atomic saves mean the newest file should always load; the fallback covers disks that lost data.
    """
    import warnings

    best: Checkpoint | None = None
    for p in reversed(list_checkpoints(run_dir)):
        try:
            c = load_checkpoint(p, kind=kind)
        except CheckpointError as e:
            warnings.warn(f"skipping unusable checkpoint: {e}", stacklevel=2)
            continue
        if best is None or c.step > best.step:
            best = c
        if p.name != FINAL_NAME:  # newest loadable step file reached; older ones cannot be later
            break
    return best


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes: catches bit rot the zip container misses."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def capture_rng_state() -> dict[str, Any]:
    """Python, torch CPU and CUDA generator states as plain data (weights_only-loadable)."""
    py = random.getstate()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "torch_cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["torch_cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any] | None) -> None:
    if not state:
        return
    if "python" in state:
        v, internal, gauss = state["python"]
        random.setstate((v, tuple(internal), gauss))
    if "torch_cpu" in state:
        torch.set_rng_state(state["torch_cpu"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])


def _config_to_dict(cfg: Any) -> tuple[dict[str, Any], str | None]:
    if cfg is None:
        return {}, None
    if isinstance(cfg, dict):
        return dict(cfg), None
    if hasattr(cfg, "to_dict"):
        qual = f"{type(cfg).__module__}.{type(cfg).__qualname__}"
        return dict(cfg.to_dict()), qual
    import dataclasses

    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg), None
    raise TypeError(f"cannot record a config of type {type(cfg).__name__}: pass a dict or an object with to_dict()")


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """`torch.save` to a temp file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


# --------------------------------------------------------------------------------------------------
# save / load
# --------------------------------------------------------------------------------------------------
def save_checkpoint(
    path: str | Path,
    model: nn.Module | dict[str, torch.Tensor],
    cfg: Any,
    extra: dict[str, Any] | None = None,
    *,
    kind: str = "pretrain",
    step: int = 0,
    run_args: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    optimizer_state: dict[str, Any] | None = None,
    scheduler_state: dict[str, Any] | None = None,
    rng_state: dict[str, Any] | None = None,
    data_state: dict[str, Any] | None = None,
    commit: str | None | bool = True,
) -> Path:
    """Write a self-describing checkpoint atomically and return its path.

    model: a module (its `state_dict()`, unwrapped from DDP if needed) or a ready state dict.
    cfg: a `ModelConfig` (anything with `to_dict()`), a dataclass, or a plain dict.
    extra: free-form plain data (label vocabularies, head settings, ...), kept under `extra`.
    commit: True = look up the git commit, a string = record it, None/False = none.
    """
    if not kind or not isinstance(kind, str):
        raise ValueError("checkpoint kind must be a non-empty string")
    if isinstance(model, nn.Module):
        inner = getattr(model, "module", model)  # DDP / FSDP wrappers keep the model in .module
        state = inner.state_dict()
    else:
        state = model
    state = {k: v.detach().cpu() for k, v in state.items()}
    cfg_dict, cfg_class = _config_to_dict(cfg)
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "created_utc": utc_stamp(),
        "git_commit": git_commit() if commit is True else (commit or None),
        "torch_version": str(torch.__version__),  # TorchVersion is not a weights_only type
        "vocab": VocabInfo().to_dict(),
        "config": cfg_dict,
        "config_class": cfg_class,
        "step": int(step),
        "run_args": dict(run_args or {}),
        "metrics": dict(metrics or {}),
        "model_state": state,
        "weights_sha256": weights_digest(state),
        "optimizer_state": optimizer_state,
        "scheduler_state": scheduler_state,
        "rng_state": rng_state,
        "data_state": data_state,
        "extra": dict(extra or {}),
    }
    return atomic_torch_save(payload, path)


def _parse_config(path: Path, cfg_dict: dict[str, Any], cfg_class: str | None) -> Any:
    if cfg_class is None:
        return cfg_dict
    if cfg_class not in _CONFIG_CLASSES:
        # Unknown classes stay dicts: a foreign but well-formed file still loads for inspection.
        return cfg_dict
    import importlib

    mod_name, cls_name = _CONFIG_CLASSES[cfg_class]
    try:
        cls = getattr(importlib.import_module(mod_name), cls_name)
    except (ImportError, AttributeError):
        return cfg_dict
    try:
        return cls.from_dict(cfg_dict)
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: model config does not match this version of aegir: {e}") from e


def _torch_load_reason(e: Exception) -> str:
    """The line of torch.load's error that says what is wrong with the file. Its messages are paragraphs that ask
    to re-run with weights_only=False or to file an issue with PyTorch, advice that is wrong for a user here."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:  # weights_only refusals: the refused global, or the unpickler's own reason on its own line
        if "Unsupported global" in ln:
            return ln[:300]
    after = [ln for i, ln in enumerate(lines) if i and "WeightsUnpickler error" in lines[i - 1]]
    if after:
        return f"not a PyTorch pickle ({after[0][:200]})"
    first = next((ln for ln in lines if not ln.startswith(("Weights only load failed", "Please file an issue"))),
                 type(e).__name__)
    if not any(ch.isalpha() for ch in first):  # the unpickler's bare opcode number ("101"): not a pickle at all
        return f"not a PyTorch pickle ({type(e).__name__} {first})"
    return first.split(". This is an internal")[0].split(". If you are seeing")[0][:300]


def load_checkpoint(path: str | Path, kind: str | None = None, verify: bool = True) -> Checkpoint:
    """Load a checkpoint on CPU with `weights_only=True`; refuse anything not ours with a clear error.

    kind: when given, the file's kind must match (e.g. a classifier cannot resume a pretrain run).
    verify: recompute the weights' sha256 and compare with the recorded one.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files; all mean "unusable"
        msg = _torch_load_reason(e)
        raise CheckpointError(
            f"{path}: not a loadable checkpoint (corrupt, truncated, or contains code objects "
            f"refused by weights_only loading): {msg}"
        ) from e
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not an aegir checkpoint (foreign file: no '{FORMAT_NAME}' marker)")
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is newer than this aegir supports ({FORMAT_VERSION})"
        )
    missing = [k for k in ("kind", "vocab", "config", "model_state", "step") if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: checkpoint is missing fields {missing}")
    vocab = raw["vocab"]
    here = VocabInfo().to_dict()
    if vocab != here:
        diff = [k for k in here if vocab.get(k) != here[k]]
        raise CheckpointError(
            f"{path}: vocabulary mismatch in {diff}: file has {[vocab.get(k) for k in diff]}, "
            f"this aegir has {[here[k] for k in diff]}"
        )
    if kind is not None and raw["kind"] != kind:
        raise CheckpointError(f"{path}: checkpoint kind is {raw['kind']!r}, expected {kind!r}")
    state = raw["model_state"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: model_state is not a mapping of tensors")
    if verify and raw.get("weights_sha256") and weights_digest(state) != raw["weights_sha256"]:
        raise CheckpointError(f"{path}: weights do not match their recorded sha256 (file is corrupt)")
    cfg_dict = raw["config"] if isinstance(raw["config"], dict) else {}
    return Checkpoint(
        path=path,
        kind=raw["kind"],
        model_state=state,
        config=_parse_config(path, cfg_dict, raw.get("config_class")),
        config_dict=cfg_dict,
        config_class=raw.get("config_class"),
        vocab=vocab,
        step=int(raw["step"]),
        run_args=raw.get("run_args") or {},
        metrics=raw.get("metrics") or {},
        git_commit=raw.get("git_commit"),
        created_utc=raw.get("created_utc", ""),
        optimizer_state=raw.get("optimizer_state"),
        scheduler_state=raw.get("scheduler_state"),
        rng_state=raw.get("rng_state"),
        data_state=raw.get("data_state"),
        extra=raw.get("extra") or {},
    )


def load_weights(model: nn.Module, ckpt: Checkpoint, strict: bool = True) -> None:
    """Copy a checkpoint's weights into `model`, naming missing/unexpected keys in the error."""
    inner = getattr(model, "module", model)
    try:
        result = inner.load_state_dict(ckpt.model_state, strict=False)
    except RuntimeError as e:  # shape mismatches raise even with strict=False
        raise CheckpointError(f"{ckpt.path}: weights do not fit this model: {str(e).splitlines()[0]}") from e
    bad = [*result.missing_keys, *result.unexpected_keys]
    if strict and bad:
        raise CheckpointError(
            f"{ckpt.path}: weights do not fit this model: missing {result.missing_keys[:8]}, "
            f"unexpected {result.unexpected_keys[:8]}"
        )
