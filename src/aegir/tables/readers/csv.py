"""CSV/TSV files and pandas DataFrames -> Table, plus labelled CSV folders for custom training data.

The csv module (not pandas) parses files so ragged rows survive (pandas raises or drops them) and
every error can name its line. Files are read as a stream (the rows kept are bounded by max_rows, the
rest only counted); the encoding, delimiter, preamble and header are guessed from the file's start
(charset-normalizer for non-UTF-8 text). Compressed files (gzip, bzip2, xz, zstd: `data.csv.gz`, or any file
starting with one of their headers) are decompressed as they are read (`readers.compressed`).
"""

from __future__ import annotations

import codecs
import csv as _csv
import io
import re
import unicodedata
from pathlib import Path
from typing import Any

from aegir.tables.readers.common import SkipCounter, bytes_text, cell_text, column_name, safe_member_name
from aegir.tables.readers.compressed import STREAM_ERRORS, compression, open_raw, read_error, table_suffix
from aegir.tables.readers.rows import Collected, collect, keep_for, to_table
from aegir.tables.table import LabeledColumn, LabeledDataset, Table, TableError

_csv.field_size_limit(1 << 24)  # long text cells are legitimate; the default 128 KiB limit is not


CSV_SUFFIXES = (".csv", ".tsv", ".tab")  # the names of delimited text (any other name is read as CSV too)
HEAD_BYTES = 1 << 20  # what encoding detection and the delimiter sniffer read

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
    best = _legacy(raw[:HEAD_BYTES])
    if best is None:
        raise TableError(f"{path}: cannot detect the text encoding (is this a binary file?)")
    return best


# The legacy encodings a table file that is not UTF-8 is read in, most common first (Windows code pages, the East
# Asian ones, KOI8-R, UTF-16/32 with or without a BOM). Left to itself charset-normalizer also weighs Mac and DOS
# code pages and, on a short file, often ties: a Western cp1252 export came out as cp1250 ("São" -> "Săo") or
# mac_latin2, Russian cp1251 as mac_cyrillic (benchmarks/text_encodings.py).
LEGACY_ENCODINGS = ("cp1252", "cp1250", "cp1251", "cp1254", "cp1253", "cp1257", "cp1255", "cp1256", "cp1258",
                    "cp932", "gb18030", "cp949", "big5", "euc_jp", "koi8_r", "utf_16", "utf_32")


def _legacy(raw: bytes) -> str | None:
    """The encoding of non-UTF-8 `raw` among LEGACY_ENCODINGS (None: none decodes it plausibly): the fewest
    unlikely characters (charset-normalizer's chaos), then the best fit to a language (coherence), then the more
    common encoding; an encoding that decodes the bytes to the same text as a more common one is named as that."""
    from charset_normalizer import from_bytes

    # threshold: the chaos allowed; the default (0.2) found nothing for some short Polish, Greek or Hebrew files.
    found = list(from_bytes(raw, cp_isolation=list(LEGACY_ENCODINGS), threshold=0.5))
    if not found:
        return None

    def rank(m):
        return (_misplaced(str(m)), round(m.chaos, 3), -round(m.coherence, 3),
                min((LEGACY_ENCODINGS.index(e) for e in m.could_be_from_charset if e in LEGACY_ENCODINGS), default=99))
    best = min(found, key=rank)
    return next((e for e in LEGACY_ENCODINGS if e in best.could_be_from_charset), best.encoding)


_INSIDE_WORD = re.compile(r"(?<=[^\W\d_])[^\x00-\x7f](?=[^\W\d_])")


def _misplaced(text: str) -> int:
    """Non-ASCII characters a wrong code page puts inside words: a symbol between two letters, or a capital after
    a small letter ("Wroc³aw", "Gda¿sk", "GdaÑsk" are Polish cp1250 read as cp1252). On a table with one Polish
    name among English ones, charset-normalizer's scores tie between cp1250 and cp1252; this tells them apart.
    (Letters that are letters in both, Czech "è" for "č", stay a tie, which the more common encoding wins.)"""
    n = 0
    for m in _INSIDE_WORD.finditer(text):
        ch, before = m.group(), text[m.start() - 1]
        # Quotes and dashes are at home inside words ("don’t", "Jean–Luc"); symbols, superscripts and ¿¡ are not.
        n += (unicodedata.category(ch) in ("No", "Sc", "Sk", "Sm", "So") or ch in "¿¡"
              or (ch.isupper() and before.islower()))
    return n


def _guess(block: bytes) -> str | None:
    """A second encoding for a file whose first guess failed on `block` (None: no idea): the legacy encoding of
    the block's lines that hold non-ASCII bytes (`_legacy`)."""
    evidence = b"\n".join(line for line in block.splitlines() if max(line, default=0) >= 0x80)
    return _legacy(evidence or block)


