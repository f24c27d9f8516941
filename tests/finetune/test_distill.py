"""Distillation from fine-tuned teachers: the loss against a float64 hand computation, the teacher
targets against hand-averaged member probabilities, unlabelled columns, caching, resume and errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from aegir.checkpoint import CheckpointError, list_checkpoints
from aegir.encoding.batch import encode_dataset
from aegir.inference import load_classifier, predict
from aegir.tables import TableError
from aegir.tables.load import load_labeled
from aegir.tables.table import LabeledColumn, LabeledDataset, Table
from aegir.train.distill import (
    TARGETS_FILE, distill_loss, load_teachers, soft_probabilities, teacher_targets, with_unlabeled_columns,
)
from aegir.train.finetune import FinetuneConfig, finetune


def _np_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_distill_loss_is_t2_times_kl_by_hand():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 5)) * 2
    p = _np_softmax(rng.normal(size=(3, 5)))
    T = 2.5
    q = _np_softmax(z / T)
    want = T * T * np.sum(p * (np.log(p) - np.log(q)))
    got = distill_loss(torch.tensor(z), torch.tensor(p), T, multi_label=False)
    assert float(got) == pytest.approx(want, rel=1e-5)
    # Zero exactly when the student's softened distribution is the teacher's.
    assert float(distill_loss(torch.tensor(z), torch.tensor(q), T, False)) == pytest.approx(0.0, abs=1e-5)
    # Multi-label: Bernoulli KL per label, mean over labels, sum over examples.
    pm = 1 / (1 + np.exp(-rng.normal(size=(3, 5))))
    qm = 1 / (1 + np.exp(-z / T))
    kl = pm * np.log(pm / qm) + (1 - pm) * np.log((1 - pm) / (1 - qm))
    got = distill_loss(torch.tensor(z), torch.tensor(pm), T, multi_label=True)
    assert float(got) == pytest.approx(T * T * kl.mean(1).sum(), rel=1e-5)
    # Its gradient pulls the student towards the teacher: one step lowers it.
    zt = torch.tensor(z, requires_grad=True)
    loss = distill_loss(zt, torch.tensor(p), T, False)
    loss.backward()
    with torch.no_grad():
        assert float(distill_loss(zt - 0.1 * zt.grad, torch.tensor(p), T, False)) < float(loss)


def test_teacher_targets_are_the_mean_of_softened_member_probabilities(trained, custom_data, tmp_path):
    ds = next(iter(load_labeled("csv", custom_data).values()))
    lc = load_classifier(trained.final_checkpoint)
    labels = list(lc.vocab.labels)
    T = 3.0
    # By hand: the teacher's logits averaged over 2 row views, softened at T (numpy float64).
    views = [predict(lc.model, encode_dataset(ds, None, lc.serialize_cfg, view=v)).logits.astype(np.float64)
             for v in range(2)]
    want = _np_softmax(np.mean(views, axis=0) / T)
    tt = teacher_targets([str(trained.final_checkpoint)], ds, labels, False, views=2, temperature=T, cache_dir=tmp_path)
    assert tt.probs.shape == (len(ds.targets), len(labels)) and not tt.from_cache
    np.testing.assert_allclose(tt.probs, want, rtol=1e-5, atol=1e-6)
    # Two copies of one teacher average to the same; a student listing the labels in another order
    # gets the columns in its own order.
    rev = labels[::-1]
    two = teacher_targets([str(trained.final_checkpoint)] * 2, ds, rev, False, views=2, temperature=T)
    np.testing.assert_allclose(two.probs, want[:, ::-1], rtol=1e-5, atol=1e-6)
    # Cached: the same request reads the run folder's file; another temperature recomputes.
    again = teacher_targets([str(trained.final_checkpoint)], ds, labels, False, views=2, temperature=T, cache_dir=tmp_path)
    assert again.from_cache and np.array_equal(again.probs, tt.probs)
    other = teacher_targets([str(trained.final_checkpoint)], ds, labels, False, views=2, temperature=1.0, cache_dir=tmp_path)
    assert not other.from_cache and (tmp_path / TARGETS_FILE).is_file()
    np.testing.assert_allclose(soft_probabilities(np.mean(views, axis=0), 1.0, False), other.probs, rtol=1e-5, atol=1e-6)


def test_shared_teacher_cache_is_per_column_and_by_content(trained, custom_data, tmp_path):
    """--teacher-cache: another run (another run folder) reuses the targets when the teachers' files
    and settings are the same, wherever the teacher file lives; a changed table recomputes its own
    columns only, and gets what a cache-free computation gives."""
    import copy
    import shutil

    ds = next(iter(load_labeled("csv", custom_data).values()))
    labels = list(load_classifier(trained.final_checkpoint).vocab.labels)
    shared = tmp_path / "shared"
    first = teacher_targets([str(trained.final_checkpoint)], ds, labels, False, 2, 2.0, cache_dir=tmp_path / "run1",
                            shared_cache=shared)
    assert first.n_cached == 0 and len(list(shared.glob("*.safetensors"))) == 1
    moved = tmp_path / "elsewhere.pt"
    shutil.copy(trained.final_checkpoint, moved)  # same bytes, other path: the same teacher
    again = teacher_targets([str(moved)], ds, labels, False, 2, 2.0, cache_dir=tmp_path / "run2", shared_cache=shared)
    assert again.from_cache and np.array_equal(again.probs, first.probs)
    assert (tmp_path / "run2" / TARGETS_FILE).is_file()  # copied into the new run folder, for its resume
    # One changed cell in table 0: its columns are recomputed, every other column is read back.
    edited = copy.deepcopy(ds)
    edited.tables[0].columns[0][0] = "1999-12-31"
    in_t0 = np.array([t.table_index == 0 for t in ds.targets])
    part = teacher_targets([str(moved)], edited, labels, False, 2, 2.0, shared_cache=shared)
    assert 0 < in_t0.sum() and part.n_cached == len(ds.targets) - in_t0.sum()
    fresh = teacher_targets([str(moved)], edited, labels, False, 2, 2.0)  # no cache at all
    np.testing.assert_allclose(part.probs, fresh.probs, rtol=1e-6, atol=1e-7)
    assert np.array_equal(part.probs[~in_t0], first.probs[~in_t0])
    # The shared file now holds both versions of table 0's columns: the edited data is a full hit.
    assert teacher_targets([str(moved)], edited, labels, False, 2, 2.0, shared_cache=shared).from_cache
    # Another setting (temperature) is another file and recomputes everything.
    assert teacher_targets([str(moved)], ds, labels, False, 2, 1.0, shared_cache=shared).n_cached == 0
    assert len(list(shared.glob("*.safetensors"))) == 2
    with pytest.raises(ValueError, match="teacher-cache needs"):
        FinetuneConfig(teacher_cache=str(shared))
    # A teacher given as its run folder or as an exported specialist folder is digested like the file
    # it loads (the run folder: the same final.pt, so a hit); a missing one is a clear error.
    from aegir.inference import export_specialist

    run_folder = teacher_targets([str(trained.run_dir)], ds, labels, False, 2, 2.0, shared_cache=shared)
    assert run_folder.from_cache
    spec = export_specialist(trained.final_checkpoint, tmp_path / "spec")
    exported = teacher_targets([str(spec)], ds, labels, False, 1, 2.0, shared_cache=shared)
    np.testing.assert_allclose(exported.probs, teacher_targets([str(moved)], ds, labels, False, 1, 2.0).probs,
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(CheckpointError, match="teacher checkpoint not found"):
        teacher_targets([str(tmp_path / "nope.pt")], ds, labels, False, 1, 2.0, shared_cache=shared)


def test_unlabeled_columns_are_every_other_column_of_the_training_tables(custom_data):
    ds = next(iter(load_labeled("csv", custom_data).values()))
    some = LabeledDataset(ds.tables, ds.targets[::3], task="cta")  # keep a third of the targets
    full = with_unlabeled_columns(some)
    assert full.targets[: len(some.targets)] == some.targets
    added = full.targets[len(some.targets):]
    assert all(t.labels == () for t in added)
    pairs = {(t.table_index, t.column) for t in full.targets}
    assert len(pairs) == len(full.targets) == ds.n_columns  # every column once
    # The same table read twice (SOTAB: Train keeps the labelled columns only, Train50 all of them):
    # the labelled column is not added back from the full copy, and no column is added twice.
    full_t = Table([["a", "b"], ["1", "2"], ["x", "y"]], meta={"name": "t.json.gz"})
    part_t = Table([["1", "2"]], meta={"name": "t.json.gz"})
    two = with_unlabeled_columns(LabeledDataset([part_t, full_t, full_t], [LabeledColumn(0, 0, ("Number",))]))
    assert [(t.table_index, t.column, t.labels) for t in two.targets] == [(0, 0, ("Number",)), (1, 0, ()), (1, 2, ())]
    with pytest.raises(TableError, match="single-label CTA"):
        with_unlabeled_columns(LabeledDataset(ds.tables, ds.targets, task="cpa"))
    with pytest.raises(TableError, match="single-label CTA"):
        with_unlabeled_columns(LabeledDataset(ds.tables, ds.targets, task="cta", multi_label=True))


def test_teachers_must_know_the_task_labels(trained):
    with pytest.raises(CheckpointError, match="labels differ"):
        load_teachers([str(trained.final_checkpoint)], ["date", "email", "number", "person"], False)
    with pytest.raises(CheckpointError, match="multi-label task"):
        load_teachers([str(trained.final_checkpoint)], ["date", "email", "number", "word"], True)
    with pytest.raises(ValueError, match="needs at least one --teacher"):
        FinetuneConfig(distill_unlabeled=True)
    with pytest.raises(ValueError, match="distill-weight"):
        FinetuneConfig(teachers=("x.pt",), distill_weight=1.5)


def _losses(run_dir):
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "loss" in r:
            out[r["step"]] = (r["loss"], r["distill_kl"])  # later lines (after a resume) overwrite earlier ones
    return out


def test_student_learns_from_the_teacher_alone_and_resumes(trained, custom_data, tmp_path):
    """Distillation weight 1: the hard labels are not used at all, yet a student from random learns
    the separable task from the teacher's soft targets over the training columns plus unlabelled ones."""
    teacher = str(trained.final_checkpoint)
    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", epochs=5, batch_size=8, lr=3e-3,
                         warmup_steps=5, max_bytes=48, out=str(tmp_path), progress=False, checkpoint_every=10_000,
                         seed=1, teachers=(teacher,), distill_weight=1.0, distill_unlabeled=True)
    res = finetune(cfg)
    assert res.valid_metrics["valid_accuracy"] >= 0.7, res.valid_metrics  # chance is 0.25
    curve = _losses(res.run_dir)
    first, last = [curve[s][1] for s in sorted(curve)[:5]], [curve[s][1] for s in sorted(curve)[-5:]]
    assert sum(last) < 0.5 * sum(first)  # the KL to the teacher goes down
    assert all(loss == pytest.approx(kl, rel=1e-5) for loss, kl in curve.values())  # weight 1: the loss is the KL
    assert (res.run_dir / TARGETS_FILE).is_file()
    assert load_classifier(res.final_checkpoint).model  # a plain classifier: the teachers are not needed to use it

    # Resume after a kill: same curve, targets read back from the run folder (not recomputed).
    short = FinetuneConfig(**{**cfg.__dict__, "epochs": 1, "max_steps": 6, "checkpoint_every": 3,
                              "distill_weight": 0.5, "run_name": "short"})
    full = finetune(short)
    before = _losses(full.run_dir)
    for p in list_checkpoints(full.run_dir):
        if p.name != "step-00000003.pt":
            p.unlink()
    stamp = (full.run_dir / TARGETS_FILE).stat().st_mtime_ns
    finetune(FinetuneConfig(**{**short.__dict__, "resume": str(full.run_dir)}))
    after = _losses(full.run_dir)
    for s in (4, 5, 6):
        assert after[s] == pytest.approx(before[s], rel=1e-6, abs=1e-7), (s, before, after)
    assert (full.run_dir / TARGETS_FILE).stat().st_mtime_ns == stamp
    with pytest.raises(CheckpointError, match="distill_temperature"):
        finetune(FinetuneConfig(**{**short.__dict__, "distill_temperature": 4.0, "resume": str(full.run_dir)}))


def test_cli_takes_teachers(trained, custom_data, tmp_path):
    r = subprocess.run([sys.executable, "-m", "aegir", "train", "--task", "custom", "--data", str(custom_data),
                        "--max-steps", "2", "--batch-size", "4", "--max-bytes", "48", "--out", str(tmp_path),
                        "--teacher", str(trained.final_checkpoint), "--teacher", str(trained.final_checkpoint),
                        "--distill-weight", "0.7", "--teacher-views", "2", "--teacher-cache", str(tmp_path / "tc")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "distilling from 2 teacher(s)" in r.stderr and " 0 of " in r.stderr
    cfg = json.loads(next(tmp_path.glob("custom/*/config.json")).read_text())["finetune"]
    assert cfg["teachers"] == [str(trained.final_checkpoint)] * 2 and cfg["distill_weight"] == 0.7
    assert len(list((tmp_path / "tc").glob("teacher-targets-*.safetensors"))) == 1
    bad = subprocess.run([sys.executable, "-m", "aegir", "train", "--task", "custom", "--data", str(custom_data),
                          "--distill-unlabeled", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "needs at least one --teacher" in bad.stderr and "Traceback" not in bad.stderr
