"""CTA quality benchmark -> docs/results/cta.md (+ cta.json).

On the shared SOTAB V2 sample (train CTA/Train + CTA/Train50, evaluate CTA/Validation) and on the
GitTables Schema.org folds (train 0-2, evaluate 3): micro/macro-F1 of Aegir fine-tuned from a
pretrained checkpoint vs from random, full fine-tune vs frozen backbone (linear probe), and the
hierarchical loss, next to the classical baseline (char n-gram TF-IDF + logistic regression, same
data; scored twice, plain and with balanced class weights, since the better of the two differs by
benchmark), with the liveness figures of every Aegir run. CPU budget: every run has the same fixed number
of epochs; the numbers are what a 2-core machine reaches in that budget, not converged results.

    python benchmarks/cta_quality.py --pretrained outputs/mixed-v2/<ts>/final.pt [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_files import result_file  # noqa: E402
from classical_baseline import tfidf_logreg  # noqa: E402

from aegir.evaluation import classification_report  # noqa: E402
from aegir.checkpoint import step_checkpoint_name  # noqa: E402
from aegir.inference import load_classifier  # noqa: E402
from aegir.liveness_run import liveness_for  # noqa: E402
from aegir.train.finetune import FinetuneConfig, finetune  # noqa: E402
from aegir.tables.table import TableError  # noqa: E402
from aegir.train.tasks import resolve_task  # noqa: E402


def run_aegir(name: str, task: str, td, args, **over) -> dict:
    slug = "".join(ch if ch.isalnum() else "-" for ch in name).strip("-").replace("--", "-")
    cfg = FinetuneConfig(task=task, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_steps=50,
                         max_bytes=args.max_bytes, max_target_bytes=args.max_target_bytes, max_cell_bytes=args.max_cell_bytes, out=args.out, run_name=f"bench-{task}-{slug}" + (f"-cv{args.cv_folds}-fold{args.cv_fold}" if args.cv_folds else ""), progress=False,
                         checkpoint_every=100_000, row_views=args.row_views, seed=args.seed, ema=args.ema,
                         class_weight=args.class_weight, logit_adjust=args.logit_adjust,
                         repeat_threshold=args.repeat_threshold, split_seed=args.split_seed,
                         cv_folds=args.cv_folds, cv_fold=args.cv_fold if args.cv_folds else 0,
                         pool_main=args.pool_main and task.endswith("-cpa"), cpu_bf16=args.bf16, **over)
    t = time.time()
    res = finetune(cfg, task_data=td)
    secs = time.time() - t
    # With --ema, final.pt holds the averaged weights and the last step checkpoint the raw ones:
    # both are scored, a paired comparison on the same training trajectory.
    scored = [("", res.final_checkpoint)]
    if args.ema:
        scored = [(f", EMA {args.ema}", res.final_checkpoint),
                  (", raw weights", res.run_dir / step_checkpoint_name(res.steps))]
    rows = []
    for tag, ckpt in scored:
        lc = load_classifier(ckpt)
        for views in sorted({1, args.views}):
            rep = liveness_for(lc, td.valid, res.run_dir / f"liveness{tag.replace(' ', '-').replace(',', '')}-{views}view",
                               views=views)
            checks = {c.name: c.figure for c in rep.checks}
            label = f"Aegir {name}{tag}" + (", balanced class weights" if args.class_weight == "balanced" else "") + \
                (f", logit adjustment tau {args.logit_adjust}" if args.logit_adjust else "") + \
                (f", repeat threshold {args.repeat_threshold}" if args.repeat_threshold else "") + (f", {views} row view{'s' if views > 1 else ''} at test" if args.views > 1 else "")
            rows.append({"system": label, "micro_f1": rep.metrics.micro_f1, "macro_f1": rep.metrics.macro_f1,
                         "gate": "PASS" if rep.passed else "FAIL", "failures": list(rep.failures), "views": views,
                         "mcl_coarse_clusters": checks.get("mcl_clusters"),
                         "distinct_predicted": checks.get("distinct_predicted"),
                         "train_seconds": round(secs, 1), "steps": res.steps, "run_dir": str(res.run_dir)})
    return rows


def run_baseline(td, class_weight: str | None = None, main_column: bool = False) -> dict:
    t = time.time()
    b = tfidf_logreg(td.train, td.valid, class_weight=class_weight, main_column=main_column)
    rep = classification_report(b.gold, b.predictions)
    name = "TF-IDF char 2-4 + LogReg" + (", + main column" if main_column else "") + \
        (", balanced class weights" if class_weight else "")
    return {"system": name, "micro_f1": rep.micro_f1, "macro_f1": rep.macro_f1,
            "gate": "-", "train_seconds": round(time.time() - t, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pretrained", required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-bytes", type=int, default=256)
    ap.add_argument("--max-target-bytes", type=int, default=FinetuneConfig.max_target_bytes,
                    help="Cap on the target column's segment (context columns get the rest of --max-bytes).")
    ap.add_argument("--max-cell-bytes", type=int, default=FinetuneConfig.max_cell_bytes, help="Longest cell kept (bytes).")
    ap.add_argument("--out", default="outputs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tasks", default="sotab-cta,gittables-schema")
    ap.add_argument("--data", default=None,
                    help="Data root for the tasks (as `aegir train --data`); default: ../shared/data's copy.")
    ap.add_argument("--seed", type=int, default=0, help="Fine-tuning seed (head init, data order, row views).")
    ap.add_argument("--split-seed", type=int, default=0,
                    help="Hash seed of the by-table hold-out where a task has no validation files (aegir train --split-seed).")
    ap.add_argument("--cv-folds", type=int, default=0,
                    help="k-fold cross-validation over those tables (aegir train --cv-folds): run once per --cv-fold; "
                         "cta_bootstrap.py --cv-folds pools the folds.")
    ap.add_argument("--cv-fold", type=int, default=0, help="The part held out in this run (with --cv-folds).")
    ap.add_argument("--ema", type=float, default=0.0, help="Weight EMA decay for the fine-tunes (0 = off).")
    ap.add_argument("--bf16", action="store_true", help="Fine-tune (and score) under CPU bf16 autocast (aegir train --bf16).")
    ap.add_argument("--result", default="docs/results/cta")
    ap.add_argument("--augment", type=int, default=0,
                    help="Add this many synthetic tables to every training set (baseline included).")
    ap.add_argument("--variants", default="full,frozen,random,hierarchical",
                    help="Aegir variants to run: full, frozen, random, hierarchical, distill (needs --teacher).")
    ap.add_argument("--views", type=int, default=1,
                    help="Also score every Aegir run averaged over this many row views per column.")
    ap.add_argument("--teacher", action="append", default=[],
                    help="Fine-tuned classifier to distil from (repeat for an ensemble); used by the 'distill' variant.")
    ap.add_argument("--distill-weight", type=float, default=FinetuneConfig.distill_weight)
    ap.add_argument("--distill-temperature", type=float, default=FinetuneConfig.distill_temperature)
    ap.add_argument("--teacher-views", type=int, default=FinetuneConfig.teacher_views)
    ap.add_argument("--distill-unlabeled", action="store_true",
                    help="The 'distill' variant also trains on the training tables' unlabelled columns (teacher targets only).")
    ap.add_argument("--class-weight", default=FinetuneConfig.class_weight,
                    help="Aegir runs: none | balanced (labelled columns weighted by N / (K * n_label)).")
    ap.add_argument("--logit-adjust", type=float, default=FinetuneConfig.logit_adjust,
                    help="Aegir runs: logit-adjusted CE with this tau (1 = Menon et al.'s choice; 0 = off).")
    ap.add_argument("--repeat-threshold", type=float, default=FinetuneConfig.repeat_threshold,
                    help="Repeat-factor sampling threshold for the fine-tunes (aegir train --repeat-threshold; 0 = off).")
    ap.add_argument("--teacher-cache", default=None,
                    help="Folder of teacher targets shared between runs (e.g. student seeds on the same teachers).")
    ap.add_argument("--pool-main", action="store_true",
                    help="CPA runs: pool the main column's positions into the pair embedding too (aegir train --pool-main).")
    ap.add_argument("--no-row-views", dest="row_views", action="store_false",
                    help="Train on the deterministic serialization only (no per-epoch row views).")
    args = ap.parse_args()
    if args.pool_main and (no_main := [t for t in args.tasks.split(",") if not t.endswith("-cpa")]):
        # A CTA input has no main column; say so rather than drop the flag without a word.
        print(f"note: --pool-main applies to CPA tasks only; {', '.join(no_main)} run without it", flush=True)
    cv = (args.cv_fold, args.cv_folds) if args.cv_folds else None
    torch.set_num_threads(args.threads)
    from aegir.runtime import tune_cpu_allocator

    tune_cpu_allocator()  # as the aegir CLI does
    results: dict[str, list[dict]] = {}
    notes: dict[str, str] = {}
    for task in args.tasks.split(","):
        try:
            td = resolve_task(task, args.data, add_synthetic=args.augment, split_seed=args.split_seed, cv=cv)
        except TableError as e:  # e.g. GitTables: its Schema.org property labels are not synthetic labels
            if not args.augment:
                raise
            notes[task] = f"no synthetic augmentation ({e})"
            print(task, notes[task], flush=True)
            td = resolve_task(task, args.data, split_seed=args.split_seed, cv=cv)
        rows = [run_baseline(td), run_baseline(td, "balanced")]  # the stronger of the two is the bar
        if td.cpa:  # Aegir reads the pair's main column too; so may the bar
            rows += [run_baseline(td, main_column=True), run_baseline(td, "balanced", main_column=True)]
        print(task, rows, flush=True)
        variants = {"full": ("pretrained, full fine-tune", {"pretrained": args.pretrained}),
                    "frozen": ("pretrained, frozen backbone", {"pretrained": args.pretrained, "freeze_backbone": True}),
                    "random": ("from random, full fine-tune", {"model_size": "nano"}),
                    "hierarchical": ("pretrained, hierarchical loss", {"pretrained": args.pretrained, "loss": "hierarchical"})}
        if args.teacher:
            unl = ", + unlabelled columns" if args.distill_unlabeled else ""
            variants["distill"] = (f"pretrained, distilled from {len(args.teacher)} teachers{unl}",
                                   {"pretrained": args.pretrained, "teachers": tuple(args.teacher),
                                    "distill_weight": args.distill_weight, "distill_temperature": args.distill_temperature,
                                    "teacher_views": args.teacher_views, "distill_unlabeled": args.distill_unlabeled,
                                    "teacher_cache": args.teacher_cache})
        elif "distill" in args.variants.split(","):
            raise SystemExit("error: the 'distill' variant needs --teacher")
        chosen = [v for v in args.variants.split(",") if v != "hierarchical" or task == "sotab-cta"]
        for name, over in (variants[v] for v in chosen):
            rows.extend(run_aegir(name, task, td, args, **over))
            print(task, rows[-1], flush=True)
        results[task] = rows
        results[task + ":sizes"] = [{"train_columns": len(td.train.targets), "valid_columns": len(td.valid.targets),
                                     "labels": len(td.vocab)}]
    out = Path(args.result)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"pretrained": args.pretrained, **({"data": args.data} if args.data else {}), "augment_synthetic_tables": args.augment, "epochs": args.epochs,
            "row_views_in_training": args.row_views, "test_views": args.views, "class_weight": args.class_weight, "logit_adjust": args.logit_adjust, "repeat_threshold": args.repeat_threshold, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "ema": args.ema,
            **({"cpu_bf16": True} if args.bf16 else {}), "split_seed": args.split_seed, **({"cv_folds": args.cv_folds, "cv_fold": args.cv_fold} if cv else {}),
            **({"teachers": args.teacher, "distill_weight": args.distill_weight,
                "distill_temperature": args.distill_temperature, "teacher_views": args.teacher_views,
                "distill_unlabeled": args.distill_unlabeled} if args.teacher else {}),
            "max_bytes": args.max_bytes, "max_target_bytes": args.max_target_bytes, "max_cell_bytes": args.max_cell_bytes, "pool_main": args.pool_main, "threads": args.threads, "torch": torch.__version__,
            "machine": platform.processor() or platform.machine()}
    result_file(out, ".json").write_text(json.dumps({"meta": meta, "results": results, "notes": notes}, indent=1))
    kinds = "CPA" if all(t.endswith("-cpa") for t in args.tasks.split(",")) else "CTA"
    fold = f"; cross-validation fold {args.cv_fold} of {args.cv_folds}" if cv else ""
    lines = [f"# {kinds} quality (validation splits{fold}; CPU budget)", "",
             "Written by `benchmarks/cta_quality.py`. Validation numbers, not test numbers: the official test",
             "splits are kept aside. Every Aegir run gets the same number of epochs on 2 CPU threads, so these are",
             "budget-limited figures for the backbone size of the pretrained checkpoint, not converged results.", "",
             f"Settings: {json.dumps(meta)}", ""]
    for task in args.tasks.split(","):
        sz = results[task + ":sizes"][0]
        lines += [f"## {task}  ({sz['train_columns']} training columns, {sz['valid_columns']} validation columns, "
                  f"{sz['labels']} labels)", ""] + ([f"Note: {notes[task]}.", ""] if task in notes else []) + [
                  "| system | micro-F1 | macro-F1 | liveness gate | MCL clusters (coarse) | distinct predicted | train s |",
                  "|---|---|---|---|---|---|---|"]
        for r in results[task]:
            lines.append(f"| {r['system']} | {r['micro_f1']:.3f} | {r['macro_f1']:.3f} | {r['gate']} | "
                         f"{r.get('mcl_coarse_clusters', '-')} | {r.get('distinct_predicted', '-')} | {r['train_seconds']} |")
        lines.append("")
    result_file(out, ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
