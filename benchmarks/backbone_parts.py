"""Old vs new forms of backbone parts, timed alternately in one process (this VM's speed
drifts over minutes, so only interleaved comparisons mean much):

1. the chunked WKV's unit-lower-triangular system: `solve_triangular` vs `wkv.unit_lower_inverse` + matmul;
2. the tied 65,536-row table: one nn.Embedding (lookup + head slice, AdamW over every row) vs
   `TiedByteEmbedding` (live rows trainable, reserved rows frozen);
3. the dechunk EMA: the dense (Tc x Tc) weight matrix vs `hnet.ema_blocked`;
4. an RWKV-7 time-mix and channel-mix at tiny's stage-0 shapes: eager PyTorch elementwise ops vs the
   fused CPU ops (`aegir.kernels.tmix_cpu`), both with the compiled WKV kernel.

    python benchmarks/backbone_parts.py            # writes docs/results/backbone_parts.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from result_files import result_file  # benchmarks/ is the script's own folder, first on sys.path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aegir.encoding.vocab import N_ACTIVE  # noqa: E402
from aegir.model.embedding import TiedByteEmbedding  # noqa: E402
from aegir.model.hnet import ema_blocked, ema_weights  # noqa: E402
from aegir.model.wkv import unit_lower_inverse  # noqa: E402
from aegir.model.rwkv7 import RWKV7ChannelMix, RWKV7TimeMix  # noqa: E402


def alternate(fns: dict, reps: int) -> dict:
    """min seconds per name, calling the functions in turn (after one warm-up each)."""
    for f in fns.values():
        f()
    best = {k: float("inf") for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def wkv_system(reps: int) -> dict:
    # tiny, stage 0, B=8, T=1024: B*H*n = 8*2*16 chunk systems of size 64 with V+K = 128 right-hand sides
    g = torch.Generator().manual_seed(0)
    N = (torch.rand(256, 64, 64, generator=g) * 2 - 1).tril(-1) * 0.5
    rhs = torch.randn(256, 64, 128, generator=g)
    eye = torch.eye(64)

    def run(solve):
        def step():
            n, r = N.clone().requires_grad_(), rhs.clone().requires_grad_()
            x = solve(n, r)
            x.square().sum().backward()
        return step

    return alternate({
        "solve_triangular": run(lambda n, r: torch.linalg.solve_triangular(eye - n, r, upper=False, unitriangular=True)),
        "block inverse + matmul": run(lambda n, r: unit_lower_inverse(n) @ r),
    }, reps)


def embedding(reps: int) -> dict:
    # tiny's d0 = 128; one (8, 1024) batch of byte ids; lookup, tied head over the live ids, AdamW step
    D = 128
    ids = torch.randint(0, 256, (8, 1024), generator=torch.Generator().manual_seed(0))
    full = torch.nn.Embedding(65536, D)
    split = TiedByteEmbedding(65536, N_ACTIVE, D)
    opts = {"full": torch.optim.AdamW(full.parameters(), lr=1e-3),
            "split": torch.optim.AdamW([p for p in split.parameters() if p.requires_grad], lr=1e-3)}

    def step(x, table_for_head, opt):
        opt.zero_grad(set_to_none=True)
        h = x  # (B, T, D)
        logits = h @ table_for_head().t()  # (B, T, n_active)
        F.cross_entropy(logits.view(-1, N_ACTIVE), ids.view(-1)).backward()
        opt.step()

    return alternate({
        "one 65,536-row parameter": lambda: step(full(ids), lambda: full.weight[:N_ACTIVE], opts["full"]),
        "live + frozen reserved rows": lambda: step(split(ids), lambda: split.live, opts["split"]),
    }, reps)


def dechunk(reps: int, Tc: int) -> dict:
    g = torch.Generator().manual_seed(Tc)
    B, D = 8, 128
    P = torch.rand(B, Tc, generator=g).clamp(1e-4, 1 - 1e-4)
    z = torch.randn(B, Tc, D, generator=g)

    def run(ema):
        def step():
            p, x = P.clone().requires_grad_(), z.clone().requires_grad_()
            ema(p, x).square().sum().backward()
        return step

    return alternate({"dense (Tc x Tc)": run(lambda p, x: ema_weights(p) @ x),
                      "blocked (64)": run(ema_blocked)}, reps)


def block_part(reps: int, part: str) -> dict:
    """fwd+bwd of one stage-0 module of tiny (B=8, T=1024, C=128, heads of 64, a layer after the
    first so the value residual runs), weights moved off their zero init, eager vs fused."""
    from aegir.config import ModelConfig
    from aegir.kernels import tmix_cpu

    cfg = ModelConfig.preset("tiny")
    C, g = cfg.d_model[0], torch.Generator().manual_seed(0)
    mod = (RWKV7TimeMix(C, cfg.head_size, 1, 4, cfg.lora_dims(C), wkv_impl="kernel") if part == "time-mix"
           else RWKV7ChannelMix(C, 1, 4, cfg.ffn_mult, wkv_impl="kernel"))
    with torch.no_grad():
        for p in mod.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    x = torch.randn(8, 1024, C, generator=g, requires_grad=True)
    v_first = torch.randn(8, 1024, C, generator=g)

    def run(fused):
        def step():
            with tmix_cpu.fused_time_mix(fused):
                out = mod(x, v_first, None)[0] if part == "time-mix" else mod(x)
                out.square().sum().backward()
        return step

    return alternate({"eager elementwise ops": run(False), "fused CPU ops": run(True)}, reps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "docs/results/backbone_parts"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from aegir.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "torch": torch.__version__,
           "threads": args.threads, "reps": args.reps, "load_before": [round(x, 2) for x in os.getloadavg()],
           "rows": []}
    parts = [("WKV chunk system (256 x 64x64, 128 rhs), fwd+bwd", lambda: wkv_system(args.reps)),
             ("tied table (8 x 1024 ids, d=128): lookup + head, fwd+bwd + AdamW", lambda: embedding(args.reps)),
             ("dechunk EMA, B=8, Tc=512, D=128, fwd+bwd", lambda: dechunk(args.reps, 512)),
             ("dechunk EMA, B=8, Tc=4096, D=128, fwd+bwd", lambda: dechunk(max(2, args.reps // 2), 4096)),
             ("RWKV-7 time-mix, tiny stage 0 (8 x 1024 x 128), fwd+bwd", lambda: block_part(args.reps, "time-mix")),
             ("RWKV-7 channel-mix, tiny stage 0 (8 x 1024 x 128), fwd+bwd", lambda: block_part(args.reps, "channel-mix"))]
    for name, fn in parts:
        print(name, "...", flush=True)
        t = fn()
        (old, t_old), (new, t_new) = t.items()
        res["rows"].append({"part": name, "old": old, "old_ms": t_old * 1e3, "new": new, "new_ms": t_new * 1e3,
                            "speedup": t_old / t_new})
        print(res["rows"][-1], flush=True)
    res["load_after"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    result_file(out, ".json").write_text(json.dumps(res, indent=1))
    L = ["# Backbone parts: old vs new form (CPU)", "",
         f"Written by `benchmarks/backbone_parts.py` on {res['date']}; torch {res['torch']}, {res['threads']} threads, "
         f"min over {res['reps']} alternating repetitions (old, new, old, new, ...). Load average before/after: "
         f"{res['load_before']} / {res['load_after']}.", "",
         "| part | old | ms | new | ms | speedup |", "|---|---|---|---|---|---|"]
    L += [f"| {r['part']} | {r['old']} | {r['old_ms']:.1f} | {r['new']} | {r['new_ms']:.1f} | **{r['speedup']:.1f}x** |"
          for r in res["rows"]]
    L += ["", "The dense dechunk builds a (B, Tc, Tc) weight matrix (at Tc = 4,096: 8 x 4,096^2 floats = 0.5 GB, "
          "plus its cumsum/exp temporaries and their gradients); the blocked one never holds more than (B, Tc, 64).",
          "", "The block rows time the module alone (projections, LoRAs and the WKV kernel included on both sides); "
          "the fused side is the default wherever the WKV kernel builds (`AEGIR_FUSED_TMIX=0` turns it off)."]
    result_file(out, ".md").write_text("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
