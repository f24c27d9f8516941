import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from aegir.annotation import annotate
from aegir.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from aegir.eval_run import run_eval
from aegir.inference import export_specialist, inference_precision, load_classifier
from aegir.tables import TableError
from aegir.train.finetune import FinetuneConfig, finetune


def test_learns_separable_task(trained):
    # 4 balanced labels: chance is 0.25; the model must do far better on held-out tables.
    assert trained.valid_metrics["valid_accuracy"] >= 0.7, trained.valid_metrics
    assert trained.from_random
    losses = [json.loads(l)["loss"] for l in (trained.run_dir / "metrics.jsonl").read_text().splitlines()
              if '"loss"' in l]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5


def test_checkpoint_is_self_describing(trained):
    ck = load_checkpoint(trained.final_checkpoint, kind="classifier")
    assert ck.extra["labels"]["labels"] == ["date", "email", "number", "word"]
    assert ck.extra["task"] == "custom" and ck.run_args["lr"] == 3e-3 and ck.extra["from_random"] is True
    assert (trained.run_dir / "config.json").is_file()


def test_annotate_csv_and_dataframe(trained, tmp_path):
    import random

    from custom_task import KINDS

    r = random.Random(7)  # fresh values from the training distribution, under new header names
    kinds = ["date", "email", "number"]
    p = tmp_path / "mine.csv"
    p.write_text("when,who,n\n" + "".join(",".join(KINDS[k](r) for k in kinds) + "\n" for _ in range(4)))
    res = annotate(p, trained.final_checkpoint, top_k=2)
    assert [c.name for c in res.columns] == ["when", "who", "n"]
    assert all(len(c.labels) == 2 and c.labels[0][1] >= c.labels[1][1] for c in res.columns)
    assert sum(c.label == k for c, k in zip(res.columns, kinds)) >= 2, [c.labels for c in res.columns]
    only = annotate(pd.read_csv(p), trained.final_checkpoint, labels=["number", "word"], top_k=3)
    assert all(l in ("number", "word") for c in only.columns for l, _ in c.labels) and len(only.columns[0].labels) == 2
    every = annotate(pd.read_csv(p), trained.final_checkpoint, top_k=10_000)  # every label (k is capped), unrestricted
    for c, e in zip(only.columns, every.columns):  # the subset's scores are the full vocabulary's, not renormalised
        assert all(s == pytest.approx(dict(e.labels)[l], rel=1e-5) for l, s in c.labels)
    with pytest.raises(TableError, match="not in the model's vocabulary"):
        annotate(p, trained.final_checkpoint, labels=["Person"])
    with pytest.raises(TableError, match="no such file"):
        annotate(tmp_path / "missing.csv", trained.final_checkpoint)


def test_wide_and_long_tables_are_not_silently_truncated(trained):
    wide = pd.DataFrame({f"c{j}": [str(j * 7 + i) for i in range(3)] for j in range(300)})
    res = annotate(wide, trained.final_checkpoint, top_k=1)
    assert len(res.columns) == 300
    long = pd.DataFrame({"d": [f"2020-01-{1 + i % 28:02d}" for i in range(5000)]})
    res = annotate(long, trained.final_checkpoint, top_k=1)
    assert res.columns[0].rows_total == 5000 and res.columns[0].rows_read < 5000
    assert res.notes and "5000" in res.notes[0]


def test_annotate_counts_the_values_that_fit_the_byte_budget(trained):
    # 10 rows: one-digit numbers all fit the fixture's 48-byte budget; 50-byte texts fill it after a cell or two.
    df = pd.DataFrame({"n": [str(i) for i in range(10)], "text": [f"{i:02d}" + "lorem ipsum " * 4 for i in range(10)]})
    lc = load_classifier(trained.final_checkpoint)
    cfg = lc.serialize_cfg
    res = annotate(df, lc)
    n, text = res.columns
    assert n.rows_read == text.rows_read == 10 and n.values_read == 10
    # What the serializer put in the target segment of view 0, counted by hand from the ids.
    from aegir.encoding.serialize import serialize
    from aegir.encoding.vocab import CELL
    from aegir.tables.readers import from_dataframe

    s = serialize(from_dataframe(df), 1, cfg)
    shown = 1 + [i for i, m in zip(s.ids, s.target_mask) if m].count(CELL)
    assert text.values_read == shown < text.rows_read
    assert any("values_read" in note and "'text'" in note and f"{shown} of {text.rows_read}" in note for note in res.notes)
    assert res.to_records()[1]["values_read"] == shown and list(res.to_frame()["values_read"]) == [n.values_read, shown]
    # More row views show other rows' values; more bytes show more values of the same rows.
    assert shown < annotate(df, lc, views=4).columns[1].values_read <= 10
    wider = annotate(df, lc, max_bytes=2048)  # the target segment grows in proportion (at_budget)
    assert wider.columns[1].values_read == 10 and not any("values_read" in note for note in wider.notes)


