"""Checkpoints: round trip, atomic writes under a real kill, refusal of corrupt/foreign/mismatched files."""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import signal
from pathlib import Path

import pytest
import torch
from torch import nn

from aegir.checkpoint import (
    CheckpointError,
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    new_run_dir,
    restore_rng_state,
    save_checkpoint,
    step_checkpoint_name,
)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Embedding(20, 8), nn.Linear(8, 8), nn.LayerNorm(8))


def test_round_trip_restores_everything(tmp_path: Path) -> None:
    m = _model()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    m(torch.tensor([1, 2, 3])).sum().backward()
    opt.step()
    rng = capture_rng_state()
    p = save_checkpoint(
        tmp_path / "a.pt", m, {"width": 8}, {"labels": ["x", "y"]}, kind="classifier", step=7,
        run_args={"lr": 1e-2}, metrics={"loss": 1.5}, optimizer_state=opt.state_dict(),
        scheduler_state={"step": 7.0}, rng_state=rng, data_state={"next_sample": 56}, commit="abc123",
    )
    expected_after = torch.rand(3)  # what the generator yields after the captured state
    ck = load_checkpoint(p)
    assert (ck.kind, ck.step, ck.git_commit) == ("classifier", 7, "abc123")
    assert ck.config == {"width": 8} and ck.extra == {"labels": ["x", "y"]}
    assert ck.run_args == {"lr": 1e-2} and ck.metrics == {"loss": 1.5}
    assert ck.data_state == {"next_sample": 56} and ck.scheduler_state == {"step": 7.0}
    m2 = _model(seed=1)
    load_weights(m2, ck)
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-2)
    opt2.load_state_dict(ck.optimizer_state)
    assert torch.equal(opt2.state_dict()["state"][1]["exp_avg"], opt.state_dict()["state"][1]["exp_avg"])
    restore_rng_state(ck.rng_state)
    assert torch.equal(torch.rand(3), expected_after)
    assert re.fullmatch(r"[0-9TZ]{16}", ck.created_utc)


def test_model_config_round_trip(tmp_path: Path) -> None:
    from aegir.config import ModelConfig

    cfg = ModelConfig.preset("nano")
    ck = load_checkpoint(save_checkpoint(tmp_path / "c.pt", _model(), cfg, commit=None))
    assert isinstance(ck.config, ModelConfig) and ck.config.to_dict() == cfg.to_dict()


def test_refuses_corrupt_truncated_and_foreign_files(tmp_path: Path) -> None:
    good = save_checkpoint(tmp_path / "good.pt", _model(), {}, commit=None)
    raw = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match=r"trunc\.pt.*not a loadable checkpoint") as e:
        load_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "junk.pt").write_bytes(b"hello, not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt.*not a PyTorch pickle") as e2:
        load_checkpoint(tmp_path / "junk.pt")
    for err in (e, e2):  # torch's advice (re-run with weights_only=False, file an issue) is not passed on
        assert "file an issue" not in str(err.value) and "weights_only=False" not in str(err.value), err.value
    torch.save({"state_dict": _model().state_dict()}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match=r"foreign\.pt: not an aegir checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save(nn.Linear(2, 2), tmp_path / "pickled_module.pt")  # needs unpickling code: refused
    with pytest.raises(CheckpointError, match=r"pickled_module\.pt.*weights_only"):
        load_checkpoint(tmp_path / "pickled_module.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_refuses_flipped_weights_vocab_and_kind_mismatch(tmp_path: Path) -> None:
    p = save_checkpoint(tmp_path / "a.pt", _model(), {}, commit=None)
    obj = torch.load(p, weights_only=True)
    obj["model_state"]["1.weight"][0, 0] += 1.0  # silent bit rot inside the archive
    torch.save(obj, tmp_path / "rot.pt")
    with pytest.raises(CheckpointError, match=r"rot\.pt: weights do not match"):
        load_checkpoint(tmp_path / "rot.pt")
    obj = torch.load(p, weights_only=True)
    obj["vocab"]["n_active"] = 300
    torch.save(obj, tmp_path / "vocab.pt")
    with pytest.raises(CheckpointError, match=r"vocab\.pt: vocabulary mismatch in \['n_active'\]"):
        load_checkpoint(tmp_path / "vocab.pt")
    with pytest.raises(CheckpointError, match="kind is 'pretrain', expected 'classifier'"):
        load_checkpoint(p, kind="classifier")
    with pytest.raises(CheckpointError, match="do not fit this model"):
        load_weights(nn.Linear(3, 3), load_checkpoint(p))


def _save_then_die(path: str, when: str) -> None:
    """Child process: a first good save, then a second save killed (SIGKILL) mid-way."""
    import aegir.checkpoint as ckm

    save_checkpoint(path, _model(0), {"v": 1}, step=1, commit=None)
    if when == "during_write":
        real_save = torch.save

        def dying_save(obj, f, *a, **k):  # write part of the archive, then the process is killed
            real_save({"partial": torch.zeros(1000)}, f)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        ckm.torch.save = dying_save  # type: ignore[assignment]
    else:  # killed after the temp file is complete, before the rename
        ckm.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # type: ignore[assignment]
    save_checkpoint(path, _model(1), {"v": 2}, step=2, commit=None)


@pytest.mark.parametrize("when", ["during_write", "before_rename"])
def test_kill_during_save_leaves_previous_checkpoint(tmp_path: Path, when: str) -> None:
    path = tmp_path / "final.pt"
    proc = mp.get_context("fork").Process(target=_save_then_die, args=(str(path), when))
    proc.start()
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    ck = load_checkpoint(path)
    assert ck.step == 1 and ck.config == {"v": 1}
    assert any(p.name.startswith(".final.pt.tmp") for p in tmp_path.iterdir())  # the torn temp file
    assert latest_checkpoint(tmp_path).step == 1


def test_run_dir_and_latest(tmp_path: Path) -> None:
    a = new_run_dir(tmp_path, "mixed-v2")
    b = new_run_dir(tmp_path, "mixed-v2")
    assert a.parent == tmp_path / "mixed-v2" and a != b
    assert re.fullmatch(r"\d{8}T\d{6}Z", a.name)
    assert re.fullmatch(r"\d{8}T\d{6}Z(-\d+)?", b.name)
    with pytest.raises(ValueError):
        new_run_dir(tmp_path, "../x")
    assert latest_checkpoint(a) is None
    for s in (2, 4, 10):
        save_checkpoint(a / step_checkpoint_name(s), _model(), {}, step=s, commit=None)
    (a / step_checkpoint_name(12)).write_bytes(b"torn")  # unusable newest file is skipped
    with pytest.warns(UserWarning, match="skipping unusable"):
        assert latest_checkpoint(a).step == 10
