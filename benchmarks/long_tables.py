"""Reading and annotating a long table file (CSV, gzip, zstd, Excel, OpenDocument, SQLite, JSON Lines): time and
peak memory. Writes docs/results/long_tables.md/.json.

    .venv/bin/python benchmarks/long_tables.py --checkpoint outputs/demo-cta/<ts>/final.pt

Users hand `aegir annotate` CSV exports of millions of rows. annotate() parses the first
`max_rows_read` (100,000) rows and counts the rest, so the file's length should cost time, not memory.
This writes a seeded CSV of `--rows` rows (6 columns: id, name, city, price, date, email; ~64 bytes a
row) and measures, each in a fresh Python process (peak RSS from getrusage, so one measurement
cannot inherit another's heap):
1. the CSV reader at `--before` (default 3f3c971: the whole file read into memory, decoded, then parsed),
   loaded from git, against the current streaming reader (`read_table_file(path, max_rows=...)`), which
   keeps the first rows, or with `spread=True` (annotate's reading) a uniform sample of all of them;
2. with `--checkpoint`, the whole `annotate()` call on the file (current code);
3. the first `--excel-rows` rows (default 200,000; 0 skips it) as one .xlsx worksheet, read as annotate reads
   it (`read_table_file(path, max_rows=..., spread=True)`, openpyxl read-only);
4. the first `--sqlite-rows` rows (default: all; 0 skips it) as one SQLite table, read the same way;
5. the CSV gzip-compressed (`--no-gzip` skips it), read the same way (decompressed as a stream);
6. the first `--json-rows` rows (default 1,000,000; 0 skips it) as JSON Lines, read the same way;
7. the first `--ods-rows` rows (default 200,000; 0 skips it) as one OpenDocument (.ods) sheet, laid out as
   LibreOffice writes one (numbers and dates typed, each cell's shown text beside), read the same way;
8. the CSV zstd-compressed (`--no-zstd` skips it), read the same way.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_files import result_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CITIES = ["Berlin", "Paris", "Lyon", "Oslo", "Madrid", "Rome", "Wien", "Porto"]

# Run in a child process: prints one JSON line with the seconds, the peak RSS and the table's size.
CHILD = r"""
import json, resource, sys, time, types
mode, path, max_rows, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if mode == "before":  # the reader module as it was at a commit, from `git show`
    mod = types.ModuleType("csv_before")
    exec(compile(open(extra).read(), "csv_before.py", "exec"), mod.__dict__)
    read = lambda: mod.read_csv(path, max_rows=max_rows)
elif mode in ("now", "spread", "excel", "sqlite", "gzip", "json", "ods", "zstd"):
    from aegir.tables.readers.files import read_table_file
    read = lambda: read_table_file(path, max_rows=max_rows, spread=mode != "now")
else:
    from aegir.annotation import annotate
    import torch
    torch.set_num_threads(2)
    read = lambda: annotate(path, extra, max_rows_read=max_rows)
