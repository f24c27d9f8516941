"""`aegir train --resume` restores the run's own settings, refuses conflicting flags and finished runs;
Ctrl-C saves the step it ends; the run's notes (unseen validation labels, multi-label custom tasks);
`--pretrained` folders; where eval writes and what it says when the run's data is gone."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from aegir.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from aegir.eval_run import run_eval
from aegir.inference import export_specialist
from aegir.tables import TableError
from aegir.train.finetune import FinetuneConfig, FinetuneHooks, finetune
from aegir.train.finetune_config import RESUME_OVERRIDABLE, resumed_config
from aegir.train.tasks import resolve_task


def _losses(run_dir):
    out = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "loss" in r:
            out.setdefault(r["step"], []).append(r["loss"])
    return out


def _keep_only(run_dir, name):
    """A kill right after `name` was saved: later checkpoints (final.pt too) never happened."""
    for p in list_checkpoints(run_dir):
        if p.name != name:
            p.unlink()


def _short(custom_data, tmp_path, **kw):
    return FinetuneConfig(**{**dict(task="custom", data=str(custom_data), model_size="nano", batch_size=8, lr=3e-3,
                                    warmup_steps=2, max_bytes=48, progress=False, checkpoint_every=3, epochs=1,
                                    max_steps=6, out=str(tmp_path)), **kw})


def test_resume_alone_restores_the_run_and_keeps_its_provenance(trained, custom_data, tmp_path):
    """`--resume RUN_DIR` and nothing else: the stored arguments (epochs, schedule, --pretrained) apply, the
    curve continues exactly, config.json and final.pt keep the run's arguments and where it started from,
    and TensorBoard shows each step once (the replayed steps are purged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _short(custom_data, tmp_path, pretrained=str(trained.final_checkpoint), epochs=2, max_steps=None)
    full = finetune(cfg)
    before = _losses(full.run_dir)
    n = full.steps
    assert n > 6 and sorted(before) == list(range(1, n + 1))
    stored = json.loads((full.run_dir / "config.json").read_text())["finetune"]
    _keep_only(full.run_dir, "step-00000003.pt")
    # Everything at its default but --resume (what `aegir train --resume RUN_DIR` passes).
    resumed = finetune(FinetuneConfig(resume=str(full.run_dir)), given={"resume"})
    assert resumed.steps == n and resumed.run_dir == full.run_dir
    after = _losses(full.run_dir)
    for s in range(4, n + 1):  # the same schedule (2 epochs, not the default 10), data order and state
        assert after[s][-1] == pytest.approx(before[s][0], rel=1e-6, abs=1e-7), s
    again = json.loads((full.run_dir / "config.json").read_text())["finetune"]
    assert again == {**stored, "resume": str(full.run_dir)}
    ck = load_checkpoint(full.run_dir / "final.pt")
    assert ck.run_args["pretrained"] == str(trained.final_checkpoint) and ck.run_args["epochs"] == 2
    assert ck.extra["pretrained"] == str(trained.final_checkpoint) and ck.extra["from_random"] is False
    assert ck.extra["pretrained_step"] == load_checkpoint(trained.final_checkpoint).step

    ea = EventAccumulator(str(full.run_dir / "tb"), size_guidance={"scalars": 0})
    ea.Reload()
    tb = {e.step: e.value for e in ea.Scalars("loss")}
    assert len(ea.Scalars("loss")) == n and sorted(tb) == list(range(1, n + 1))
    assert all(tb[s] == pytest.approx(after[s][-1], rel=1e-6) for s in tb)


def test_conflicting_flags_are_refused_together_and_overridable_ones_apply(custom_data, tmp_path, monkeypatch):
    cfg = _short(custom_data, tmp_path)
    full = finetune(cfg)
    _keep_only(full.run_dir, "step-00000003.pt")
    snapshot = {p.name: p.read_bytes() for p in full.run_dir.iterdir() if p.is_file()}
    with pytest.raises(CheckpointError) as e:
        finetune(FinetuneConfig(resume=str(full.run_dir), epochs=10, batch_size=16, lr=1e-4),
                 given={"resume", "epochs", "batch_size", "lr"})
    msg = str(e.value)  # every conflict in one line, naming the flag, the given and the stored value
    assert "epochs=10 but the run used 1" in msg and "batch_size=16 but the run used 8" in msg
    assert "lr=0.0001 but the run used 0.003" in msg and "drop --epochs, --batch-size, --lr" in msg
    assert "\n" not in msg and "--checkpoint-every" in msg
    assert {p.name: p.read_bytes() for p in full.run_dir.iterdir() if p.is_file()} == snapshot
    # The CLI default typed out is still a given flag: 10 epochs is not this run's 1.
    with pytest.raises(CheckpointError, match="epochs=10 but the run used 1"):
        finetune(FinetuneConfig(resume=str(full.run_dir)), given={"resume", "epochs"})
    # Given flags equal to the stored ones, and the data folder spelt another way (relative, trailing
    # slash): the same run. checkpoint_every may change on resume.
    monkeypatch.chdir(custom_data.parent)
    res = finetune(FinetuneConfig(resume=str(full.run_dir), task="custom", data=custom_data.name + "/", epochs=1,
                                  checkpoint_every=2, progress=False),
                   given={"resume", "task", "data", "epochs", "checkpoint_every"})
    assert res.steps == 6 and (full.run_dir / "step-00000004.pt").is_file()
    ck = load_checkpoint(full.run_dir / "final.pt")
    assert ck.run_args["checkpoint_every"] == 2 and ck.run_args["data"] == str(custom_data)


def test_resumed_config_rules():
    stored = {**FinetuneConfig(task="custom", data="/d", epochs=4).__dict__, "teachers": ["/t.pt"]}
    stored.pop("split_seed")  # a run from before split_seed: its validation tables came from its seed
    stored["seed"] = 3
    cfg = resumed_config(FinetuneConfig(resume="R", device="cpu"), stored, given={"resume", "device"})
    assert (cfg.task, cfg.epochs, cfg.device, cfg.split_seed, cfg.teachers, cfg.resume) == \
        ("custom", 4, "cpu", 3, ("/t.pt",), "R")
    with pytest.raises(ValueError, match="split_seed=0 but the run used 3"):
        resumed_config(FinetuneConfig(resume="R"), stored, given={"split_seed"})
    assert set(RESUME_OVERRIDABLE) >= {"device", "checkpoint_every", "cpu_bf16"}


def test_a_finished_run_is_not_resumed(custom_data, tmp_path):
    res = finetune(_short(custom_data, tmp_path, max_steps=4))
    snapshot = {p.name: p.read_bytes() for p in res.run_dir.iterdir() if p.is_file()}
    with pytest.raises(CheckpointError, match=r"this run finished \(final.pt at step 4\); nothing to resume"):
        finetune(FinetuneConfig(resume=str(res.run_dir)), given={"resume"})
    assert {p.name: p.read_bytes() for p in res.run_dir.iterdir() if p.is_file()} == snapshot
    assert load_checkpoint(res.final_checkpoint).metrics["valid_n"] > 0


def test_cli_resume_restores_and_refuses(custom_data, tmp_path):
    base = [sys.executable, "-m", "aegir", "train", "--task", "custom", "--data", str(custom_data), "--max-bytes", "48",
            "--batch-size", "8", "--epochs", "2", "--max-steps", "5", "--checkpoint-every", "2", "--out", str(tmp_path)]
    r = subprocess.run(base, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    run_dir = next((tmp_path / "custom").iterdir())
    _keep_only(run_dir, "step-00000002.pt")
    r = subprocess.run([sys.executable, "-m", "aegir", "train", "--resume", str(run_dir), "--epochs", "10"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "epochs=10 but the run used 2" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "aegir", "train", "--resume", str(run_dir), "--device", "cpu"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resuming" in r.stderr and "steps=5" in r.stderr
    ck = load_checkpoint(run_dir / "final.pt")
    assert (ck.step, ck.run_args["epochs"], ck.run_args["max_bytes"], ck.run_args["device"]) == (5, 2, 48, "cpu")
    r = subprocess.run([sys.executable, "-m", "aegir", "train", "--resume", str(run_dir)], capture_output=True, text=True)
    assert r.returncode == 2 and "this run finished (final.pt at step 5); nothing to resume" in r.stderr


def test_ctrl_c_ends_the_step_saves_it_and_the_resume_continues_exactly(custom_data, tmp_path, capsys):
    cfg = _short(custom_data, tmp_path, checkpoint_every=10_000)
    full = finetune(cfg)
    before = _losses(full.run_dir)

    def interrupt(step, net):
        if step == 3:  # Ctrl-C in the middle of a step: it ends, then stops
            os.kill(os.getpid(), signal.SIGINT)

    cut = _short(custom_data, tmp_path, checkpoint_every=10_000, run_name="cut")
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        finetune(cut, hooks=FinetuneHooks(after_step=interrupt))
    run_dir = next((tmp_path / "cut").iterdir())
    assert [p.name for p in list_checkpoints(run_dir)] == ["step-00000003.pt"]
    err = " ".join(capsys.readouterr().err.split())
    assert (f"interrupted at step 3; last checkpoint: step 3 ({run_dir / 'step-00000003.pt'}); "
            f"resume with: aegir train --resume {run_dir}") in err
    assert signal.getsignal(signal.SIGINT) is handler  # the training loop's handler is gone again
    res = finetune(FinetuneConfig(resume=str(run_dir)), given={"resume"})
    assert res.steps == 6
    after = _losses(run_dir)
    assert sorted(after) == list(range(1, 7)) and all(len(v) == 1 for v in after.values())
    for s in range(1, 7):
        assert after[s][0] == pytest.approx(before[s][0], rel=1e-6, abs=1e-7), s


def test_cli_ctrl_c_says_where_the_run_stands_and_exits_130(custom_data, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "aegir", "train", "--task", "custom", "--data", str(custom_data),
                             "--max-bytes", "32", "--batch-size", "2", "--epochs", "200", "--out", str(tmp_path)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    seen = b""
    deadline = time.time() + 120
    while b"loss=" not in seen and time.time() < deadline:  # the bar's postfix: a step has run
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    text = " ".join((seen + err).decode(errors="replace").replace("\r", "\n").split())
    assert proc.returncode == 130, text[-2000:]
    run_dir = next((tmp_path / "custom").iterdir())
    assert "interrupted at step" in text and f"resume with: aegir train --resume {run_dir}" in text
    assert list_checkpoints(run_dir) and "Traceback" not in text


def test_validation_labels_training_never_saw_count_as_misses_and_are_named(trained, custom_data, tmp_path, capsys):
    valid = tmp_path / "valid"
    shutil.copytree(custom_data, valid)
    rows = (valid / "labels.csv").read_text().splitlines()
    rows[1:4] = [r.rsplit(",", 1)[0] + ",addressLocality" for r in rows[1:4]]  # a label no training column has
    (valid / "labels.csv").write_text("\n".join(rows) + "\n")
    res = finetune(_short(custom_data, tmp_path, valid_data=str(valid), max_steps=2))
    n = len(rows) - 1
    assert res.valid_metrics["valid_n"] == n and res.valid_metrics["valid_n_unknown_gold"] == 3
    assert res.valid_metrics["valid_accuracy"] <= (n - 3) / n
    err = " ".join(capsys.readouterr().err.split())
    assert "note: 3 gold label(s) of 1 name(s) in the validation columns never occur in training and count as " \
           "misses: addressLocality (3)" in err
    ev = run_eval(res.final_checkpoint)  # the run's own validation data: the same columns, the same note
    assert ev.report.n == n and ev.unknown_gold == {"addressLocality": 3} and "addressLocality (3)" in ev.text
    assert ev.out_dir == res.run_dir / "eval"


def test_a_conflicting_labels_row_names_the_multi_labelled_columns(custom_data, tmp_path, capsys):
    data = tmp_path / "dup"
    shutil.copytree(custom_data, data)
    first = (data / "labels.csv").read_text().splitlines()[1]
    table, col, label = first.split(",")
    other = next(k for k in ("number", "word", "date", "email") if k != label)
    with open(data / "labels.csv", "a") as f:
        f.write(f"{table},{col},{other}\n")
    assert resolve_task("custom", str(data)).multi_label
    finetune(_short(data, tmp_path, max_steps=1))
    err = " ".join(capsys.readouterr().err.split())
    assert "task custom is multi-label" in err and "because 1 column(s) have several labels" in err
    assert f"{table} column {col}: " in err and label in err and other in err


def test_data_paths_get_errors_for_training(custom_data, tmp_path):
    with pytest.raises(TableError, match="no such file or folder") as e:
        resolve_task("custom", str(tmp_path / "missing"))
    with pytest.raises(TableError, match="name the folder that holds labels.csv") as e2:
        resolve_task("custom", str(custom_data / "labels.csv"))
    with pytest.raises(TableError, match="not a file") as e3:
        resolve_task("custom", str(custom_data / "t0.csv"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TableError, match="no labels.csv in this folder") as e4:
        resolve_task("custom", str(tmp_path / "empty"))
    with pytest.raises(TableError, match="not a SOTAB root") as e5:
        resolve_task("sotab-cta", str(tmp_path / "empty"))
    assert not any("--gold" in str(x.value) for x in (e, e2, e3, e4, e5))


def test_pretrained_takes_a_specialist_folder_and_refuses_other_folders(trained, custom_data, tmp_path):
    spec = export_specialist(trained.final_checkpoint, tmp_path / "specialists" / "cta")
    res = finetune(_short(custom_data, tmp_path, pretrained=str(spec), freeze_backbone=True, max_steps=1))
    ck = load_checkpoint(res.final_checkpoint)
    assert ck.extra["pretrained"] == str(spec) and ck.extra["from_random"] is False
    source = load_checkpoint(trained.final_checkpoint).model_state
    for k, v in ck.model_state.items():  # the frozen backbone is the specialist's
        if k.startswith("classifier.backbone."):
            assert torch.equal(v, source[k]), k
    (tmp_path / "notes").mkdir()
    with pytest.raises(CheckpointError, match="pass a checkpoint file such as final.pt"):
        finetune(_short(custom_data, tmp_path, pretrained=str(tmp_path / "notes"), run_name="bad"))
    assert not (tmp_path / "bad").exists()  # refused before a run folder was made
    # eval of a specialist writes inside its folder, not in the folder it shares with other specialists
    ev = run_eval(spec, data=str(custom_data), fmt="csv")  # other data than the run's: eval-<data name>/
    assert ev.out_dir == spec / f"eval-{custom_data.name}" and (ev.out_dir / "report.json").is_file()


def test_eval_says_when_the_runs_data_is_gone(custom_data, tmp_path, monkeypatch):
    from aegir.liveness_run import run_liveness_cmd

    data = tmp_path / "mine"
    shutil.copytree(custom_data, data)
    monkeypatch.chdir(tmp_path)
    res = finetune(_short("mine", tmp_path, max_steps=1))  # a relative --data is recorded absolute
    assert load_checkpoint(res.final_checkpoint).run_args["data"] == str(data)
    monkeypatch.chdir("/")
    assert run_eval(res.final_checkpoint, out=tmp_path / "ev").report.n > 0  # from another directory
    data.rename(tmp_path / "moved")
    for call in (lambda: run_eval(res.final_checkpoint), lambda: run_liveness_cmd(res.final_checkpoint)):
        with pytest.raises(TableError) as e:
            call()
        assert str(res.final_checkpoint) in str(e.value) and str(data) in str(e.value)
        assert "recorded in the checkpoint" in str(e.value) and "pass --data" in str(e.value)
