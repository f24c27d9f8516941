"""How much of each column the model sees at a byte budget: writes docs/results/serialization_budget_<task>.md/.json/.png.

    .venv/bin/python benchmarks/serialization_budget.py --task sotab-cpa --budgets 256,384,512

Every labelled column of the task (training and validation) is serialized as fine-tuning and evaluation
serialize it (the deterministic row view, `--max-cell-bytes` per cell), once per budget (`max_bytes`). The
ids are split into segments by their role markers (CPA's main column `[MAIN] .. [SEP]`, the target
`[TGT] .. [SEP]`, context columns `[CTX] .. [SEP]`, markers and SEP included) and each segment's length is
compared with the same segment serialized without any byte limit (same rows, same per-cell cut): a
segment is "complete" when nothing of it was cut. No model is involved; it runs in seconds.

Why: CPA puts the main column and the target column into one window (the main column gets at most half of
it, the target what is left, context the rest), so at 256 bytes neither may be whole and the context may be
empty, while the main-column TF-IDF baseline reads the first 32 cells of both columns in full.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_files import result_file  # noqa: E402

from aegir.encoding.serialize import SerializeConfig, serialize  # noqa: E402
from aegir.encoding.vocab import CTX, MAIN, SEP, TGT  # noqa: E402
from aegir.train.tasks import resolve_task  # noqa: E402

ROLES = {MAIN: "main", TGT: "target", CTX: "context"}
UNLIMITED = 10**9


def segment_bytes(ids: list[int]) -> dict[str, int]:
    """Ids per segment kind: from a role marker through its closing SEP (context segments summed)."""
    out = {name: 0 for name in ROLES.values()}
    cur = None
    for x in ids:
        if x in ROLES:
            cur = ROLES[x]
        if cur is not None:
            out[cur] += 1
            if x == SEP:
                cur = None
    return out


def whole_segments(pairs, max_cell_bytes: int) -> list[dict[str, int]]:
    """Each pair's segment lengths with no byte limit (same rows, same per-cell cut): what "complete" means.
    It does not depend on the budget, so it is computed once for all of them."""
    whole = SerializeConfig(max_bytes=UNLIMITED, max_target_bytes=UNLIMITED, max_column_bytes=UNLIMITED,
                            max_cell_bytes=max_cell_bytes)
    return [segment_bytes(serialize(tab, t.column, whole, t.main_column).ids) for tab, t in pairs]


def measure(pairs, cfg: SerializeConfig, whole: list[dict[str, int]] | None = None) -> dict:
    """Mean segment lengths and completeness over (Table, LabeledColumn) pairs at one budget."""
    whole = whole_segments(pairs, cfg.max_cell_bytes) if whole is None else whole
    rows = []
    for (tab, t), full in zip(pairs, whole, strict=True):
        s = serialize(tab, t.column, cfg, t.main_column)
        got = segment_bytes(s.ids)
        rows.append((got["main"], got["target"], got["context"], len(s.context),
                     got["main"] >= full["main"], got["target"] >= full["target"], len(s.ids)))
    a = np.array(rows, dtype=np.float64)
    cpa = any(t.main_column is not None for _, t in pairs)
    return {"max_bytes": cfg.max_bytes, "columns": len(rows), "mean_ids": a[:, 6].mean(),
            "mean_main": a[:, 0].mean() if cpa else None, "mean_target": a[:, 1].mean(), "mean_context": a[:, 2].mean(),
            "mean_context_columns": a[:, 3].mean(), "with_context": (a[:, 3] > 0).mean(),
            "main_complete": a[:, 4].mean() if cpa else None, "target_complete": a[:, 5].mean()}


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(rows))
    bottom = np.zeros(len(rows))
    for key, colour in (("mean_main", "tab:orange"), ("mean_target", "tab:blue"), ("mean_context", "tab:gray")):
        if rows[0][key] is None:
            continue
        v = np.array([r[key] for r in rows])
        ax.bar(x, v, bottom=bottom, color=colour, label=key.removeprefix("mean_"))
        bottom += v
    ax.set_xticks(x, [str(r["max_bytes"]) for r in rows])
    ax.set_xlabel("byte budget (max_bytes)")
    ax.set_ylabel("mean ids per serialized column")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="sotab-cpa")
    ap.add_argument("--data", default=None, help="The task's data (as `aegir train --data`); default: ../shared/data's copy.")
    ap.add_argument("--budgets", default="256,384,512", help="max_bytes values, comma-separated.")
    ap.add_argument("--max-cell-bytes", type=int, default=128)
    ap.add_argument("--result", default=None, help="Result stem (default docs/results/serialization_budget_<task>).")
    args = ap.parse_args()
    try:
        budgets = [int(b) for b in args.budgets.split(",")]
    except ValueError:
        raise SystemExit(f"error: --budgets {args.budgets!r}: expected integers separated by commas") from None
    td = resolve_task(args.task, args.data)
    parts = [td.train] + ([td.valid] if td.valid is not None else [])
    pairs = [(p.tables[t.table_index], t) for p in parts for t in p.targets]
    whole = whole_segments(pairs, args.max_cell_bytes)
    rows = [measure(pairs, SerializeConfig(max_bytes=b, max_cell_bytes=args.max_cell_bytes), whole) for b in budgets]
    out = Path(args.result or f"docs/results/serialization_budget_{args.task.replace('-', '_')}")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"task": args.task, **({"data": args.data} if args.data else {}), "max_cell_bytes": args.max_cell_bytes,
            "row_view": "deterministic (evaluation)", "max_rows": SerializeConfig().max_rows}
    result_file(out, ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    plot(rows, result_file(out, ".png"), f"{args.task}: what one serialized column holds")
    pct = lambda v: "–" if v is None else f"{v:.0%}"  # noqa: E731
    num = lambda v: "–" if v is None else f"{v:.0f}"  # noqa: E731
    lines = [f"# What the model sees of each column at a byte budget ({args.task}, {rows[0]['columns']} labelled columns)", "",
             "Written by `benchmarks/serialization_budget.py`. Deterministic row view (up to "
             f"{meta['max_rows']} rows), {args.max_cell_bytes} bytes per cell at most. A segment is complete when "
             "nothing of it was cut compared with the same rows serialized without a byte limit.", "",
             "| max_bytes | mean ids | main column: mean ids / complete | target: mean ids / complete | "
             "context: mean ids / columns | columns with any context |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['max_bytes']} | {r['mean_ids']:.0f} | {num(r['mean_main'])} / {pct(r['main_complete'])} | "
              f"{r['mean_target']:.0f} / {pct(r['target_complete'])} | {r['mean_context']:.0f} / "
              f"{r['mean_context_columns']:.1f} | {r['with_context']:.0%} |" for r in rows]
    lines += ["", f"![segments]({result_file(out, '.png').name})"]
    result_file(out, ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
