"""k-fold cross-validation over the tables of a task without validation files (`aegir train --cv-folds K
--cv-fold i`), and its pooling in benchmarks/cta_bootstrap.py (on pytest's pythonpath)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cta_bootstrap import fold_mismatch

from aegir.checkpoint import CheckpointError, list_checkpoints
from aegir.eval_run import default_validation, eval_dataset
from aegir.inference import load_classifier, load_classifiers
from aegir.tables import TableError
from aegir.train.finetune import FinetuneConfig, finetune
from aegir.train.tasks import resolve_task

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "cta_bootstrap.py"


def _tables(ds) -> set[str]:
    return {ds.tables[t.table_index].name for t in ds.targets}


def _columns(ds) -> list[tuple[str, int]]:
    return [(ds.tables[t.table_index].name, t.column) for t in ds.targets]


def test_folds_partition_the_tables(custom_data):
    """Each table is held out by exactly one fold, never in that fold's training set, and every labelled
    column is scored exactly once over the folds."""
    everything = resolve_task("custom", str(custom_data), valid_fraction=0.0).train
    folds = [resolve_task("custom", str(custom_data), cv=(i, 3)) for i in range(3)]
    for i, td in enumerate(folds):
        assert td.cv == (i, 3) and td.split_seed == 0
        assert td.valid.targets and not _tables(td.valid) & _tables(td.train)
        assert sorted(_columns(td.train) + _columns(td.valid)) == sorted(_columns(everything))
    for i in range(3):
        for j in range(i + 1, 3):
            assert not _tables(folds[i].valid) & _tables(folds[j].valid)
    assert sorted(c for td in folds for c in _columns(td.valid)) == sorted(_columns(everything))
    # Another split seed partitions the tables differently.
    other = resolve_task("custom", str(custom_data), cv=(0, 3), split_seed=5)
    assert _tables(other.valid) != _tables(folds[0].valid)


def test_bad_fold_arguments_are_named(custom_data):
    for folds, fold in ((1, 0), (3, 3), (3, -1), (0, 2)):
        with pytest.raises(ValueError, match="--cv-folds >= 2 and 0 <= --cv-fold < --cv-folds"):
            FinetuneConfig(task="custom", data=str(custom_data), cv_folds=folds, cv_fold=fold)
    with pytest.raises(TableError, match="--cv-folds is for data without a validation split"):
        resolve_task("custom", str(custom_data), valid_data=str(custom_data), cv=(0, 3))


def test_fold_runs_evaluate_resume_and_pool(custom_data, tmp_path):
    """A fold's run is evaluated on its own fold and resumed only as that fold; the bootstrap pools the
    folds' validation columns (each scored by the run that did not train on it) and refuses runs given
    in the wrong fold order."""
    base = dict(task="custom", data=str(custom_data), model_size="nano", batch_size=8, lr=3e-3, warmup_steps=2,
                max_bytes=48, progress=False, checkpoint_every=2, epochs=1, max_steps=4, out=str(tmp_path), cv_folds=2)
    runs = [finetune(FinetuneConfig(**base, cv_fold=i, run_name=f"fold{i}")) for i in range(2)]
    for i, run in enumerate(runs):
        want = resolve_task("custom", str(custom_data), cv=(i, 2)).valid
        assert _tables(default_validation(load_classifier(run.final_checkpoint))) == _tables(want)

    for p in list_checkpoints(runs[1].run_dir):
        if p.name != "step-00000002.pt":
            p.unlink()
    with pytest.raises(CheckpointError, match="resume with cv_fold=0 but the run used 1"):
        finetune(FinetuneConfig(**{**base, "cv_fold": 0, "resume": str(runs[1].run_dir)}))
    assert finetune(FinetuneConfig(**{**base, "cv_fold": 1, "resume": str(runs[1].run_dir)})).steps == 4

    f0, f1 = (str(r.final_checkpoint) for r in runs)
    # A second recipe (another seed) per fold, for an ensemble of two different runs.
    g0, g1 = (str(finetune(FinetuneConfig(**{**base, "seed": 3, "max_steps": 2}, cv_fold=i, run_name=f"s3fold{i}")).final_checkpoint)
              for i in range(2))
    cmd = [sys.executable, str(BENCH), "--task", "custom", "--data", str(custom_data), "--cv-folds", "2",
           "--views", "2", "--samples", "50", "--threads", "1"]
    out = tmp_path / "boot"
    # An ensemble of a row with itself scores each fold with that fold's run twice: the mean probability of
    # two equal classifiers predicts what one does, on every pooled column.
    done = subprocess.run(cmd + ["--checkpoint", f"nano={f0},{f1}", "--checkpoint", f"again={f0},{f1}",
                                 "--checkpoint", f"s3={g0},{g1}", "--ensemble", "both=nano,again",
                                 "--ensemble", "mix=nano,s3", "--result", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    res = json.loads(out.with_suffix(".json").read_text())
    n_all = len(resolve_task("custom", str(custom_data), valid_fraction=0.0).train.targets)
    assert res["meta"]["valid_columns"] == n_all and res["meta"]["cv"] == {"nano": [f0, f1], "again": [f0, f1], "s3": [g0, g1]}
    rows = {r["checkpoint"]: r for r in res["rows"]}
    assert list(rows) == ["nano", "again", "s3", "both", "mix"]
    assert res["meta"]["ensemble"] == {"both": ["nano", "again"], "mix": ["nano", "s3"]}
    assert rows["both"]["macro_f1"] == pytest.approx(rows["nano"]["macro_f1"], abs=1e-12)
    # Per fold: each fold's run(s) scored on that fold's validation columns alone, as `aegir eval` scores them
    # (the ensemble from each member's predictions made once, in the benchmark; from the models, here).
    valid = [resolve_task("custom", str(custom_data), cv=(i, 2)).valid for i in range(2)]
    by_hand = [eval_dataset(load_classifier(f), v, views=2).report.macro_f1 for f, v in zip((f0, f1), valid)]
    assert rows["nano"]["per_fold"] == pytest.approx(by_hand, abs=1e-12) == rows["both"]["per_fold"]
    mixed = [eval_dataset(load_classifiers([f, g]), v, views=2).report.macro_f1 for f, g, v in zip((f0, f1), (g0, g1), valid)]
    assert rows["mix"]["per_fold"] == pytest.approx(mixed, abs=1e-12)
    assert len(res["meta"]["baseline_per_fold"]) == 2
    assert "2-fold cross-validation" in out.with_suffix(".md").read_text()
    unknown = subprocess.run(cmd + ["--checkpoint", f"nano={f0},{f1}", "--ensemble", "both=nano,other",
                                    "--result", str(tmp_path / "bad")], capture_output=True, text=True)
    assert unknown.returncode != 0 and "--ensemble both: with --cv-folds its members are --checkpoint NAMEs; unknown: other" in unknown.stderr

    swapped = subprocess.run(cmd + ["--checkpoint", f"nano={f1},{f0}", "--result", str(tmp_path / "bad")],
                             capture_output=True, text=True)
    assert swapped.returncode != 0 and "trained as fold 1 of 2 (split seed 0), expected fold 0 of 2" in swapped.stderr


def test_fold_mismatch_reads_older_run_arguments():
    assert fold_mismatch({"cv_fold": 2, "cv_folds": 5, "split_seed": 0}, 2, 5, 0) is None
    assert "split seed 3" in fold_mismatch({"cv_fold": 2, "cv_folds": 5, "split_seed": 3}, 2, 5, 0)
    # A run from before cross-validation (15% hold-out, split by its seed) is no fold at all.
    assert "trained as fold 0 of 0 (split seed 1)" in fold_mismatch({"seed": 1}, 0, 5, 1)
