"""Gold tables for text -> table: the one in-memory form every loader, metric and reward shares.

A `GoldTable` is deliberately tiny and pure (no torch, no pandas): metrics and rewards run inside RL
workers and VERL's reward processes, where importing heavy libraries per call is costly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from aegir.tables.table import Table, TableError


@dataclass
class GoldTable:
    """One gold table.

    name: the table's role in its document ("Team", "Player"); "" for the single table of a document.
    header: column names. For key/value gold (`kv=True`) these are the keys, in document order.
    rows: data rows, each as long as `header`. Key/value gold has exactly one row (the values).
        Empty strings are empty cells (Wu et al. skip them when scoring).
    kv: the gold was given as (key, value) pairs about one entity (E2E, WikiTableText, WikiBio).
    row_header: the first column holds row headers (Rotowire: team / player names); `header[0]`
        names that column.
    """

    name: str
    header: list[str]
    rows: list[list[str]]
    kv: bool = False
    row_header: bool = False

    def __post_init__(self) -> None:
        self.header = ["" if h is None else str(h) for h in self.header]
        width = len(self.header)
        fixed: list[list[str]] = []
        for i, r in enumerate(self.rows):
            if len(r) != width:
                raise TableError(
                    f"gold table {self.name or '<table>'!r}: row {i} has {len(r)} cells, header has {width}"
                )
            fixed.append([_cell(v) for v in r])
        self.rows = fixed
        if self.kv and len(self.rows) != 1:
            raise TableError(f"gold table {self.name or '<table>'!r}: key/value gold needs exactly one row")

    # --- constructors ----------------------------------------------------------------------
    @classmethod
    def from_pairs(cls, pairs: Sequence[Sequence[Any]], name: str = "") -> "GoldTable":
        """Key/value gold from [[key, value], ...] (E2E / WikiTableText `table` field)."""
        keys: list[str] = []
        values: list[str] = []
        for i, p in enumerate(pairs):
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise TableError(f"key/value pair {i} must be [key, value], got {p!r}")
            keys.append(_cell(p[0]))
            values.append(_cell(p[1]))
        return cls(name=name, header=keys, rows=[values], kv=True)

    @classmethod
    def from_grid(cls, grid: Sequence[Sequence[Any]], name: str = "", row_header: bool = True) -> "GoldTable":
        """A header row followed by data rows (Rotowire's `team_table`); the top-left cell may be ""
        and is then filled with the table name, so the row-header column has a usable name."""
        if not grid:
            raise TableError(f"gold table {name or '<table>'!r}: empty grid")
        header = [_cell(h) for h in grid[0]]
        if row_header and header and not header[0].strip():
            header[0] = name or "name"
        return cls(name=name, header=header, rows=[list(r) for r in grid[1:]], row_header=row_header)

    @classmethod
    def from_table(cls, table: Table, name: str | None = None, row_header: bool = False) -> "GoldTable":
        if table.header is None:
            raise TableError(f"table {table.name!r}: a gold table needs a header")
        kv = bool(table.meta.get("kv", False))
        return cls(
            name=table.name if name is None else name,
            header=list(table.header),
            rows=[list(r) for r in table.rows()],
            kv=kv,
            row_header=row_header,
        )

    # --- views -----------------------------------------------------------------------------
    @property
    def pairs(self) -> list[tuple[str, str]]:
        """(header, value) for every non-empty cell of a single-row table."""
        if len(self.rows) != 1:
            raise TableError(f"gold table {self.name or '<table>'!r} has {len(self.rows)} rows; pairs need one")
        return [(h, v) for h, v in zip(self.header, self.rows[0]) if v != ""]

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def to_table(self) -> Table:
        return Table.from_rows(self.rows, header=self.header, meta={"name": self.name, "kv": self.kv})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "header": list(self.header),
            "rows": [list(r) for r in self.rows],
            "kv": self.kv,
            "row_header": self.row_header,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "gold table") -> "GoldTable":
        if not isinstance(d, dict):
            raise TableError(f"{where}: expected an object with header/rows, got {type(d).__name__}")
        for k in ("header", "rows"):
            if k not in d:
                raise TableError(f"{where}: missing field {k!r}")
        if not isinstance(d["header"], list) or not isinstance(d["rows"], list):
            raise TableError(f"{where}: 'header' and 'rows' must be lists")
        for i, r in enumerate(d["rows"]):
            if not isinstance(r, list):
                raise TableError(f"{where}: rows[{i}] must be a list of cells")
        return cls(
            name=str(d.get("name", "") or ""),
            header=list(d["header"]),
            rows=[list(r) for r in d["rows"]],
            kv=bool(d.get("kv", False)),
            row_header=bool(d.get("row_header", False)),
        )


def _cell(v: Any) -> str:
    return "" if v is None else str(v)


def as_table_list(x: Any) -> list[GoldTable]:
    """Accept one GoldTable, a sequence of them, or None (-> [])."""
    if x is None:
        return []
    if isinstance(x, GoldTable):
        return [x]
    out = list(x)
    for t in out:
        if not isinstance(t, GoldTable):
            raise TypeError(f"expected GoldTable, got {type(t).__name__}")
    return out