def test_export_roundtrip(trained, tmp_path):
    spec = export_specialist(trained.final_checkpoint, tmp_path / "spec")
    assert {p.name for p in spec.iterdir()} >= {"model.safetensors", "config.json", "labels.json", "specialist.json"}
    a, b = load_classifier(trained.final_checkpoint), load_classifier(spec)
    for (ka, va), (kb, vb) in zip(sorted(a.model.state_dict().items()), sorted(b.model.state_dict().items())):
        assert ka == kb and torch.equal(va, vb)
    df = pd.DataFrame({"x": ["1999-01-02", "2004-05-06"]})
    assert annotate(df, spec).columns[0].labels == annotate(df, trained.final_checkpoint).columns[0].labels
    (spec / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_classifier(spec)


def test_eval_writes_report(trained, custom_data, tmp_path):
    run = run_eval(trained.final_checkpoint, data=str(custom_data), fmt="csv", out=tmp_path / "ev")
    rep = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert rep["n"] == 120 and 0 <= rep["macro_f1"] <= 1
    assert (tmp_path / "ev" / "confusion.png").stat().st_size > 1000
    assert (tmp_path / "ev" / "predictions.jsonl").read_text().count("\n") == 120
    assert run.report.micro_f1 == pytest.approx(rep["micro_f1"])
    assert rep["unknown_gold"] == {} and "not in the model's vocabulary" not in run.text
    # A gold file with a label the model does not know (a typo): counted as misses, and said.
    import shutil

    typo = tmp_path / "typo"
    shutil.copytree(custom_data, typo)
    gold = (typo / "labels.csv").read_text().splitlines()
    first = gold[1].rsplit(",", 1)
    gold[1] = first[0] + ",Numbr"
    (typo / "labels.csv").write_text("\n".join(gold) + "\n")
    bad = run_eval(trained.final_checkpoint, data=str(typo), fmt="csv", out=tmp_path / "ev2")
    assert bad.unknown_gold == {"Numbr": 1} and "1 gold label(s) of 1 name(s) are not in the model's vocabulary" in bad.text
    assert json.loads((tmp_path / "ev2" / "report.json").read_text())["unknown_gold"] == {"Numbr": 1}


@pytest.mark.parametrize("repeat_threshold", [0.0, 0.5])  # 0.5: the epoch's repeated copies are rebuilt alike
def test_resume_continues_the_same_run(custom_data, tmp_path, repeat_threshold):
    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", batch_size=8, lr=3e-3, warmup_steps=2,
                         max_bytes=48, progress=False, checkpoint_every=3, epochs=1, max_steps=6, out=str(tmp_path),
                         repeat_threshold=repeat_threshold)
    full = finetune(cfg)

    def losses(run_dir):
        out = {}
        for l in (run_dir / "metrics.jsonl").read_text().splitlines():
            r = json.loads(l)
            if "loss" in r:
                out[r["step"]] = r["loss"]  # later lines (after a resume) overwrite earlier ones
        return out

    before = losses(full.run_dir)
    assert sorted(before) == list(range(1, 7))
    # Simulate a kill right after the step-3 save: later checkpoints never happened.
    for p in list_checkpoints(full.run_dir):
        if p.name != "step-00000003.pt":
            p.unlink()
    resumed = finetune(FinetuneConfig(**{**cfg.__dict__, "resume": str(full.run_dir)}))
    assert resumed.steps == 6 and resumed.run_dir == full.run_dir
    after = losses(full.run_dir)
    for s in (4, 5, 6):  # same data order, same weights, same optimizer state -> same curve
        assert after[s] == pytest.approx(before[s], rel=1e-6, abs=1e-7), (s, before, after)


