"""Which text encoding does the CSV reader detect in files that are not UTF-8? Writes docs/results/encodings.md/.json.

    .venv/bin/python benchmarks/text_encodings.py

Real text in legacy encodings: every table of the SOTAB V2 sample (CTA Train, Train50, Validation; CPA Train) whose
cells hold non-ASCII text, written as CSV (its first 300 rows) in each legacy encoding that can hold that text
exactly (cp1252, cp1250, cp1251, ... cp932, gb18030, big5, cp949): cp1252 for any such table, another encoding
only where the text has characters cp1252 lacks (the text's own script: a Polish table in cp1250, not an English
one with curly quotes; `_its_language`). A detection is right when the file decodes to the table's own text (encodings that give the same text
count as one: cp1252 for a German table held by cp1250 too is right). Compared: the reader now
(`readers.csv.detect_encoding`: charset-normalizer restricted to `LEGACY_ENCODINGS`, ranked by chaos, coherence
and how common the encoding is) and before (charset-normalizer's `best()` over every code page it knows).
The web tables are mostly English with a few accented names, so a file often has one or two non-ASCII characters:
hard cases for any detector; the per-encoding table says where each one goes wrong.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_files import write_json, write_markdown  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ENCODINGS = ("cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp932", "gb18030",
             "big5", "cp949")


def before(raw: bytes) -> str | None:
    """The reader's detection up to this benchmark's commit: charset-normalizer's best guess, unrestricted."""
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    return None if best is None else best.encoding


def now(raw: bytes) -> str | None:
    from aegir.tables import TableError
    from aegir.tables.readers.csv import detect_encoding

    try:
        return detect_encoding(raw)
    except TableError:
        return None


def tables(data: Path, limit: int | None, seed: int) -> list[str]:
    """The CSV text of each SOTAB sample table that holds non-ASCII text (first 300 rows)."""
    from aegir.tables.readers.sotab import read_sotab_table

    files = sorted(data.glob("*/*/*.json.gz"))
    random.Random(seed).shuffle(files)
    out = []
    for f in files:
        t = read_sotab_table(f)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for r in range(min(t.n_rows, 300)):
            w.writerow([c[r] for c in t.columns])
        text = buf.getvalue()
        if not text.isascii():
            out.append(text)
        if limit and len(out) >= limit:
            break
    return out


def _its_language(text: str, enc: str) -> bool:
    """Whether `enc` is an encoding a file of `text` would be written in: cp1252 for any non-ASCII text it holds,
    another encoding only for text with characters cp1252 lacks (Polish letters for cp1250, Cyrillic for cp1251,
    kana or Han for cp932, ...). Without this rule a Western table written in GB18030 or Big5 (which hold é as two
    bytes) would count, which no one writes; and typographic quotes alone, the same bytes in every Windows code
    page, would count once per code page."""
    if enc == "cp1252":
        return True
    if enc in ("cp932", "gb18030", "big5", "cp949"):  # these hold Latin and Cyrillic letters too: need CJK text
        return any(_CJK.match(ch) for ch in set(text))
    return any(ord(ch) > 127 and not _holds("cp1252", ch) for ch in set(text))


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")  # kana, Han, Hangul


def _holds(enc: str, ch: str) -> bool:
    try:
        ch.encode(enc)
        return True
    except UnicodeEncodeError:
        return False


def decodes_right(raw: bytes, enc: str | None, text: str) -> bool:
    if enc is None:
        return False
    try:
        return raw.decode(enc) == text
    except (UnicodeDecodeError, LookupError):
        return False


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="tables with non-ASCII text to use (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "encodings"))
    args = ap.parse_args(argv)
    from aegir.paths import shared_data_dir

    shared = shared_data_dir()
    if shared is None or not (shared / "sotab_v2_sample").is_dir():
        raise SystemExit("the SOTAB V2 sample is needed (../shared/data beside the checkout)")
    t0 = time.perf_counter()
    texts = tables(shared / "sotab_v2_sample", args.limit, args.seed)
    per: dict[str, Counter] = {e: Counter() for e in ENCODINGS}
    wrong: dict[str, Counter] = {e: Counter() for e in ENCODINGS}
    for text in texts:
        for enc in ENCODINGS:
            try:
                raw = text.encode(enc)
            except UnicodeEncodeError:
                continue  # this encoding cannot hold the table's text
            if not _its_language(text, enc):
                continue
            c = per[enc]
            c["files"] += 1
            for name, fn in (("now", now), ("before", before)):
                got = fn(raw)
                ok = decodes_right(raw, got, text)
                c[name] += ok
                if not ok:
                    wrong[enc][f"{name}:{got}"] += 1
    rows = [{"encoding": e, "files": per[e]["files"], "now": per[e]["now"], "before": per[e]["before"],
             "now_wrong_as": dict(Counter({k.split(":", 1)[1]: v for k, v in wrong[e].items() if k.startswith("now:")}).most_common(3)),
             "before_wrong_as": dict(Counter({k.split(":", 1)[1]: v for k, v in wrong[e].items() if k.startswith("before:")}).most_common(3))}
            for e in ENCODINGS if per[e]["files"]]
    total = {k: sum(r[k] for r in rows) for k in ("files", "now", "before")}
    r = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "tables": len(texts), "rows": rows,
         "total": total, "seconds": round(time.perf_counter() - t0, 1)}
    write_json(args.out, r)
    pct = lambda n, d: f"{100 * n / d:.0f}%" if d else "-"  # noqa: E731
    lines = ["# Text encoding detection of CSV files that are not UTF-8", "",
             f"Written by `benchmarks/text_encodings.py` on {r['date']}. {len(texts)} SOTAB V2 sample tables that hold "
             "non-ASCII text, each written as CSV in every legacy encoding that holds its text exactly and that its "
             "text calls for (cp1252 for all; another only for text with characters cp1252 lacks). Right = the detected encoding decodes the file to the table's text.", "",
             "| encoding | files | now: right | before: right | now: wrong, read as | before: wrong, read as |",
             "|---|---|---|---|---|---|"]
    for x in rows:
        lines.append(f"| {x['encoding']} | {x['files']} | {x['now']} ({pct(x['now'], x['files'])}) | {x['before']} "
                     f"({pct(x['before'], x['files'])}) | {', '.join(f'{k} {v}' for k, v in x['now_wrong_as'].items()) or '-'} | "
                     f"{', '.join(f'{k} {v}' for k, v in x['before_wrong_as'].items()) or '-'} |")
    lines.append(f"| **all** | {total['files']} | **{total['now']} ({pct(total['now'], total['files'])})** | "
                 f"{total['before']} ({pct(total['before'], total['files'])}) | | |")
    lines += ["", "Now: `detect_encoding` (charset-normalizer over `LEGACY_ENCODINGS` only, ranked by chaos, then "
              "coherence, then how common the encoding is). Before: charset-normalizer's `best()` over every code "
              "page it knows (Mac, DOS and ISO ones included). The encoding is a guess either way; `annotate` names "
              "the one it used in a note, and `encoding=` (`--encoding`) overrides it.",
              f"Time: {r['seconds']} s."]
    write_markdown(args.out, lines)
    return r


if __name__ == "__main__":
    main()
