"""What bf16 inference changes for fine-tuned CTA checkpoints: scores, agreement and speed against fp32.

Each checkpoint predicts the task's validation split twice, in fp32 and under CPU bf16 autocast
(`aegir eval --fp32 / --bf16`, aegir.inference.inference_precision; the decay, WKV, router and residual
stream stay fp32 either way), with `--views` row views averaged. Reported per checkpoint and for all
of them as one ensemble (mean probability): micro/macro-F1 in each precision, how many columns get
the same top-1 label, the largest and mean change of any label probability, and the seconds each
pass took (after one warm-up batch per precision, so kernel builds and first-call costs are not
counted).

    python benchmarks/cta_precision.py --task sotab-cta --views 4 \
        --checkpoints A/final.pt B/final.pt C/final.pt --result docs/results/cta_precision

Validation numbers only (the official test splits are kept aside). bf16 is only faster on CPUs with
AVX512-BF16 or AMX (`aegir.runtime.cpu_has_native_bf16`); the result file says which this one has.
"""

from __future__ import annotations

import argparse
import json
import platform
from dataclasses import replace
import time
from pathlib import Path

from result_files import result_file  # benchmarks/ is the script's own folder, first on sys.path

import numpy as np
import torch

from aegir.checkpoint import CheckpointError
from aegir.eval_run import eval_dataset, score_label_sets
from aegir.inference import load_classifiers
from aegir.runtime import cpu_has_native_bf16
from aegir.tables.table import LabeledDataset
from aegir.train.tasks import resolve_task

PRECISIONS = {"fp32": False, "bf16": True}


def _warm_up(members, ds: LabeledDataset, bf16: bool) -> None:
    """One small evaluation per precision before timing (first-call allocation, oneDNN primitive caches)."""
    sub = replace(ds, targets=ds.targets[:32])
    for m in members:
        eval_dataset(m, sub, views=1, bf16=bf16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="sotab-cta")
    ap.add_argument("--checkpoints", nargs="+", required=True)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--ensemble", type=int, default=0,
                    help="The ensemble row averages the first K checkpoints (default: all of them; 1: no ensemble row).")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--result", default="docs/results/cta_precision")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    td = resolve_task(args.task)
    if td.valid is None:
        raise SystemExit(f"error: task {args.task} has no validation data here")
    try:
        members = load_classifiers(args.checkpoints)  # one label vocabulary, one task kind
    except CheckpointError as e:
        raise SystemExit(f"error: {e}") from None
    labels = members[0].vocab.labels
    if members[0].multi_label:
        raise SystemExit("error: single-label tasks only (top-1 agreement is what this compares)")
    ds = td.valid
    probs: dict[str, list[np.ndarray]] = {p: [] for p in PRECISIONS}
    seconds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    gold = None
    for name, bf16 in PRECISIONS.items():
        _warm_up(members, ds, bf16)
        for m in members:
            t0 = time.perf_counter()
            run = eval_dataset(m, ds, views=args.views, bf16=bf16)
            seconds[name].append(time.perf_counter() - t0)
            probs[name].append(run.raw.probabilities())  # (N, n_labels)
            gold = [p.gold for p in run.predictions]

    def scores(p: np.ndarray) -> dict:
        rep = score_label_sets(gold, [(labels[j],) for j in p.argmax(1)], False)
        return {"micro_f1": rep.micro_f1, "macro_f1": rep.macro_f1}

    def row(name: str, a: np.ndarray, b: np.ndarray, s32: float | None, s16: float | None) -> dict:
        d = np.abs(a - b)
        return {"system": name, "fp32": scores(a), "bf16": scores(b),
                "top1_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
                "max_prob_change": float(d.max()), "mean_prob_change": float(d.mean()),
                "seconds_fp32": s32, "seconds_bf16": s16}

    rows = [row(f"member {i + 1}", probs["fp32"][i], probs["bf16"][i], seconds["fp32"][i], seconds["bf16"][i])
            for i in range(len(members))]
    k = args.ensemble or len(members)
    if k > 1:
        rows.append(row(f"members 1-{k} as one ensemble", np.mean(probs["fp32"][:k], axis=0),
                        np.mean(probs["bf16"][:k], axis=0), sum(seconds["fp32"][:k]), sum(seconds["bf16"][:k])))
    n = len(gold)
    meta = {"task": args.task, "views": args.views, "valid_columns": n, "checkpoints": args.checkpoints,
            "threads": args.threads, "cpu_native_bf16": cpu_has_native_bf16(), "torch": torch.__version__,
            "machine": platform.machine()}
    out = Path(args.result)
    out.parent.mkdir(parents=True, exist_ok=True)
    result_file(out, ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    native = "has" if meta["cpu_native_bf16"] else "has NEITHER"
    lines = [f"# bf16 against fp32 inference ({args.task} validation, {n} columns)", "",
             "Written by `benchmarks/cta_precision.py`: every checkpoint predicts the validation split in fp32 and "
             f"under CPU bf16 autocast (`aegir eval --fp32 / --bf16`), {args.views} row views averaged, "
             f"{args.threads} threads; this CPU {native} AVX512-BF16/AMX. Agreement: columns whose top-1 label is "
             "the same in both; probability change: over every column and label. Seconds: one full pass, after a "
             "warm-up, serialization of the columns included (the same Python work in both precisions). "
             "Validation numbers, not test numbers.", "",
             "| system | macro-F1 fp32 / bf16 | micro-F1 fp32 / bf16 | top-1 agreement | max / mean prob. change | s fp32 / bf16 (speed-up) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['system']} | {r['fp32']['macro_f1']:.3f} / {r['bf16']['macro_f1']:.3f} | "
                     f"{r['fp32']['micro_f1']:.3f} / {r['bf16']['micro_f1']:.3f} | {r['top1_agreement']:.1%} | "
                     f"{r['max_prob_change']:.3f} / {r['mean_prob_change']:.5f} | "
                     f"{r['seconds_fp32']:.0f} / {r['seconds_bf16']:.0f} ({r['seconds_fp32'] / r['seconds_bf16']:.2f}x) |")
    lines += ["", "Members:"] + [f"{i + 1}. `{c}`" for i, c in enumerate(args.checkpoints)]
    result_file(out, ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
