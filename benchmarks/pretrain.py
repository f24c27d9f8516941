"""Pretraining benchmark: writes docs/results/pretrain.md and docs/results/pretrain.json.

    .venv/bin/python benchmarks/pretrain.py                   # nano + tiny, 3 min each model (~13 min)
    .venv/bin/python benchmarks/pretrain.py --quick           # smoke run (seconds, writes to /tmp)

For each size, the Aegir model and a plain byte-level Transformer with about the same number of
usable parameters (benchmarks/transformer_baseline.py) are trained by the same loop
(`aegir.train.pretrain.pretrain`) on the same embedded mixed-v2 batches, with the same optimizer,
schedule and wall-clock budget. Reported: held-out bits per byte (per corpus kind and mixed)
before and after, steps reached, and training bytes/s (optimizer step included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared cores: spinning OpenMP threads stall

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from transformer_baseline import ByteTransformer, matched_config, n_params  # noqa: E402

from aegir.checkpoint import git_commit  # noqa: E402
from aegir.config import ModelConfig  # noqa: E402
from aegir.encoding.corpus import build_corpus, corpus_summary  # noqa: E402
from aegir.train.pretrain import PretrainConfig, pretrain  # noqa: E402


def usable_params(cfg: ModelConfig) -> tuple[int, int]:
    """(all parameters, parameters minus embedding rows no input can index)."""
    from aegir.model import AegirModel

    with torch.device("meta"):
        m = AegirModel(cfg)
    total = sum(p.numel() for p in m.parameters())
    return total, total - (cfg.vocab_size - cfg.n_active) * cfg.d_model[0]


def health_warnings(run_dir: Path) -> list[str]:
    """Chunker-health warnings the run logged (metrics.jsonl `warnings` fields)."""
    out = []
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        out += json.loads(line).get("warnings", [])
    return out


def run_pair(size: str, args: argparse.Namespace) -> list[dict]:
    mcfg = ModelConfig.preset(size)
    total, usable = usable_params(mcfg)
    tcfg = matched_config(usable, args.seq_len)
    base = dict(
        model_size=size, steps=10**7, hours=args.minutes / 60.0, batch_size=args.batch_size, seq_len=args.seq_len,
        lr=args.lr, warmup_steps=args.warmup_steps, eval_every=10**9, ckpt_every=10**9,
        eval_windows=args.eval_windows, out=str(args.out), progress=not args.no_progress, tensorboard=False,
        threads=args.threads, seed=args.seed,
    )
    rows = []
    for name, kwargs in (
        (f"aegir-{size}", dict(run_name=f"pretrain-bench-{size}")),
        (f"transformer~{size}", dict(run_name=f"pretrain-bench-{size}-transformer")),
    ):
        load = os.getloadavg()[0]
        cfg = PretrainConfig(**base, **kwargs)
        if name.startswith("aegir"):
            res = pretrain(cfg)
            params = {"total": total, "usable": usable}
            arch = f"H-Net {mcfg.arch_layout}, d={mcfg.d_model}"
        else:
            res = pretrain(cfg, model_factory=lambda c: ByteTransformer(tcfg), kind="baseline")
            params = {"total": n_params(tcfg), "usable": n_params(tcfg)}
            arch = f"Transformer L={tcfg.n_layers}, d={tcfg.d_model}, heads={tcfg.n_heads}"
        rows.append({
            "model": name, "arch": arch, "params": params, "steps": res.steps_done, "wall_s": round(res.wall_s, 1),
            "train_bytes_per_s": round(res.train_bytes_per_s, 1), "initial_bpb": res.initial_bpb,
            "final_bpb": res.final_bpb, "run_dir": str(res.run_dir), "load_avg_before": round(load, 2),
            "load_avg_after": round(os.getloadavg()[0], 2), "health_warnings": health_warnings(res.run_dir),
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def write_markdown(res: dict, path: Path) -> None:
    a = res["args"]
    kinds = ["mixed", "text", "ddl", "tables"]
    lines = [
        "# Pretraining benchmark (CPU)",
        "",
        f"Written by `benchmarks/pretrain.py` on {res['date']} (git {res['git_commit']}), {res['machine']}, "
        f"torch {res['torch']}, {a['threads']} threads, fp32.",
        "",
        f"Each model trains for a fixed wall-clock budget of **{a['minutes']:g} min** on the embedded mixed-v2 "
        f"corpus (global batch {a['batch_size']} x {a['seq_len']} bytes, AdamW lr {a['lr']:g}, {a['warmup_steps']} warmup "
        f"steps, cosine on elapsed time, clip 1.0, wd 1e-4 on matrices), through the same loop and the same "
        f"batches. Held-out bits per byte: {a['eval_windows']} fixed held-out windows per corpus kind; every "
        f"predicted id counts (bytes plus the few BOS/EOS/CLS/SEP/... specials); \"mixed\" weights kinds by the "
        f"mixture (text 0.4, DDL 0.2, tables 0.4). Bytes/s = trained ids per second of step time "
        f"(forward, backward, optimizer).",
        "",
        f"Corpus: {res['corpus']}",
        "",
        "| model | architecture | params (usable / total) | steps | train bytes/s | "
        + " | ".join(f"bpb {k} (start → end)" for k in kinds) + " |",
        "|---|---|---|---|---|" + "---|" * len(kinds),
    ]
    for r in res["rows"]:
        p = r["params"]
        cells = [f"{r['initial_bpb'][k]:.3f} → **{r['final_bpb'][k]:.3f}**" for k in kinds]
        lines.append(f"| {r['model']} | {r['arch']} | {p['usable'] / 1e6:.2f}M / {p['total'] / 1e6:.2f}M | "
                     f"{r['steps']} | {r['train_bytes_per_s']:,.0f} | " + " | ".join(cells) + " |")
    loads = [f"{r['model']}: {r['load_avg_before']} → {r['load_avg_after']}" for r in res["rows"]]
    lines += [
        "",
        "## Reading the numbers",
        "",
        "- Usable parameters exclude the embedding rows of Aegir's 65,536-id table that no byte or special "
        "can index (the table is kept for the checkpoint contract; only 268 rows are live). The Transformer "
        "baseline is sized to the usable count (closest depth/width with head size 32).",
        "- This is a very small budget: both models are still in the fast early phase, and the ordering can "
        "change with longer training. Treat it as a smoke-level comparison, not a conclusion about the architecture.",
        (f"- **The {os.cpu_count()} CPU cores were shared with other work while this ran** (1-minute load average "
         "before → after each run: " + "; ".join(loads) + "), so bytes/s are lower and noisier than on an idle "
         "machine; both models of a size ran back to back under similar load.")
        if max(max(r["load_avg_before"], r["load_avg_after"]) for r in res["rows"]) > 1.2 * a["threads"]
        else "- The machine was otherwise idle (1-minute load average before → after each run: " + "; ".join(loads) + ").",
        "- Same optimizer for both, but Aegir's parameters carry its per-stage lr multipliers "
        "(`ModelConfig.lr_multipliers`, e.g. 2.0 / 1.5 / 1.0 outer to inner) on top of the shared peak lr; the "
        "baseline's are 1.0. Aegir's bytes/s also pay for AdamW over its whole 65,536-row embedding "
        "(dead rows included) every step.",
    ]
    warn = [f"{r['model']}: " + "; ".join(r.get("health_warnings", [])) for r in res["rows"] if r.get("health_warnings")]
    lines += (["- Chunker-health warnings logged during these runs (routers drifting to a degenerate state "
               "early in training, then recovering): " + " / ".join(warn)] if warn else
              ["- No chunker-health warnings were logged (no router drifted to all- or no-boundary)."])
    lines += [
        "",
        f"Raw numbers: `docs/results/pretrain.json`. Reproduce: `.venv/bin/python benchmarks/pretrain.py --minutes {a['minutes']:g}`.",
    ]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["nano", "tiny"])
    ap.add_argument("--minutes", type=float, default=3.0, help="wall-clock budget per model")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup-steps", type=int, default=20)
    ap.add_argument("--eval-windows", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "outputs")
    ap.add_argument("--results", type=Path, default=ROOT / "docs" / "results")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--quick", action="store_true", help="seconds-long smoke run; writes to /tmp")
    ap.add_argument("--render-only", action="store_true", help="rewrite pretrain.md from pretrain.json")
    args = ap.parse_args()
    if args.render_only:
        res = json.loads((args.results / "pretrain.json").read_text())
        for r in res["rows"]:
            if "health_warnings" not in r and Path(r["run_dir"]).is_dir():
                r["health_warnings"] = health_warnings(Path(r["run_dir"]))
        (args.results / "pretrain.json").write_text(json.dumps(res, indent=2))
        write_markdown(res, args.results / "pretrain.md")
        return
    if args.quick:
        args.sizes, args.minutes, args.seq_len, args.eval_windows = ["nano"], 0.15, 64, 4
        args.out, args.results = Path("/tmp/aegir-bench-out"), Path("/tmp/aegir-bench-results")
    args.results.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    from aegir.runtime import tune_cpu_allocator

    tune_cpu_allocator()  # as the aegir CLI does
    t = time.time()
    corpus = build_corpus(PretrainConfig(seq_len=args.seq_len, seed=args.seed).corpus_config())
    print(f"corpus built in {time.time() - t:.1f}s: {corpus_summary(corpus)}", flush=True)
    rows = []
    for size in args.sizes:
        rows += run_pair(size, args)
    res = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "git_commit": git_commit(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores ({platform.processor() or platform.platform()})",
        "torch": str(torch.__version__), "corpus": corpus_summary(corpus),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "rows": rows,
    }
    (args.results / "pretrain.json").write_text(json.dumps(res, indent=2))
    write_markdown(res, args.results / "pretrain.md")
    print(f"wrote {args.results / 'pretrain.md'}")


if __name__ == "__main__":
    main()