def _sniff_delimiter(sample: str, path: Path) -> str:
    if table_suffix(path) in (".tsv", ".tab"):
        return "\t"
    try:
        return _csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except _csv.Error:
        return ","


def _parse(path: Path, enc: str, delim: str, keep: int | None, spread: bool = False,
           how: str | None = None, sep_line: bool = False) -> Collected:
    """`rows.collect` over the file's CSV rows (decompressed with `how`; after Excel's `sep=` line when `sep_line`),
    its errors named by line."""
    with open_raw(path, how) as raw:
        reader = _csv.reader(io.TextIOWrapper(raw, encoding=enc, newline=""), delimiter=delim)
        if sep_line:
            next(reader, None)
        try:
            parsed = collect(reader, keep, spread)
            _quotes_closed(parsed.last, reader.line_num, path)
            return parsed
        except _csv.Error as e:
            raise TableError(f"{path}, line {reader.line_num}: malformed CSV ({e})") from None
        except UnicodeDecodeError as e:
            # The stream decodes ahead of the parser in blocks: the bad byte is at or after this line.
            raise _DecodeError(f"near line {reader.line_num + 1}: cannot decode as {enc} ({e.reason})",
                               bytes(e.object)) from None
        except STREAM_ERRORS as e:  # a truncated or damaged compressed file
            raise read_error(path, e, how, f", near line {reader.line_num + 1}") from None


_SEP_LINE = re.compile(r"sep=([^\r\n])\r?\n", re.IGNORECASE)


def _quotes_closed(last: list[str] | None, line_num: int, path: Path) -> None:
    """An error if the file ends inside a quoted cell. The csv module (not strict) then returns the rest of the file
    as that one cell, so a stray quote on line 2 made a 1-row table of the whole file. Such a last cell spans lines
    and keeps the file's final line break, which a closed quote does not; its row began as many lines before the
    end as it holds line breaks, less the final one."""
    if not last or not last[-1].endswith(("\n", "\r")):
        return
    breaks = sum(c.count("\n") + c.count("\r") - c.count("\r\n") for c in last)
    start = line_num - breaks + 1
    if start < line_num:
        raise TableError(f"{path}, line {start}: a quote opened in this row is never closed, so lines "
                         f"{start}-{line_num} would be one cell; close or remove the stray quote character")


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
        row's cells compare with their columns' values, `readers.header.guess_header`). "infer" also
        skips a preamble (title or notes rows above the table, `rows.preamble`; counted in
        `meta["preamble_rows"]`); with True or False every row is read as given.
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
    how = None
    try:
        how = compression(path)
        with open_raw(path, how) as fh:
            head = fh.read(HEAD_BYTES + 1)
    except STREAM_ERRORS as e:
        raise read_error(path, e, how) from None
    partial = len(head) > HEAD_BYTES
    head = head[:HEAD_BYTES]
    if b"\x00" in head[:4096] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TableError(f"{path}: looks like a binary file, not CSV/TSV text")
    enc = encoding or detect_encoding(head, path, partial)
    try:  # 64 KiB hold the delimiter sniffer's 8192 characters in any encoding
        whole = len(head) <= 1 << 16 and not partial
        sample = codecs.getincrementaldecoder(enc)().decode(head[:1 << 16], final=whole)[:8192]
    except UnicodeDecodeError as e:
        line = head[:e.start].count(b"\n") + 1
        raise TableError(f"{path}, line {line}: cannot decode as {enc} ({e.reason}; pass the file's encoding)") from None
    except LookupError as e:
        raise TableError(f"{path}: cannot decode as {enc}: {e}") from None
    # Excel writes, and reads, a first line "sep=;" that names the delimiter (a CSV made for a locale whose decimal
    # comma makes the list separator ";"): it is read as the delimiter and skipped, not taken for a one-column table.
    sep = _SEP_LINE.match(sample.removeprefix("\ufeff"))
    delim = delimiter or (sep.group(1) if sep else _sniff_delimiter(sample, path))
    keep = keep_for(max_rows, header)
    try:
        parsed = _parse(path, enc, delim, keep, spread, how, sep is not None)
    except _DecodeError as e:
        second = None if encoding else _guess(e.block)
        if second is None or second == enc:
            raise TableError(f"{path}, {e}") from None
        try:
            parsed = _parse(path, second, delim, keep, spread, how, sep is not None)
        except _DecodeError as e2:
            raise TableError(f"{path}, {e2} (after {enc} failed: {e})") from None
        enc = second
    return to_table(parsed, path, header=header, max_rows=max_rows, spread=spread, meta=meta,
                    source={"source": "csv", "name": path.name, "path": str(path), "encoding": enc, "delimiter": delim,
                            **({"compression": how} if how else {})})


