"""How much of a column must a fine-tuned classifier read? Test-time row views and byte budget, against the baseline.

A classifier fine-tuned at a 256-byte budget sees a few cells of each column; the TF-IDF baseline reads the header and
up to 32 whole cells. Two test-time knobs let the same checkpoint read more, with no retraining:

- **row views** (`aegir eval/annotate --views N`): the logits averaged over N serializations of the column, view 0 on
  evenly spaced rows, the others on random row subsets (`encode_dataset(view=v)`);
- **byte budget**: the serialization's `max_bytes` raised above the one trained with, `max_target_bytes` scaled by the
  same factor (cell, name and context-column caps unchanged), so the extra bytes go to more cells of the target column
  first (`aegir eval/annotate --max-bytes`, `aegir.encoding.serialize.at_budget`). Whether a model trained on 256-byte inputs uses longer ones well is what this measures.

On short tables (the SOTAB V2 sample's have 5 rows) a view reads no more rows than view 0, only re-orders them,
which moves the cell and budget cuts and the context MMR picks; the result file's "target cells per view" and the
baseline rows reading fewer cells (`--baseline-cells`) show how much of each column either side actually reads.

For every checkpoint and budget, each view is predicted once and kept; the score at N views averages the first N
views' logits (exactly `aegir eval --views N`). Each point is also compared with the baseline by a paired bootstrap
over the validation columns (as `cta_bootstrap.py`). Several checkpoints (one recipe's seeds) also get a row for
their mean score on the same resamples. The figures are validation scores, and picking the best of many settings on
them is itself a choice made on validation: read the curve's shape, not its maximum, as the finding.

    python benchmarks/cta_views.py --task sotab-cta --augment 1500 --checkpoint A/final.pt --checkpoint B/final.pt \
        --views 1,2,4,8,16 --budgets 256,512,1024 --result docs/results/cta_views
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_files import result_file  # noqa: E402
from classical_baseline import add_class_weight_option, class_weight_arg, tfidf_logreg  # noqa: E402
from cta_bootstrap import macro_f1_resampled, paired_difference, resample_weights  # noqa: E402

from aegir.encoding.batch import encode_dataset  # noqa: E402
from aegir.encoding.serialize import at_budget  # noqa: E402
from aegir.evaluation import classification_report  # noqa: E402
from aegir.inference import Predictions, average_views, load_classifier, predict  # noqa: E402
from aegir.train.tasks import resolve_task  # noqa: E402

BASELINE = "TF-IDF char 2-4 + LogReg"


def parse_counts(spec: str, option: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]: positive, distinct, sorted."""
    try:
        xs = sorted({int(x) for x in spec.split(",") if x.strip()})
    except ValueError:
        raise SystemExit(f"error: {option} {spec!r}: expected positive integers separated by commas") from None
    if not xs or xs[0] < 1:
        raise SystemExit(f"error: {option} {spec!r}: expected positive integers separated by commas")
    return xs


def view_curve(per_view: list[Predictions], views: list[int]) -> dict[int, np.ndarray]:
    """{N: predicted label ids with the first N views' logits averaged} for each N in `views`
    (`average_views`, what `aegir eval --views N` computes)."""
    if views[-1] > len(per_view):
        raise ValueError(f"{views[-1]} views asked, {len(per_view)} predicted")
    return {n: average_views(per_view[:n]).logits.argmax(1) for n in views}


