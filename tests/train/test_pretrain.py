"""Pretraining: held-out bpb goes down, kill-and-resume reproduces the loss curve, NaN stops cleanly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from aegir.checkpoint import load_checkpoint
from aegir.train.pretrain import (
    PretrainConfig,
    PretrainHooks,
    StepStats,
    TrainingDiverged,
    _health,
    pretrain,
)

STEPS = 24


def tiny_cfg(data: Path, out: Path, **kw) -> PretrainConfig:
    base = dict(
        data=(str(data),), model_size="nano", model_overrides={"vocab_size": 268}, steps=STEPS,
        batch_size=4, seq_len=32, lr=3e-3, warmup_steps=2, eval_every=1000, ckpt_every=8,
        eval_windows=4, out=str(out), progress=False, tensorboard=False,
        corpus_overrides={"heldout_fraction": 0.2},
    )
    base.update(kw)
    return PretrainConfig(**base)


def losses(run_dir: Path) -> dict[int, float]:
    recs = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in recs if "loss" in r}


@pytest.fixture(scope="module")
def reference(corpus_dir: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    return pretrain(tiny_cfg(corpus_dir, out, tensorboard=True))


def test_pretrain_lowers_heldout_bpb_and_writes_run_folder(reference) -> None:
    r = reference
    assert r.steps_done == STEPS and r.stopped == "steps"
    assert r.final_bpb["mixed"] < r.initial_bpb["mixed"] - 1.0, (r.initial_bpb, r.final_bpb)
    for k in ("text", "ddl", "tables"):
        assert r.final_bpb[k] < r.initial_bpb[k]
    d = r.run_dir
    assert d.parent.name == "mixed-v2"
    assert (d / "config.json").is_file() and (d / "tb").is_dir()
    ck = load_checkpoint(d / "final.pt", kind="pretrain")
    assert ck.step == STEPS and ck.config.name == "nano" and ck.run_args["seq_len"] == 32
    assert ck.metrics["heldout_bpb"]["mixed"] == pytest.approx(r.final_bpb["mixed"])
    assert ck.optimizer_state is not None and ck.data_state["next_sample"] == STEPS * 4
    groups = ck.optimizer_state["param_groups"]  # per-stage lr multipliers reached the optimizer
    assert {g["lr_mult"] for g in groups} == set(ck.config.lr_multipliers)
    assert {g["weight_decay"] for g in groups} == {0.0, 1e-4}
    assert sorted(p.name for p in d.glob("step-*.pt")) == ["step-00000008.pt", "step-00000016.pt"]
    recs = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
    first = next(x for x in recs if x["step"] == 0 and "loss" in x)
    # chunker health is logged from step 0, for both routers of nano
    assert 0 < first["stage0.boundary_fraction"] <= 1 and 0 < first["stage1.mean_prob"] <= 1
    assert math.isfinite(first["grad_norm"]) and first["lr"] > 0


def test_kill_and_resume_reproduces_the_loss_curve(reference, corpus_dir: Path, tmp_path: Path) -> None:
    class Killed(Exception):
        pass

    def die(step: int, rec: dict) -> None:
        if step == 11:  # after 11 updates; the last checkpoint is step 8
            raise Killed

    with pytest.raises(Killed):
        pretrain(tiny_cfg(corpus_dir, tmp_path), hooks=PretrainHooks(after_step=die))
    (run_dir,) = list((tmp_path / "mixed-v2").iterdir())
    assert not (run_dir / "final.pt").exists()
    res = pretrain(PretrainConfig(resume=str(run_dir), progress=False))
    assert res.run_dir == run_dir and res.steps_done == STEPS
    got, want = losses(run_dir), losses(reference.run_dir)
    assert sorted(got) == list(range(STEPS))  # rewound: no duplicate records for steps 8-10
    for s in range(STEPS):
        assert got[s] == pytest.approx(want[s], rel=1e-6, abs=1e-7), s
    a = load_checkpoint(run_dir / "final.pt").model_state
    b = load_checkpoint(reference.run_dir / "final.pt").model_state
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_nan_stops_with_clear_message_and_usable_checkpoint(corpus_dir: Path, tmp_path: Path) -> None:
    def poison(step: int, model) -> None:
        if step == 3:
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = float("nan")

    with pytest.raises(TrainingDiverged, match=r"non-finite loss .* at step 3.*last usable checkpoint: .*step-00000002\.pt"):
        pretrain(tiny_cfg(corpus_dir, tmp_path, steps=8, ckpt_every=2), hooks=PretrainHooks(before_step=poison))
    (run_dir,) = list((tmp_path / "mixed-v2").iterdir())
    ck = load_checkpoint(run_dir / "step-00000002.pt")
    assert all(torch.isfinite(v).all() for v in ck.model_state.values())
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "diverged" and last["step"] == 3


def test_health_warns_on_degenerate_routers() -> None:
    def st(F: float) -> StepStats:
        return StepStats(loss=1.0, ratio_loss=0.0, n_tokens=10,
                         stages=[{"boundary_fraction": F, "mean_prob": F, "target_ratio": 3.0}])

    warned: dict = {}
    assert _health(st(0.33), 0, warned) == []
    msgs = _health(st(1.0), 1, warned)
    assert len(msgs) == 1 and "all-boundary" in msgs[0] and "router 0" in msgs[0]
    assert _health(st(1.0), 2, warned) == []  # rate-limited
    assert "no-boundary" in _health(st(0.0), 3, warned)[0]


def test_bad_config_is_refused(tmp_path: Path) -> None:
    from aegir.train.pretrain import PretrainConfigError

    with pytest.raises(PretrainConfigError, match="--batch-size must be >= 1"):
        PretrainConfig(batch_size=0)
    with pytest.raises(PretrainConfigError, match="no such run folder"):
        pretrain(PretrainConfig(resume=str(tmp_path / "nope")))


def test_time_budget_stops_the_run(corpus_dir: Path, tmp_path: Path) -> None:
    r = pretrain(tiny_cfg(corpus_dir, tmp_path, steps=10**6, hours=1.0 / 3600))  # one second
    assert r.stopped == "time" and 1 <= r.steps_done < 200
    assert load_checkpoint(r.final_checkpoint).metrics["stopped"] == "time"


def test_init_starts_a_new_run_from_a_checkpoint(reference, corpus_dir: Path, tmp_path: Path) -> None:
    """--init: continued pretraining starts from the checkpoint's weights and architecture (not
    from random, not --model-size), in a new run folder with a fresh schedule."""
    from aegir.train.pretrain import PretrainConfigError

    init = reference.run_dir / "final.pt"
    r = pretrain(tiny_cfg(corpus_dir, tmp_path, steps=4, model_size="tiny", model_overrides={}, init=str(init)))
    assert r.run_dir.parent == tmp_path / "mixed-v2" and r.run_dir != reference.run_dir
    # its first evaluation is the init model's last one (same weights, same held-out windows)
    assert r.initial_bpb["mixed"] == pytest.approx(reference.final_bpb["mixed"], rel=1e-5)
    ck = load_checkpoint(r.final_checkpoint)
    assert ck.config.name == "nano" and ck.step == 4 and ck.run_args["model_size"] == "nano"
    meta = json.loads((r.run_dir / "config.json").read_text())
    assert meta["init"]["path"] == str(init) and meta["init"]["step"] == STEPS
    with pytest.raises(PretrainConfigError, match="no such checkpoint"):
        pretrain(tiny_cfg(corpus_dir, tmp_path, init=str(tmp_path / "missing.pt"), model_overrides={}))
    with pytest.raises(PretrainConfigError, match="drop the --set overrides"):
        pretrain(tiny_cfg(corpus_dir, tmp_path, init=str(init)))


def test_bf16_is_the_runs_choice_and_recorded(corpus_dir: Path, tmp_path: Path) -> None:
    """--bf16 (cpu_bf16): the run trains under CPU bf16 autocast, says so in config.json and in the
    saved model config; a resume keeps the stored choice."""
    r = pretrain(tiny_cfg(corpus_dir, tmp_path, steps=6, cpu_bf16=True))
    meta = json.loads((r.run_dir / "config.json").read_text())
    assert meta["precision"].startswith("bf16 autocast on CPU") and meta["model_config"]["cpu_bf16"] is True
    ck = load_checkpoint(r.final_checkpoint, kind="pretrain")
    assert ck.config.cpu_bf16 is True and ck.run_args["cpu_bf16"] is True
    assert all(math.isfinite(v) for v in losses(r.run_dir).values())
    again = pretrain(PretrainConfig(resume=str(r.run_dir), steps=8, progress=False, tensorboard=False))
    assert again.steps_done == 8
    assert json.loads((r.run_dir / "config.json").read_text())["precision"].startswith("bf16 autocast on CPU")
