"""`torchrun --nproc-per-node 2 -m aegir train` (gloo, CPU) follows the same loss curve as one process."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from aegir.train.finetune import FinetuneConfig, finetune

STEPS, B = 3, 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(run_dir):
    recs = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: (r["loss"], r["ratio_loss"], r.get("distill_kl")) for r in recs if "loss" in r}


@pytest.mark.parametrize("distill", [False, True], ids=["plain", "distill"])
def test_two_process_gloo_finetune_matches_one_process(custom_data, tmp_path, distill, request):
    # With a teacher (and unlabelled columns), each rank computes the targets itself and rank 0
    # caches them; the distillation term is summed over the global batch like the task loss.
    teacher = str(request.getfixturevalue("trained").final_checkpoint) if distill else None
    over = {"teachers": (teacher,), "distill_unlabeled": True} if distill else {}
    flags = ["--teacher", teacher, "--distill-unlabeled"] if distill else []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = finetune(FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", epochs=1,
                                      max_steps=STEPS, batch_size=B, lr=3e-3, warmup_steps=1, max_bytes=48,
                                      progress=False, out=str(tmp_path / "one"), **over))
    finally:
        torch.set_num_threads(threads)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "aegir", "train", "--task", "custom", "--data", str(custom_data),
           "--model-size", "nano", "--epochs", "1", "--max-steps", str(STEPS), "--batch-size", str(B), "--lr", "3e-3",
           "--warmup-steps", "1", "--max-bytes", "48", "--out", str(tmp_path / "two"), *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (two_dir,) = list((tmp_path / "two" / "custom").iterdir())  # rank 0 alone made the run folder
    l1, l2 = _losses(one.run_dir), _losses(two_dir)
    assert sorted(l1) == sorted(l2) == list(range(1, STEPS + 1))
    for s in l1:  # task loss and the (global) ratio loss agree step by step, so the updates did too
        assert l2[s][0] == pytest.approx(l1[s][0], rel=1e-5), (s, l1, l2)
        assert l2[s][1] == pytest.approx(l1[s][1], rel=1e-5), (s, l1, l2)
        assert (l1[s][2] is None) == (l2[s][2] is None) == (not distill), (s, l1, l2)
        if distill:
            assert l2[s][2] == pytest.approx(l1[s][2], rel=1e-5), (s, l1, l2)
