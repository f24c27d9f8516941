"""Knowledge distillation from fine-tuned teachers (`aegir train --teacher A --teacher B ...`).

Why: on SOTAB an ensemble of fine-tunes scores above every member (docs/results/cta_analysis.md),
but costs one backbone pass per member at inference. Distillation (Hinton et al., 2015) trains one
student on the teachers' temperature-softened probabilities next to the hard labels, so a single
model can carry what the ensemble agrees on. The loss per example is

    (1 - w) * CE(z, y) + w * T^2 * KL(p_teacher^T || softmax(z / T))

(multi-label: per-label Bernoulli KL, averaged over labels, like the BCE it sits next to). T^2 keeps
the soft term's gradient scale independent of T, as in the paper.

Teacher targets are computed once per run, per training column (not per row view): each teacher's
logits are averaged over `views` row views first (as `aegir eval --views` does), then softened and
averaged over teachers (mean probability, as ensembles are scored). They are cached in the run folder
(`teacher_targets.safetensors`, written atomically) so a resumed run does not recompute them, and
with `--teacher-cache DIR` in a folder several runs share (student seeds on the same teachers). The
cache is per column and by content (the teacher files' digests and settings; per column, its table's
cells and position), so a retrained teacher or changed data never reads stale targets, and a run
whose synthetic tables differ recomputes only those.

`--distill-unlabeled` (`with_unlabeled_columns`; single-label CTA only) also trains on every column of the training tables that
has no label, with the teachers' targets as the only signal — semi-supervised distillation over
real in-domain columns the teachers never saw labels for. Only training tables are read.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from aegir.checkpoint import CheckpointError
from aegir.encoding.batch import encode_dataset
from aegir.inference import LoadedClassifier, classifier_source, label_scores, load_classifiers, predict_views
from aegir.tables.table import LabeledColumn, LabeledDataset, TableError

TARGETS_FILE = "teacher_targets.safetensors"


@dataclass
class TeacherTargets:
    probs: np.ndarray        # (N, n_labels) float32: teacher probabilities at temperature T, one row per target
    teachers: list[str]
    views: int
    temperature: float
    n_cached: int = 0        # targets read from a cache instead of computed

    @property
    def from_cache(self) -> bool:
        return self.n_cached == len(self.probs)


def with_unlabeled_columns(ds: LabeledDataset) -> LabeledDataset:
    """`ds` plus one label-free target for every column of its tables that is not a target yet.

    A column is identified by its table's name and its cells, as `tasks.dedupe_targets` does: SOTAB's
    Train and Train50 hold 492 of the same tables (Train keeps only the labelled columns, renumbered;
    Train50 all of them), so a column labelled in one copy is not added again from the other, and no
    column is added twice. Only for CTA (a CPA target is a column pair; which pairs are worth
    predicting is not known)."""
    if ds.task != "cta" or ds.multi_label:
        raise TableError("--distill-unlabeled works for single-label CTA tasks only "
                         f"(this training set is {'multi-label ' if ds.multi_label else ''}{ds.task.upper()})")

    def key(ti: int, j: int) -> tuple:
        return ds.tables[ti].name, tuple(ds.tables[ti].columns[j])

    seen = {key(t.table_index, t.column) for t in ds.targets}
    extra = []
    for ti, tab in enumerate(ds.tables):
        for j in range(tab.n_cols):
            if key(ti, j) not in seen:
                seen.add(key(ti, j))
                extra.append(LabeledColumn(ti, j, ()))
    return LabeledDataset(ds.tables, list(ds.targets) + extra, task=ds.task, multi_label=ds.multi_label,
                          source=ds.source, skipped=ds.skipped)


def soft_probabilities(logits: np.ndarray, temperature: float, multi_label: bool) -> np.ndarray:
    """(N, L) logits -> probabilities at temperature T (softmax, or per-label sigmoid), in float64."""
    return label_scores(logits.astype(np.float64) / temperature, multi_label)


def teacher_probabilities(members: Sequence[LoadedClassifier], ds: LabeledDataset, labels: Sequence[str],
                          views: int = 1, temperature: float = 2.0, batch_size: int = 64,
                          progress: bool = False) -> np.ndarray:
    """Mean over teachers of softened probabilities for every target of `ds`, columns in `labels` order.

    Each teacher serializes with its own settings and averages its logits over `views` row views."""
    multi = members[0].multi_label
    out = np.zeros((len(ds.targets), len(labels)), np.float64)
    for m in members:
        raw = predict_views(m.model, encode_dataset(ds, None, m.serialize_cfg),
                            lambda v, m=m: encode_dataset(ds, None, m.serialize_cfg, view=v), views, batch_size,
                            progress=progress)
        # A teacher may list the same labels in another order: map its columns onto the student's.
        col = [m.vocab.labels.index(l) for l in labels]
        out += soft_probabilities(raw.logits[:, col], temperature, multi)
    return (out / len(members)).astype(np.float32)


def load_teachers(paths: Sequence[str], labels: Sequence[str], multi_label: bool,
                  device: str | torch.device = "cpu") -> list[LoadedClassifier]:
    members = load_classifiers(list(paths), device)  # one label vocabulary and task kind among the teachers
    have = set(members[0].vocab.labels)
    if have != set(labels):
        missing, extra = sorted(set(labels) - have), sorted(have - set(labels))
        raise CheckpointError(f"{members[0].source}: the teacher's labels differ from this task's "
                              f"(missing {missing[:5]}, extra {extra[:5]}); a teacher must know the same labels")
    if members[0].multi_label != multi_label:
        raise CheckpointError(f"{members[0].source}: a {'multi' if members[0].multi_label else 'single'}-label "
                              f"teacher cannot teach a {'multi' if multi_label else 'single'}-label task")
    return members


def _teacher_digest(path: str | Path) -> str:
    """SHA-256 of what `load_classifier` reads for a teacher (`classifier_source`): a checkpoint file,
    a run folder's final.pt, or every file of an exported specialist folder (with its relative name)."""
    p = classifier_source(path)
    if not p.exists():
        raise CheckpointError(f"{path}: teacher checkpoint not found")
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(p).as_posix().encode() if p.is_dir() else b"")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def column_digests(ds: LabeledDataset) -> np.ndarray:
    """(N, 32) uint8: per target, a SHA-256 of everything a teacher's input for it depends on — its
    table's header and cells, the table's index (row views are seeded by it), the column and, for
    CPA, the subject column."""
    tables: dict[int, bytes] = {}
    out = np.zeros((len(ds.targets), 32), np.uint8)
    for i, t in enumerate(ds.targets):
        if t.table_index not in tables:
            tab = ds.tables[t.table_index]
            tables[t.table_index] = hashlib.sha256(json.dumps([tab.header, tab.columns]).encode()).digest()
        h = hashlib.sha256(tables[t.table_index] + json.dumps([t.table_index, t.column, t.main_column]).encode())
        out[i] = np.frombuffer(h.digest(), np.uint8)
    return out