def test_refuses_wrong_checkpoints(trained, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_classifier(bad)
    torch.save({"hello": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign"):
        load_classifier(tmp_path / "foreign.pt")


def test_train_shim_flags(custom_data, tmp_path):
    """`python train.py` takes exactly `aegir train`'s flags."""
    from aegir.paths import repo_root

    wide = {**os.environ, "COLUMNS": "250"}  # at 80, rich cuts long flag names ("--repeat-thresho…")
    help_cli = subprocess.run([sys.executable, "-m", "aegir", "train", "--help"], capture_output=True, text=True, env=wide)
    help_shim = subprocess.run([sys.executable, str(repo_root() / "train.py"), "--help"], capture_output=True, text=True,
                               env=wide)
    assert help_cli.returncode == help_shim.returncode == 0
    assert "Usage: train.py [OPTIONS]" in help_shim.stdout  # the shim is the train command itself
    help_eval = subprocess.run([sys.executable, "-m", "aegir", "eval", "--help"], capture_output=True, text=True)
    assert "predictions.jsonl" in " ".join(help_eval.stdout.split()) and "predictions.csv" not in help_eval.stdout
    for flag in ("--task", "--pretrained", "--epochs", "--batch-size", "--lr", "--warmup-steps", "--freeze-backbone",
                 "--loss", "--data", "--resume", "--class-weight", "--logit-adjust", "--repeat-threshold",
                 "--refit-head", "--refit-l2", "--refit-views", "--split-seed", "--cv-folds", "--cv-fold"):
        assert flag in help_shim.stdout and flag in help_cli.stdout
    r = subprocess.run([sys.executable, str(repo_root() / "train.py"), "--task", "custom", "--data", str(custom_data),
                        "--epochs", "1", "--max-steps", "2", "--batch-size", "4", "--max-bytes", "32",
                        "--out", str(tmp_path), "--freeze-backbone", "--loss", "ce"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "FROM RANDOM" in r.stderr and list((tmp_path / "custom").glob("*/final.pt"))
    r = subprocess.run([sys.executable, str(repo_root() / "train.py"), "--task", "nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown task" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, str(repo_root() / "train.py"), "--task", "custom", "--logit-adjust", "-1"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--logit-adjust must be" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, str(repo_root() / "train.py"), "--task", "custom", "--repeat-threshold", "2"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--repeat-threshold must be in" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, str(repo_root() / "train.py"), "--task", "custom", "--refit-head", "cRT"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--refit-head must be one of" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, str(repo_root() / "train.py"), "--task", "custom", "--cv-folds", "5", "--cv-fold", "5"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "0 <= --cv-fold < --cv-folds" in r.stderr and "Traceback" not in r.stderr


def test_liveness_command_on_a_trained_checkpoint(trained, custom_data, tmp_path):
    from aegir.liveness_run import run_liveness_cmd

    # All 120 columns (the 15% validation split holds only a handful: too few for a geometry audit).
    report, out = run_liveness_cmd(trained.final_checkpoint, data=str(custom_data), fmt="csv", out=tmp_path / "live")
    names = {c.name for c in report.checks}
    assert {"mcl_clusters", "macro_f1", "distinct_predicted", "chunker"} <= names
    assert report.meta["task"] == "custom"
    for f in ("liveness.json", "liveness.txt", "cluster_sizes.png", "predicted_labels.png", "boundary_rates.png"):
        assert (out / f).is_file(), f
    # The separable task is learnt, so the gate (thresholds capped at the 4 gold labels) passes.
    assert report.passed, report.failures


def test_a_run_without_validation_columns_says_so(tmp_path, capsys):
    from custom_task import write_custom_dataset

    write_custom_dataset(tmp_path / "one", n_tables=1)  # one table: the 15% table split leaves none to validate on
    res = finetune(FinetuneConfig(task="custom", data=str(tmp_path / "one"), model_size="nano", batch_size=4,
                                  max_bytes=48, progress=False, epochs=1, max_steps=1, out=str(tmp_path / "runs")))
    assert res.final_checkpoint.is_file()
    assert "no validation columns" in " ".join(capsys.readouterr().err.split())


def test_weight_ema_is_what_final_holds_and_survives_resume(custom_data, tmp_path, capsys):
    """--ema: final.pt holds the exponential moving average of the weights after every step,
    checked against the average computed by hand from per-step weights (float64), and a run
    resumed from a step checkpoint ends with the same average as an uninterrupted one."""
    from aegir.train.finetune import FinetuneHooks

    decay = 0.6
    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", batch_size=8, lr=3e-3, warmup_steps=2,
                         max_bytes=48, progress=False, checkpoint_every=3, epochs=1, max_steps=6, out=str(tmp_path),
                         ema=decay)
    seen: list[dict] = []
    full = finetune(cfg, hooks=FinetuneHooks(after_step=lambda step, net: seen.append(
        {k: v.detach().double().clone() for k, v in net.state_dict().items()})))
    assert len(seen) == 6
    # A horizon of 1/(1-0.6) = 2.5 steps is more than a third of 6 steps: the run warns.
    assert "averages over" in capsys.readouterr().err
    want = dict(seen[0])  # the first update copies the weights, then avg = d * avg + (1 - d) * w
    for w in seen[1:]:
        want = {k: decay * want[k] + (1 - decay) * w[k] if w[k].is_floating_point() else w[k] for k in w}
    final = load_checkpoint(full.run_dir / "final.pt").model_state
    raw_last = seen[-1]
    for k, v in final.items():
        assert torch.allclose(v.double(), want[k], rtol=1e-5, atol=1e-6), k
    moved = [k for k in final if final[k].is_floating_point() and not torch.allclose(final[k].double(), raw_last[k])]
    assert moved, "the average should differ from the last raw weights"
    # kill after the step-3 checkpoint, resume: the same average at the end
    for p in list_checkpoints(full.run_dir):
        if p.name != "step-00000003.pt":
            p.unlink()
    assert "ema_state" in load_checkpoint(full.run_dir / "step-00000003.pt").extra
    finetune(FinetuneConfig(**{**cfg.__dict__, "resume": str(full.run_dir)}))
    again = load_checkpoint(full.run_dir / "final.pt").model_state
    for k in final:
        assert torch.allclose(again[k], final[k], rtol=1e-5, atol=1e-6), k
    with pytest.raises(ValueError, match="--ema must be in"):
        FinetuneConfig(ema=1.0)
    capsys.readouterr()
    finetune(FinetuneConfig(**{**cfg.__dict__, "ema": 0.3, "run_name": "short-horizon"}))  # 1.4 steps: no warning
    assert "averages over" not in capsys.readouterr().err


def test_max_cell_bytes_is_recorded_and_fixed_for_the_run(custom_data, tmp_path):
    """--max-cell-bytes reaches the serializer, the checkpoint (so eval/annotate cut cells the same
    way), and a resume with another value is refused."""
    from aegir.encoding.serialize import serialize
    from aegir.tables.load import load_labeled

    with pytest.raises(ValueError, match="max-cell-bytes"):
        FinetuneConfig(task="custom", max_bytes=48, max_cell_bytes=0)
    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", batch_size=8, warmup_steps=1,
                         max_bytes=48, max_cell_bytes=3, progress=False, checkpoint_every=1, epochs=1, max_steps=1,
                         out=str(tmp_path))
    res = finetune(cfg)
    lc = load_classifier(res.final_checkpoint)
    assert lc.serialize_cfg.max_cell_bytes == 3 and lc.serialize_cfg.max_bytes == 48
    ds = next(iter(load_labeled("csv", custom_data).values()))
    t = ds.targets[0]
    cells = serialize(ds.tables[t.table_index], t.column, lc.serialize_cfg).text().split("[SEP]")[0].split(" | ")
    assert all(len(c.encode()) <= 3 for c in cells[1:]) and any(len(c.encode()) == 3 for c in cells)
    with pytest.raises(CheckpointError, match="max_cell_bytes"):
        finetune(FinetuneConfig(**{**cfg.__dict__, "max_cell_bytes": 4, "resume": str(res.run_dir)}))


def test_max_target_bytes_leaves_the_rest_to_context_and_is_recorded(custom_data, tmp_path):
    """--max-target-bytes caps the target segment, so a long target column leaves the remaining budget to
    context columns; the cap reaches the checkpoint (eval/annotate serialize alike) and a resume with
    another value is refused."""
    from aegir.encoding.serialize import serialize
    from aegir.tables.load import load_labeled

    with pytest.raises(ValueError, match="max-target-bytes"):
        FinetuneConfig(task="custom", max_target_bytes=0)
    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", batch_size=8, warmup_steps=1,
                         max_bytes=64, max_target_bytes=24, progress=False, checkpoint_every=1, epochs=1, max_steps=1,
                         out=str(tmp_path))
    res = finetune(cfg)
    lc = load_classifier(res.final_checkpoint)
    assert (lc.serialize_cfg.max_bytes, lc.serialize_cfg.max_target_bytes) == (64, 24)
    ds = next(iter(load_labeled("csv", custom_data).values()))
    capped = [serialize(ds.tables[t.table_index], t.column, lc.serialize_cfg) for t in ds.targets]
    whole = [serialize(ds.tables[t.table_index], t.column, replace(lc.serialize_cfg, max_target_bytes=64))
             for t in ds.targets]
    assert all(sum(s.target_mask) <= 24 for s in capped)
    # Where the uncapped target fills the budget, the capped one leaves room for context columns.
    long = [i for i, s in enumerate(whole) if not s.context]
    assert long and all(capped[i].context for i in long)
    with pytest.raises(CheckpointError, match="max_target_bytes"):
        finetune(FinetuneConfig(**{**cfg.__dict__, "max_target_bytes": 32, "resume": str(res.run_dir)}))


@pytest.mark.parametrize("command,config", [("train", "aegir.train.finetune:FinetuneConfig"),
                                            ("pretrain", "aegir.train.pretrain:PretrainConfig")])
def test_cli_defaults_are_the_config_defaults(command, config):
    """The CLI spells its defaults out (it must start without importing torch); they may not drift
    from the typed configs, which the Python API and the benchmarks use."""
    import dataclasses
    import importlib

    import typer.main

    from aegir.cli import app

    mod, name = config.split(":")
    cfg_cls = getattr(importlib.import_module(mod), name)
    fields = {f.name: f for f in dataclasses.fields(cfg_cls)}
    cmd = typer.main.get_command(app).commands[command]
    checked = 0
    for p in cmd.params:
        f = fields.get(p.name)
        if f is None or f.default is dataclasses.MISSING or p.default is None or f.default is None:
            continue
        default = p.default
        if hasattr(default, "__fspath__"):  # Path option, str field
            default = str(default)
        if isinstance(default, list):  # multiple option, tuple field
            default = tuple(default)
        assert default == f.default, f"{command} --{p.name.replace('_', '-')}: CLI {p.default!r} vs config {f.default!r}"
        checked += 1
    assert checked >= 8


def test_ensembles_average_member_probabilities(trained, custom_data, tmp_path):
    """Several checkpoints score as one model: the mean of the members' probabilities, each member
    serializing with its own settings; eval, annotate and the CLI take a list; mismatches are refused."""
    import dataclasses

    import numpy as np

    from aegir.eval_run import eval_dataset
    from aegir.inference import load_classifiers
    from aegir.tables.labels import LabelVocab
    from aegir.tables.load import load_labeled

    other = finetune(FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", epochs=1, max_steps=3,
                                    batch_size=8, lr=3e-3, warmup_steps=1, max_bytes=48, max_cell_bytes=5, seed=1,
                                    out=str(tmp_path), progress=False, checkpoint_every=10_000))
    a, b = load_classifier(trained.final_checkpoint), load_classifier(other.final_checkpoint)
    assert a.serialize_cfg != b.serialize_cfg
    ds = next(iter(load_labeled("csv", custom_data).values()))
    pa = eval_dataset(a, ds, views=2).raw.probabilities()
    pb = eval_dataset(b, ds, views=2).raw.probabilities()
    ens = eval_dataset([a, b], ds, views=2)
    assert np.allclose(ens.raw.probabilities(), (pa + pb) / 2, atol=1e-6)
    gold = [p.gold[0] for p in ens.predictions]
    labels = a.vocab.labels
    hand = [labels[j] for j in ((pa + pb) / 2).argmax(1)]
    assert [p.predicted[0] for p in ens.predictions] == hand
    assert ens.report.micro_f1 == pytest.approx(np.mean([h == g for h, g in zip(hand, gold)]))
    # One member twice is that member.
    assert np.allclose(eval_dataset([a, a], ds).raw.probabilities(), eval_dataset(a, ds).raw.probabilities(), atol=1e-6)

    df = pd.DataFrame({"x": ["1999-01-02", "2004-05-06", "2011-12-13"], "y": ["a@b.org", "c@d.net", "e@f.com"]})
    one_a, one_b = annotate(df, a, top_k=4), annotate(df, b, top_k=4)
    both = annotate(df, [trained.final_checkpoint, other.final_checkpoint], top_k=4)
    assert " + " in both.checkpoint
    for ca, cb, cab in zip(one_a.columns, one_b.columns, both.columns):
        sa, sb = dict(ca.labels), dict(cb.labels)
        for label, score in cab.labels:
            assert score == pytest.approx((sa[label] + sb[label]) / 2, abs=1e-5)

    renamed = dataclasses.replace(b, vocab=LabelVocab([l + "_x" for l in labels]), source="renamed")
    with pytest.raises(CheckpointError, match="label vocabulary"):
        load_classifiers([a, renamed])
    with pytest.raises(CheckpointError, match="CPA"):
        load_classifiers([a, dataclasses.replace(b, cpa=True, source="cpa")])

    r = subprocess.run([sys.executable, "-m", "aegir", "eval", "--checkpoint", str(trained.final_checkpoint),
                        "--checkpoint", str(other.final_checkpoint), "--views", "2", "--data", str(custom_data),
                        "--format", "csv", "--out", str(tmp_path / "ev")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["micro_f1"] == pytest.approx(ens.report.micro_f1)


def test_validation_tables_do_not_follow_the_training_seed(custom_data, tmp_path):
    """Without validation files, the held-out tables depend on --split-seed only: two training seeds share
    them (one seed's training tables are never another's validation tables), and a run saved before
    split_seed existed (held out with its training seed) is evaluated and resumed on its own split."""
    from aegir.eval_run import default_validation
    from aegir.train.tasks import resolve_task

    def tables(ds):
        return {ds.tables[t.table_index].name for t in ds.targets}

    a, b = resolve_task("custom", str(custom_data), seed=0), resolve_task("custom", str(custom_data), seed=3)
    assert tables(a.valid) == tables(b.valid) and a.split_seed == b.split_seed == 0
    c = resolve_task("custom", str(custom_data), split_seed=2)
    assert tables(c.valid) != tables(a.valid) and c.split_seed == 2 and not tables(c.valid) & tables(c.train)
    assert resolve_task("custom", str(custom_data), valid_data=str(custom_data)).split_seed is None

    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", batch_size=8, lr=3e-3, warmup_steps=2,
                         max_bytes=48, progress=False, checkpoint_every=2, epochs=1, max_steps=4, out=str(tmp_path),
                         seed=2, split_seed=2)
    run = finetune(cfg)
    # Rewrite the run's checkpoints as an older version saved them: no split_seed in the run arguments.
    for p in {*list_checkpoints(run.run_dir), run.final_checkpoint}:
        ck = torch.load(p, weights_only=True)
        del ck["run_args"]["split_seed"]
        torch.save(ck, p)
    assert tables(default_validation(load_classifier(run.final_checkpoint))) == tables(c.valid)
    for p in list_checkpoints(run.run_dir):
        if p.name != "step-00000002.pt":
            p.unlink()
    with pytest.raises(CheckpointError, match="resume with --split-seed 2"):
        finetune(FinetuneConfig(**{**cfg.__dict__, "split_seed": 0, "resume": str(run.run_dir)}))
    assert finetune(FinetuneConfig(**{**cfg.__dict__, "resume": str(run.run_dir)})).steps == 4


def test_ema_horizon_warning_suggests_a_decay_that_passes():
    """The warning fires when the EMA horizon 1/(1-d) exceeds a third of the run, and the decay it
    suggests passes the same check (1,488 steps at d=0.998 used to suggest 0.998 itself)."""
    import re

    from aegir.train.finetune import ema_horizon_warning

    assert ema_horizon_warning(0.998, 1500) is None  # 500 steps <= 1500 / 3
    msg = ema_horizon_warning(0.998, 1488)
    assert msg is not None and "(e.g. 0.997)" in msg
    assert ema_horizon_warning(0.0, 5) is None  # 0 = off
    for total in range(1, 3000):
        for decay in (0.5, 0.9, 0.99, 0.998, 0.9999):
            msg = ema_horizon_warning(decay, total)
            if msg is None:
                assert 1 / (1 - decay) <= total / 3 + 1e-9
                continue
            suggested = float(re.search(r"\(e\.g\. ([0-9.]+)\)", msg).group(1))
            assert suggested < decay and ema_horizon_warning(suggested, total) is None, (total, decay, msg)


def test_bf16_fine_tune_records_its_precision_and_annotates(custom_data, tmp_path):
    """--bf16: the fine-tune runs under CPU bf16 autocast whatever the pretrained config said, the
    saved model config records it, and the checkpoint annotates (its inference runs the same way)."""
    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", batch_size=8, warmup_steps=1,
                         max_bytes=48, progress=False, checkpoint_every=2, epochs=1, max_steps=2, out=str(tmp_path),
                         cpu_bf16=True)
    res = finetune(cfg)
    ck = load_checkpoint(res.final_checkpoint)
    assert ck.config.cpu_bf16 is True and ck.run_args["cpu_bf16"] is True
    assert json.loads((res.run_dir / "config.json").read_text())["model"]["cpu_bf16"] is True
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,x@y.org\n2,z@w.net\n")
    out = annotate(p, res.final_checkpoint, top_k=1)
    assert [c.name for c in out.columns] == ["a", "b"] and all(0 <= c.labels[0][1] <= 1 for c in out.columns)

    # The precision override (--bf16/--fp32 of eval, liveness and annotate): this call only.
    def scores(**kw):
        return [s for c in annotate(p, res.final_checkpoint, top_k=3, **kw).columns for _, s in c.labels]
    as_trained = scores()
    assert scores(bf16=True) == as_trained                      # the saved precision is bf16
    fp32 = scores(bf16=False)
    assert fp32 != as_trained and max(abs(a - b) for a, b in zip(fp32, as_trained)) < 0.05  # rounding, not noise
    assert scores() == as_trained                               # restored for the next (cached) call
    lc = load_classifier(res.final_checkpoint)
    with inference_precision([lc, lc], False):                  # members sharing a model: restored once, right
        assert not lc.model.cfg.cpu_bf16 and not lc.model.cfg.bf16_autocast
    assert lc.model.cfg.cpu_bf16 and lc.model.cfg.bf16_autocast
    ev = run_eval(res.final_checkpoint, out=tmp_path / "ev", bf16=False)
    assert ev.report.n > 0 and lc.model.cfg.cpu_bf16
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["precision"] == "fp32"
    assert json.loads((run_eval(res.final_checkpoint, out=tmp_path / "ev2").out_dir / "report.json").read_text()
                      )["precision"] == "bf16"
    from aegir.liveness_run import run_liveness_cmd
    report, _ = run_liveness_cmd(res.final_checkpoint, out=tmp_path / "lv", bf16=False)
    assert report.meta["precision"] == "fp32"
    assert json.loads((tmp_path / "lv" / "liveness.json").read_text())["meta"]["precision"] == "fp32"

    from typer.testing import CliRunner

    from aegir.cli import app
    r = CliRunner().invoke(app, ["annotate", str(p), "--checkpoint", str(res.final_checkpoint), "--fp32",
                                 "--top-k", "3", "--out", str(tmp_path / "a.json")])
    assert r.exit_code == 0, r.output
    cli = [k["score"] for c in json.loads((tmp_path / "a.json").read_text()) for k in c["top_k"]]
    assert cli == pytest.approx(fp32, abs=1e-6)


def test_a_classifier_checkpoint_starts_a_new_task(trained, custom_data, tmp_path):
    """Intermediate-task transfer: --pretrained may name a fine-tuned classifier; its backbone (not its
    head) starts a run on another label set. With the backbone frozen, every backbone weight of the new
    run must equal the source classifier's bit for bit, and a fresh 2-label head on those features must
    learn a regrouping of the source's 4 labels."""
    import shutil

    new = tmp_path / "regrouped"
    shutil.copytree(custom_data, new)
    regroup = {"number": "digits", "date": "digits", "word": "letters", "email": "letters"}
    gold = pd.read_csv(custom_data / "labels.csv")
    gold.assign(label=gold["label"].map(regroup)).to_csv(new / "labels.csv", index=False)
    cfg = FinetuneConfig(task="custom", data=str(new), pretrained=str(trained.final_checkpoint), freeze_backbone=True,
                         epochs=2, batch_size=8, lr=3e-3, warmup_steps=2, max_bytes=48, out=str(tmp_path / "runs"),
                         progress=False, checkpoint_every=10_000)
    run = finetune(cfg)
    assert not run.from_random
    src = load_checkpoint(trained.final_checkpoint, kind="classifier")
    dst = load_checkpoint(run.final_checkpoint, kind="classifier")
    assert dst.extra["labels"]["labels"] == ["digits", "letters"]
    prefix = "classifier.backbone."
    src_bb = {k: v for k, v in src.model_state.items() if k.startswith(prefix)}
    dst_bb = {k: v for k, v in dst.model_state.items() if k.startswith(prefix)}
    assert src_bb.keys() == dst_bb.keys() and len(src_bb) > 10
    assert all(torch.equal(src_bb[k], dst_bb[k]) for k in src_bb)
    heads = {k: tuple(v.shape) for k, v in dst.model_state.items() if k.startswith("classifier.head.") and v.dim() == 2}
    assert any(s[0] == 2 for s in heads.values()), heads  # the new label dimension, not the source's 4
    assert run.valid_metrics["valid_accuracy"] >= 0.8, run.valid_metrics  # chance: 0.5


def test_annotate_abstains_below_min_score(trained, tmp_path):
    from typer.testing import CliRunner

    from aegir.cli import app

    df = pd.DataFrame({"a": ["2021-03-04", "1999-12-31", "2010-07-01"], "b": ["x@y.org", "me@ex.com", "q@r.net"],
                       "c": ["17", "4", "250"], "d": ["the", "owl", "sees"]})
    free = annotate(df, trained.final_checkpoint, top_k=2)
    best = sorted(c.labels[0][1] for c in free.columns)
    cut = (best[1] + best[2]) / 2  # two columns below, two above
    res = annotate(df, trained.final_checkpoint, top_k=2, min_score=cut)
    for c, f in zip(res.columns, free.columns):
        assert c.labels == f.labels  # the same scores; only the decision changes
        assert c.abstained == (f.labels[0][1] < cut)
        assert c.label == (None if c.abstained else f.labels[0][0])
    assert sum(c.abstained for c in res.columns) == 2 and "2 of 4 columns abstained" in res.notes[-1]
    recs = res.to_records()
    assert [r["abstained"] for r in recs] == [c.abstained for c in res.columns]
    assert all(r["label"] is None for r in recs if r["abstained"]) and "abstained" in res.to_frame().columns
    assert "abstained" not in free.to_records()[0] and not any(c.abstained for c in free.columns)
    assert not any(c.abstained for c in annotate(df, trained.final_checkpoint, min_score=0.0).columns)
    with pytest.raises(ValueError, match="min_score"):
        annotate(df, trained.final_checkpoint, min_score=1.5)
    csv = tmp_path / "t.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "ann.json"
    ok = CliRunner().invoke(app, ["annotate", str(csv), "--checkpoint", str(trained.final_checkpoint),
                                  "--min-score", f"{cut}", "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert "abstain" in ok.output and sum(r["abstained"] for r in json.loads(out.read_text())) == 2
    bad = CliRunner().invoke(app, ["annotate", str(csv), "--checkpoint", str(trained.final_checkpoint), "--min-score", "2"])
    assert bad.exit_code == 2 and "min-score" in bad.output


def test_eval_reports_coverage_per_threshold_and_calibration(trained, custom_data, tmp_path):
    run = run_eval(trained.final_checkpoint, out=tmp_path / "ev")
    sel = run.selective
    assert sel is not None and sel.n == len(run.predictions)
    assert sel.rows[0].threshold == 0.0 and sel.rows[0].coverage == 1.0
    assert sel.rows[0].accuracy == pytest.approx(run.report.accuracy)  # nothing abstains at threshold 0
    assert sel.rows[0].macro_f1 == pytest.approx(run.report.macro_f1)  # nothing abstains at 0
    cov = [r.coverage for r in sel.rows]
    assert cov == sorted(cov, reverse=True)  # higher thresholds answer fewer columns
    assert 0.0 <= sel.ece <= 1.0 and "ECE" in run.text
    saved = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert saved["selective"]["rows"][0]["answered"] == sel.n


def test_calibrate_writes_a_copy_with_a_temperature(trained, tmp_path):
    from typer.testing import CliRunner

    from aegir.cli import app
    from aegir.eval_run import calibrate
    from aegir.inference import label_scores

    out = tmp_path / "cal.pt"
    r = calibrate(trained.final_checkpoint, out)  # fitted on the run's own validation split
    assert r.checkpoint == out and out.is_file() and r.n_columns > 0 and r.temperature > 0
    assert r.nll_after <= r.nll_before + 1e-9
    lc, raw = load_classifier(out), load_classifier(trained.final_checkpoint)
    assert lc.temperature == pytest.approx(r.temperature) and raw.temperature == 1.0
    assert lc.meta["calibration"]["n_columns"] == r.n_columns
    for (ka, va), (kb, vb) in zip(sorted(lc.model.state_dict().items()), sorted(raw.model.state_dict().items())):
        assert ka == kb and torch.equal(va, vb)  # the same weights
    # annotate: the same ranking, scores = softmax(logits / T)
    df = pd.DataFrame({"a": ["2021-03-04", "1999-12-31"], "b": ["x@y.org", "me@ex.com"], "c": ["17", "4"]})
    a, b = annotate(df, out, top_k=4), annotate(df, trained.final_checkpoint, top_k=4)
    for ca, cb in zip(a.columns, b.columns):
        assert [l for l, _ in ca.labels] == [l for l, _ in cb.labels]
        s_raw = np.array([s for _, s in cb.labels])
        logits = np.log(s_raw)  # top-4 of 4 labels: the full softmax, so log-probabilities are logits + const
        assert np.allclose([s for _, s in ca.labels], label_scores(logits[None] / r.temperature)[0], atol=1e-5)
    # eval: the same F1; the exported specialist keeps the temperature
    assert run_eval(out, out=tmp_path / "ev").report.macro_f1 == pytest.approx(
        run_eval(trained.final_checkpoint, out=tmp_path / "ev0").report.macro_f1)
    assert load_classifier(export_specialist(out, tmp_path / "spec")).temperature == pytest.approx(r.temperature)
    with pytest.raises(CheckpointError, match="new path"):
        calibrate(trained.final_checkpoint, trained.final_checkpoint)
    with pytest.raises(CheckpointError, match="export"):
        calibrate(tmp_path / "spec", tmp_path / "x.pt")
    ok = CliRunner().invoke(app, ["calibrate", "--checkpoint", str(trained.final_checkpoint), "--out", str(tmp_path / "c2.pt")])
    assert ok.exit_code == 0, ok.output
    assert "temperature" in ok.output and (tmp_path / "c2.pt").is_file()


def test_train_calibrate_stores_the_validation_temperature(custom_data, tmp_path):
    """`aegir train --calibrate`: final.pt carries the temperature fitted on the run's validation
    columns, the same one `aegir calibrate` fits afterwards on that split; the step checkpoint and
    the validation F1 are untouched (scores move, argmax does not)."""
    from aegir.eval_run import calibrate

    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", epochs=2, batch_size=8, lr=3e-3,
                         warmup_steps=2, max_bytes=48, out=str(tmp_path), progress=False, checkpoint_every=10_000,
                         calibrate=True)
    res = finetune(cfg)
    ck = load_checkpoint(res.final_checkpoint, kind="classifier")
    t, info = ck.extra["temperature"], ck.extra["calibration"]
    assert 0.05 <= t <= 20 and info["temperature"] == t and info["n_columns"] > 0
    assert info["nll_after"] <= info["nll_before"] + 1e-9 and "validation split" in info["data"]
    assert load_classifier(res.final_checkpoint).temperature == pytest.approx(t)
    again = calibrate(res.final_checkpoint, tmp_path / "again.pt")  # refits from the raw logits
    assert again.temperature == pytest.approx(t, rel=1e-3) and again.n_columns == info["n_columns"]
    log = [json.loads(l) for l in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("temperature") == t for r in log)
    assert "temperature" not in res.valid_metrics  # F1 figures only: calibration moves no argmax


def test_multi_label_calibration_in_training_and_afterwards(tmp_path):
    """Multi-label tasks: `train --calibrate` and `aegir calibrate` fit one temperature for the
    per-label sigmoids (the same T on the same split), scores become sigmoid(logits / T) and the
    predicted label sets, hence F1, do not change."""
    from aegir.eval_run import calibrate
    from custom_task import write_multilabel_dataset

    data = tmp_path / "ml"
    write_multilabel_dataset(data)
    cfg = FinetuneConfig(task="custom", data=str(data), model_size="nano", epochs=2, batch_size=8, lr=3e-3,
                         warmup_steps=2, max_bytes=48, out=str(tmp_path / "runs"), progress=False,
                         checkpoint_every=10_000, calibrate=True)
    res = finetune(cfg)
    ck = load_checkpoint(res.final_checkpoint, kind="classifier")
    assert ck.extra["multi_label"] and 0.05 <= ck.extra["temperature"] <= 20
    t = ck.extra["temperature"]
    again = calibrate(res.final_checkpoint, tmp_path / "cal.pt")
    assert again.temperature == pytest.approx(t, rel=1e-3) and again.nll_after <= again.nll_before + 1e-9
    raw_lc, cal_lc = load_classifier(res.final_checkpoint), load_classifier(tmp_path / "cal.pt")
    assert cal_lc.multi_label and cal_lc.temperature == pytest.approx(t, rel=1e-3)
    # scores: sigmoid(logits / T); label sets and F1 unchanged
    ev_cal = run_eval(tmp_path / "cal.pt", out=tmp_path / "e1")
    ev_uncal = run_eval([replace(raw_lc, temperature=1.0)], out=tmp_path / "e0")  # a loaded member, T = 1
    assert ev_cal.report.macro_f1 == pytest.approx(ev_uncal.report.macro_f1)
    assert ev_cal.report.micro_f1 == pytest.approx(ev_uncal.report.micro_f1)
    df = pd.DataFrame({"a": ["2021-03-04", "1999-12-31"], "b": ["x@y.org", "me@ex.com"]})
    a, b = annotate(df, tmp_path / "cal.pt", top_k=6), annotate(df, replace(raw_lc, temperature=1.0), top_k=6)
    for ca, cb in zip(a.columns, b.columns):
        s_raw = dict(cb.labels)
        logit = {k: np.log(v / (1 - v)) for k, v in s_raw.items()}  # sigmoid scores -> logits
        for k, v in ca.labels:
            assert v == pytest.approx(1 / (1 + np.exp(-logit[k] / cal_lc.temperature)), abs=1e-5)


def test_calibration_benchmark_writes_its_tables(trained, custom_data, tmp_path, monkeypatch):
    """benchmarks/cta_calibration.py end to end on the small fine-tune (fitted and scored on the same
    CSV folder here, only to exercise the script): both tables, the fitted T, and the JSON."""
    import cta_calibration

    out = tmp_path / "cal"
    monkeypatch.setattr(sys, "argv", ["cta_calibration.py", "--checkpoint", str(trained.final_checkpoint),
                                      "--fit-data", str(custom_data), "--eval-data", str(custom_data),
                                      "--format", "csv", "--result", str(out)])
    cta_calibration.main()
    res = json.loads((tmp_path / "cal.json").read_text())
    assert res["fit"]["temperature"] > 0 and set(res["eval"]) == {"raw", "calibrated"}
    assert res["eval"]["raw"]["macro_f1"] == pytest.approx(res["eval"]["calibrated"]["macro_f1"])
    md = (tmp_path / "cal.md").read_text()
    assert "## Before calibration" in md and "## After calibration" in md and "T = " in md
    # without --fit-data: fitted on the checkpoint's own validation split, as `aegir train --calibrate` fits
    from aegir.eval_run import calibrate

    monkeypatch.setattr(sys, "argv", ["cta_calibration.py", "--checkpoint", str(trained.final_checkpoint),
                                      "--eval-data", str(custom_data), "--format", "csv", "--result",
                                      str(tmp_path / "self")])
    cta_calibration.main()
    self_fit = json.loads((tmp_path / "self.json").read_text())["fit"]
    assert "validation split" in json.loads((tmp_path / "self.json").read_text())["fit_data"]
    assert self_fit["temperature"] == pytest.approx(calibrate(trained.final_checkpoint, tmp_path / "c.pt").temperature)


def test_long_tables_benchmark_counts_every_row(trained, tmp_path):
    """benchmarks/long_tables.py on a 3,000-row CSV: the readers keep the rows asked for and count
    them all, annotate() reports the file's length, and both result files are written."""
    import long_tables

    res = long_tables.main(["--checkpoint", str(trained.final_checkpoint), "--rows", "3000", "--max-rows", "100",
                            "--reps", "1", "--excel-rows", "2000", "--json-rows", "1500",
                            "--out", str(tmp_path / "long")])
    runs = res["runs"]
    assert (runs["now"]["rows"], runs["now"]["rows_total"]) == (100, 3000)
    assert (runs["spread"]["rows"], runs["spread"]["rows_total"]) == (100, 3000)
    if "before" in runs:  # the revision compared with is in this clone's history
        assert (runs["before"]["rows"], runs["before"]["rows_total"]) == (100, 3000)
    assert runs["annotate"]["columns"] == 6 and runs["annotate"]["rows_total"] == 3000
    assert (runs["excel"]["rows"], runs["excel"]["rows_total"]) == (100, 2000)
    assert (runs["sqlite"]["rows"], runs["sqlite"]["rows_total"]) == (100, 3000)  # all --rows by default
    assert (runs["gzip"]["rows"], runs["gzip"]["rows_total"]) == (100, 3000)
    assert (runs["json"]["rows"], runs["json"]["rows_total"]) == (100, 1500)
    assert (tmp_path / "long.json").is_file() and "rows counted" in (tmp_path / "long.md").read_text()


def test_wide_tables_benchmark_annotates_every_column(trained, tmp_path):
    """benchmarks/wide_tables.py on the small fine-tune: every column of each synthetic table is
    annotated, and both result files are written."""
    import wide_tables

    res = wide_tables.main(["--checkpoint", str(trained.final_checkpoint), "--columns", "5,30", "--reps", "1",
                            "--out", str(tmp_path / "wide")])
    assert [(r["columns"], r["annotated_columns"]) for r in res["rows"]] == [(5, 5), (30, 30)]
    assert (tmp_path / "wide.json").is_file() and "| 30 |" in (tmp_path / "wide.md").read_text()


def test_values_read_benchmark_summarises_coverage(trained, tmp_path):
    import values_read

    from aegir.paths import shared_data_dir

    c = values_read.coverage([3, 5, 5, 1], [5, 5, 5, 2])
    assert (c["columns"], c["all_rows"], c["median_values"], c["median_rows"], c["min_values"]) == (4, 2, 4, 5, 1)
    assert c["mean_share"] == pytest.approx((0.6 + 1 + 1 + 0.5) / 4)
    if shared_data_dir() is None:
        pytest.skip("needs ../shared/data")
    res = values_read.main(["--checkpoint", str(trained.final_checkpoint), "--limit", "6", "--out", str(tmp_path / "v")])
    runs = {(r["corpus"], r["budget"], r["views"]): r for r in res["runs"]}
    assert len(runs) == 8 and all(r["tables"] == 6 for r in runs.values())
    git = [r for (corpus, _, _), r in runs.items() if corpus.startswith("GitTables")]
    # The fixture reads 48 bytes a column: GitTables' longer columns do not fit; a doubled budget shows more.
    small, large = (next(r for r in git if (r["budget"], r["views"]) == (b, 1)) for b in (48, 96))
    assert small["all_rows"] < small["columns"] and large["mean_share"] > small["mean_share"]
    assert "| views |" in (tmp_path / "v.md").read_text()


def test_formats_benchmark_compares_every_format_with_the_csv(trained, tmp_path):
    import formats

    from aegir.annotate_batch import annotate_files

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_text("id,mail\n1,a@x.com\n2,b@y.com\n3,c@z.com\n")
    (src / "b.csv").write_text("n,share\n1,0.5\n,0.25\n3,1\n")  # the gap makes pandas write n as 1.0, 3.0
    lake = tmp_path / "lake"
    lake.mkdir()
    names = formats.write_lake(sorted(src.glob("*.csv")), lake)
    pages = sorted(lake.glob("*.html"))  # folders are not searched for pages: the benchmark names them
    res = annotate_files([lake, *pages], trained.final_checkpoint, tmp_path / "a.jsonl", top_k=1, progress=False)
    assert (res.files, res.annotated, [Path(e.file).name for e in res.errors]) == (22, 21, ["._t000.csv"])
    records = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    agree, differ = formats.compare(lake, names, records)
    assert agree["csv.gz"] == agree["csv.zst"] == {"tables": 2, "same_header": 2, "same_cells": 2, "same_labels": 2}
    assert all(agree[f]["same_header"] == 2 and agree[f]["same_cells"] == 1
               for f in ("jsonl", "parquet", "feather", "orc", "sqlite", "html"))
    # Workbooks hold numbers: 1.0 reads back as 1 (General), the gap as a blank cell: the CSV's cells.
    assert agree["xlsx"] == agree["ods"] == agree[formats.PAIR] == {"tables": 2, "same_header": 2, "same_cells": 2,
                                                                    "same_labels": 2}
    assert differ == {}
