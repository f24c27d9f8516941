"""The one table type every part of Aegir reads and writes.

A `Table` stores columns of string cells (column-major, because both column annotation and
serialization work one column at a time). Missing values are empty strings: readers map their
format's own missing-value tokens to "" so downstream code has one notion of "empty".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence


class TableError(ValueError):
    """A user-facing data error. The message names the file (and line/field where known)."""


@dataclass
class Table:
    """Columns of string cells plus an optional header and free-form metadata.

    columns: one list of cells per column; all columns have the same length (readers pad
        ragged rows with "").
    header: column names, or None for headerless tables (SOTAB ships no header row).
    meta: provenance such as {"source": "sotab", "name": "Book_x_CTA.json.gz", "domain": "Book"}.
    """

    columns: list[list[str]]
    header: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.columns = [[("" if c is None else str(c)) for c in col] for col in self.columns]
        if self.header is not None:
            self.header = ["" if h is None else str(h) for h in self.header]
            if len(self.header) != len(self.columns):
                raise TableError(
                    f"table {self.name!r}: header has {len(self.header)} names but there are "
                    f"{len(self.columns)} columns"
                )
        lengths = {len(c) for c in self.columns}
        if len(lengths) > 1:
            raise TableError(f"table {self.name!r}: columns have different lengths {sorted(lengths)}")

    # --- shape -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.meta.get("name", "<table>"))

    @property
    def n_cols(self) -> int:
        return len(self.columns)

    @property
    def n_rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def column_name(self, j: int) -> str:
        """The header name of column j, or "" for headerless tables."""
        return self.header[j] if self.header is not None else ""

    def rows(self) -> Iterator[list[str]]:
        for i in range(self.n_rows):
            yield [col[i] for col in self.columns]

    # --- constructors ----------------------------------------------------------------------
    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Sequence[Any]],
        header: Sequence[str] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> "Table":
        """Build from row-major data; ragged rows are padded with "" to the widest row."""
        width = max([len(r) for r in rows] + [len(header) if header is not None else 0])
        cols: list[list[str]] = [[] for _ in range(width)]
        for r in rows:
            for j in range(width):
                v = r[j] if j < len(r) else ""
                cols[j].append("" if v is None else str(v))
        hdr = None
        if header is not None:
            hdr = list(header) + [""] * (width - len(header))
        return cls(columns=cols, header=hdr, meta=dict(meta or {}))

    def to_pandas(self):
        import pandas as pd

        names = self.header if self.header is not None else [str(j) for j in range(self.n_cols)]
        # Duplicate header names are legal in CSVs; pandas needs unique labels for a dict build.
        return pd.DataFrame({i: col for i, col in enumerate(self.columns)}).set_axis(names, axis=1)


@dataclass(frozen=True)
class LabeledColumn:
    """One annotation target.

    CTA: `column` is the labelled column. CPA: `column` is the object column and `main_column`
    the subject column it relates to. `labels` holds one label (CTA/CPA) or several
    (multi-label WikiTables); `table_index` points into the reader's table list.
    """

    table_index: int
    column: int
    labels: tuple[str, ...]
    main_column: int | None = None

    @property
    def label(self) -> str:
        return self.labels[0]


@dataclass
class LabeledDataset:
    """Tables plus labelled targets, as every reader returns them."""

    tables: list[Table]
    targets: list[LabeledColumn]
    task: str = "cta"  # "cta" | "cpa"
    multi_label: bool = False
    source: str = ""
    skipped: int = 0  # targets skipped with a warning (missing table, bad index, ...)

    def label_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.targets:
            for lab in t.labels:
                counts[lab] = counts.get(lab, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    @property
    def n_columns(self) -> int:
        return sum(t.n_cols for t in self.tables)
