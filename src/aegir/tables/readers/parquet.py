"""Parquet files -> Table (pyarrow), for annotating the files of a data lake; also the other columnar files
pyarrow reads: Arrow IPC / Feather (`.arrow`, `.feather`, `.ipc`; memory-mapped) and ORC (`.orc`).

Only the first `max_rows` rows are read (record batches, or ORC stripes, from the start of the file, not the
whole file), or with `spread` a uniform sample of all of them (every batch decoded, one at a time);
`meta["rows_total"]` comes from the file's metadata, so nothing is dropped silently.
Cells become text as in `from_dataframe`: None/NaN/NaT -> "", date-only timestamps as dates, everything else
`str()`. Nested columns are read as the JSON reader reads nested objects: struct fields become dotted columns
(`address.city`), and lists and maps compact JSON text (pandas would show a list as a numpy array's repr).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aegir.tables.readers.common import row_sample_kind, spread_rows
from aegir.tables.readers.csv import from_dataframe
from aegir.tables.table import Table, TableError

PARQUET_SUFFIXES = (".parquet", ".pq")
ARROW_SUFFIXES = (".arrow", ".feather", ".ipc")
ORC_SUFFIXES = (".orc",)
COLUMNAR_SUFFIXES = (*PARQUET_SUFFIXES, *ARROW_SUFFIXES, *ORC_SUFFIXES)  # what read_parquet reads
# suffix -> (the kind, as errors name it; meta["source"])
_KINDS = {**dict.fromkeys(PARQUET_SUFFIXES, ("Parquet", "parquet")),
          **dict.fromkeys(ARROW_SUFFIXES, ("Arrow IPC/Feather", "arrow")), **dict.fromkeys(ORC_SUFFIXES, ("ORC", "orc"))}
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")  # the column pandas stores an unnamed index level in


def _nullable_ints() -> dict:
    """Arrow integer types -> pandas' nullable integer dtypes (to_pandas' `types_mapper`)."""
    import pandas as pd
    import pyarrow as pa

    return {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
            pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
            pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype()}


def _index_names(schema) -> list[str]:
    """The index columns pandas stored in the file (its `pandas` schema metadata), in order; [] if none."""
    try:
        meta = schema.pandas_metadata or {}
    except (ValueError, TypeError):  # metadata written by something else, or damaged: no index to place
        return []
    return [c for c in meta.get("index_columns", []) if isinstance(c, str)]  # a RangeIndex is a dict: not stored


def _unnest(data):
    """Struct columns flattened into dotted columns (every level), list and map columns as JSON text."""
    import pyarrow as pa

    from aegir.tables.readers.common import cell_text

    while any(pa.types.is_struct(t) for t in data.schema.types):
        data = data.flatten()  # one level: struct "a" with field "b" -> column "a.b"
    for i, field in enumerate(data.schema):
        t = field.type
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_map(t):
            text = [None if v is None else cell_text(v) for v in data.column(i).to_pylist()]
            data = data.set_column(i, field.name, pa.array(text, type=pa.string()))
    return data


def _source(path: Path, kind: str):
    """(rows in the file, batches(size) -> record batches from the start, the file's Arrow schema)."""
    if kind == "ORC":
        import pyarrow.orc as orc

        f = orc.ORCFile(path)
        return f.nrows, lambda size: (f.read_stripe(i) for i in range(f.nstripes)), f.schema
    if kind == "Arrow IPC/Feather":
        import pyarrow.feather as feather

        t = feather.read_table(path, memory_map=True)  # uncompressed: mapped, not read
        return t.num_rows, lambda size: iter(t.to_batches(max_chunksize=size)), t.schema
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    return f.metadata.num_rows, lambda size: f.iter_batches(batch_size=size), f.schema_arrow


def read_parquet(path: str | Path, *, max_rows: int | None = None, spread: bool = False,
                 meta: dict[str, Any] | None = None) -> Table:
    """A Parquet (or Arrow IPC/Feather, ORC: by suffix) file as a Table. max_rows: the first that many rows, or
    with `spread` a uniform random sample of them from the whole file (seeded, in file order; every record batch
    is decoded, one at a time)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    path = Path(path)
    kind, source = _KINDS.get(path.suffix.lower(), _KINDS[".parquet"])
    try:
        total, batches_of, schema = _source(path, kind)
        if max_rows is None or max_rows >= total:
            data = pa.Table.from_batches(list(batches_of(65_536)), schema=schema)
        elif spread:
            # The rows to keep, drawn before reading (the file says how many there are).
            pick = spread_rows(total, max_rows)
            batches, offset = [], 0
            for b in batches_of(65_536):
                lo, hi = np.searchsorted(pick, [offset, offset + b.num_rows])
                if hi > lo:
                    batches.append(b.take(pa.array(pick[lo:hi] - offset)))
                offset += b.num_rows
            data = pa.Table.from_batches(batches, schema=schema)
        else:
            batches = []
            got = 0
            for b in batches_of(min(max_rows, 65_536)):
                batches.append(b.slice(0, max_rows - got))
                got += batches[-1].num_rows
                if got >= max_rows:
                    break
            data = pa.Table.from_batches(batches, schema=schema)
        # Every stored column, index ones too: pandas writes a set_index column (or a time series' dates) into the
        # file, and restoring it as an index would drop it here. As from_dataframe does, an unnamed integer index
        # (row numbers left by filtering, stored as __index_level_0__) is left out, and another unnamed one blank;
        # index columns are moved first (pandas stores them last), where from_dataframe puts them, and counted.
        # Integer columns stay integers where they have nulls (pandas would make them float: 10117 -> 10117.0).
        df = _unnest(data).to_pandas(ignore_metadata=True, types_mapper=_nullable_ints().get)
        unnamed = [_PANDAS_INDEX.fullmatch(str(c)) is not None for c in df.columns]
        df = df.iloc[:, [j for j, (u, t) in enumerate(zip(unnamed, df.dtypes))
                         if not (u and pd.api.types.is_integer_dtype(t))]]
        stored = _index_names(schema)
        index = sorted((j for j, c in enumerate(df.columns) if c in stored), key=lambda j: stored.index(df.columns[j]))
        df = df.iloc[:, index + [j for j in range(df.shape[1]) if j not in index]]
        df.columns = ["" if _PANDAS_INDEX.fullmatch(str(c)) else c for c in df.columns]
    except (OSError, pa.ArrowException) as e:
        raise TableError(f"{path}: cannot read as {kind} ({e})") from None
    if df.shape[1] == 0:
        raise TableError(f"{path}: {kind} file has no columns")
    m = {"source": source, "name": path.name, "path": str(path), "rows_total": total, "header": "given",
         "has_header": True, "row_sample": row_sample_kind(len(df), total, spread), "index_columns": len(index)}
    m.update(meta or {})
    return from_dataframe(df, meta=m)
