"""Calibration and abstention of a single-label CTA classifier: the risk-coverage table and ECE on
held-out labelled data before and after temperature scaling (`aegir calibrate`), with the
temperature fitted on a different labelled set than the one it is scored on.

    python benchmarks/cta_calibration.py --checkpoint outputs/demo-cta/<ts>/final.pt \\
        --fit-data ../shared/data/sotab_v2_sample/CTA/Train50 --eval-data ../shared/data/sotab_v2_sample/CTA/Validation \\
        --result docs/results/cta_calibration_demo

Without --fit-data the temperature is fitted on the checkpoint's own validation split, which is what
`aegir train --calibrate` does at the end of a run: for the demo that is held-out synthetic tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from result_files import result_file  # benchmarks/ is the script's own folder, first on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from aegir.eval_run import calibrate, run_eval  # noqa: E402


def table(sel: dict) -> list[str]:
    L = ["| threshold | coverage | accuracy | macro-F1 |", "|---|---|---|---|"]
    for r in sel["rows"]:
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        L.append(f"| {r['threshold']:.1f} | {r['coverage']:.3f} | {acc} | {r['macro_f1']:.3f} |")
    return L


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--fit-data", default=None, help="labelled data the temperature is fitted on (default: the "
                    "checkpoint's validation split, as `aegir train --calibrate` fits it)")
    ap.add_argument("--eval-data", required=True, help="labelled data it is scored on (not the fitting data)")
    ap.add_argument("--format", default="sotab")
    ap.add_argument("--views", type=int, default=1)
    ap.add_argument("--result", default=str(ROOT / "docs/results/cta_calibration"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cal = calibrate(args.checkpoint, Path(tmp) / "calibrated.pt", data=args.fit_data,
                        fmt=args.format if args.fit_data else None, views=args.views)
        runs = {name: run_eval(ck, data=args.eval_data, fmt=args.format, out=Path(tmp) / name, views=args.views)
                for name, ck in (("raw", args.checkpoint), ("calibrated", cal.checkpoint))}
    fit_name = args.fit_data or "the checkpoint's validation split (as `aegir train --calibrate`)"
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "checkpoint": args.checkpoint,
           "fit_data": fit_name, "eval_data": args.eval_data, "views": args.views,
           "fit": cal.to_dict() | {"checkpoint": None},
           "eval": {k: {"macro_f1": r.report.macro_f1, "accuracy": r.report.accuracy, "selective": r.selective.to_dict()}
                    for k, r in runs.items()}}
    out = Path(args.result)
    result_file(out, ".json").write_text(json.dumps(res, indent=1))
    e = res["eval"]
    L = ["# CTA calibration and abstention", "",
         f"Written by `benchmarks/cta_calibration.py` on {res['date']}. Checkpoint `{args.checkpoint}`; temperature "
         f"fitted on {fit_name if not args.fit_data else f'`{args.fit_data}`'} ({cal.n_columns} columns, {cal.n_skipped} with gold labels outside the "
         f"vocabulary skipped), scored on `{args.eval_data}` ({e['raw']['selective']['n']} columns); {args.views} view(s).", "",
         f"Fitted temperature **T = {cal.temperature:.3f}** (on the fitting columns: NLL {cal.nll_before:.3f} -> "
         f"{cal.nll_after:.3f}, ECE {cal.ece_before:.3f} -> {cal.ece_after:.3f}).", "",
         f"On the held-out columns: ECE of the top-1 score **{e['raw']['selective']['ece']:.3f} -> "
         f"{e['calibrated']['selective']['ece']:.3f}**; macro-F1 {e['raw']['macro_f1']:.3f} both ways (no argmax moves).",
         "", "## Before calibration", "", *table(e["raw"]["selective"]),
         "", "## After calibration", "", *table(e["calibrated"]["selective"]),
         "", "Coverage: share of columns whose top-1 score is >= the threshold (the rest abstain, "
         "`annotate --min-score`); accuracy on those; macro-F1 over gold labels with abstentions as misses."]
    result_file(out, ".md").write_text("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
