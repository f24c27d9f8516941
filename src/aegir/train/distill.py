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
with `--teacher-cache DIR` in a folder several runs share (student seeds on the same data and
teachers); a cache entry is found by content (teacher file digests, views, temperature, labels, and
the training tables), so a retrained teacher or changed data never reads stale targets.

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
from aegir.inference import LoadedClassifier, label_scores, load_classifiers, predict_views
from aegir.tables.table import LabeledColumn, LabeledDataset, TableError

TARGETS_FILE = "teacher_targets.safetensors"


@dataclass
class TeacherTargets:
    probs: np.ndarray        # (N, n_labels) float32: teacher probabilities at temperature T, one row per target
    teachers: list[str]
    views: int
    temperature: float
    from_cache: bool = False


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


def _file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _data_digest(ds: LabeledDataset) -> str:
    """Digest of everything a teacher's input depends on: every table's header and cells, and which
    columns are targets (row views are seeded by table index and view only, so this fixes them too)."""
    h = hashlib.sha256()
    for tab in ds.tables:
        h.update(json.dumps([tab.header, tab.columns]).encode())
    h.update(json.dumps([[t.table_index, t.column, t.main_column] for t in ds.targets]).encode())
    return h.hexdigest()


def teacher_targets(paths: Sequence[str], ds: LabeledDataset, labels: Sequence[str], multi_label: bool,
                    views: int, temperature: float, cache_dir: Path | None = None, write_cache: bool = True,
                    progress: bool = False, device: str | torch.device = "cpu",
                    shared_cache: Path | None = None) -> TeacherTargets:
    """Teacher targets for `ds`'s targets.

    Looked up by content: the teachers' file digests, views, temperature, labels, and a digest of the
    training tables and targets. Read from `cache_dir / TARGETS_FILE` (the run folder, for resume) or
    from `shared_cache` (a folder several runs share: other seeds of a student on the same data and
    teachers skip the teacher pass), else computed on `device` and written to both when
    `write_cache`."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    key = json.dumps({"teachers": [_file_digest(p) for p in paths], "views": views, "temperature": temperature,
                      "labels": list(labels), "data": _data_digest(ds)})
    files = []
    if cache_dir is not None:
        files.append(Path(cache_dir) / TARGETS_FILE)
    if shared_cache is not None:
        files.append(Path(shared_cache) / f"teacher-targets-{hashlib.sha256(key.encode()).hexdigest()[:24]}.safetensors")
    for f in files:
        if f.is_file():
            with safe_open(str(f), framework="np") as fh:
                meta = fh.metadata() or {}
            if meta.get("key") == key:
                probs = load_file(str(f))["probs"]
                if write_cache:
                    _write(files, probs, key, skip=f)  # e.g. a shared hit also lands in the run folder
                return TeacherTargets(probs, list(paths), views, temperature, from_cache=True)
    members = load_teachers(paths, labels, multi_label, device)
    probs = teacher_probabilities(members, ds, labels, views, temperature, progress=progress)
    if write_cache:
        _write(files, probs, key)
    return TeacherTargets(probs, list(paths), views, temperature)


def _write(files: Sequence[Path], probs: np.ndarray, key: str, skip: Path | None = None) -> None:
    from safetensors.numpy import save_file

    for f in files:
        if f == skip:
            continue
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f"{f.name}.{os.getpid()}.tmp")
        save_file({"probs": probs}, str(tmp), metadata={"key": key})
        os.replace(tmp, f)  # atomic: a kill leaves the old cache or none, never half a file


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
