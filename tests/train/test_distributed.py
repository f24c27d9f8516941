"""Data parallelism: `torchrun --nproc-per-node 2 -m aegir pretrain` (gloo, CPU) equals one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aegir.checkpoint import load_checkpoint
from aegir.train.distributed import DistInfo, all_reduce_sum, init_distributed, shard_range, wrap_model
from aegir.train.pretrain import PretrainConfig, pretrain


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(run_dir: Path, key: str = "loss") -> dict[int, float]:
    recs = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r[key] for r in recs if "loss" in r}


def test_shard_range_and_single_process_defaults(monkeypatch) -> None:
    assert [list(shard_range(8, r, 2)) for r in (0, 1)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(ValueError, match="not divisible"):
        shard_range(6, 0, 4)
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    info = init_distributed("cpu")
    assert info == DistInfo() and not info.is_distributed and info.is_main
    x = torch.tensor([1.0, 2.0])
    assert all_reduce_sum(x, info) is x
    m = torch.nn.Linear(2, 2)
    assert wrap_model(m, info, "ddp") is m


STEPS, B, T = 3, 4, 32


@pytest.fixture(scope="module")
def one_process(corpus_dir: Path, tmp_path_factory):
    threads = torch.get_num_threads()
    try:
        return pretrain(PretrainConfig(data=(str(corpus_dir),), model_overrides={"vocab_size": 268}, steps=STEPS,
                                       batch_size=B, seq_len=T, lr=3e-3, warmup_steps=1, eval_every=1000,
                                       ckpt_every=1000, progress=False, tensorboard=False, threads=1,
                                       out=str(tmp_path_factory.mktemp("one"))))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("strategy", ["ddp", pytest.param("fsdp", marks=pytest.mark.slow)])
def test_two_process_gloo_run_matches_one_process(strategy: str, one_process, corpus_dir: Path, tmp_path: Path) -> None:
    args = ["--data", str(corpus_dir), "--model-size", "nano", "--set", "vocab_size=268", "--steps", str(STEPS),
            "--batch-size", str(B), "--seq-len", str(T), "--lr", "3e-3", "--warmup-steps", "1",
            "--eval-every", "1000", "--ckpt-every", "1000", "--no-progress", "--no-tensorboard", "--threads", "1",
            "--strategy", strategy]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "aegir", "pretrain", *args, "--out", str(tmp_path / "two")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (two_dir,) = list((tmp_path / "two" / "mixed-v2").iterdir())  # rank 0 alone made the run folder
    cfg_two = json.loads((two_dir / "config.json").read_text())
    assert cfg_two["world_size"] == 2

    one = one_process
    l1, l2 = _losses(one.run_dir), _losses(two_dir)
    assert sorted(l1) == sorted(l2) == list(range(STEPS))
    for s in range(STEPS):
        assert l2[s] == pytest.approx(l1[s], rel=1e-5), (s, l1, l2)
    # Gradients (after DDP's all-reduce / FSDP's reduce-scatter) equal the 1-process ones: Adam
    # would hide a scale error in the weights, the pre-clip gradient norm does not.
    g1, g2 = _losses(one.run_dir, "grad_norm"), _losses(two_dir, "grad_norm")
    r1, r2 = _losses(one.run_dir, "ratio_loss"), _losses(two_dir, "ratio_loss")
    for s in range(STEPS):
        assert g2[s] == pytest.approx(g1[s], rel=1e-4) and r2[s] == pytest.approx(r1[s], rel=1e-5)
    a = load_checkpoint(one.run_dir / "final.pt").model_state
    ck2 = load_checkpoint(two_dir / "final.pt")  # FSDP: gathered to full tensors before saving
    b = ck2.model_state
    assert sorted(a) == sorted(b)
    # Adam normalises each update, so float-rounding noise in near-zero gradients moves a weight
    # by a small fraction of lr (3e-3): compare weights to 20% of one step (1e-4..2e-4 measured).
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 0.2 * 3e-3, worst
    m1 = load_checkpoint(one.run_dir / "final.pt").metrics["heldout_bpb"]["mixed"]
    assert ck2.metrics["heldout_bpb"]["mixed"] == pytest.approx(m1, rel=1e-5)
