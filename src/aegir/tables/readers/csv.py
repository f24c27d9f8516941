"""CSV/TSV files and pandas DataFrames -> Table, plus labelled CSV folders for custom training data.

The csv module (not pandas) parses files so ragged rows survive (pandas raises or drops them) and
every error can name its line. Files are read as a stream (the rows kept are bounded by max_rows, the
rest only counted); the encoding, delimiter, preamble and header are guessed from the file's start
(charset-normalizer for non-UTF-8 text).
"""

from __future__ import annotations

import codecs
import csv as _csv
import io
import itertools
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aegir.tables.readers.common import SkipCounter, row_sample_kind, safe_member_name
from aegir.tables.readers.header import guess_header
from aegir.tables.table import LabeledColumn, LabeledDataset, Table, TableError

_csv.field_size_limit(1 << 24)  # long text cells are legitimate; the default 128 KiB limit is not


HEAD_BYTES = 1 << 20  # what encoding detection and the delimiter/header sniffers read


def detect_encoding(raw: bytes, path: str | Path = "<bytes>", partial: bool = False) -> str:
    """The text encoding of `raw` (a whole file, or with `partial` its first bytes: a multi-byte
    character cut at the end is then not an error)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(raw, final=not partial)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw[:HEAD_BYTES]).best()
    if best is None:
        raise TableError(f"{path}: cannot detect the text encoding (is this a binary file?)")
    return best.encoding


def _guess(block: bytes) -> str | None:
    """A second encoding for a file whose first guess failed on `block` (None: no idea): charset-
    normalizer's best for the block's lines that hold non-ASCII bytes, or cp1252 (the usual
    Windows/Excel export) where it decodes that evidence to the same text as the best match."""
    from charset_normalizer import from_bytes

    evidence = b"\n".join(line for line in block.splitlines() if max(line, default=0) >= 0x80)
    best = from_bytes(evidence or block).best()
    if best is None:
        return None
    return "cp1252" if "cp1252" in best.could_be_from_charset else best.encoding


def _sniff_delimiter(sample: str, path: Path) -> str:
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    try:
        return _csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except _csv.Error:
        return ","


def _blank(row: list[str]) -> bool:
    return not row or not (row[0].strip() or any(map(str.strip, row)))


FIRST_ROWS = 200  # the rows the preamble and header guesses look at


@dataclass
class _Parsed:
    first: list[list[str]]  # the file's first FIRST_ROWS non-blank rows
    kept: list[tuple[int, list[str]]]  # (row number among non-blank rows, row), in file order
    total: int  # non-blank rows in the file


def _parse(path: Path, enc: str, delim: str, keep: int | None, spread: bool = False) -> _Parsed:
    """The file's non-blank rows, read as a stream: all of them (keep None), the first `keep`, or
    with `spread` a uniform random sample of `keep` of them (seeded), and how many there are. Memory
    grows with `keep`, not with the file: a multi-GB CSV is counted, not held."""
    first: list[list[str]] = []
    kept: list[tuple[int, list[str]]] = []
    total = 0
    with open(path, "rb") as raw:
        reader = _csv.reader(io.TextIOWrapper(raw, encoding=enc, newline=""), delimiter=delim)
        try:
            rows = (row for row in reader if not _blank(row))  # blank lines carry no cells
            if keep is not None and spread:
                total = _reservoir(rows, keep, first, kept)
            else:
                for total, row in enumerate(rows, 1):
                    if total <= FIRST_ROWS:
                        first.append(row)
                    if keep is not None and total > keep:
                        if total > FIRST_ROWS:
                            break
                        continue
                    kept.append((total - 1, row))
                # Past the rows kept: count the rest, without building a table.
                total += sum(1 for _ in rows)
        except _csv.Error as e:
            raise TableError(f"{path}, line {reader.line_num}: malformed CSV ({e})") from None
        except UnicodeDecodeError as e:
            # The stream decodes ahead of the parser in blocks: the bad byte is at or after this line.
            raise _DecodeError(f"near line {reader.line_num + 1}: cannot decode as {enc} ({e.reason})",
                               bytes(e.object)) from None
    return _Parsed(first, kept, total)


def _reservoir(rows, k: int, first: list, kept: list, rng: random.Random | None = None) -> int:
    """Li's Algorithm L over `rows`: `kept` ends as a uniform random sample of k of them (all when
    there are fewer), as (row number, row) in file order; `first` gets the first FIRST_ROWS. Past the
    first k rows it draws random numbers only at the rows it takes (~k log(n/k) of them; the rows
    between are only counted). Seeded: the same file gives the same sample."""
    rng = rng or random.Random(0)
    u = lambda: 1.0 - rng.random()  # noqa: E731  in (0, 1]: its log is finite
    w = math.exp(math.log(u()) / k)
    take = k + _skip(u(), w)  # the next row (number) to take into the sample
    n = 0
    for row in rows:  # row by row until the sample is full and `first` is filled
        i, n = n, n + 1
        if i < FIRST_ROWS:
            first.append(row)
        if i < k:
            kept.append((i, row))
        elif i == take:
            kept[rng.randrange(k)] = (i, row)
            w *= math.exp(math.log(u()) / k)
            take = n + _skip(u(), w)
        if n >= k and n >= FIRST_ROWS:
            break
    while True:  # then skip to each row taken: the rows between are counted, not sampled
        gap = take - n
        passed = sum(1 for _ in itertools.islice(rows, gap))
        n += passed
        row = next(rows, None) if passed == gap else None
        if row is None:
            break
        kept[rng.randrange(k)] = (n, row)
        n += 1
        w *= math.exp(math.log(u()) / k)
        take = n + _skip(u(), w)
    kept.sort(key=lambda t: t[0])
    return n


def _skip(u: float, w: float) -> int:
    """Rows Algorithm L passes over before its next take: floor(log u / log(1 - w))."""
    return 0 if w >= 1.0 else int(math.floor(math.log(u) / math.log1p(-w)))


class _DecodeError(Exception):
    """The chosen encoding failed part-way through the file; `block` holds the bytes it failed on
    (read_csv guesses again from them)."""

    def __init__(self, message: str, block: bytes) -> None:
        super().__init__(message)
        self.block = block


def read_csv(
    path: str | Path,
    *,
    header: bool | str = "infer",
    delimiter: str | None = None,
    encoding: str | None = None,
    max_rows: int | None = None,
    spread: bool = False,
    meta: dict[str, Any] | None = None,
) -> Table:
    """Read a CSV/TSV file into a Table.

    header: True (first row is a header), False (headerless), or "infer" (guessed from how the first
        row's cells compare with their columns' values, `readers.header.guess_header`). "infer" also skips a preamble
        (title or notes rows above the table, `_preamble`; counted in `meta["preamble_rows"]`); with
        True or False every row is read as given.
    max_rows: read at most this many data rows (None = all). The caller decides; nothing is
        dropped silently — `meta["rows_total"]` still counts every row. The file is read as a
        stream: with max_rows, memory stays bounded however long the file is.
    spread: with max_rows, keep a uniform random sample of max_rows data rows from the whole file
        (seeded, in file order) instead of the first ones: what annotate reads, so a long sorted export
        is seen end to end. `meta["row_sample"]` says which: "spread", "first", or "all" (every row kept).
    The encoding (when not given), the delimiter and the header are guessed from the file's first
    MiB; if the guessed encoding fails further on, a second guess from the bytes it failed on is
    tried once (the file read again from the start) before the file is reported undecodable.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as e:
        raise TableError(f"{path}: cannot read file ({e.strerror or e})") from None
    if b"\x00" in head[:4096] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TableError(f"{path}: looks like a binary file, not CSV/TSV text")
    partial = size > len(head)
    enc = encoding or detect_encoding(head, path, partial)
    try:  # 64 KiB hold the sniffers' 8192 characters in any encoding
        whole = len(head) <= 1 << 16 and not partial
        sample = codecs.getincrementaldecoder(enc)().decode(head[:1 << 16], final=whole)[:8192]
    except UnicodeDecodeError as e:
        line = head[:e.start].count(b"\n") + 1
        raise TableError(f"{path}, line {line}: cannot decode as {enc} ({e.reason}; pass the file's encoding)") from None
    except LookupError as e:
        raise TableError(f"{path}: cannot decode as {enc}: {e}") from None
    delim = delimiter or _sniff_delimiter(sample, path)
    # Head: + the header and the rows a preamble may take. Spread: as many more in the sample, so
    # that exactly max_rows data rows remain once those are known and dropped.
    keep = None if max_rows is None else max_rows + 1 + (PREAMBLE_MAX if header == "infer" else 0)
    try:
        parsed = _parse(path, enc, delim, keep, spread)
    except _DecodeError as e:
        second = None if encoding else _guess(e.block)
        if second is None or second == enc:
            raise TableError(f"{path}, {e}") from None
        try:
            parsed = _parse(path, second, delim, keep, spread)
        except _DecodeError as e2:
            raise TableError(f"{path}, {e2} (after {enc} failed: {e})") from None
        enc = second
    rows, total = parsed.first, parsed.total
    if not rows:
        raise TableError(f"{path}: file is empty (no row has a non-blank cell)")
    skipped = 0
    if header == "infer":
        skipped = _preamble(rows)
        guess = guess_header(rows[skipped:])
        has_header, how = guess.has_header, guess.how
    else:
        has_header, how = bool(header), "given"
    start = skipped + has_header  # the first data row
    hdr = rows[skipped] if has_header else None
    body = [row for i, row in parsed.kept if i >= start]
    if max_rows is not None and len(body) > max_rows:
        # Head: the first max_rows. Spread: a uniform sample of the sample's data rows, in file order.
        body = (body[:max_rows] if not spread else
                [body[i] for i in sorted(random.Random(1).sample(range(len(body)), max_rows))])
    m = {"source": "csv", "name": path.name, "path": str(path), "encoding": enc, "delimiter": delim,
         "rows_total": total - start, "row_sample": row_sample_kind(len(body), total - start, spread),
         # How the first row was read: "given" (by the caller), "evidence" (its columns' values voted,
         # readers.header), "names" (no evidence either way; taken for names because its cells are unique
         # and non-numeric: the guess annotate reports, as it can be wrong) or "tie" (read as data).
         "header": how, "has_header": has_header,
         "preamble_rows": skipped}  # leading rows skipped as a title/notes before the table (header="infer")
    m.update(meta or {})
    if not body and hdr is None:
        raise TableError(f"{path}: no data rows")
    return Table.from_rows(body, header=hdr, meta=m) if body else Table(columns=[[] for _ in hdr], header=hdr, meta=m)


