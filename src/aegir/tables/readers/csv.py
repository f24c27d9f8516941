"""CSV/TSV files and pandas DataFrames -> Table, plus labelled CSV folders for custom training data.

The csv module (not pandas) parses files so ragged rows survive (pandas raises or drops them) and
every error can name its line. The encoding is detected with charset-normalizer when not given.
"""

from __future__ import annotations

import csv as _csv
import io
from pathlib import Path
from typing import Any

from aegir.tables.readers.common import SkipCounter, safe_member_name
from aegir.tables.table import LabeledColumn, LabeledDataset, Table, TableError

_csv.field_size_limit(1 << 24)  # long text cells are legitimate; the default 128 KiB limit is not


def detect_encoding(raw: bytes, path: str | Path = "<bytes>") -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(raw[: 1 << 20]).best()
    if best is None:
        raise TableError(f"{path}: cannot detect the text encoding (is this a binary file?)")
    return best.encoding


def _sniff_delimiter(sample: str, path: Path) -> str:
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    try:
        return _csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except _csv.Error:
        return ","


def read_csv(
    path: str | Path,
    *,
    header: bool | str = "infer",
    delimiter: str | None = None,
    encoding: str | None = None,
    max_rows: int | None = None,
    meta: dict[str, Any] | None = None,
) -> Table:
    """Read a CSV/TSV file into a Table.

    header: True (first row is a header), False (headerless), or "infer" (csv.Sniffer's guess,
        falling back to True: most CSVs users hand us have a header).
    max_rows: read at most this many data rows (None = all). The caller decides; nothing is
        dropped silently — `meta["rows_total"]` still counts every row.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise TableError(f"{path}: cannot read file ({e.strerror or e})") from None
    if b"\x00" in raw[:4096] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TableError(f"{path}: looks like a binary file, not CSV/TSV text")
    enc = encoding or detect_encoding(raw, path)
    try:
        text = raw.decode(enc)
    except (UnicodeDecodeError, LookupError) as e:
        raise TableError(f"{path}: cannot decode as {enc}: {e}") from None
    if not text.strip():
        raise TableError(f"{path}: file is empty")
    delim = delimiter or _sniff_delimiter(text[:8192], path)
    reader = _csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    rows: list[list[str]] = []
    total = 0
    try:
        for row in reader:
            if not row or all(c.strip() == "" for c in row):
                continue  # blank lines carry no cells
            total += 1
            if max_rows is None or len(rows) < max_rows + 1:
                rows.append(row)
    except _csv.Error as e:
        raise TableError(f"{path}, line {reader.line_num}: malformed CSV ({e})") from None
    if header == "infer":
        try:
            has_header = _csv.Sniffer().has_header(text[:8192])
        except _csv.Error:
            has_header = True
        # The sniffer says "no header" for all-text tables; a first row of unique, non-numeric
        # names is still far more likely a header than data.
        first = rows[0]
        how = "sniffed"
        if not has_header and len(set(first)) == len(first) and not any(_is_number(c) for c in first):
            has_header, how = True, "names"
    else:
        has_header, how = bool(header), "given"
    hdr = rows[0] if has_header else None
    body = rows[1:] if has_header else rows
    if max_rows is not None:
        body = body[:max_rows]
    m = {"source": "csv", "name": path.name, "path": str(path), "encoding": enc, "delimiter": delim,
         "rows_total": total - (1 if has_header else 0),
         # How the first row was read: "given" (by the caller), "sniffed" (csv.Sniffer saw the first row
         # differ from the columns' values), or "names" (no evidence either way; taken for names because
         # its cells are unique and non-numeric: the guess annotate reports, as it can be wrong).
         "header": how, "has_header": has_header}
    m.update(meta or {})
    if not body and hdr is None:
        raise TableError(f"{path}: no data rows")
    return Table.from_rows(body, header=hdr, meta=m) if body else Table(columns=[[] for _ in hdr], header=hdr, meta=m)


def _is_number(s: str) -> bool:
    try:
        float(s.replace(",", ""))
        return True
    except ValueError:
        return False


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


def read_labeled_csv_folder(
    folder: str | Path, gold: str | Path | None = None, *, on_error: str = "raise", header: bool | str = True
) -> LabeledDataset:
    """Custom training data: a folder of CSV/TSV (or Parquet) tables plus a gold CSV.

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
                tables.append(read_table_file(p, header=header))
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