def teacher_targets(paths: Sequence[str], ds: LabeledDataset, labels: Sequence[str], multi_label: bool,
                    views: int, temperature: float, cache_dir: Path | None = None, write_cache: bool = True,
                    progress: bool = False, device: str | torch.device = "cpu",
                    shared_cache: Path | None = None) -> TeacherTargets:
    """Teacher targets for `ds`'s targets, cached per column by content.

    A cache file holds one setting (the teachers' file digests, views, temperature, labels) and, per
    column, its input digest (`column_digests`) and probabilities. Columns are read from
    `cache_dir / TARGETS_FILE` (the run folder, for resume) and from `shared_cache` (a folder several
    runs share: another student seed on the same teachers skips the columns seen before); the rest
    are computed on `device`. With `write_cache`, the run folder gets this run's targets and the
    shared file the union of what it held and these."""
    key = json.dumps({"teachers": [_teacher_digest(p) for p in paths], "views": views, "temperature": temperature,
                      "labels": list(labels)})
    own_file = Path(cache_dir) / TARGETS_FILE if cache_dir is not None else None
    shared = (Path(shared_cache) / f"teacher-targets-{hashlib.sha256(key.encode()).hexdigest()[:24]}.safetensors"
              if shared_cache is not None else None)
    digests = column_digests(ds)
    own = _read(own_file, key) if own_file else {}
    known = {**(_read(shared, key) if shared else {}), **own}
    probs = np.zeros((len(ds.targets), len(labels)), np.float32)
    miss = []
    for i, d in enumerate(digests):
        row = known.get(d.tobytes())
        if row is None:
            miss.append(i)
        else:
            probs[i] = row
    if miss:
        members = load_teachers(paths, labels, multi_label, device)
        sub = LabeledDataset(ds.tables, [ds.targets[i] for i in miss], task=ds.task, multi_label=ds.multi_label)
        probs[miss] = teacher_probabilities(members, sub, labels, views, temperature, progress=progress)
    if write_cache:
        if own_file and any(d.tobytes() not in own for d in digests):  # a resume rewrites nothing
            _write(own_file, digests, probs, key)
        if shared:
            # Read again, not reused from above: another run may have added columns during our teacher pass.
            have = _read(shared, key)
            new = {d.tobytes(): p for d, p in zip(digests, probs) if d.tobytes() not in have}
            if new:
                have.update(new)
                _write(shared, np.stack([np.frombuffer(d, np.uint8) for d in have]), np.stack(list(have.values())), key)
    return TeacherTargets(probs, list(paths), views, temperature, n_cached=len(ds.targets) - len(miss))


def _read(path: Path, key: str) -> dict[bytes, np.ndarray]:
    """Column digest -> probabilities from a cache file of this setting ({} when absent or another setting)."""
    from safetensors import safe_open

    if not path.is_file():
        return {}
    with safe_open(str(path), framework="np") as f:
        if (f.metadata() or {}).get("key") != key:
            return {}
        digests, probs = f.get_tensor("digests"), f.get_tensor("probs")
    return {d.tobytes(): p for d, p in zip(digests, probs)}


def _write(path: Path, digests: np.ndarray, probs: np.ndarray, key: str) -> None:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    save_file({"digests": np.ascontiguousarray(digests), "probs": np.ascontiguousarray(probs, np.float32)}, str(tmp),
              metadata={"key": key})
    os.replace(tmp, path)  # atomic: a kill leaves the old cache or none, never half a file


def distill_loss(logits: torch.Tensor, teacher: torch.Tensor, temperature: float, multi_label: bool) -> torch.Tensor:
    """Sum over examples of T^2 * KL(teacher || student at temperature T); (B, L) -> scalar.

    Zero exactly when the student's softened distribution equals the teacher's. Multi-label: the
    Bernoulli KL per label, averaged over labels (the hard BCE is averaged over labels the same way)."""
    z = logits.float() / temperature  # (B, L)
    p = teacher.float().clamp(1e-12, 1.0)
    if multi_label:
        q1, q0 = F.logsigmoid(z), F.logsigmoid(-z)
        p1, p0 = teacher.float().clamp(1e-12, 1 - 1e-7), (1 - teacher.float()).clamp(1e-12, 1.0)
        kl = p1 * (p1.log() - q1) + p0 * (p0.log() - q0)  # (B, L)
        return temperature ** 2 * kl.mean(dim=1).sum()
    kl = teacher.float() * (p.log() - F.log_softmax(z, dim=-1))  # (B, L)
    return temperature ** 2 * kl.sum()
