"""WikiTables / TURL column-type annotation JSON (multi-label).

No sample of this data ships here; two layouts are accepted (documented in docs/data_formats.md):

1. TURL's list layout (`*.table_col_type.json`): a JSON list whose items are
   `[table_id, page_title, page_entity, section_title, caption, headers, columns, types]` where
   `columns[j]` is a list of `[[row, col], [entity_id, entity_text]]` cells of column j and
   `types[j]` the list of type labels of column j.
2. A plain dict layout, one JSON object per table (a JSON list, or JSON lines):
   `{"table_id", "page_title"?, "section_title"?, "caption"?, "headers": [...],
     "columns": [[cell, ...], ...], "labels": [[type, ...], ...]}`.

Every column with at least one label becomes a multi-label target.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aegir.tables.table import LabeledColumn, LabeledDataset, Table, TableError


def _from_list_item(item: list, where: str) -> tuple[Table, list[list[str]]]:
    if len(item) < 8:
        raise TableError(f"{where}: TURL item has {len(item)} fields, expected 8 "
                         "[table_id, page_title, page_entity, section_title, caption, headers, columns, types]")
    table_id, page_title, _page_ent, section_title, caption, headers, columns, types = item[:8]
    n_rows = 0
    cells_by_col: list[dict[int, str]] = []
    for col in columns:
        d: dict[int, str] = {}
        for cell in col:
            try:
                (r, _c), (_eid, text) = cell
            except (TypeError, ValueError):
                raise TableError(f"{where}: cell {cell!r} is not [[row, col], [entity_id, text]]") from None
            d[int(r)] = str(text)
            n_rows = max(n_rows, int(r) + 1)
        cells_by_col.append(d)
    cols = [[d.get(i, "") for i in range(n_rows)] for d in cells_by_col]
    meta = {"source": "turl", "name": str(table_id), "page_title": page_title,
            "section_title": section_title, "caption": caption}
    return Table(columns=cols, header=[str(h) for h in headers], meta=meta), [list(map(str, t)) for t in types]


def _from_dict_item(item: dict[str, Any], where: str) -> tuple[Table, list[list[str]]]:
    for k in ("columns", "labels"):
        if k not in item:
            raise TableError(f"{where}: missing field {k!r}")
    cols = [[("" if c is None else str(c)) for c in col] for col in item["columns"]]
    n = max((len(c) for c in cols), default=0)
    cols = [c + [""] * (n - len(c)) for c in cols]
    header = item.get("headers")
    meta = {"source": "turl", "name": str(item.get("table_id", "")), "page_title": item.get("page_title", ""),
            "section_title": item.get("section_title", ""), "caption": item.get("caption", "")}
    return Table(columns=cols, header=header, meta=meta), [list(map(str, l)) for l in item["labels"]]


def read_turl(path: str | Path) -> LabeledDataset:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TableError(f"{path}: cannot read ({e.strerror or e})") from None
    stripped = text.lstrip()
    items: list[tuple[str, Any]]
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise TableError(f"{path}, line {e.lineno}: invalid JSON ({e.msg})") from None
        items = [(f"{path}, item {i}", x) for i, x in enumerate(data)]
    else:
        items = []
        for ln, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    items.append((f"{path}, line {ln}", json.loads(line)))
                except json.JSONDecodeError as e:
                    raise TableError(f"{path}, line {ln}: invalid JSON ({e.msg})") from None
    tables: list[Table] = []
    targets: list[LabeledColumn] = []
    for where, item in items:
        if isinstance(item, list):
            table, labels = _from_list_item(item, where)
        elif isinstance(item, dict):
            table, labels = _from_dict_item(item, where)
        else:
            raise TableError(f"{where}: expected a list or object, got {type(item).__name__}")
        if len(labels) > table.n_cols:
            raise TableError(f"{where}: {len(labels)} label lists for {table.n_cols} columns")
        ti = len(tables)
        tables.append(table)
        for j, labs in enumerate(labels):
            if labs:
                targets.append(LabeledColumn(ti, j, tuple(dict.fromkeys(labs))))
    return LabeledDataset(tables, targets, task="cta", multi_label=True, source=f"turl:{path}")
