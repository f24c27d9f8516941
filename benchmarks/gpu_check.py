"""The backbone's CUDA paths, checked in one run on a lent GPU: WKV equivalence and training speed.

Why: the CUDA code (bf16 autocast with fp32 islands, the chunked WKV on CUDA, the opt-in fla Triton
kernel) is written and guarded but no GPU was lent while it was written; a lent machine comes with a
few minutes of device time, so everything it should establish runs from this one script:

1. environment: torch / CUDA / device, and whether fla imports (and why not);
2. WKV equivalence on the device, against the naive recurrence in float64 on the same device
   (outputs, every input gradient and the final state; ragged padding): the chunked form in fp32,
   and fla's `chunk_rwkv7` in fp32 when fla imports. Relative errors with a pass/fail bound each;
3. the same model (nano, tiny) in fp32 on the CPU and on the device: loss and every parameter gradient;
4. training steps of the presets (LM loss + ratio loss, fwd+bwd, no optimizer) under bf16 autocast
   with each available WKV path: step time, bytes/s, peak memory, and the loss (fla and chunked must
   agree closely: the same model, weights and batch);
5. packed vs padded stacks (aegir.model.packing, measured on the CPU only so far) on a batch of
   ragged rows: step times, alternating (the packed path's correctness on the device is part of 3,
   whose batch is ragged).

Runs on CPU too (`--device cpu`, the smoke test does), where it checks the chunked form and the CPU
kernel instead. Writes STEM.md and STEM.json (`--out`; default docs/results/gpu_check).

On the device tool (benchmarks/README.md has the wheel preparation): carry `.whl` holding fla-core
and einops, then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \
    PYTHONPATH=/tmp/site:src python3 benchmarks/gpu_check.py --out $OUT/gpu_check
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from aegir.config import ModelConfig  # noqa: E402
from aegir.model import AegirModel  # noqa: E402
from aegir.model.rwkv7 import LOG_W_SCALE  # noqa: E402
from aegir.model.wkv import fla_available, wkv  # noqa: E402
from backbone import alternate, lm_train_step, packing, text_batch  # noqa: E402  (benchmarks/ is on sys.path: the script's folder)
from result_files import result_file  # noqa: E402

# Bounds on the relative error (Frobenius norm of the difference / norm of the reference) against the
# float64 naive recurrence. fp32 chunked: its decay factors are exact-ish; 1e-4 leaves room for T=1024.
# fla in fp32: Triton's tl.dot may run in tf32 on Hopper, so a looser bound, still far below what a
# wrong convention (layout, sign of a, scale, state transpose) produces: errors of order 1.
BOUNDS = {"chunked": 1e-4, "kernel": 1e-4, "fla": 2e-2}


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x.double() - ref.double()).norm() / ref.double().norm().clamp(min=1e-30))


def wkv_inputs(B: int, T: int, H: int, N: int, device: str, seed: int = 0) -> list[torch.Tensor]:
    """(r, log w, k, v, a, b) float64 (B, T, H, N), as the time-mix makes them: bounded decay, a
    normalised removal key a = -kk and b = kk * iclr."""
    g = torch.Generator().manual_seed(seed)
    r, k, v = (torch.randn(B, T, H, N, generator=g, dtype=torch.float64) for _ in range(3))
    log_w = LOG_W_SCALE * torch.rand(B, T, H, N, generator=g, dtype=torch.float64)
    kk = torch.nn.functional.normalize(torch.randn(B, T, H, N, generator=g, dtype=torch.float64), dim=-1)
    iclr = torch.rand(B, T, H, N, generator=g, dtype=torch.float64)
    return [t.to(device) for t in (r, log_w, k * 0.5, v, -kk, kk * iclr)]


def wkv_case(impl: str, B: int, T: int, H: int, N: int, device: str, padded: bool) -> dict:
    """Relative errors of `impl` (fp32) against the naive recurrence (float64), same device."""
    base = wkv_inputs(B, T, H, N, device, seed=B * T + H)
    mask = None
    if padded:  # row b keeps its first T - 7b positions: ragged lengths, right padding
        mask = torch.arange(T, device=device)[None, :] < (T - 7 * torch.arange(B, device=device))[:, None]  # (B, T)
    g_out = torch.randn(B, T, H, N, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(device)
    g_state = torch.randn(B, H, N, N, generator=torch.Generator().manual_seed(2), dtype=torch.float64).to(device)

    def run(dtype: torch.dtype, which: str):
        xs = [t.detach().to(dtype).clone().requires_grad_() for t in base]  # fresh leaves
        o, state = wkv(*xs, mask=mask, impl=which, return_state=True)  # (B, T, H, V), (B, H, K, V)
        if mask is not None:
            o = o * mask[:, :, None, None]  # padded outputs are unspecified: compare valid positions
        ((o * g_out.to(dtype)).sum() + (state * g_state.to(dtype)).sum()).backward()
        return o.detach(), state.detach(), [x.grad for x in xs]

    o_ref, s_ref, g_ref = run(torch.float64, "naive")
    t0 = time.perf_counter()
    o, s, grads = run(torch.float32, impl)
    if device == "cuda":
        torch.cuda.synchronize()
    names = ("r", "log_w", "k", "v", "a", "b")
    errs = {"out": rel_err(o, o_ref), "state": rel_err(s, s_ref),
            **{f"d_{n}": rel_err(g, gr) for n, g, gr in zip(names, grads, g_ref)}}
    worst = max(errs.values())
    return {"impl": impl, "B": B, "T": T, "H": H, "N": N, "padded": padded, "errors": errs, "worst": worst,
            "bound": BOUNDS[impl], "passed": worst <= BOUNDS[impl], "seconds": time.perf_counter() - t0}


def step_case(preset: str, impl: str, B: int, T: int, device: str, reps: int, bf16: bool) -> dict:
    """Training steps of `preset` with WKV path `impl`: min step time, bytes/s, peak memory, loss."""
    torch.manual_seed(0)
    cfg = ModelConfig.preset(preset, wkv_impl=impl, cpu_bf16=bf16 and device == "cpu")
    model = AegirModel(cfg).to(device)
    ids, mask = (t.to(device) for t in text_batch(B, T))  # real text bytes, as backbone.py times

    def step() -> float:
        return float(lm_train_step(model, ids, mask).loss.detach())

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    loss = step()  # warm-up: Triton compiles, allocator caches
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return {"preset": preset, "impl": impl, "B": B, "T": T, "bf16": bf16 or device == "cuda", "loss": loss,
            "step_s": min(times), "train_bytes_per_s": B * T / min(times), "peak_gib": peak, "reps": reps}


def packing_case(preset: str, impl: str, B: int, T: int, device: str, reps: int) -> dict:
    """Training steps (bf16 autocast on CUDA) of `preset` on ragged rows (row b keeps a seeded share of
    T between a quarter and all of it; right padding) with its stacks packing the batch and running it
    padded, alternating."""
    torch.manual_seed(0)
    cfg = ModelConfig.preset(preset, wkv_impl=impl, cpu_bf16=device == "cpu")
    model = AegirModel(cfg).to(device)
    ids, _ = text_batch(B, T)
    keep = (T * (0.25 + 0.75 * torch.rand(B, generator=torch.Generator().manual_seed(1)))).long().clamp(min=2)
    mask = torch.arange(T)[None, :] < keep[:, None]  # (B, T)
    ids, mask = ids.to(device), mask.to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step() -> None:
        lm_train_step(model, ids, mask)
        sync()

    t = alternate(step, {"packed": lambda: packing(model, True), "padded": lambda: packing(model, False)}, reps)
    return {"preset": preset, "impl": impl, "B": B, "T": T, "padding": 1 - float(mask.sum()) / mask.numel(),
            "packed_s": min(t["packed"]), "padded_s": min(t["padded"]), "speedup": min(t["padded"]) / min(t["packed"])}


def cross_device_case(preset: str, device: str, B: int = 2, T: int = 256) -> dict:
    """The same model, weights and batch in fp32 on the CPU (its default WKV path) and on `device` (the
    chunked form): LM loss and every parameter gradient must agree to fp32 rounding. Catches model
    code that only breaks off the CPU (a mask or index on the wrong device, a dtype island lost)."""
    torch.manual_seed(0)
    ref = AegirModel(ModelConfig.preset(preset))
    dev = AegirModel(ModelConfig.preset(preset, wkv_impl="chunked")).to(device)
    dev.load_state_dict(ref.state_dict())
    ids, mask = text_batch(B, T)
    mask[1, T // 2:] = False  # ragged: the second row is half padding

    def run(model, where: str):
        model.zero_grad(set_to_none=True)
        out = model.lm_loss(ids.to(where), mask.to(where))
        (out.loss + out.ratio_loss).backward()
        return float(out.loss.detach()), {n: p.grad.detach().cpu() for n, p in model.named_parameters()
                                           if p.grad is not None}

    l_ref, g_ref = run(ref, "cpu")
    l_dev, g_dev = run(dev, device)
    worst = max(rel_err(g_dev[n], g_ref[n]) for n in g_ref if g_ref[n].norm() > 0)
    return {"preset": preset, "device": device, "loss_cpu": l_ref, "loss_device": l_dev,
            "loss_rel_err": abs(l_dev - l_ref) / abs(l_ref), "worst_grad_rel_err": worst,
            "same_params": set(g_ref) == set(g_dev), "passed": set(g_ref) == set(g_dev) and worst <= 1e-3
            and abs(l_dev - l_ref) <= 1e-4 * abs(l_ref)}


def environment(device: str) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "device": device,
           "cuda": torch.version.cuda, "fla": fla_available()}
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count)
    if not env["fla"]:
        try:
            import fla.ops.rwkv7  # noqa: F401
        except Exception as e:  # the reason, for the report
            env["fla_error"] = f"{type(e).__name__}: {e}"[:300]
    else:
        import fla

        env["fla_version"] = getattr(fla, "__version__", "?")
    return env


def write(res: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    result_file(out, ".json").write_text(json.dumps(res, indent=1))
    e = res["env"]
    L = ["# CUDA paths of the backbone (gpu_check)", "",
         f"Written by `benchmarks/gpu_check.py` on {res['date']}. torch {e['torch']} (CUDA {e['cuda']}), device "
         f"{e.get('gpu', e['device'])}; fla: {e.get('fla_version', e.get('fla_error', 'no'))}.", "",
         "## WKV against the float64 naive recurrence (same device)", "",
         "| path | B | T | H | N | padded | out | state | worst input grad | bound | passed |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in res["wkv"]:
        er = c["errors"]
        worst_grad = max(v for k, v in er.items() if k.startswith("d_"))
        L.append(f"| {c['impl']} | {c['B']} | {c['T']} | {c['H']} | {c['N']} | {c['padded']} | {er['out']:.1e} | "
                 f"{er['state']:.1e} | {worst_grad:.1e} | {c['bound']:.0e} | {'yes' if c['passed'] else '**NO**'} |")
    L += ["", "## The same model on the CPU and on the device (fp32, same weights and batch, ragged padding)", "",
          "| preset | device | loss (CPU) | loss (device) | loss rel. err | worst grad rel. err | passed |",
          "|---|---|---|---|---|---|---|"]
    for c in res["cross_device"]:
        L.append(f"| {c['preset']} | {c['device']} | {c['loss_cpu']:.5f} | {c['loss_device']:.5f} | "
                 f"{c['loss_rel_err']:.1e} | {c['worst_grad_rel_err']:.1e} | {'yes' if c['passed'] else '**NO**'} |")
    L += ["", "## Training steps (LM loss + ratio loss, fwd+bwd, no optimizer)", "",
          "| preset | WKV path | B x T | bf16 autocast | step | train bytes/s | peak GiB | loss |", "|---|---|---|---|---|---|---|---|"]
    for s in res["steps"]:
        peak = "" if s["peak_gib"] is None else f"{s['peak_gib']:.1f}"
        L.append(f"| {s['preset']} | {s['impl']} | {s['B']} x {s['T']} | {s['bf16']} | {1e3 * s['step_s']:.1f} ms | "
                 f"{s['train_bytes_per_s']:,.0f} | {peak} | {s['loss']:.4f} |")
    if res.get("packing"):
        L += ["", "## Packed vs padded stacks (ragged rows, fwd+bwd, alternating)", "",
              "| preset | WKV path | B x T | padding | padded step | packed step | speedup |",
              "|---|---|---|---|---|---|---|"]
        for c in res["packing"]:
            L.append(f"| {c['preset']} | {c['impl']} | {c['B']} x {c['T']} | {100 * c['padding']:.0f}% | "
                     f"{1e3 * c['padded_s']:.1f} ms | {1e3 * c['packed_s']:.1f} ms | **{c['speedup']:.2f}x** |")
    L += ["", f"All checks passed: **{res['all_passed']}**."]
    result_file(out, ".md").write_text("\n".join(L) + "\n")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--presets", default="tiny,small", help="presets timed (comma-separated)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="small shapes (smoke test)")
    ap.add_argument("--out", default=str(ROOT / "docs/results/gpu_check"))
    args = ap.parse_args(argv)
    dev = args.device
    impls = ["chunked"] + (["fla"] if dev == "cuda" and fla_available() else []) + (["kernel"] if dev == "cpu" else [])
    shapes = [(2, 100, 2, 16, True)] if args.quick else [(2, 100, 2, 16, True), (4, 1024, 2, 64, False),
                                                          (4, 1000, 4, 64, True)]
    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "env": environment(dev), "wkv": [],
                 "steps": []}
    print(res["env"], flush=True)
    for impl in impls:
        for B, T, H, N, padded in shapes:
            res["wkv"].append(wkv_case(impl, B, T, H, N, dev, padded))
            print({k: res["wkv"][-1][k] for k in ("impl", "T", "padded", "worst", "passed")}, flush=True)
    res["cross_device"] = [cross_device_case(p, dev, T=64 if args.quick else 256)
                           for p in (["nano"] if args.quick else ["nano", "tiny"])]
    print(res["cross_device"], flush=True)
    B, T = (2, 64) if args.quick else (args.batch, args.seq)
    presets = ["nano"] if args.quick else [p for p in args.presets.split(",") if p]
    for preset in presets:
        for impl in [i for i in impls if i != "naive"]:
            res["steps"].append(step_case(preset, impl, B, T, dev, 1 if args.quick else args.reps, bf16=True))
            print({k: res["steps"][-1][k] for k in ("preset", "impl", "step_s", "train_bytes_per_s", "loss")},
                  flush=True)
    res["packing"] = []
    for preset in presets:
        for impl in [i for i in impls if i != "naive"]:
            res["packing"].append(packing_case(preset, impl, B, T, dev, 1 if args.quick else args.reps))
            print({k: res["packing"][-1][k] for k in ("preset", "impl", "padding", "speedup")},
                  flush=True)
    res["all_passed"] = all(c["passed"] for c in res["wkv"] + res["cross_device"])
    write(res, Path(args.out))
    print(f"wrote {result_file(args.out, '.md')}", flush=True)
    return res


if __name__ == "__main__":
    main()
