"""Peak memory of one training step (fwd+bwd, B=8, T=1024) with the blocks' fused CPU ops vs eager
PyTorch elementwise ops: each (preset, path) runs in a fresh child process and reports its peak
resident set size (`ru_maxrss`), so one measurement cannot inherit another's heap.

    python benchmarks/block_memory.py               # writes docs/results/block_memory.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from result_files import result_file  # benchmarks/ is the script's own folder, first on sys.path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import resource, sys
sys.path.insert(0, {bench!r}); sys.path.insert(0, {src!r})
import torch
torch.set_num_threads({threads})
from aegir.runtime import tune_cpu_allocator
tune_cpu_allocator()
import backbone as bb
from aegir.config import ModelConfig
from aegir.model import AegirModel
torch.manual_seed(0)
model = AegirModel(ModelConfig.preset({preset!r}))
ids, mask = bb.text_batch({B}, {T})
for _ in range(2):
    bb.lm_train_step(model, ids, mask)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
"""


def peak_gb(preset: str, fused: bool, B: int, T: int, threads: int) -> float:
    code = CHILD.format(bench=str(ROOT / "benchmarks"), src=str(ROOT / "src"), threads=threads, preset=preset, B=B, T=T)
    env = {**os.environ, "AEGIR_FUSED_TMIX": "1" if fused else "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) * 1024 / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="nano,tiny,small")
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--T", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "docs/results/block_memory"))
    args = ap.parse_args()
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "B": args.B, "T": args.T, "rows": []}
    for preset in args.models.split(","):
        row = {"preset": preset, **{k: peak_gb(preset, k == "fused_gb", args.B, args.T, args.threads)
                                    for k in ("eager_gb", "fused_gb")}}
        res["rows"].append(row)
        print(row, flush=True)
    out = Path(args.out)
    result_file(out, ".json").write_text(json.dumps(res, indent=1))
    L = ["# Peak memory of a training step: fused block ops vs eager (CPU)", "",
         f"Written by `benchmarks/block_memory.py` on {res['date']}: peak RSS of a fresh process that builds the model "
         f"and runs two LM training steps (fwd+bwd, no optimizer), B={args.B}, T={args.T}, fp32 "
         "(`AEGIR_FUSED_TMIX=0` for the eager side). Includes the Python/torch runtime (~0.3-0.4 GB).", "",
         "| preset | eager | fused | saved |", "|---|---|---|---|"]
    L += [f"| {r['preset']} | {r['eager_gb']:.2f} GB | {r['fused_gb']:.2f} GB | {1 - r['fused_gb'] / r['eager_gb']:.0%} |"
          for r in res["rows"]]
    result_file(out, ".md").write_text("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
