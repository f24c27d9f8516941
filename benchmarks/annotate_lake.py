"""Annotating a folder of CSV files (`annotate_files`): throughput, a resumed kill, and the labels
against `aegir eval`. Writes docs/results/annotate_lake.md/.json.

    .venv/bin/python benchmarks/annotate_lake.py --checkpoint outputs/demo-cta/<ts>/final.pt

The "lake" is the SOTAB V2 CTA validation sample (../shared/data/sotab_v2_sample/CTA/Validation),
each table written as a headerless CSV into a temp folder, plus two files that are not tables (one
binary, one empty). The script:
1. annotates the folder (`--no-header`), timing it and the part spent in the model;
2. annotates them again with the header guessed (the default), to show what `--no-header` is for;
3. cuts the output in the middle of a file's records (what a kill mid-write leaves), resumes, and
   checks the output is byte-identical to the uninterrupted run's;
4. joins the records with the gold labels and scores them (micro/macro-F1), next to `eval_dataset`
   on the original SOTAB JSON tables with the same checkpoint: the two must agree, since CSV
   round-trip and file-by-file batching change nothing the model reads.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_files import write_json, write_markdown  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOTAB = ROOT.parent / "shared/data/sotab_v2_sample/CTA"

import torch  # noqa: E402

import aegir.inference as inference  # noqa: E402
from aegir.annotate_batch import annotate_files  # noqa: E402
from aegir.eval_run import eval_dataset  # noqa: E402
from aegir.evaluation.metrics import classification_report  # noqa: E402
from aegir.inference import load_classifier  # noqa: E402
from aegir.tables.load import load_labeled  # noqa: E402
from aegir.tables.readers.sotab import read_sotab_table  # noqa: E402


def write_lake(src: Path, lake: Path, limit: int | None = None) -> dict[str, str]:
    """The SOTAB tables of `src` (the first `limit`) as headerless CSVs in `lake`; returns CSV name -> SOTAB name."""
    names = {}
    for f in sorted(src.glob("*.json.gz"))[:limit]:
        t = read_sotab_table(f)
        name = f.name.removesuffix(".json.gz") + ".csv"
        with open(lake / name, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(t.rows())
        names[name] = f.name
    (lake / "broken.csv").write_bytes(b"\x00\x01\x02\x03 binary")
    (lake / "empty.csv").write_text("")
    return names


def per_file_vs_one_call(lc, lake: Path, reps: int = 2) -> dict:
    """The lake's columns classified file by file (as annotate_files does) and in one `predict`
    call over every file's columns (what batching across files would do), alternating, fastest of
    `reps`; and how far the two runs' logits are apart (batch composition changes float rounding)."""
    import numpy as np

    from aegir.encoding.batch import encode_column, view_seed
    from aegir.tables.readers.files import read_table_file
    from aegir.tables.table import TableError

    per_file = []
    for p in sorted(lake.glob("*.csv")):
        try:
            t = read_table_file(p, header=False, max_rows=100_000)
        except TableError:
            continue
        per_file.append([encode_column(t, j, lc.serialize_cfg, row_seed=view_seed(0, 0)) for j in range(t.n_cols)])
    every = [e for f in per_file for e in f]
    times = {"per_file": [], "one_call": []}
    for _ in range(reps):
        t = time.perf_counter()
        sep = [inference.predict(lc.model, f, 64) for f in per_file]
        times["per_file"].append(time.perf_counter() - t)
        t = time.perf_counter()
        one = inference.predict(lc.model, every, 64)
        times["one_call"].append(time.perf_counter() - t)
    a = np.concatenate([x.logits for x in sep])
    return {"files": len(per_file), "columns": len(every), "per_file_s": min(times["per_file"]),
            "one_call_s": min(times["one_call"]), "max_abs_logit_diff": float(np.abs(a - one.logits).max()),
            "same_top1": int((a.argmax(1) == one.logits.argmax(1)).sum())}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="Only the first N tables (a smoke run).")
    ap.add_argument("--out", default=str(ROOT / "docs/results/annotate_lake"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not (SOTAB / "Validation").is_dir():
        sys.exit(f"{SOTAB}/Validation not found: this benchmark needs ../shared/data beside the checkout")
    lc = load_classifier(args.checkpoint)

    model_s = [0.0]
    predict = inference.predict_views

    def timed(*a, **k):  # the model's share of the run (encoding + forward + softmax per file)
        t = time.perf_counter()
        out = predict(*a, **k)
        model_s[0] += time.perf_counter() - t
        return out

    with tempfile.TemporaryDirectory() as tmp:
        lake, out = Path(tmp) / "lake", Path(tmp) / "annotations.jsonl"
        lake.mkdir()
        names = write_lake(SOTAB / "Validation", lake, args.limit)
        inference.predict_views = timed
        try:
            t = time.perf_counter()
            res = annotate_files([lake], lc, out, header=False, progress=False)
            run_s = time.perf_counter() - t
        finally:
            inference.predict_views = predict
        full = out.read_bytes()
        # A kill mid-write: the output cut inside some file's records, half-way through the run.
        cut = full.index(b"\n", len(full) // 2) + 1 + 40
        out.write_bytes(full[:cut])
        t = time.perf_counter()
        resumed = annotate_files([lake], lc, out, header=False, resume=True, progress=False)
        resume_s = time.perf_counter() - t
        identical = out.read_bytes() == full
        records = [json.loads(line) for line in full.decode("utf-8").splitlines()]
        # The same files with the header guessed (the default): how often is a first data row taken for names?
        guessed_out = Path(tmp) / "guessed.jsonl"
        guessed_res = annotate_files([lake], lc, guessed_out, progress=False)
        guessed = [json.loads(line) for line in guessed_out.read_text(encoding="utf-8").splitlines()]
        batching = per_file_vs_one_call(lc, lake)

    gold_rows = list(csv.DictReader(open(SOTAB / "CTA_validation_gt.csv", encoding="utf-8")))
    inv = {v: k for k, v in names.items()}
    gold_rows = [g for g in gold_rows if g["table_name"] in inv]  # all of them unless --limit

    def score(recs: list[dict]) -> tuple:
        by_key = {(Path(r["file"]).name, r["column_index"]): r["label"] for r in recs}
        pred = [by_key.get((inv.get(g["table_name"], ""), int(g["column_index"]))) for g in gold_rows]
        return classification_report([g["label"] for g in gold_rows], pred), by_key

    lake_rep, by_key = score(records)
    guess_rep, _ = score(guessed)
    n_rows = {r["file"]: r["rows_total"] for r in records}  # read with --no-header: every row
    taken_as_header = len({r["file"] for r in guessed if r["rows_total"] < n_rows[r["file"]]})
    (valid,) = load_labeled("sotab", SOTAB / "Validation", gold=SOTAB / "CTA_validation_gt.csv").values()
    if args.limit is not None:
        valid = replace(valid, targets=[t for t in valid.targets if valid.tables[t.table_index].name in inv])
    ev = eval_dataset(lc, valid)
    agree = {(e.table, e.column): e.predicted[0] for e in ev.predictions}
    same = sum(by_key.get((inv[t], c)) == lab for (t, c), lab in agree.items())

    r = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "checkpoint": args.checkpoint,
         "threads": args.threads, "files": res.files, "tables_annotated": res.annotated, "columns": res.columns,
         "errors": [vars(e) for e in res.errors], "run_s": run_s, "model_s": model_s[0],
         "resume": {"skipped": resumed.skipped, "annotated": resumed.annotated, "seconds": resume_s,
                    "output_identical": identical},
         "lake": {"n": lake_rep.n, "micro_f1": lake_rep.micro_f1, "macro_f1": lake_rep.macro_f1},
         "eval": {"n": ev.report.n, "micro_f1": ev.report.micro_f1, "macro_f1": ev.report.macro_f1},
         "same_label_as_eval": same, "labelled_columns": len(agree),
         "header_guessed": {"tables_taken_as_headed": taken_as_header, "reported": guessed_res.header_guessed,
                           "micro_f1": guess_rep.micro_f1,
                            "macro_f1": guess_rep.macro_f1},
         "batching": batching}
    stem = Path(args.out)
    write_json(stem, r)
    L = ["# Annotating a folder of CSV files", "",
         f"Written by `benchmarks/annotate_lake.py` on {r['date']}. Checkpoint `{args.checkpoint}`, "
         f"{args.threads} threads. The lake: {'the' if args.limit is None else 'the first'} {res.files - 2} tables of the SOTAB V2 CTA validation sample as "
         "headerless CSVs, plus a binary file and an empty one.", "",
         "| what | figure |", "|---|---|",
         f"| tables annotated | {res.annotated} of {res.files} files ({len(res.errors)} listed as unreadable: "
         + ", ".join(Path(e.file).name for e in res.errors) + ") |",
         f"| columns annotated | {res.columns} |",
         f"| wall time | {run_s:.1f} s ({res.columns / run_s:.0f} columns/s, {res.annotated / run_s:.0f} tables/s) |",
         f"| of which in the model (encode + forward) | {model_s[0]:.1f} s |",
         f"| resumed after a cut mid-file | {resumed.skipped} files skipped, {resumed.annotated} annotated in "
         f"{resume_s:.1f} s; output byte-identical to the uninterrupted run: **{identical}** |",
         f"| labelled columns scored from the JSON Lines | micro-F1 {lake_rep.micro_f1:.3f}, macro-F1 "
         f"{lake_rep.macro_f1:.3f} ({lake_rep.n} columns) |",
         f"| `eval_dataset` on the SOTAB JSON tables | micro-F1 {ev.report.micro_f1:.3f}, macro-F1 "
         f"{ev.report.macro_f1:.3f} ({ev.report.n} columns) |",
         f"| same label in both | {same} of {len(agree)} labelled columns |",
         f"| the same files with the header guessed (no `--no-header`) | {taken_as_header} of {res.annotated} tables "
         f"read as having a header row ({guessed_res.header_guessed} of them on the weakest guess, unique non-numeric "
         f"first-row cells, which annotate reports in a note); micro-F1 {guess_rep.micro_f1:.3f}, macro-F1 "
         f"{guess_rep.macro_f1:.3f} |",
         f"| the model on every file's columns, file by file / in one call across files | "
         f"{batching['per_file_s']:.1f} s / {batching['one_call_s']:.1f} s ({batching['columns']} columns of "
         f"{batching['files']} files; same top label for {batching['same_top1']}, logits within "
         f"{batching['max_abs_logit_diff']:.1e}) |", "",
         "Each file is one `annotate()` call with its columns batched together, so a file's labels and scores do "
         "not depend on the other files. Batching across files would not make the model faster: the stacks run "
         "packed (no padding) and a file's batch already amortises the per-call work (row above); it would only "
         "make a file's scores depend, in the last float bits, on its neighbours."]
    write_markdown(stem, L)
    return r


if __name__ == "__main__":
    main()
