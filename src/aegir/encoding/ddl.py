"""SQL DDL generated from a table: `CREATE TABLE` with inferred types, for the pretraining corpus.

The DDL kind of the corpus ties column names to types and typical values: `sql_type` infers the
narrowest SQL type that fits every non-empty cell; `table_ddl` writes the statement with NOT NULL /
PRIMARY KEY where the data implies them and, half the time, a few INSERT rows. Quoting style and
keyword case are drawn from the caller's generator so the model does not learn a single dialect.
"""

from __future__ import annotations

import re

import numpy as np

from aegir.tables.table import Table

_INT = re.compile(r"^[+-]?\d{1,18}$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_BOOL = {"true", "false", "yes", "no", "t", "f", "0", "1"}
_IDENT = re.compile(r"[^0-9A-Za-z_]+")


def sql_type(values: list[str]) -> str:
    """The narrowest SQL type that fits every non-empty value."""
    vals = [v.strip() for v in values if v.strip()]
    if not vals:
        return "TEXT"
    low = {v.lower() for v in vals}
    if low <= _BOOL and not low <= {"0", "1"}:  # 0/1 alone reads as INTEGER, as dumps usually declare it
        return "BOOLEAN"
    if all(_INT.match(v) for v in vals):
        return "BIGINT" if max(abs(int(v)) for v in vals) > 2**31 - 1 else "INTEGER"
    if all(_FLOAT.match(v) for v in vals):
        decs = [len(v.split(".")[1]) if "." in v and "e" not in v.lower() else -1 for v in vals]
        if min(decs) >= 0 and max(decs) <= 4:
            digits = max(len(v.lstrip("+-").replace(".", "")) for v in vals)
            return f"DECIMAL({max(digits, max(decs) + 1)},{max(decs)})"
        return "DOUBLE PRECISION"
    if all(_DATE.match(v) for v in vals):
        return "DATE"
    if all(_DATETIME.match(v) for v in vals):
        return "TIMESTAMP"
    width = max(len(v.encode("utf-8", "replace")) for v in vals)
    if width > 255:
        return "TEXT"
    return f"VARCHAR({max(8, 1 << (width - 1).bit_length())})"


def _ident(name: str, fallback: str) -> str:
    s = _IDENT.sub("_", name.strip()).strip("_").lower()
    if not s:
        s = fallback
    if s[0].isdigit():
        s = "c_" + s
    return s[:48]


def table_ddl(table: Table, rng: np.random.Generator, name: str | None = None) -> str:
    """A `CREATE TABLE` statement for `table`; the dialect details are drawn from `rng`."""
    tname = _ident(name or str(table.meta.get("name", "")).rsplit(".", 1)[0], "data")
    quote = ["", '"', "`"][int(rng.integers(3))]
    upper = bool(rng.integers(4))  # mostly upper-case keywords, as most dumps are
    indent = ["  ", "    ", "\t"][int(rng.integers(3))]
    kw = (lambda s: s) if upper else (lambda s: s.lower())
    q = lambda s: f"{quote}{s}{quote}"  # noqa: E731
    lines = []
    used: set[str] = set()
    used_order: list[str] = []
    pk = None
    for j, col in enumerate(table.columns):
        cname = _ident(table.column_name(j), f"col_{j + 1}")
        while cname in used:
            cname += "_"
        used.add(cname)
        used_order.append(cname)
        typ = sql_type(col)
        parts = [q(cname), kw(typ)]
        nonempty = all(v.strip() for v in col) and len(col) > 0
        if pk is None and j == 0 and typ in ("INTEGER", "BIGINT") and nonempty and len(set(col)) == len(col):
            pk = cname
            parts.append(kw("PRIMARY KEY"))
        elif nonempty and rng.random() < 0.7:
            parts.append(kw("NOT NULL"))
        lines.append(indent + " ".join(parts))
    head = f"{kw('CREATE TABLE')} {q(tname)} ("
    out = head + "\n" + ",\n".join(lines) + "\n);\n"
    if table.n_rows and rng.random() < 0.5:
        # A few INSERTs tie the declared names and types to real values (as SQL dumps do).
        cols = ", ".join(q(c) for c in used_order)
        for i in sorted(rng.choice(table.n_rows, size=min(3, table.n_rows), replace=False)):
            vals = ", ".join(_sql_literal(table.columns[j][i]) for j in range(table.n_cols))
            out += f"{kw('INSERT INTO')} {q(tname)} ({cols}) {kw('VALUES')} ({vals});\n"
    return out


def _sql_literal(v: str) -> str:
    v = v.strip()
    if not v:
        return "NULL"
    if _INT.match(v) or _FLOAT.match(v):
        return v
    return "'" + v[:64].replace("'", "''") + "'"
