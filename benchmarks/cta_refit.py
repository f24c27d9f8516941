"""Classifier re-training on frozen features (`aegir train --refit-head`) scored on fine-tuned runs.

For each `--checkpoint` (a fine-tuned classifier run or file): the pooled features of its task's labelled
training columns over `--refit-views` row views, the head's linear layer refitted on them for every
`--mode` x `--l2` (src/aegir/train/head_refit.py), and each head -- the joint-trained one first, as the
paired reference -- scored on the validation columns at 1 and `--views` row views, with the liveness
gate. The backbone never changes, so the validation features are computed once per checkpoint and every
head reads the same ones. Each refitted classifier is saved beside its source
(`refit-<mode>-l2_<l2>.pt`) for `cta_bootstrap.py`.

    python benchmarks/cta_refit.py --checkpoint outputs/bench-gittables-schema-.../<ts> \
        --mode balanced --l2 1e-4 --l2 1e-3 --l2 1e-2 --views 4 --result docs/results/cta_refit_gittables
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_files import result_file  # noqa: E402

from aegir.diagnostics import run_liveness  # noqa: E402
from aegir.encoding.batch import encode_dataset  # noqa: E402
from aegir.eval_run import predicted_label_sets, score_label_sets  # noqa: E402
from aegir.inference import Predictions, average_views, classifier_source, load_classifier, predict  # noqa: E402
from aegir.liveness_run import gate_inputs  # noqa: E402
from aegir.train.head_refit import (head_features, refit_classifier_head, save_refit_checkpoint,  # noqa: E402
                                    training_views)
from aegir.train.tasks import resolve_task  # noqa: E402


def head_logits(lc, pooled: np.ndarray) -> np.ndarray:
    """The classifier head on precomputed pooled embeddings: (N, 2 * d0) -> (N, n_labels)."""
    with torch.no_grad():
        return lc.model.head(torch.from_numpy(pooled)).numpy()


def score_head(lc, views: list[Predictions], n_views: int, gold, labels, out_dir: Path) -> dict:
    """Macro/micro-F1 and the gate of `lc`'s head over the first `n_views` views' embeddings, averaged as
    aegir's test-time view averaging does (`average_views`: mean logits, mean pooled embeddings)."""
    raw = average_views([Predictions(head_logits(lc, v.pooled), v.pooled, v.n_boundary, v.n_valid)
                         for v in views[:n_views]])
    predicted = predicted_label_sets(raw, labels, False)
    rep = score_label_sets(gold, predicted, False)
    gate = run_liveness(gate_inputs(raw, predicted, gold, labels, False, {"checkpoint": lc.source}), None, out_dir)
    checks = {c.name: c.figure for c in gate.checks}
    return {"micro_f1": rep.micro_f1, "macro_f1": rep.macro_f1, "gate": "PASS" if gate.passed else "FAIL",
            "mcl_coarse_clusters": checks.get("mcl_clusters"), "distinct_predicted": checks.get("distinct_predicted")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", required=True, help="Fine-tuned run folder or file (repeat).")
    ap.add_argument("--data", default=None, help="Data root (as `aegir train --data`); default: the task's own.")
    ap.add_argument("--mode", action="append", default=None, help="balanced | plain (repeat; default balanced).")
    ap.add_argument("--l2", action="append", type=float, default=None, help="L2 strength (repeat; default 1e-2).")
    ap.add_argument("--refit-views", type=int, default=4, help="Row views of each training column in the fit.")
    ap.add_argument("--views", type=int, default=4, help="Row views averaged at test (1 is always scored too).")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--result", default="docs/results/cta_refit")
    args = ap.parse_args()
    modes, l2s = args.mode or ["balanced"], args.l2 or [1e-2]
    torch.set_num_threads(args.threads)
    from aegir.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    rows, sizes = [], {}
    for src in args.checkpoint:
        path = classifier_source(src)
        lc = load_classifier(path)
        if lc.task not in sizes:
            sizes[lc.task] = resolve_task(lc.task, args.data)
        td = sizes[lc.task]
        labels = lc.vocab.labels
        index = {l: i for i, l in enumerate(labels)}
        t = time.time()
        valid_views = [predict(lc.model, encode_dataset(td.valid, index, lc.serialize_cfg, view=v),
                               batch_size=64) for v in range(max(1, args.views))]
        gold = [t_.labels for t_ in td.valid.targets]
        feats = head_features(lc.model, training_views(td.train, labels, lc.serialize_cfg, args.refit_views))
        print(f"{path}: features in {time.time() - t:.0f} s ({feats.x.shape[0]} training examples)", flush=True)
        heads = [("joint-trained head", lc, None)]
        for mode in modes:
            for l2 in l2s:
                ref = copy.deepcopy(lc)
                t = time.time()
                refit = refit_classifier_head(ref.model, feats, mode, l2)
                out = save_refit_checkpoint(ref, refit, path.parent / f"refit-{mode}-l2_{l2:g}.pt")
                heads.append((f"head refit ({mode}, l2 {l2:g})", ref, {**refit.summary(), "fit_seconds": round(time.time() - t, 1),
                                                                       "checkpoint": str(out)}))
        for name, h, info in heads:
            for nv in sorted({1, args.views}):
                slug = name.replace(" ", "-").replace(",", "").replace("(", "").replace(")", "")
                r = score_head(h, valid_views, nv, gold, labels, path.parent / f"liveness-{slug}-{nv}view")
                rows.append({"checkpoint": str(path), "head": name, "views": nv, **r, **({"refit": info} if info else {})})
                print(rows[-1], flush=True)
    meta = {"checkpoints": args.checkpoint, "data": args.data, "modes": modes, "l2": l2s, "refit_views": args.refit_views,
            "test_views": args.views, "threads": args.threads, "torch": torch.__version__,
            "machine": platform.processor() or platform.machine()}
    out = Path(args.result)
    out.parent.mkdir(parents=True, exist_ok=True)
    result_file(out, ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["# Head refit on frozen features (validation splits)", "",
             "Written by `benchmarks/cta_refit.py`: each fine-tuned run's joint-trained head next to its head's",
             "linear layer refitted by class-balanced (or plain) L2 logistic regression on the pooled features of the",
             f"labelled training columns ({args.refit_views} row views each); same backbone, same validation features.", "",
             f"Settings: {json.dumps(meta)}", "",
             "| run | head | test views | micro-F1 | macro-F1 | liveness gate | MCL clusters (coarse) | distinct predicted |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {Path(r['checkpoint']).parent.name} | {r['head']} | {r['views']} | {r['micro_f1']:.3f} | "
                     f"{r['macro_f1']:.3f} | {r['gate']} | {r['mcl_coarse_clusters']} | {r['distinct_predicted']} |")
    by_head: dict[tuple[str, int], list[float]] = {}
    for r in rows:
        by_head.setdefault((r["head"], r["views"]), []).append(r["macro_f1"])
    lines += ["", "Mean over runs:", "", "| head | test views | runs | mean macro-F1 |", "|---|---|---|---|"]
    lines += [f"| {h} | {v} | {len(m)} | {np.mean(m):.3f} |" for (h, v), m in by_head.items()]
    result_file(out, ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
