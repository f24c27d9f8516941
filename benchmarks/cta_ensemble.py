"""Ensembles of fine-tuned CTA checkpoints on a task's validation split.

Averages the softmax probabilities of several classifiers (each with `--views` row views averaged
first) and scores every subset in order (1, 1+2, 1+2+3, ...), next to each member alone. (To use one
ensemble, not to compare subsets: `aegir eval/annotate --checkpoint A --checkpoint B ...`.)

    python benchmarks/cta_ensemble.py --task sotab-cta --views 4 \
        --checkpoints A/final.pt B/final.pt C/final.pt --result docs/results/cta_ensemble

Validation numbers only (the official test splits are kept aside). All checkpoints must share one
label vocabulary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from result_files import result_file  # benchmarks/ is the script's own folder, first on sys.path

import numpy as np
import torch

from aegir.eval_run import eval_dataset, score_label_sets
from aegir.checkpoint import CheckpointError
from aegir.inference import load_classifiers
from aegir.train.tasks import resolve_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="sotab-cta")
    ap.add_argument("--checkpoints", nargs="+", required=True)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--result", default="docs/results/cta_ensemble")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    td = resolve_task(args.task)
    try:
        members = load_classifiers(args.checkpoints)  # one label vocabulary, one task kind
    except CheckpointError as e:
        raise SystemExit(f"error: {e}") from None
    labels = members[0].vocab.labels
    runs = [eval_dataset(m, td.valid, views=args.views) for m in members]
    gold = [p.gold for p in runs[0].predictions]
    probs = [r.raw.probabilities() for r in runs]
    rows = []

    def score(name: str, idx: list[int]) -> None:
        p = np.mean([probs[i] for i in idx], axis=0)
        rep = score_label_sets(gold, [(labels[j],) for j in p.argmax(1)], False)
        rows.append({"system": name, "members": [args.checkpoints[i] for i in idx],
                     "micro_f1": rep.micro_f1, "macro_f1": rep.macro_f1})

    for i in range(len(runs)):
        score(f"member {i + 1} alone", [i])
    for n in range(2, len(runs) + 1):
        score(f"ensemble of members 1..{n}", list(range(n)))
    out = Path(args.result)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"task": args.task, "views": args.views, "valid_columns": len(gold), "checkpoints": args.checkpoints}
    result_file(out, ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# CTA ensembles ({args.task} validation, {len(gold)} columns)", "",
             "Written by `benchmarks/cta_ensemble.py`: mean softmax over fine-tuned checkpoints, each averaged over "
             f"{args.views} row views first. Validation numbers, not test numbers.", "",
             "| system | micro-F1 | macro-F1 |", "|---|---|---|"]
    lines += [f"| {r['system']} | {r['micro_f1']:.3f} | {r['macro_f1']:.3f} |" for r in rows]
    lines += ["", "Members:"] + [f"{i + 1}. `{c}`" for i, c in enumerate(args.checkpoints)]
    result_file(out, ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