def plot_curves(curves: dict[str, dict[int, float]], baseline: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, pts in curves.items():
        xs = sorted(pts)
        ax.plot(xs, [pts[x] for x in xs], marker="o", label=name)
    ax.axhline(baseline, color="black", ls="--", lw=1, label=f"{BASELINE} ({baseline:.3f})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("row views averaged at test")
    ax.set_ylabel("macro-F1 (validation)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="sotab-cta")
    ap.add_argument("--data", default=None, help="The task's data (as `aegir train --data`); default: ../shared/data's copy.")
    ap.add_argument("--augment", type=int, default=0, help="Synthetic tables added to the baseline's training data.")
    ap.add_argument("--checkpoint", action="append", default=[], help="Classifier to score (repeatable: one recipe's seeds).")
    ap.add_argument("--views", default="1,2,4,8,16", help="Numbers of row views to score (comma-separated).")
    ap.add_argument("--budgets", default=None,
                    help="Total byte budgets to score (comma-separated); default: each checkpoint's trained one only.")
    ap.add_argument("--target-share", type=float, default=None,
                    help="Cap the target column's segment at this share of each budget (e.g. 0.5: the rest is left to "
                         "context columns); default: the trained cap, scaled with the budget.")
    ap.add_argument("--baseline-cells", default="32",
                    help="Also train the baseline reading only this many cells per column (comma-separated; 32 is the bar).")
    add_class_weight_option(ap)
    ap.add_argument("--samples", type=int, default=2000, help="Bootstrap resamples for the comparison with the baseline.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--result", default="docs/results/cta_views")
    args = ap.parse_args()
    if not args.checkpoint:
        raise SystemExit("error: give at least one --checkpoint")
    views = parse_counts(args.views, "--views")
    if args.target_share is not None and not 0.0 < args.target_share <= 1.0:
        raise SystemExit(f"error: --target-share {args.target_share}: expected a share in (0, 1]")
    torch.set_num_threads(args.threads)
    td = resolve_task(args.task, args.data, add_synthetic=args.augment)
    ds = td.valid
    gold_names = [t.labels[0] for t in ds.targets]
    bw = class_weight_arg(args.baseline_class_weight)
    base_pred = tfidf_logreg(td.train, ds, class_weight=bw).predictions
    fewer = {c: tfidf_logreg(td.train, ds, class_weight=bw, max_cells=c).predictions
             for c in parse_counts(args.baseline_cells, "--baseline-cells") if c != 32}
    lcs = [load_classifier(c) for c in args.checkpoint]
    labels = lcs[0].vocab.labels
    if any(lc.vocab.labels != labels for lc in lcs[1:]):
        raise SystemExit("error: the checkpoints' label vocabularies differ; score them in separate runs")
    trained = sorted({lc.serialize_cfg.max_bytes for lc in lcs})
    budgets = parse_counts(args.budgets, "--budgets") if args.budgets else trained
    index = {l: i for i, l in enumerate(labels)}
    names = sorted(set(gold_names) | set(labels) | set(base_pred))
    ids = {n: i for i, n in enumerate(names)}
    gold = np.array([ids[g] for g in gold_names])
    n = len(gold)
    weights = resample_weights(n, args.samples, np.random.default_rng(args.seed))

    def score(pred_names: list[str]) -> tuple[float, np.ndarray]:
        p = np.array([ids[x] for x in pred_names])
        return classification_report(gold_names, pred_names).macro_f1, macro_f1_resampled(gold, p, len(names), weights)

    b_obs, b_boot = score(base_pred)
    baseline_cells = {c: score(p)[0] for c, p in fewer.items()} | {32: b_obs}
    points = []  # one per (checkpoint, budget, views)
    boots: dict[tuple[str, int, int], tuple[float, np.ndarray]] = {}
    for ck, lc in zip(args.checkpoint, lcs):
        for budget in budgets:
            cfg = at_budget(lc.serialize_cfg, budget)
            if args.target_share is not None:
                cfg = replace(cfg, max_target_bytes=max(1, round(args.target_share * budget)))
            per_view, secs, nbytes, ncells = [], 0.0, 0, 0
            for v in range(views[-1]):
                ex = encode_dataset(ds, index, cfg, view=v)
                t0 = time.perf_counter()
                per_view.append(predict(lc.model, ex, batch_size=args.batch_size))
                secs += time.perf_counter() - t0
                nbytes += sum(len(e.ids) for e in ex)
                ncells += sum(len(e.target_rows) for e in ex)  # a cut-off last cell counts
                print(f"{ck} budget {budget} view {v + 1}/{views[-1]}", flush=True)
            for nv, pred in view_curve(per_view, views).items():
                obs, boot = score([labels[j] for j in pred])
                boots[(ck, budget, nv)] = (obs, boot)
                points.append({"checkpoint": ck, "budget": budget, "max_target_bytes": cfg.max_target_bytes,
                               "trained_budget": lc.serialize_cfg.max_bytes, "views": nv, "macro_f1": obs,
                               **paired_difference(obs, boot, b_obs, b_boot)})
            points[-1]["seconds_per_view"] = secs / views[-1]
            points[-1]["mean_bytes_per_column"] = nbytes / views[-1] / n
            points[-1]["mean_target_cells_per_view"] = ncells / views[-1] / n
    means = []
    if len(lcs) > 1:
        for budget in budgets:
            for nv in views:
                runs = [boots[(ck, budget, nv)] for ck in args.checkpoint]
                obs, boot = float(np.mean([r[0] for r in runs])), np.mean([r[1] for r in runs], 0)
                means.append({"checkpoint": f"mean of {len(lcs)}", "budget": budget, "views": nv, "macro_f1": obs,
                              **paired_difference(obs, boot, b_obs, b_boot)})

    out = Path(args.result)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"task": args.task, **({"data": args.data} if args.data else {}), "augment": args.augment,
            "baseline_class_weight": args.baseline_class_weight,
            "target_share": args.target_share, "checkpoints": args.checkpoint, "views": views,
            "budgets": budgets, "samples": args.samples,
            "seed": args.seed, "valid_columns": n, "baseline_macro_f1": b_obs,
            "baseline_macro_f1_by_cells": baseline_cells,
            "trained_serialization": [asdict(lc.serialize_cfg) for lc in lcs], "threads": args.threads}
    result_file(out, ".json").write_text(json.dumps({"meta": meta, "points": points, "means": means}, indent=1))
    short = {ck: f"C{i}" for i, ck in enumerate(args.checkpoint)}
    curves = {f"{short.get(p['checkpoint'], p['checkpoint'])}, {p['budget']} B": {} for p in points + means}
    for p in points + means:
        curves[f"{short.get(p['checkpoint'], p['checkpoint'])}, {p['budget']} B"][p["views"]] = p["macro_f1"]
    plot_curves(curves, b_obs, result_file(out, ".png"), f"{args.task} validation ({n} columns)")

    lines = [f"# Test-time row views and byte budget ({args.task} validation, {n} columns)", "",
             "Written by `benchmarks/cta_views.py`: every checkpoint scored at each total byte budget (the target "
             "segment's cap scaled with it, or set to a share of it by `--target-share`) and each number of row views averaged at test, with the same weights. "
             f"Baseline ({BASELINE}{', balanced class weights' if bw else ''}, trained on the same data, "
             f"+{args.augment} synthetic tables): macro-F1 "
             f"**{b_obs:.3f}**. Each cell: macro-F1, then the paired-bootstrap difference from the baseline with its 95% "
             f"interval ({args.samples} resamples of the columns). Validation numbers, not test numbers.", "",
             "| checkpoint | budget (target cap) | bytes / target cells per view | s per view | " + " | ".join(f"{v} view{'s' * (v > 1)}" for v in views) + " |",
             "|---|---|---|---|" + "---|" * len(views)]
    for ck in args.checkpoint:
        for budget in budgets:
            row = [p for p in points if p["checkpoint"] == ck and p["budget"] == budget]
            cells = [f"{p['macro_f1']:.3f} ({p['diff']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}])" for p in row]
            lines.append(f"| {short[ck]} | {budget} ({row[0]['max_target_bytes']}) | {row[-1]['mean_bytes_per_column']:.0f} / {row[-1]['mean_target_cells_per_view']:.1f} | "
                         f"{row[-1]['seconds_per_view']:.1f} | " + " | ".join(cells) + " |")
    for budget in budgets:
        row = [p for p in means if p["budget"] == budget]
        if row:
            cells = [f"{p['macro_f1']:.3f} ({p['diff']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}])" for p in row]
            lines.append(f"| **mean of {len(lcs)}** | {budget} | | | " + " | ".join(cells) + " |")
    lines += [""] + [f"{short[ck]}: `{ck}` (trained at {lc.serialize_cfg.max_bytes} bytes, target cap "
                     f"{lc.serialize_cfg.max_target_bytes}, cells {lc.serialize_cfg.max_cell_bytes}, up to "
                     f"{lc.serialize_cfg.max_rows} rows per view)." for ck, lc in zip(args.checkpoint, lcs)]
    if len(baseline_cells) > 1:
        lines += ["", "The baseline reading fewer cells per column (header + the first k cells; 32 is the bar above):", "",
                  "| cells read | " + " | ".join(str(c) for c in sorted(baseline_cells)) + " |",
                  "|---|" + "---|" * len(baseline_cells),
                  "| macro-F1 | " + " | ".join(f"{baseline_cells[c]:.3f}" for c in sorted(baseline_cells)) + " |"]
    lines += ["", f"![views]({result_file(out, '.png').name})"]
    result_file(out, ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