PREAMBLE_MAX = 20  # leading rows that may be a preamble


def _preamble(rows: list[list[str]]) -> int:
    """How many leading rows are a preamble: a title or export notes above the table ("Sales report",
    "Generated 2024-01-01"). Those are rows with fewer than half the table's usual number of filled
    cells, followed by a row with at least that many (the header or the first data row). The usual
    number is the most common count of non-blank cells over the first 200 rows; a table of one or two
    columns has no such preamble (a sparse first row is as likely), and at most PREAMBLE_MAX rows go."""
    filled = [sum(1 for c in r if c.strip()) for r in rows[:200]]
    usual = max(set(filled), key=lambda n: (filled.count(n), n))
    if usual < 3:
        return 0
    k = 0
    while k < min(PREAMBLE_MAX, len(filled) - 1) and 2 * filled[k] < usual:
        k += 1
    return k if k < len(filled) and filled[k] >= usual else 0


def from_dataframe(df, meta: dict[str, Any] | None = None) -> Table:
    """A pandas DataFrame as a Table: header from the column labels, NaN/None -> ""."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TableError(f"expected a pandas DataFrame, got {type(df).__name__}")
    cols = []
    for j in range(df.shape[1]):
        s = df.iloc[:, j]
        cols.append(["" if (v is None or (isinstance(v, float) and v != v) or v is pd.NA or v is pd.NaT) else str(v)
                     for v in s.tolist()])
    header = [str(c) for c in df.columns]
    return Table(columns=cols, header=header, meta={"source": "dataframe", "name": "dataframe", **(meta or {})})


MAX_TRAIN_ROWS = 100_000  # rows kept per custom training table (a uniform sample of longer ones)


def read_labeled_csv_folder(
    folder: str | Path, gold: str | Path | None = None, *, on_error: str = "raise", header: bool | str = True,
    max_rows: int | None = MAX_TRAIN_ROWS,
) -> LabeledDataset:
    """Custom training data: a folder of CSV/TSV (or Parquet) tables plus a gold CSV.

    Each table keeps at most `max_rows` rows, a seeded uniform sample of a longer table's (training
    reads `max_rows` of the serializer, 32 by default, per column and epoch), so a folder of large
    exports fits in memory; `meta["rows_total"]` counts every row. None keeps them all.

    Gold columns: `table_name,column_index,label` (like SOTAB) or `table_name,column_name,label`.
    Several labels for one column (multi-label) are given as several rows. `gold` defaults to
    `<folder>/labels.csv`.
    """
    from aegir.tables.readers.files import read_table_file  # (imports this module)

    folder = Path(folder)
    gold = Path(gold) if gold is not None else folder / "labels.csv"
    if not gold.is_file():
        raise TableError(f"{gold}: gold label file not found")
    skip = SkipCounter(on_error)
    tables: list[Table] = []
    index: dict[str, int] = {}
    grouped: dict[tuple[int, int], list[str]] = {}
    with open(gold, newline="", encoding="utf-8-sig") as fh:
        reader = _csv.DictReader(fh)
        fields = set(reader.fieldnames or [])
        if not {"table_name", "label"} <= fields or not ({"column_index", "column_name"} & fields):
            raise TableError(f"{gold}: expected columns table_name,column_index|column_name,label; got {reader.fieldnames}")
        for row in reader:
            where = f"{gold}, line {reader.line_num}"
            name = safe_member_name((row.get("table_name") or "").strip(), where)
            label = (row.get("label") or "").strip()
            if not label:
                skip(f"{where}: empty label", "empty label")
                continue
            if name not in index:
                p = folder / name
                if not p.is_file():
                    skip(f"{where}: table file {p} not found", "missing table")
                    continue
                index[name] = len(tables)
                tables.append(read_table_file(p, header=header, max_rows=max_rows, spread=True))
            t = tables[index[name]]
            if row.get("column_index") not in (None, ""):
                try:
                    col = int(row["column_index"])
                except ValueError:
                    raise TableError(f"{where}: column_index {row['column_index']!r} is not an integer") from None
            else:
                cname = row.get("column_name", "")
                if t.header is None or cname not in t.header:
                    skip(f"{where}: column {cname!r} not in {name} header", "unknown column")
                    continue
                col = t.header.index(cname)
            if not 0 <= col < t.n_cols:
                skip(f"{where}: column index {col} out of range for {name} ({t.n_cols} columns)", "index out of range")
                continue
            grouped.setdefault((index[name], col), []).append(label)
    targets = [LabeledColumn(ti, c, tuple(dict.fromkeys(labs))) for (ti, c), labs in grouped.items()]
    multi = any(len(t.labels) > 1 for t in targets)
    return LabeledDataset(tables, targets, task="cta", multi_label=multi, source=f"csv:{folder}", skipped=skip.count)