def _dates_as_csv(s):
    """A datetime column whose times are all midnight as dates, as `to_csv` writes it (2024-01-01, not
    2024-01-01 00:00:00): a frame read with parse_dates then reads as its CSV file does."""
    import pandas as pd

    if not pd.api.types.is_datetime64_dtype(s.dtype):  # naive datetimes only; tz-aware ones keep their offset
        return s
    known = s.dropna()
    return s.dt.strftime("%Y-%m-%d") if len(known) and (known == known.dt.normalize()).all() else s


def from_dataframe(df, meta: dict[str, Any] | None = None) -> Table:
    """A pandas DataFrame as a Table: header from the column labels ("Unnamed: 0" blank, `column_name`; none
    for labels that are only positions, MultiIndex levels joined by dots), NaN/None -> "", cells as `str()`
    writes them except date-only datetime columns, written as dates as `to_csv` writes them. An index that holds
    data (named, like `set_index("id")`'s, or not integers, like a time series' dates) comes first, as `to_csv`
    writes it; row numbers (a RangeIndex, or an unnamed integer index left by filtering) are left out.
    meta["index_columns"]: how many leading columns came from the index."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TableError(f"expected a pandas DataFrame, got {type(df).__name__}")
    index = _index_levels(df)
    cols = []
    for s in [*(v for _, v in index), *(df.iloc[:, j] for j in range(df.shape[1]))]:
        s = _dates_as_csv(s)
        if s.dtype == object or pd.api.types.is_complex_dtype(s.dtype):  # mixed Python values: each by its type
            cols.append([_object_cell(v) for v in s.tolist()])
        else:
            cols.append(["" if (v is None or (isinstance(v, float) and v != v) or v is pd.NA or v is pd.NaT) else str(v)
                         for v in s.tolist()])
    # Column labels that are only the positions 0, 1, ... (read with header=None) are no names, as the JSON
    # reader reads such keys; a MultiIndex (a pivot table's) joins its levels with dots, as nested keys are.
    positional = df.shape[1] > 0 and [str(c) for c in df.columns] == [str(j) for j in range(df.shape[1])]
    header = None if positional else [name for name, _ in index] + [_label(c) for c in df.columns]
    m = {"source": "dataframe", "name": "dataframe", "header": "positions" if positional else "given",
         "has_header": not positional, "index_columns": len(index), **(meta or {})}
    return Table(columns=cols, header=header, meta=m)


def _object_cell(v: Any) -> str:
    """A cell of an object column as the other readers write it: bytes as text or a hex literal (as SQLite BLOBs),
    lists, tuples, dicts and arrays as compact JSON (as JSON Lines and Parquet nested values), every missing value
    (None, NaN, NaT, pd.NA, Decimal('NaN'), a complex NaN) as "", as `to_csv` writes it; the rest as `str()`."""
    import numpy as np
    import pandas as pd

    if isinstance(v, str):
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes_text(bytes(v))
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple, dict)):
        return cell_text(list(v) if isinstance(v, tuple) else v)
    if v is None or v is pd.NA or v is pd.NaT or (np.ndim(v) == 0 and pd.isna(v)):
        return ""
    return str(v)


def _index_levels(df) -> list[tuple[str, Any]]:
    """The levels of df's index that hold data, as (name, values as a Series)."""
    import pandas as pd

    if isinstance(df.index, pd.RangeIndex):
        return []
    out = []
    for level, name in enumerate(df.index.names):
        values = df.index.get_level_values(level)
        if name is None and df.index.nlevels == 1 and pd.api.types.is_integer_dtype(values.dtype):
            continue  # row numbers (a MultiIndex level of integers, years say, is data: to_csv writes it)
        out.append(("" if name is None else _label(name), pd.Series(values, index=df.index)))
    return out


def _label(c: Any) -> str:
    if isinstance(c, tuple):
        return ".".join(column_name(x) for x in c if column_name(x) != "")
    return column_name(c)


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
    raw = gold.read_bytes()
    enc = detect_encoding(raw, gold)  # a labels.csv saved by Excel on Windows is cp1252, not UTF-8
    try:
        text = raw.decode(enc)
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise TableError(f"{gold}, line {line}: cannot decode as {enc} ({e.reason})") from None
    with io.StringIO(text.removeprefix("\ufeff"), newline="") as fh:
        reader = _csv.DictReader(fh)
        fields = set(reader.fieldnames or [])
        if not {"table_name", "label"} <= fields or not ({"column_index", "column_name"} & fields):
            raise TableError(f"{gold}: expected columns table_name,column_index|column_name,label; got {reader.fieldnames}")
        for row in reader:
            where = f"{gold}, line {reader.line_num}"
            if None in row or None in row.values():  # DictReader's marks for a row longer / shorter than the header
                n = len(reader.fieldnames) + len(row.get(None) or ()) - sum(v is None for v in row.values())
                raise TableError(f"{where}: {n} fields where the header has {len(reader.fieldnames)} "
                                 f"({','.join(reader.fieldnames)}); quote a value that holds a comma")
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
