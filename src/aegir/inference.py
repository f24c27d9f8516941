"""Loading a trained column annotator and running it: used by eval, liveness, annotate and export.

A classifier is either a training checkpoint (`final.pt`, kind "classifier", loaded with
`weights_only=True`) or an exported *specialist* folder (`model.safetensors` + `config.json` +
`labels.json` + `specialist.json`), both loaded strictly: every weight must fit.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from scipy.special import expit
import torch

from aegir.checkpoint import CheckpointError, load_checkpoint
from aegir.config import ModelConfig
from aegir.encoding.batch import EncodedColumn, collate
from aegir.encoding.serialize import SerializeConfig, at_budget
from aegir.model import AegirClassifier
from aegir.tables.labels import LabelVocab

SPECIALIST_FILES = ("model.safetensors", "config.json", "labels.json", "specialist.json")


@dataclass
class LoadedClassifier:
    model: AegirClassifier
    vocab: LabelVocab
    serialize_cfg: SerializeConfig
    task: str
    multi_label: bool
    cpa: bool
    source: str
    meta: dict[str, Any] = field(default_factory=dict)
    # Scores are softmax(logits / temperature), or per-label sigmoid(logits / temperature) for
    # multi-label models: 1 unless `aegir calibrate` / `train --calibrate` fitted one. Argmax, top-k
    # order, the labels above 0.5, F1 and the raw logits used by distillation are unaffected.
    temperature: float = 1.0


def classifier_extra(vocab: LabelVocab, scfg: SerializeConfig, task: str, multi_label: bool, cpa: bool,
                     **more: Any) -> dict[str, Any]:
    """What a classifier checkpoint stores besides weights and model config."""
    return {"labels": vocab.to_dict(), "serialize": asdict(scfg), "task": task, "multi_label": multi_label,
            "cpa": cpa, **more}


def _build(cfg: ModelConfig, extra: dict[str, Any], state: dict[str, torch.Tensor], where: str) -> AegirClassifier:
    vocab = LabelVocab.from_dict(extra["labels"])
    model = AegirClassifier(cfg, len(vocab), multi_label=bool(extra.get("multi_label", False)),
                            pool_main=bool(extra.get("pool_main", False)))
    # Auxiliary (hierarchical-loss) heads are training-only: drop them, keep everything else strict.
    state = {k: v for k, v in state.items() if not k.startswith("aux.")}
    own = {k[len("classifier."):]: v for k, v in state.items() if k.startswith("classifier.")} or state
    result = model.load_state_dict(own, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(f"{where}: weights do not fit the classifier: missing {result.missing_keys[:6]}, "
                              f"unexpected {result.unexpected_keys[:6]}")
    model.eval()
    return model


def classifier_source(path: str | Path) -> Path:
    """What `load_classifier` reads for `path`: an exported specialist folder as is, a run folder's
    final.pt, or the checkpoint file itself."""
    path = Path(path)
    if path.is_dir() and not (path / "specialist.json").is_file():
        if not (path / "final.pt").is_file():
            raise CheckpointError(f"{path}: neither a specialist folder nor a run folder with final.pt")
        return path / "final.pt"
    return path


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> LoadedClassifier:
    path = classifier_source(path)
    if path.is_dir():
        return _load_specialist(path, device)
    ckpt = load_checkpoint(path)
    if ckpt.kind != "classifier":
        raise CheckpointError(f"{path}: checkpoint kind is {ckpt.kind!r}; annotate/eval need a fine-tuned "
                              "classifier (kind 'classifier') — run `aegir train` first")
    if not isinstance(ckpt.config, ModelConfig):
        raise CheckpointError(f"{path}: checkpoint has no Aegir model config")
    extra = ckpt.extra
    for k in ("labels", "serialize", "task"):
        if k not in extra:
            raise CheckpointError(f"{path}: classifier checkpoint lacks {k!r}")
    model = _build(ckpt.config, extra, ckpt.model_state, str(path)).to(device)
    return LoadedClassifier(model, LabelVocab.from_dict(extra["labels"]), SerializeConfig(**extra["serialize"]),
                            extra["task"], bool(extra.get("multi_label")), bool(extra.get("cpa")), str(path),
                            meta={"step": ckpt.step, "metrics": ckpt.metrics, "git_commit": ckpt.git_commit,
                                  "run_args": ckpt.run_args, "calibration": extra.get("calibration")},
                            temperature=_temperature(extra.get("temperature", 1.0), str(path)))


def _temperature(t: Any, where: str) -> float:
    try:
        t = float(t)
    except (TypeError, ValueError):
        raise CheckpointError(f"{where}: temperature {t!r} is not a number") from None
    if not np.isfinite(t) or t <= 0:
        raise CheckpointError(f"{where}: temperature must be a positive number, got {t}")
    return t


def export_specialist(checkpoint: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Freeze a classifier as safetensors weights + JSON config/labels (no pickle anywhere).

    `out_dir` must be new or empty; an existing specialist is replaced only with `overwrite`, and then as a whole
    (its eval/ and liveness/ reports were about the model it held)."""
    import shutil

    from safetensors.torch import save_file

    from aegir.evaluation._io import atomic_write

    lc = load_classifier(checkpoint)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not (out / "specialist.json").is_file():
            raise CheckpointError(f"{out}: exists and is not a specialist folder; export into a new or empty folder")
        if not overwrite:
            raise CheckpointError(f"{out}: a specialist is already there; pass --overwrite to replace it (and its "
                                  "reports)")
        if out.resolve() == Path(lc.source).resolve():
            raise CheckpointError(f"{out}: is the specialist being exported; export to another folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in lc.model.state_dict().items()}

    def weights(tmp: Path) -> None:
        save_file(state, str(tmp))
        tmp.chmod(0o644)  # safetensors writes its file 0600; a specialist is meant to be shared

    # Each file atomically, specialist.json last: a folder that has it is complete.
    atomic_write(out / "model.safetensors", weights)
    atomic_write(out / "config.json", lambda tmp: tmp.write_text(json.dumps(lc.model.cfg.to_dict(), indent=1)))
    atomic_write(out / "labels.json", lc.vocab.save)
    spec = {"format": "aegir-specialist", "version": 1, "task": lc.task, "multi_label": lc.multi_label,
            "cpa": lc.cpa, "pool_main": lc.model.pool_main, "serialize": asdict(lc.serialize_cfg), "source_checkpoint": str(checkpoint),
            "temperature": lc.temperature,
            **{k: v for k, v in lc.meta.items() if k in ("step", "git_commit", "metrics", "calibration")}}
    atomic_write(out / "specialist.json", lambda tmp: tmp.write_text(json.dumps(spec, indent=1, default=str)))
    return out


def _load_specialist(path: Path, device) -> LoadedClassifier:
    from safetensors.torch import load_file

    missing = [f for f in SPECIALIST_FILES if not (path / f).is_file()]
    if missing:
        raise CheckpointError(f"{path}: specialist folder is missing {missing}")
    try:
        spec = json.loads((path / "specialist.json").read_text())
        cfg = ModelConfig.from_dict(json.loads((path / "config.json").read_text()))
    except (json.JSONDecodeError, TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: unreadable specialist config: {e}") from None
    if spec.get("format") != "aegir-specialist":
        raise CheckpointError(f"{path}/specialist.json: not an aegir specialist")
    vocab = LabelVocab.load(path / "labels.json")
    try:
        state = load_file(str(path / "model.safetensors"))
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for bad files
        raise CheckpointError(f"{path}/model.safetensors: unreadable ({e})") from None
    extra = {"labels": vocab.to_dict(), "multi_label": spec.get("multi_label", False),
             "pool_main": spec.get("pool_main", False)}
    model = _build(cfg, extra, state, str(path)).to(device)
    return LoadedClassifier(model, vocab, SerializeConfig(**spec["serialize"]), spec.get("task", "custom"),
                            bool(spec.get("multi_label")), bool(spec.get("cpa")), str(path), meta=spec,
                            temperature=_temperature(spec.get("temperature", 1.0), str(path)))


@dataclass
class Predictions:
    logits: np.ndarray            # (N, n_labels) float32
    pooled: np.ndarray            # (N, pooled_dim) float32
    n_boundary: np.ndarray        # (N, n_routers) boundaries per example and router stage (padding excluded)
    n_valid: np.ndarray           # (N, n_routers) valid positions per example and stage
    allowed: np.ndarray | None = None  # (n_labels,) bool: top_k picks among these only (restrict_labels)

    @property
    def boundary_fraction(self) -> np.ndarray:
        return self.n_boundary / np.maximum(self.n_valid, 1)

    def probabilities(self, multi_label: bool = False) -> np.ndarray:
        """(N, n_labels) scores: softmax over labels, or per-label sigmoids for multi-label models."""
        return label_scores(self.logits, multi_label)

    def top_k(self, k: int, multi_label: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The k best labels per row and their scores. Ranked by logits, not scores: softmax and
        sigmoid keep the order, but float32 scores underflow to 0 (or saturate at 1) for confident
        or sharply calibrated models, and ties there would fall back to label order. With `allowed`,
        only those labels are ranked, and their scores stay those of the full vocabulary."""
        scores = self.probabilities(multi_label)
        rank = self.logits if self.allowed is None else np.where(self.allowed[None, :], self.logits, -np.inf)
        idx = np.argsort(-rank, axis=1, kind="stable")[:, :k]  # (N, k)
        return idx, np.take_along_axis(scores, idx, axis=1)


def label_scores(logits: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """(N, L) logits -> scores: softmax over labels, or per-label sigmoids (multi-label); keeps the dtype."""
    if multi_label:
        return expit(logits)  # 1 / (1 + e^-x) without overflow warnings for very negative logits
    e = np.exp(logits - logits.max(axis=1, keepdims=True))  # shifted: no overflow
    return e / e.sum(axis=1, keepdims=True)


def restrict_labels(raw: Predictions, label_mask: np.ndarray) -> Predictions:
    """Only labels where `label_mask` is True can be predicted (`top_k` ranks those). The scores are
    not renormalised over the subset: a column the subset does not fit keeps low scores, and a
    `min_score` chosen on the full vocabulary still means the same (eval's `allowed` does the same)."""
    return replace(raw, allowed=np.asarray(label_mask, dtype=bool))


def read_at_budget(lc: LoadedClassifier, max_bytes: int | None) -> LoadedClassifier:
    """The classifier reading `max_bytes` per column instead of its trained budget (`at_budget`); the same
    model object. None: unchanged."""
    if max_bytes is None:
        return lc
    return replace(lc, serialize_cfg=at_budget(lc.serialize_cfg, max_bytes))


@contextlib.contextmanager
def inference_precision(members: Sequence[LoadedClassifier], bf16: bool | None) -> Iterator[None]:
    """Run `members` in bf16 autocast (True) or plain fp32 (False) inside the block, whatever they were
    trained with; None leaves each as its checkpoint says (ModelConfig.cpu_bf16 / bf16_autocast).
    Restored on exit, so cached models (annotate) keep their saved precision for later calls.

    Why: precision is a run-time choice (ModelConfig.cpu_bf16), and the machine that annotates is not
    always the one that trained: an fp32 model reads up to ~1.3x faster under bf16 on a CPU with AVX512-BF16
    (docs/results/cta_precision.md measures what it changes), while a bf16-trained model should run in
    fp32 on a CPU without it, where bf16 is emulated and slower."""
    if bf16 is None:
        yield
        return
    cfgs = list({id(m.model.cfg): m.model.cfg for m in members}.values())  # members may share one config
    saved = [(c.cpu_bf16, c.bf16_autocast) for c in cfgs]
    try:
        for c in cfgs:
            c.cpu_bf16 = c.bf16_autocast = bool(bf16)
        yield
    finally:
        for c, (cpu, cuda) in zip(cfgs, saved):
            c.cpu_bf16, c.bf16_autocast = cpu, cuda


def precision_name(lc: LoadedClassifier) -> str:
    """"bf16" or "fp32": what `lc` runs at now on its device (inside `inference_precision`, the override)."""
    m = lc.model
    return "bf16" if m.cfg.bf16_autocast_on(next(m.parameters()).device.type) else "fp32"


def average_views(views: Sequence[Predictions]) -> Predictions:
    """Test-time averaging over row views of the same columns (same order in every view): mean
    logits and mean pooled embeddings; the boundary counts are view 0's (the deterministic view),
    so chunker-health figures do not depend on the number of views."""
    if not views:
        raise ValueError("average_views() got no predictions")
    first = views[0]
    for v in views[1:]:
        if v.logits.shape != first.logits.shape:
            raise ValueError("average_views(): views cover different columns")
    logits = np.mean([v.logits for v in views], axis=0).astype(np.float32)
    pooled = np.mean([v.pooled for v in views], axis=0).astype(np.float32)
    return Predictions(logits, pooled, first.n_boundary, first.n_valid)


def predict_views(model: AegirClassifier, examples: Sequence[EncodedColumn],
                  encode_view: Callable[[int], Sequence[EncodedColumn]], views: int = 1, batch_size: int = 32,
                  label_mask: np.ndarray | None = None, progress: bool = False) -> Predictions:
    """`predict` on `examples` (view 0), averaged with views 1..views-1 of the same columns in the
    same order (`encode_view(v)`), then restricted to `label_mask` when given."""
    if views < 1:
        raise ValueError("views must be >= 1")
    raw = predict(model, examples, batch_size=batch_size, progress=progress)
    if views > 1:
        raw = average_views([raw] + [predict(model, encode_view(v), batch_size=batch_size, progress=progress)
                                     for v in range(1, views)])
    return restrict_labels(raw, label_mask) if label_mask is not None else raw


def load_classifiers(sources: Sequence[str | Path | LoadedClassifier], device: str | torch.device = "cpu"
                     ) -> list[LoadedClassifier]:
    """One or more classifiers that will be used together (an ensemble): loaded, then checked to
    share the label vocabulary and the kind of task; serialization settings may differ per member."""
    if not sources:
        raise CheckpointError("no classifier checkpoint given")
    members = [s if isinstance(s, LoadedClassifier) else load_classifier(s, device) for s in sources]
    first = members[0]
    for m in members[1:]:
        if m.vocab.labels != first.vocab.labels:
            raise CheckpointError(f"{m.source}: its {len(m.vocab)} labels differ from those of {first.source} "
                                  f"({len(first.vocab)}); ensemble members must share one label vocabulary")
        if (m.multi_label, m.cpa) != (first.multi_label, first.cpa):
            raise CheckpointError(f"{m.source}: a {_kind(m)} model cannot join the {_kind(first)} model {first.source}")
    return members


def _kind(lc: LoadedClassifier) -> str:
    return ("CPA" if lc.cpa else "CTA") + (" multi-label" if lc.multi_label else "")


def predict_ensemble(members: Sequence[LoadedClassifier],
                     encode_view: Callable[[LoadedClassifier, int], Sequence[EncodedColumn]], views: int = 1,
                     batch_size: int = 32, label_mask: np.ndarray | None = None, progress: bool = False) -> Predictions:
    """`predict_views` for each member (each encodes the columns with its own serialization, and
    divides its logits by its fitted temperature, `calibrated`), then the mean of the members'
    probabilities (softmax, or per-label sigmoids for multi-label models). One member returns its
    own (calibrated) predictions unchanged. With several, the returned logits are
    log(mean probability) (multi-label: logit(mean sigmoid)), so argmax, top-k and scores read the
    averaged probabilities; pooled embeddings and boundary counts are the first member's."""
    runs = [calibrated(predict_views(m.model, encode_view(m, 0), lambda v, m=m: encode_view(m, v), views, batch_size,
                                     progress=progress), m.temperature) for m in members]
    raw = combine_members(runs, members[0].multi_label)
    return restrict_labels(raw, label_mask) if label_mask is not None else raw


def calibrated(raw: Predictions, temperature: float) -> Predictions:
    """Logits divided by a member's fitted temperature (`aegir calibrate`), before members are
    combined, so each member's scores are its calibrated ones; unchanged at T = 1."""
    if temperature == 1.0:
        return raw
    return replace(raw, logits=(raw.logits / np.float32(temperature)).astype(np.float32))


def combine_members(runs: Sequence[Predictions], multi_label: bool = False) -> Predictions:
    """The ensemble of several members' predictions of the same columns (each already averaged over
    its row views): logits = log(mean probability) (multi-label: logit(mean sigmoid)); pooled
    embeddings and boundary counts are the first member's. One member is returned unchanged.
    Public so that a benchmark scoring many ensembles of the same members can predict each member once."""
    if not runs:
        raise ValueError("combine_members() got no predictions")
    if len(runs) == 1:
        return runs[0]
    if any(r.logits.shape != runs[0].logits.shape for r in runs[1:]):
        raise ValueError("combine_members(): members cover different columns or label sets")
    # float64: float32 scores of confident members underflow to 0, and the mean would tie them
    p = np.mean([label_scores(r.logits.astype(np.float64), multi_label) for r in runs], axis=0)  # (N, n_labels)
    p = np.clip(p, 1e-300, 1 - 1e-16) if multi_label else np.maximum(p, 1e-300)
    logits = (np.log(p) - np.log1p(-p)) if multi_label else np.log(p)
    return Predictions(logits.astype(np.float32), runs[0].pooled, runs[0].n_boundary, runs[0].n_valid)


@torch.no_grad()
def predict(model: AegirClassifier, examples: Sequence[EncodedColumn], batch_size: int = 32,
            device: str | torch.device | None = None, progress: bool = False) -> Predictions:
    """Run the classifier over encoded columns (batched by length for speed; output in input order)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].ids))
    n = len(examples)
    logits = pooled = bf = nv = None
    it = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        # delay: a bar only for passes that take a while (a table of thousands of columns), not every small call
        it = tqdm(it, desc="predict", unit="batch", leave=False, delay=2.0)
    for s in it:
        idx = order[s : s + batch_size]
        b = collate([examples[i] for i in idx]).to(device)
        out = model(b.ids, b.mask, b.target_mask, b.main_mask)
        lg = out.logits.float().cpu().numpy()
        pl = out.pooled.float().cpu().numpy()
        # Per-example boundary counts on each router's positions, padding excluded.
        f = np.stack([(st.boundary_mask & st.valid_mask).sum(1).cpu().numpy() for st in out.stages], axis=1) \
            if out.stages else np.zeros((len(idx), 0))
        v = np.stack([st.valid_mask.sum(1).cpu().numpy() for st in out.stages], axis=1) if out.stages else np.zeros((len(idx), 0))
        if logits is None:
            logits = np.zeros((n, lg.shape[1]), np.float32)
            pooled = np.zeros((n, pl.shape[1]), np.float32)
            bf = np.zeros((n, f.shape[1]), np.int64)
            nv = np.zeros((n, v.shape[1]), np.int64)
        logits[idx], pooled[idx], bf[idx], nv[idx] = lg, pl, f, v
    if logits is None:
        raise ValueError("predict() got no examples")
    model.train(was_training)
    return Predictions(logits, pooled, bf, nv)
