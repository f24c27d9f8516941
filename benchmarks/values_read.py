"""How many of a column's values reach the model when `annotate` reads it (`values_read`).

    .venv/bin/python benchmarks/values_read.py --checkpoint outputs/demo-cta/<ts>/final.pt

`annotate` reads each column through up to `max_rows` (32) sampled rows (`rows_read`), but the byte
budget of the serialization may hold fewer of their values: the target segment is capped and cells are
cut. This annotates every table of the SOTAB V2 CTA validation sample and of GitTables fold 3 (the
`gittables-schema` validation fold) with one checkpoint, at its trained budget and at twice that,
with 1 and 4 row views, and reports per column how many values the model saw against the rows read.
Writes docs/results/values_read.md/.json. Coverage only: what a larger budget or more views do to
F1 is measured by benchmarks/cta_views.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_files import write_json, write_markdown  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from aegir.annotation import annotate  # noqa: E402
from aegir.inference import load_classifier  # noqa: E402
from aegir.train.tasks import resolve_task  # noqa: E402

CORPORA = {"SOTAB V2 CTA validation sample": "sotab-cta", "GitTables fold 3 (schema.org)": "gittables-schema"}


def coverage(values: list[int], rows: list[int]) -> dict:
    """Summary of per-column (values_read, rows_read) pairs."""
    share = sorted(v / r for v, r in zip(values, rows))
    return {"columns": len(values), "all_rows": sum(v == r for v, r in zip(values, rows)),
            "median_values": statistics.median(values), "median_rows": statistics.median(rows),
            "p10_values": statistics.quantiles(values, n=10)[0] if len(values) > 1 else values[0],
            "min_values": min(values), "mean_share": sum(share) / len(share)}


def measure(lc, tables, budget: int, views: int) -> dict:
    values, rows = [], []
    for t in tables:
        res = annotate(t, lc, top_k=1, max_bytes=budget, views=views)
        values += [c.values_read for c in res.columns]
        rows += [c.rows_read for c in res.columns]
    return coverage(values, rows)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="Only the first N tables of each corpus (a smoke run).")
    ap.add_argument("--out", default=str(ROOT / "docs/results/values_read"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lc = load_classifier(args.checkpoint)
    cfg = lc.serialize_cfg
    runs = []
    for corpus, task in CORPORA.items():
        tables = resolve_task(task).valid.tables[: args.limit]
        n_rows = [t.n_rows for t in tables]
        for budget in (cfg.max_bytes, 2 * cfg.max_bytes):
            for views in (1, 4):
                t0 = time.perf_counter()
                m = measure(lc, tables, budget, views)
                runs.append({"corpus": corpus, "tables": len(tables), "median_table_rows": statistics.median(n_rows),
                             "budget": budget, "views": views, "seconds": time.perf_counter() - t0, **m})
                print(json.dumps(runs[-1]), flush=True)
    r = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "checkpoint": args.checkpoint,
         "serialize": asdict(cfg), "runs": runs}
    stem = Path(args.out)
    write_json(stem, r)
    L = ["# Values of a column that reach the model (`annotate`'s `values_read`)", "",
         f"Written by `benchmarks/values_read.py` on {r['date']}. Checkpoint `{args.checkpoint}`: trained at "
         f"{cfg.max_bytes} bytes per column, target segment {cfg.max_target_bytes}, cells cut at {cfg.max_cell_bytes}, "
         f"up to {cfg.max_rows} rows per view. Every column of every table is annotated; a column's `values_read` "
         "counts the distinct rows whose value (whole or cut) was in the model's input over all views, `rows_read` "
         "the rows sampled. A budget above the trained one grows the target segment in proportion (`at_budget`).", "",
         "| corpus | tables (median rows) | budget | views | columns | every row read | median values / rows read "
         "| 10th pct values | fewest | mean share |", "|---|---|---|---|---|---|---|---|---|---|"]
    for x in runs:
        L.append(f"| {x['corpus']} | {x['tables']} ({x['median_table_rows']:g}) | {x['budget']} | {x['views']} | "
                 f"{x['columns']} | {x['all_rows']} ({100 * x['all_rows'] / x['columns']:.0f}%) | "
                 f"{x['median_values']:g} / {x['median_rows']:g} | {x['p10_values']:g} | {x['min_values']} | "
                 f"{100 * x['mean_share']:.0f}% |")
    L += ["", "Where `values_read` is below `rows_read`, `annotate` says so in a note naming the columns; the "
          "CLI prints it. Whether more views or bytes change the labels is measured in "
          "[cta_views_nano.md](cta_views_nano.md) (`benchmarks/cta_views.py`)."]
    write_markdown(stem, L)
    return r


if __name__ == "__main__":
    main()
