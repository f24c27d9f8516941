"""How fast the synthetic SOTAB-like tables are made, and how learnable / how close to the real data they are.

    .venv/bin/python benchmarks/synthetic_data.py                 # writes docs/results/synthetic_data.{md,json,png}

Two measurements, no neural model involved:

- **Speed**: wall time of `generate_tables(N, seed)` in this process (one core; Faker instances are cached per
  locale, so the first call of a process pays their construction and is reported apart), min over `--reps`
  seeds, with the load average before and after (a shared machine's figures drift).
- **Learnability / transfer**: a deliberately simple probe, character 2-4-gram TF-IDF + logistic regression
  (SGD, log loss) on column *values only* (the first 6 cells, 40 characters each; no header, no context), trained
  and evaluated on the pairs of splits below. It says whether the generators produce label-separable values
  (synthetic -> synthetic) and how much of what the values carry transfers to real SOTAB V2 columns
  (synthetic -> real). It is not the project's TF-IDF baseline (`classical_baseline.py`, which also reads the
  header and 32 cells); that one is what Aegir is compared with.

Rows that need `../shared/data/sotab_v2_sample` are skipped (and say so) when it is absent. Validation numbers
only: the generators' formats were tuned while the Validation score was watched (docs/synthetic_data.md), so the
synthetic -> Validation rows are informational, not a clean held-out result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_files import result_file  # noqa: E402

from aegir.evaluation import classification_report  # noqa: E402
from aegir.paths import shared_data_dir  # noqa: E402
from aegir.tables.load import load_labeled, merge  # noqa: E402
from aegir.tables.synth import generate_tables  # noqa: E402
from aegir.tables.table import LabeledDataset  # noqa: E402

N_CELLS, CELL_CHARS = 6, 40


def values_text(ds: LabeledDataset) -> list[str]:
    """Each target column as the probe reads it: its first N_CELLS non-empty cells, CELL_CHARS characters each,
    joined by " | " (no header, no neighbouring columns)."""
    out = []
    for t in ds.targets:
        cells = [c for c in ds.tables[t.table_index].columns[t.column] if c.strip()][:N_CELLS]
        out.append(" | ".join(c[:CELL_CHARS] for c in cells))
    return out


def subset(ds: LabeledDataset, tables: range) -> LabeledDataset:
    """The tables in `tables` (a contiguous index range) and their targets, re-indexed."""
    keep = [t for t in ds.targets if t.table_index in tables]
    return replace(ds, tables=ds.tables[tables.start:tables.stop],
                   targets=[replace(t, table_index=t.table_index - tables.start) for t in keep])


@dataclass
class ProbeRow:
    train: str
    test: str
    train_columns: int
    test_columns: int
    test_labels: int  # labels present in the test gold
    micro_f1: float
    macro_f1: float


def probe(train: LabeledDataset, test: LabeledDataset, train_name: str, test_name: str, seed: int = 0) -> ProbeRow:
    """Fit the values-only TF-IDF + SGD logistic regression on `train`, score it on `test`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline

    clf = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, max_features=200_000),
                        SGDClassifier(loss="log_loss", alpha=1e-5, max_iter=30, tol=None, random_state=seed))
    clf.fit(values_text(train), [t.label for t in train.targets])
    pred = list(clf.predict(values_text(test)))
    gold = [t.label for t in test.targets]
    rep = classification_report(gold, pred)
    return ProbeRow(train_name, test_name, len(train.targets), len(test.targets), len(set(gold)),
                    round(rep.micro_f1, 4), round(rep.macro_f1, 4))


def time_generation(n_tables: int, seeds: list[int]) -> dict:
    """Seconds for generate_tables(n_tables, seed) per seed; the first call also builds the Faker instances."""
    times = []
    for s in seeds:
        t0 = time.perf_counter()
        generate_tables(n_tables, seed=s)
        times.append(time.perf_counter() - t0)
    warm = min(times[1:] or times)  # one call only: it is also the best
    return {"n_tables": n_tables, "seconds": [round(t, 3) for t in times], "first_call_s": round(times[0], 3),
            "best_warm_s": round(warm, 3), "tables_per_s_warm": round(n_tables / warm, 1)}


