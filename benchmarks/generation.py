"""Step-mode (recurrent) sampling speed on CPU: writes docs/results/generation.md and .json.

    .venv/bin/python benchmarks/generation.py            # nano and tiny, 2 threads, ~2 min
    .venv/bin/python benchmarks/generation.py --quick    # smoke run (writes to /tmp)

What `aegir generate` costs per byte, and what step mode saves. For each preset (random weights, fp32,
`torch.set_num_threads(2)`, min over repetitions):
- prefill: one parallel forward pass over a prompt of real text with `return_state=True`, bytes/s;
- step: `AegirModel.step` one byte at a time (LM logits scored, the text's next byte fed), at B=1 and
  B=8 (bytes/s summed over rows: how far batching amortises the per-step dispatch cost), with 1 and
  with 2 intra-op threads;
- `generate()` end to end (prefill + sampling with top-k), bytes/s;
- the alternative without a recurrent state: re-running the parallel forward over the whole
  sequence for every new byte, whose per-byte cost at the end of the run is one forward at that length.
Random weights: the speed of a step does not depend on what the weights learned, except through how
often the routers open chunks (an inner stage steps only on a chunk-opening byte); the routers'
boundary rates on the stepped bytes are reported next to the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from result_files import result_file  # benchmarks/ is the script's own folder, first on sys.path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as benchmarks/backbone.py: spinning workers on a shared CPU

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aegir.config import ModelConfig  # noqa: E402
from aegir.encoding.vocab import BOS  # noqa: E402
from aegir.generate import generate, step_threads  # noqa: E402
from aegir.model import AegirModel  # noqa: E402


def prompt_bytes(n: int) -> list[int]:
    """`n` bytes of real text (the repo's README, ASCII bytes only so that it survives a round trip
    through `str`), so the routers see natural input."""
    buf = bytes(b for b in (ROOT / "README.md").read_bytes() if b < 128)
    while len(buf) < n:
        buf += buf
    return list(buf[:n])


def best_of(fn, reps: int) -> float:
    """Min wall time of `reps` calls after one warm-up call."""
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


@torch.no_grad()
def bench_preset(name: str, prompt_len: int, steps: int, batch: int, reps: int, threads: int) -> dict:
    torch.manual_seed(0)
    model = AegirModel(ModelConfig.preset(name)).eval()
    prompt = torch.tensor([[BOS, *prompt_bytes(prompt_len - 1)]])  # (1, P)
    full = torch.tensor([[BOS, *prompt_bytes(prompt_len + steps - 1)]])  # (1, P + steps): prompt, then what follows
    res: dict = {"preset": name, "prompt_len": prompt_len, "steps": steps, "batch": batch, "step": []}

    prefill_s = best_of(lambda: model(prompt, return_state=True), reps)
    res["prefill_bytes_per_s"] = prompt_len / prefill_s

    def run_steps(B: int) -> tuple[list[list[bool]], float]:
        """Prefill B copies of the prompt, then `steps` steps that score the LM head and feed the
        text's next byte (teacher forcing: random weights would sample noise, or repeat one byte
        greedily, and the routers would see no natural text). Returns each step's row-0 boundary
        flags per router, to report how often the inner stages ran, and the seconds of the steps."""
        pre = model(prompt.expand(B, -1), return_state=True)
        state, hidden = pre.state, pre.hidden[:, -1]  # hidden: (B, D)
        opened: list[list[bool]] = []
        t = time.perf_counter()
        for i in range(steps):
            model.lm_logits(hidden)  # (B, n_active): scored as sampling would, then the true byte is fed
            out = model.step(full[0, prompt_len + i].expand(B), state)  # ids: (B,)
            state, hidden = out.state, out.hidden
            opened.append([bool(b[0]) for b in out.boundaries])
        return opened, time.perf_counter() - t

    for n in sorted({1, threads}):
        for B in sorted({1, batch}):
            with step_threads(torch.device("cpu"), n):
                step_s = min(run_steps(B)[1] for _ in range(reps + 1)) / steps  # the first run warms up, and counts
            res["step"].append({"threads": n, "B": B, "ms_per_step": 1e3 * step_s, "bytes_per_s": B / step_s})
    opened, _ = run_steps(1)
    res["boundary_rate"] = [sum(o[s] for o in opened) / steps for s in range(len(opened[0]))] if opened else []

    text = bytes(prompt_bytes(prompt_len - 1)).decode("ascii")
    runs = [generate(model, prompt=text, max_bytes=steps, temperature=0.8, top_k=40, seed=0)
            for _ in range(reps + 1)][1:]  # the first is a warm-up
    best = min(runs, key=lambda g: g.seconds)  # same seed: every run samples the same bytes
    res["generate_sampled"] = len(best.ids)  # fewer than `steps` if it sampled EOS
    res["generate_bytes_per_s"] = len(best.ids) / max(best.seconds - prefill_s, 1e-9)
    res["generate_total_s"] = best.seconds

    # Without a recurrent state, the next byte at length L costs one forward over L bytes.
    fwd_s = best_of(lambda: model.lm_logits(model(full).hidden[:, -1]), reps)
    res["recompute_ms_per_byte_at_end"] = 1e3 * fwd_s
    one = min((r for r in res["step"] if r["B"] == 1), key=lambda r: r["ms_per_step"])
    res["step_speedup_at_end"] = fwd_s / (one["ms_per_step"] / 1e3)
    return res


def write_results(res: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    result_file(out, ".json").write_text(json.dumps(res, indent=2) + "\n")
    L = res["prompt_len"] + res["steps"]
    lines = [
        "# Step-mode sampling speed (CPU)",
        "",
        f"Written by `benchmarks/generation.py` on {res['date']}. {res['machine']}; torch {res['torch']}, "
        f"{res['threads']} threads for the parallel passes, OMP_WAIT_POLICY={res['omp_wait_policy']}, fp32, "
        f"random weights, min over {res['reps']} repetitions. Prompt {res['prompt_len']} bytes of real text, "
        f"{res['steps']} bytes stepped or sampled. Load average before/after: {res['load_before']} / "
        f"{res['load_after']}.",
        "",
        f"| preset | prefill bytes/s | `generate()` bytes/s | recompute: ms per byte at {L} bytes "
        "| best step (B=1): ms per byte | step mode's speedup there | router boundary rate (stepped bytes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in res["models"]:
        rates = ", ".join(f"{r:.2f}" for r in m["boundary_rate"])
        one = min((r for r in m["step"] if r["B"] == 1), key=lambda r: r["ms_per_step"])
        lines.append(
            f"| {m['preset']} | {m['prefill_bytes_per_s']:,.0f} | {m['generate_bytes_per_s']:,.0f} "
            f"| {m['recompute_ms_per_byte_at_end']:.0f} | {one['ms_per_step']:.1f} "
            f"| {m['step_speedup_at_end']:.1f}x | {rates} |")
    lines += ["", "Step mode by intra-op threads and batch (rows stepped together):", "",
              "| preset | threads | B | ms per step | bytes/s (all rows) |", "|---|---|---|---|---|"]
    for m in res["models"]:
        for r in m["step"]:
            lines.append(f"| {m['preset']} | {r['threads']} | {r['B']} | {r['ms_per_step']:.1f} "
                         f"| {r['bytes_per_s']:,.0f} |")
    lines += [
        "",
        "- **Prefill** is the parallel forward pass (chunked WKV) that reads the prompt and returns the recurrent "
        "state; a **step** advances every row by one byte (`AegirModel.step`), LM logits included; step timings "
        "exclude the prefill.",
        "- **Recompute** is what sampling would cost without a recurrent state: one parallel forward over the "
        "whole sequence per new byte (the figure is that forward at the final length, so it grows with the "
        "text while a step's cost does not).",
        "- A step is about 1,300 small aten calls for nano, launched from Python: its cost is dispatch, not FLOPs. "
        "Intra-op threads do not pay at that size, and with passive OpenMP waiting every parallel region wakes "
        "sleeping workers, so `generate()` steps with one thread (`aegir.generate.step_threads`) and keeps the "
        "caller's threads for the prefill.",
        "- `generate()` adds sampling (top-k, softmax, one draw) and the boundary bookkeeping per byte; it samples "
        "from random weights here, so its bytes (and how often its routers open chunks, hence how often the "
        "inner stages step) differ from the teacher-forced text of the step rows.",
        "",
    ]
    result_file(out, ".md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="nano only, short prompt, writes to /tmp (smoke test)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models", default="nano,tiny")
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", default=None, help="output path without suffix (default docs/results/generation)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.models, args.prompt_len, args.steps, args.reps = "nano", 64, 16, 1
    out = Path(args.out) if args.out else (Path("/tmp/generation_quick") if args.quick else ROOT / "docs/results/generation")
    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "torch": torch.__version__,
                 "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs",
                 "threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "reps": args.reps, "prompt_len": args.prompt_len, "steps": args.steps,
                 "batch": args.batch, "load_before": [round(x, 2) for x in os.getloadavg()], "models": []}
    for name in args.models.split(","):
        print(f"{name} ...", flush=True)
        res["models"].append(bench_preset(name, args.prompt_len, args.steps, args.batch, args.reps, args.threads))
        print(res["models"][-1], flush=True)
    res["load_after"] = [round(x, 2) for x in os.getloadavg()]
    write_results(res, out)
    print(f"wrote {result_file(out, '.md')} and .json")


if __name__ == "__main__":
    main()