t = time.perf_counter()
out = read()
dt = time.perf_counter() - t
res = {"seconds": dt, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
if mode == "annotate":
    res.update(columns=len(out.columns), rows_read=out.columns[0].rows_read, rows_total=out.columns[0].rows_total,
               labels=[c.label for c in out.columns])
else:
    res.update(rows=out.n_rows, rows_total=out.meta["rows_total"])
print(json.dumps(res))
"""

# The same child with nothing read: the interpreter's and the imports' own peak RSS.
BASELINE = {"before": "import types", "now": "from aegir.tables.readers.files import read_table_file",
            "spread": "from aegir.tables.readers.files import read_table_file",
            "excel": "from aegir.tables.readers.files import read_table_file; import openpyxl",
            "sqlite": "from aegir.tables.readers.files import read_table_file; import sqlite3",
            "gzip": "from aegir.tables.readers.files import read_table_file",
            "json": "from aegir.tables.readers.files import read_table_file",
            "ods": "from aegir.tables.readers.files import read_table_file; import defusedxml",
            "zstd": "from aegir.tables.readers.files import read_table_file",
            "annotate": "from aegir.annotation import annotate; import torch"}


def _rows(n: int, seed: int = 0):
    r = random.Random(seed)
    for i in range(n):
        yield (i, f"Person {r.randrange(10**6)}", r.choice(CITIES), f"{r.random() * 100:.2f}",
               f"2024-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}", f"u{r.randrange(10**6)}@example.com")


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    with open(path, "w", newline="") as f:
        f.write("id,name,city,price,date,email\n")
        for row in _rows(rows, seed):
            f.write(",".join(map(str, row)) + "\n")


def write_xlsx(path: Path, rows: int, seed: int = 0) -> None:
    """The same rows as one worksheet (ids as numbers, the rest as text, as a spreadsheet export holds them)."""
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("data")
    ws.append(["id", "name", "city", "price", "date", "email"])
    for row in _rows(rows, seed):
        ws.append(list(row))
    wb.save(path)


def write_sqlite(path: Path, rows: int, seed: int = 0) -> None:
    """The same rows as one SQLite table (ids as integers, prices as reals, the rest as text)."""
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("CREATE TABLE data (id INTEGER, name TEXT, city TEXT, price REAL, date TEXT, email TEXT)")
    con.executemany("INSERT INTO data VALUES (?, ?, ?, ?, ?, ?)",
                    ((i, n, c, float(p), d, e) for i, n, c, p, d, e in _rows(rows, seed)))
    con.commit()
    con.close()


def write_jsonl(path: Path, rows: int, seed: int = 0) -> None:
    """The same rows as JSON Lines, one object per row (ids as numbers, the rest as strings)."""
    keys = ("id", "name", "city", "price", "date", "email")
    with open(path, "w", encoding="utf-8") as f:
        for row in _rows(rows, seed):
            f.write(json.dumps(dict(zip(keys, row))) + "\n")


def write_ods(path: Path, rows: int, seed: int = 0) -> None:
    """The same rows as one .ods sheet, laid out as LibreOffice writes it: ids and prices as float cells, dates
    as date cells, each with its shown text in a text:p; the XML streamed into the zip."""
    import zipfile
    from xml.sax.saxutils import escape

    ns = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"')

    def text(v: str) -> str:
        return f'<table:table-cell office:value-type="string"><text:p>{escape(v)}</text:p></table:table-cell>'

    def number(v) -> str:
        return f'<table:table-cell office:value-type="float" office:value="{v}"><text:p>{v}</text:p></table:table-cell>'

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", compress_type=zipfile.ZIP_STORED)
        with z.open("content.xml", "w", force_zip64=True) as f:
            f.write(f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns}><office:body>'
                    '<office:spreadsheet><table:table table:name="data">'.encode())
            head = "".join(text(h) for h in ("id", "name", "city", "price", "date", "email"))
            f.write(f"<table:table-row>{head}</table:table-row>".encode())
            for i, name, city, price, date, email in _rows(rows, seed):
                f.write((f"<table:table-row>{number(i)}{text(name)}{text(city)}{number(price)}"
                         f'<table:table-cell office:value-type="date" office:date-value="{date}"><text:p>{date}'
                         f"</text:p></table:table-cell>{text(email)}</table:table-row>").encode())
            f.write(b'<table:table-row table:number-rows-repeated="1048000"><table:table-cell '
                    b'table:number-columns-repeated="1024"/></table:table-row></table:table></office:spreadsheet>'
                    b"</office:body></office:document-content>")


def child(mode: str, path: Path, max_rows: int, extra: str) -> dict:
    py = sys.executable
    out = subprocess.run([py, "-c", CHILD, mode, str(path), str(max_rows), extra], check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout
    base = subprocess.run([py, "-c", BASELINE[mode] + "; import resource; "
                           "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
                          check=True, capture_output=True, text=True, cwd=ROOT).stdout
    res = json.loads(out.strip().splitlines()[-1])
    res["baseline_rss_mb"] = float(base.strip().splitlines()[-1])
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--rows", type=int, default=8_000_000)
    ap.add_argument("--max-rows", type=int, default=100_000, help="rows kept (annotate's max_rows_read)")
    ap.add_argument("--before", default="3f3c971", help="git revision of the reader to compare with")
    ap.add_argument("--reps", type=int, default=3, help="runs per reader, round-robin over the readers (the fastest is reported)")
    ap.add_argument("--excel-rows", type=int, default=200_000, help="rows of the .xlsx version (0: skip it)")
    ap.add_argument("--sqlite-rows", type=int, default=None, help="rows of the SQLite version (default: --rows; 0: skip it)")
    ap.add_argument("--no-gzip", action="store_true", help="skip the gzip-compressed CSV")
    ap.add_argument("--json-rows", type=int, default=1_000_000, help="rows of the JSON Lines version (0: skip it)")
    ap.add_argument("--ods-rows", type=int, default=200_000, help="rows of the .ods version (0: skip it)")
    ap.add_argument("--no-zstd", action="store_true", help="skip the zstd-compressed CSV")
    ap.add_argument("--out", default=str(ROOT / "docs/results/long_tables"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.csv"
        write_csv(path, args.rows)
        size_mb = path.stat().st_size / 2**20
        old_src = Path(tmp) / "csv_before.py"
        shown = subprocess.run(["git", "show", f"{args.before}:src/aegir/tables/readers/csv.py"],
                               capture_output=True, text=True, cwd=ROOT)
        modes: tuple = (("now", "-"), ("spread", "-"))
        if shown.returncode == 0:
            old_src.write_text(shown.stdout)
            modes = (("before", str(old_src)),) + modes
        else:  # a shallow clone or a tarball: no history to compare with
            print(f"no reader at {args.before} ({shown.stderr.strip()}): timing the current one only", flush=True)
        if args.checkpoint:
            modes += (("annotate", args.checkpoint),)
        paths = {m: path for m, _ in modes}
        def write_gzip(dest: Path, _rows: int) -> None:  # the CSV itself, compressed
            import gzip
            import shutil

            with open(path, "rb") as src, gzip.open(dest, "wb", compresslevel=1) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)

        def write_zstd(dest: Path, _rows: int) -> None:  # the CSV itself, compressed at zstd's default level
            import zstandard

            with open(path, "rb") as src, open(dest, "wb") as dst:
                zstandard.ZstdCompressor(level=3).copy_stream(src, dst)

        sqlite_rows = args.rows if args.sqlite_rows is None else args.sqlite_rows
        other_forms = (("excel", args.excel_rows, write_xlsx, "long.xlsx"),
                       ("sqlite", sqlite_rows, write_sqlite, "long.sqlite"),
                       ("gzip", 0 if args.no_gzip else args.rows, write_gzip, "long.csv.gz"),
                       ("json", args.json_rows, write_jsonl, "long.jsonl"),
                       ("ods", args.ods_rows, write_ods, "long.ods"),
                       ("zstd", 0 if args.no_zstd else args.rows, write_zstd, "long.csv.zst"))
        mb = {}
        for mode, rows, writer, name in other_forms:
            if rows:
                paths[mode] = Path(tmp) / name
                writer(paths[mode], rows)
                mb[mode] = paths[mode].stat().st_size / 2**20
                modes += ((mode, "-"),)
        # Round-robin (every mode once, then again): the machine's speed drifts over minutes, so each mode's
        # fastest repetition comes from several phases rather than all of its runs from one.
        reps: dict[str, list[dict]] = {m: [] for m, _ in modes}
        for rep in range(args.reps):
            for mode, extra in modes:
                if mode != "annotate" or rep == 0:
                    reps[mode].append(child(mode, paths[mode], args.max_rows, extra))
                    print(mode, reps[mode][-1], flush=True)
        runs = {m: min(r, key=lambda x: x["seconds"]) for m, r in reps.items()}
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": args.rows, "file_mb": size_mb,
           "max_rows": args.max_rows, "before": args.before, "checkpoint": args.checkpoint, "runs": runs,
           "excel_rows": args.excel_rows, "xlsx_mb": mb.get("excel", 0.0), "sqlite_rows": sqlite_rows,
           "sqlite_mb": mb.get("sqlite", 0.0), "gzip_mb": mb.get("gzip", 0.0), "json_rows": args.json_rows,
           "json_mb": mb.get("json", 0.0), "ods_rows": args.ods_rows, "ods_mb": mb.get("ods", 0.0),
           "zstd_mb": mb.get("zstd", 0.0)}
    write(out, Path(args.out))
    return out


def write(res: dict, stem: Path) -> None:
    result_file(stem, ".json").write_text(json.dumps(res, indent=1) + "\n")
    r = res["runs"]
    names = {"before": f"CSV reader at {res['before']} (whole file in memory)",
             "now": "CSV reader now (streamed; the first rows)",
             "spread": "CSV reader now, `spread=True` (streamed; a uniform sample of the file's rows, as annotate reads)",
             "annotate": "`annotate()` now (read + serialize + classify)",
             "excel": f"Excel reader, `spread=True`, the first {res.get('excel_rows', 0):,} rows as one .xlsx worksheet "
                      f"({res.get('xlsx_mb', 0):,.0f} MiB; openpyxl read-only)",
             "sqlite": f"SQLite reader, `spread=True`, {res.get('sqlite_rows', 0):,} rows as one table "
                       f"({res.get('sqlite_mb', 0):,.0f} MiB; sqlite3, `SELECT *` streamed)",
             "gzip": f"CSV reader now, `spread=True`, the CSV gzip-compressed ({res.get('gzip_mb', 0):,.0f} MiB; "
                     "decompressed as it is read)",
             "json": f"JSON Lines reader, `spread=True`, the first {res.get('json_rows', 0):,} rows "
                     f"({res.get('json_mb', 0):,.0f} MiB; every line parsed)",
             "ods": f"OpenDocument reader, `spread=True`, the first {res.get('ods_rows', 0):,} rows as one .ods sheet "
                    f"({res.get('ods_mb', 0):,.0f} MiB; content.xml parsed as a stream)",
             "zstd": f"CSV reader now, `spread=True`, the CSV zstd-compressed ({res.get('zstd_mb', 0):,.0f} MiB; "
                     "decompressed as it is read)"}
    L = ["# Reading and annotating a long table (CSV, gzip/zstd-compressed CSV, Excel, OpenDocument, SQLite, "
         "JSON Lines)", "",
         f"Written by `benchmarks/long_tables.py` on {res['date']}. A seeded CSV of {res['rows']:,} rows x 6 columns "
         f"({res['file_mb']:,.0f} MiB); {res['max_rows']:,} rows kept (annotate's `max_rows_read`), the rest counted. "
         "Each figure from a fresh Python process; peak RSS is the process's, and the import-only row is the same "
         "process with nothing read (annotate's includes torch).", "",
         "| what | seconds | peak RSS | RSS of the imports alone | rows kept (annotate: read per column) | rows counted |", "|---|---|---|---|---|---|"]
    for k in ("before", "now", "spread", "gzip", "zstd", "annotate", "excel", "ods", "sqlite", "json"):
        if k not in r:
            continue
        x = r[k]
        kept = x.get("rows", x.get("rows_read"))
        L.append(f"| {names[k]} | {x['seconds']:.1f} | {x['peak_rss_mb']:,.0f} MB | {x['baseline_rss_mb']:,.0f} MB | "
                 f"{kept:,} | {x['rows_total']:,} |")
    if "before" in r and "now" in r:
        b, n = r["before"], r["now"]
        grow_b = b["peak_rss_mb"] - b["baseline_rss_mb"]
        grow_n = n["peak_rss_mb"] - n["baseline_rss_mb"]
        L += ["", f"The streamed reader: **{b['seconds'] / n['seconds']:.1f}x** faster, and its memory above the "
              f"imports is {grow_n:,.0f} MB against {grow_b:,.0f} MB ({grow_b / res['file_mb']:.1f}x the file's size "
              "before; now bounded by the rows kept, whatever the file's length). Both count every row."]
    if "annotate" in r:
        a = r["annotate"]
        L += ["", f"`annotate()` labels: {', '.join(str(x) for x in a['labels'])} (checkpoint `{res['checkpoint']}`)."]
    text = "\n".join(L) + "\n"
    result_file(stem, ".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