def run(n_tables: int = 1000, reps: int = 3, synth_train: int = 3000, sotab: Path | None = None,
        synth_probe: tuple[int, int] = (600, 200)) -> dict:
    """Every figure of the result file; `synth_probe` = (training, held-out) synthetic tables of the first row."""
    load_before = [round(x, 2) for x in os.getloadavg()]
    speed = time_generation(n_tables, list(range(100, 101 + reps)))  # seeds apart from the probe's (0-2)
    rows: list[ProbeRow] = []
    n_tr, n_te = synth_probe
    synth = generate_tables(n_tr + n_te, seed=0)  # generate_tables(n) is a prefix of generate_tables(n + k)
    rows.append(probe(subset(synth, range(0, n_tr)), subset(synth, range(n_tr, n_tr + n_te)),
                      f"{n_tr:,} synthetic tables (seed 0)",
                      f"{n_te:,} held-out synthetic tables (seed 0, tables {n_tr}-{n_tr + n_te - 1})"))
    notes = []
    if sotab is None:
        notes.append("../shared/data/sotab_v2_sample is absent: the rows on real SOTAB V2 columns were skipped.")
    else:
        parts = load_labeled("sotab", sotab)
        real_train, real_valid = parts["cta-train"], parts["cta-validation"]
        per = synth_train // 3
        big = merge([generate_tables(per, seed=s) for s in (0, 1, 2)])
        name = f"{synth_train:,} synthetic tables (seeds 0/1/2)"
        rows.append(probe(big, real_valid, name, "real SOTAB V2 CTA Validation (sample)"))
        rows.append(probe(big, real_train, name, "real SOTAB V2 CTA Train (sample)"))
        rows.append(probe(real_train, real_valid, "real CTA Train (sample)", "real SOTAB V2 CTA Validation (sample)"))
        rows.append(probe(merge([real_train, big]), real_valid, f"real CTA Train + {name}",
                          "real SOTAB V2 CTA Validation (sample)"))
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": os.uname().machine,
            "cpus": os.cpu_count(), "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()],
            "speed": speed, "probe": [asdict(r) for r in rows], "notes": notes,
            "probe_model": f"TF-IDF char_wb 2-4 + SGD log loss (alpha 1e-5, 30 epochs); values only: first {N_CELLS} "
                           f"non-empty cells, {CELL_CHARS} characters each"}


def write_results(res: dict, stem: str | Path) -> None:
    md, js, png = (result_file(stem, e) for e in (".md", ".json", ".png"))
    md.parent.mkdir(parents=True, exist_ok=True)
    js.write_text(json.dumps(res, indent=2) + "\n")
    sp = res["speed"]
    lines = ["# Synthetic tables: speed and learnability", "",
             f"Written by `benchmarks/synthetic_data.py` on {res['date']}. {res['machine']}, {res['cpus']} logical CPUs; "
             f"load average before/after: {res['load_before']} / {res['load_after']}.", "",
             "## Speed", "",
             f"`generate_tables({sp['n_tables']}, seed)`, one process, one core: **{sp['best_warm_s']} s** at best "
             f"({sp['tables_per_s_warm']:,} tables/s); the first call of the process, which also builds the Faker "
             f"instances, took {sp['first_call_s']} s. Every call: {sp['seconds']} s.", "",
             "## Learnability and transfer (a values-only probe)", "",
             f"Probe: {res['probe_model']}. Not the project's baseline (that one also reads the header).", "",
             "| trained on | evaluated on | train columns | test columns | test labels | micro-F1 | macro-F1 |",
             "|---|---|---|---|---|---|---|"]
    for r in res["probe"]:
        lines.append(f"| {r['train']} | {r['test']} | {r['train_columns']:,} | {r['test_columns']:,} | {r['test_labels']} "
                     f"| {r['micro_f1']:.3f} | {r['macro_f1']:.3f} |")
    lines += [""] + [f"- {n}" for n in res["notes"]]
    lines += ["", "The synthetic -> real Validation rows are informational: the generators' formats were tuned while the "
              "Validation score was watched (docs/synthetic_data.md).", ""]
    md.write_text("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.6 * len(res["probe"]) + 1.2))
    labels = [f"{r['train']}\n-> {r['test']}" for r in res["probe"]]
    y = np.arange(len(labels))
    ax.barh(y - 0.2, [r["macro_f1"] for r in res["probe"]], 0.4, label="macro-F1")
    ax.barh(y + 0.2, [r["micro_f1"] for r in res["probe"]], 0.4, label="micro-F1")
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 (values-only TF-IDF probe)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-tables", type=int, default=1000, help="Tables per timed generate_tables call.")
    ap.add_argument("--reps", type=int, default=3, help="Timed calls after the first (each a new seed).")
    ap.add_argument("--synthetic-train", type=int, default=3000, help="Synthetic tables for the synthetic -> real rows.")
    ap.add_argument("--result", default="docs/results/synthetic_data")
    args = ap.parse_args()
    shared = shared_data_dir()
    sotab = shared / "sotab_v2_sample" if shared is not None and (shared / "sotab_v2_sample").is_dir() else None
    res = run(args.n_tables, args.reps, args.synthetic_train, sotab)
    write_results(res, args.result)
    print(Path(result_file(args.result, ".md")).read_text())


if __name__ == "__main__":
    main()
