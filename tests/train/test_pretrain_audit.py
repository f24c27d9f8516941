"""`aegir pretrain` run management: time budgets without a step cap, what --resume accepts and refuses,
metrics.jsonl after a kill, clear errors before any folder is made, Ctrl-C / SIGTERM, text encodings."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aegir.checkpoint import CheckpointError, load_checkpoint
from aegir.train.pretrain import (
    DEFAULT_STEPS,
    Interrupted,
    PretrainConfig,
    PretrainConfigError,
    PretrainHooks,
    TrainingDiverged,
    pretrain,
)

from test_pretrain_cli import _app  # the pretrain command in an app of its own (tests/train is on the path)



def tiny_cfg(data: Path, out: Path, **kw) -> PretrainConfig:
    base = dict(
        data=(str(data),), model_size="nano", model_overrides={"vocab_size": 268}, steps=24,
        batch_size=4, seq_len=32, lr=3e-3, warmup_steps=2, eval_every=1000, ckpt_every=8,
        eval_windows=4, out=str(out), progress=False, tensorboard=False,
        corpus_overrides={"heldout_fraction": 0.2},
    )
    base.update(kw)
    return PretrainConfig(**base)


class Killed(Exception):
    pass


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if l.strip()]


def _killed_run(corpus_dir: Path, out: Path, at: int, **kw) -> Path:
    """A run that died (an exception, like a kill) after `at` updates; its folder."""
    def die(step: int, rec: dict) -> None:
        if step == at:
            raise Killed

    with pytest.raises(Killed):
        pretrain(tiny_cfg(corpus_dir, out, **kw), hooks=PretrainHooks(after_step=die))
    (run_dir,) = list((out / "mixed-v2").iterdir())
    return run_dir


def test_hours_without_steps_has_no_step_cap(corpus_dir: Path, tmp_path: Path) -> None:
    """--hours alone: the clock stops the run (no 1,000-step cap), the lr ends near its floor."""
    r = pretrain(tiny_cfg(corpus_dir, tmp_path, steps=None, hours=2.0 / 3600, batch_size=1, seq_len=8))
    assert r.stopped == "time"
    ck = load_checkpoint(r.final_checkpoint)
    assert ck.run_args["steps"] is None and ck.run_args["hours"] == pytest.approx(2.0 / 3600)
    last_lr = [x["lr"] for x in _records(r.run_dir) if "lr" in x][-1]
    assert last_lr < 0.2 * 3e-3  # cosine on elapsed time: near the floor (0.1 x peak) at the deadline
    # without --hours the default cap still applies
    assert DEFAULT_STEPS == 1000


def test_resume_refuses_changed_settings_and_stores_absolute_paths(corpus_dir: Path, tmp_path: Path,
                                                                   monkeypatch, caplog) -> None:
    monkeypatch.chdir(corpus_dir.parent)  # --data typed relative, as a user would
    run_dir = _killed_run(Path(corpus_dir.name), tmp_path, at=3, steps=6, ckpt_every=2, eval_every=2)
    ck = load_checkpoint(run_dir / "step-00000002.pt")
    assert ck.run_args["data"] == [str(corpus_dir.resolve())]

    # changed settings: one line naming each flag with both values, nothing touched
    before = (run_dir / "metrics.jsonl").read_text()
    with pytest.raises(PretrainConfigError, match=r"--batch-size 16 \(the run has 4\); --lr 0.1 \(the run has 0.003\)"):
        pretrain(PretrainConfig(resume=str(run_dir), batch_size=16, lr=0.1, progress=False))
    with pytest.raises(PretrainConfigError, match=r"--seq-len 64 \(the run has 32\)"):
        pretrain(PretrainConfig(resume=str(run_dir), seq_len=64, progress=False))
    # a typed flag counts even at its default value (the CLI passes the flags typed)
    with pytest.raises(PretrainConfigError, match=r"--batch-size 8 \(the run has 4\)"):
        pretrain(PretrainConfig(resume=str(run_dir), progress=False), given={"batch_size"})
    r = CliRunner().invoke(_app(), ["pretrain", "--resume", str(run_dir), "--batch-size", "8", "--data", "elsewhere"])
    assert r.exit_code == 2 and "--batch-size 8 (the run has 4)" in r.output and "--data elsewhere" in r.output
    assert (run_dir / "metrics.jsonl").read_text() == before
    with pytest.raises(PretrainConfigError, match=r"--steps 1 is below the checkpoint's step 2"):
        pretrain(PretrainConfig(resume=str(run_dir), steps=1, progress=False))

    # the same --data, typed relative here, is no conflict; a kill mid-write left half a line
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lr": 0.001, "grad_no')
    monkeypatch.chdir(tmp_path)  # resume from another folder: the stored absolute path still works
    with caplog.at_level(logging.WARNING):
        res = pretrain(PretrainConfig(resume=str(run_dir), progress=False, tensorboard=False))
    assert res.steps_done == 6
    assert "is cut off" in caplog.text
    recs = _records(run_dir)
    evals = [x["step"] for x in recs if x.get("event") == "eval"]
    assert evals == [0, 2, 4, 6]  # the eval at the checkpoint's step 2 kept, not written twice
    assert sorted(x["step"] for x in recs if "loss" in x) == list(range(6))

    # finished: refused, final.pt untouched; a larger --steps trains on
    final = (run_dir / "final.pt").read_bytes()
    with pytest.raises(PretrainConfigError, match=r"this run finished \(final.pt at step 6\); nothing to resume"):
        pretrain(PretrainConfig(resume=str(run_dir), progress=False))
    with pytest.raises(PretrainConfigError, match=r"--steps 3 is below the checkpoint's step 6"):
        pretrain(PretrainConfig(resume=str(run_dir), steps=3, progress=False))
    assert (run_dir / "final.pt").read_bytes() == final


def test_a_damaged_metrics_line_before_the_end_is_an_error(corpus_dir: Path, tmp_path: Path) -> None:
    run_dir = _killed_run(corpus_dir, tmp_path, at=3, steps=6, ckpt_every=2)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    lines.insert(1, "not json")
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(CheckpointError, match=r"metrics.jsonl: line 2 is not a JSON record"):
        pretrain(PretrainConfig(resume=str(run_dir), progress=False))


def test_divergence_advice_is_a_new_run_from_the_last_checkpoint(corpus_dir: Path, tmp_path: Path) -> None:
    import torch

    def poison(step: int, model) -> None:
        if step == 3:
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = float("nan")

    with pytest.raises(TrainingDiverged) as e:
        pretrain(tiny_cfg(corpus_dir, tmp_path, steps=8, ckpt_every=2), hooks=PretrainHooks(before_step=poison))
    msg = str(e.value)
    assert "aegir pretrain --init " in msg and "step-00000002.pt --lr 0.0003 --warmup-steps 100" in msg
    assert "--resume" not in msg


def test_user_mistakes_are_one_line_errors_before_any_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    out = tmp_path / "runs"
    cases = [(["--out", str(tmp_path / "file")], "--out"), (["--lr", "-1"], "--lr must be a positive number"),
             (["--warmup-steps", "-5"], "--warmup-steps must be >= 0"), (["--device", "tpu"], "--device tpu: not a device")]
    import torch

    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "--device cuda: device 'cuda' requested but CUDA is not available"))
    for args, want in cases:
        r = CliRunner().invoke(_app(), ["pretrain", "--out", str(out), "--steps", "2", "--no-progress", *args])
        assert r.exit_code == 2, (args, r.output)
        assert r.output.startswith("error: ") and want in r.output and r.output.count("\n") == 1, r.output
        assert not out.exists()


def test_ctrl_c_finishes_the_step_and_saves_it(corpus_dir: Path, tmp_path: Path, capsys) -> None:
    def interrupt(step: int, rec: dict) -> None:
        if step == 5:  # a real SIGINT, in the middle of step 5's bookkeeping
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted) as e:
        pretrain(tiny_cfg(corpus_dir, tmp_path, steps=12, ckpt_every=4), hooks=PretrainHooks(after_step=interrupt))
    assert e.value.signum == signal.SIGINT
    (run_dir,) = list((tmp_path / "mixed-v2").iterdir())
    assert load_checkpoint(run_dir / "step-00000005.pt").step == 5
    out = capsys.readouterr().out
    assert f"interrupted at step 5; last checkpoint: step 5 ({run_dir / 'step-00000005.pt'}); " \
           f"resume with: aegir pretrain --resume {run_dir}" in out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    res = pretrain(PretrainConfig(resume=str(run_dir), progress=False))
    assert res.steps_done == 12
    assert sorted(x["step"] for x in _records(run_dir) if "loss" in x) == list(range(12))


def test_sigterm_exits_143_with_a_checkpoint(corpus_dir: Path, tmp_path: Path) -> None:
    """The cluster pre-emption signal, to the real CLI: a checkpoint, the message, exit code 143."""
    cmd = [sys.executable, "-m", "aegir", "pretrain", "--data", str(corpus_dir), "--set", "vocab_size=268",
           "--steps", "100000", "--batch-size", "2", "--seq-len", "32", "--ckpt-every", "100000", "--eval-every", "100000",
           "--no-progress", "--no-tensorboard", "--out", str(tmp_path)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        runs = list(tmp_path.glob("mixed-v2/*/metrics.jsonl"))
        if runs and sum(1 for l in runs[0].read_text().splitlines() if '"loss"' in l) >= 3:
            break
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 143, out
    (run_dir,) = list((tmp_path / "mixed-v2").iterdir())
    steps = list(run_dir.glob("step-*.pt"))
    assert len(steps) == 1 and f"resume with: aegir pretrain --resume {run_dir}" in out


def test_text_documents_are_read_in_their_encoding(tmp_path: Path) -> None:
    from aegir.encoding.corpus import CorpusConfig, read_user_sources
    from aegir.tables import TableError

    (tmp_path / "latin.txt").write_bytes("Café crème brûlée à la carte, naïve façade.\n".encode("latin-1") * 3)
    texts, _, _, _ = read_user_sources([tmp_path / "latin.txt"], CorpusConfig())
    assert texts[0].startswith("Café crème brûlée") and "\ufffd" not in texts[0]
    (tmp_path / "garbage.txt").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(TableError, match="garbage.txt: cannot detect the text encoding"):
        read_user_sources([tmp_path / "garbage.txt"], CorpusConfig())


def test_streams_shorter_than_a_window_are_warned_about(tmp_path: Path) -> None:
    from aegir.encoding.corpus import CorpusConfig, build_corpus
    from aegir.train.pretrain import _short_stream_warnings

    (tmp_path / "people.csv").write_text("name,age\nAda,36\nAlan,41\nGrace,85\n")
    c = build_corpus(CorpusConfig(data=(str(tmp_path / "people.csv"),), seq_len=512))
    msgs = _short_stream_warnings(c, 512)
    assert any("tables held-out stream" in m and "shorter than --seq-len 512" in m and "means little" in m for m in msgs)
    assert _short_stream_warnings(c, 4) == []
