"""Schemas: what pi_1 writes and pi_2 fills.

A schema lists fields (lower_snake_case names, a type, required or not) in the order the rows must
use, plus a `structure`:

- ``kv_single``: facts about one entity as key/value pairs (E2E, WikiTableText, WikiBio). One NDJSON line.
- ``flat_single_row``: a table with a header row and exactly one data row. One NDJSON line.
- ``multi_row``: several rows of the same kind (Rotowire's players, InstructIE tables). One NDJSON line
  per row. ``row_key`` names the field that identifies a row (the row-header column) when there is one.
  A document with several tables (Rotowire: Team and Player) lists them in ``tables``; every NDJSON line
  then starts with ``"_table": "<table name>"`` followed by that table's fields in order.

The ``schema_id`` is a hash of the canonical JSON (without the id), so the same schema gets the same id
in every run and whatever key order the JSON it was parsed from used.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Sequence

from aegir.tables.table import Table, TableError
from aegir.t2t.gold import GoldTable, as_table_list

STRUCTURES: tuple[str, ...] = ("kv_single", "flat_single_row", "multi_row")
FIELD_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean", "date")
TABLE_KEY = "_table"  # discriminator key of multi-table NDJSON lines; normalised names never start with "_"
_NAME_RE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")


class SchemaError(TableError):
    """A schema JSON that cannot be used; the message names the field."""


# --- names -----------------------------------------------------------------------------------
_SYMBOLS = {"%": " percent ", "#": " number ", "&": " and ", "+": " plus ", "@": " at "}


@lru_cache(maxsize=65536)  # hot in scoring (every header of every document); a pure function of s
def normalize_field_name(s: str) -> str:
    """`lower_snake_case`: ASCII-folded, camelCase split, every non-alphanumeric run -> "_".

    "Family friendly" -> "family_friendly", "familyFriendly" -> "family_friendly",
    "3-pointers made" -> "3_pointers_made", "FG%" -> "fg_percent", "" -> "field".
    """
    s = "" if s is None else str(s)
    for sym, word in _SYMBOLS.items():
        s = s.replace(sym, word)
    # Fold accents (ö -> o) so names stay ASCII; characters with no ASCII form are dropped.
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)  # camelCase -> camel_Case
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)  # HTTPServer -> HTTP_Server
    s = re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower()
    return s or "field"


def unique_field_names(names: Iterable[str]) -> list[str]:
    """Normalise and de-duplicate in order: the 2nd, 3rd... occurrence of a name gets `_2`, `_3`...
    A later name that collides with an earlier generated one is suffixed in turn ("name_2" -> "name_2_2"),
    so the result is always unique and depends only on the input order."""
    seen: set[str] = set()
    out: list[str] = []
    for n in (normalize_field_name(x) for x in names):
        cand, k = n, 2
        while cand in seen:
            cand = f"{n}_{k}"
            k += 1
        seen.add(cand)
        out.append(cand)
    return out


# --- data classes ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    name: str
    type: str = "string"
    required: bool = False
    enum: tuple[str, ...] | None = None
    pattern: str | None = None
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "type": self.type, "required": self.required}
        if self.enum is not None:
            d["enum"] = list(self.enum)
        if self.pattern is not None:
            d["pattern"] = self.pattern
        if self.description is not None:
            d["description"] = self.description
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "field") -> "Field":
        if isinstance(d, str):  # a bare name is accepted: ["name", "area"]
            d = {"name": d}
        if not isinstance(d, dict):
            raise SchemaError(f"{where}: expected an object with 'name', got {type(d).__name__}")
        unknown = set(d) - {"name", "type", "required", "enum", "pattern", "description"}
        if unknown:
            raise SchemaError(f"{where}: unknown key(s) {sorted(unknown)}")
        name = d.get("name")
        if not isinstance(name, str) or not name:
            raise SchemaError(f"{where}: 'name' must be a non-empty string")
        typ = d.get("type", "string")
        if typ not in FIELD_TYPES:
            raise SchemaError(f"{where} ({name!r}): type {typ!r} is not one of {list(FIELD_TYPES)}")
        req = d.get("required", False)
        if not isinstance(req, bool):
            raise SchemaError(f"{where} ({name!r}): 'required' must be true or false")
        enum = d.get("enum")
        if enum is not None:
            if not isinstance(enum, list) or not all(isinstance(e, (str, int, float, bool)) for e in enum):
                raise SchemaError(f"{where} ({name!r}): 'enum' must be a list of scalars")
            enum = tuple(str(e) if not isinstance(e, str) else e for e in enum)
        pat = d.get("pattern")
        if pat is not None:
            if not isinstance(pat, str):
                raise SchemaError(f"{where} ({name!r}): 'pattern' must be a string")
            try:
                re.compile(pat)
            except re.error as e:
                raise SchemaError(f"{where} ({name!r}): bad regex pattern {pat!r}: {e}") from None
        desc = d.get("description")
        return cls(name=name, type=typ, required=req, enum=enum, pattern=pat,
                   description=None if desc is None else str(desc))


@dataclass(frozen=True)
class SchemaTable:
    """One table of a multi-table schema (Rotowire's "team" and "player")."""

    name: str
    fields: tuple[Field, ...]
    row_key: str | None = None

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "fields": [f.to_dict() for f in self.fields]}
        if self.row_key is not None:
            d["row_key"] = self.row_key
        return d


@dataclass(frozen=True)
class Schema:
    """A pi_1 output / pi_2 input. `schema_id=""` is replaced by the content hash."""

    schema_id: str
    structure: str
    fields: tuple[Field, ...] = ()
    row_key: str | None = None
    tables: tuple[SchemaTable, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        object.__setattr__(self, "tables", tuple(self.tables))
        if self.structure not in STRUCTURES:
            raise SchemaError(f"schema: structure {self.structure!r} is not one of {list(STRUCTURES)}")
        if self.tables and self.fields:
            raise SchemaError("schema: give either 'fields' (one table) or 'tables' (several), not both")
        if self.tables and self.row_key is not None:
            raise SchemaError("schema: with several 'tables', each table names its own row_key")
        if self.tables and self.structure != "multi_row":
            raise SchemaError("schema: several 'tables' need structure 'multi_row'")
        if not self.tables and not self.fields:
            raise SchemaError("schema: no fields")
        for g in self.groups:
            where = f"schema table {g.name!r}" if g.name else "schema"
            names = g.field_names
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise SchemaError(f"{where}: duplicate field name(s) {dup}")
            if g.row_key is not None and g.row_key not in names:
                raise SchemaError(f"{where}: row_key {g.row_key!r} is not one of its fields")
        tnames = [t.name for t in self.tables]
        if len(set(tnames)) != len(tnames):
            raise SchemaError(f"schema: duplicate table names {tnames}")
        if not self.schema_id:
            object.__setattr__(self, "schema_id", compute_schema_id(self))

    # --- views -----------------------------------------------------------------------------
    @property
    def groups(self) -> tuple[SchemaTable, ...]:
        """Every table of the schema; a single-table schema is one unnamed group."""
        if self.tables:
            return self.tables
        return (SchemaTable(name="", fields=self.fields, row_key=self.row_key),)

    @property
    def field_names(self) -> list[str]:
        """Field names in order; multi-table schemas qualify them as "table.field"."""
        if self.tables:
            return [f"{t.name}.{f.name}" for t in self.tables for f in t.fields]
        return [f.name for f in self.fields]

    def group(self, name: str | None) -> SchemaTable | None:
        if not self.tables:
            return self.groups[0]
        for t in self.tables:
            if t.name == name:
                return t
        return None

    def key_order(self, table: str | None = None) -> list[str]:
        """The exact key list an NDJSON line must have."""
        if not self.tables:
            return [f.name for f in self.fields]
        g = self.group(table)
        if g is None:
            raise SchemaError(f"schema has no table {table!r}")
        return [TABLE_KEY] + g.field_names

    # --- JSON ------------------------------------------------------------------------------
    def to_dict(self, include_id: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if include_id:
            d["schema_id"] = self.schema_id
        d["structure"] = self.structure
        if self.tables:
            d["tables"] = [t.to_dict() for t in self.tables]
        else:
            d["fields"] = [f.to_dict() for f in self.fields]
            if self.row_key is not None:
                d["row_key"] = self.row_key
        return d

    def to_json(self, include_id: bool = True) -> str:
        """Canonical compact JSON (fixed key order, no spaces, UTF-8 kept).

        pi_1's training target uses `include_id=False`: the id is a hash the model cannot compute,
        so it is added when the schema is parsed instead of being generated."""
        return json.dumps(self.to_dict(include_id), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Any, strict_id: bool = False) -> "Schema":
        if not isinstance(d, dict):
            raise SchemaError(f"schema: expected a JSON object, got {type(d).__name__}")
        unknown = set(d) - {"schema_id", "structure", "fields", "row_key", "tables"}
        if unknown:
            raise SchemaError(f"schema: unknown key(s) {sorted(unknown)}")
        structure = d.get("structure")
        if structure is None:
            raise SchemaError("schema: missing field 'structure'")
        if "tables" in d and d["tables"] is not None:
            if not isinstance(d["tables"], list) or not d["tables"]:
                raise SchemaError("schema: 'tables' must be a non-empty list")
            tables = []
            for i, t in enumerate(d["tables"]):
                if not isinstance(t, dict):
                    raise SchemaError(f"schema: tables[{i}] must be an object")
                extra = set(t) - {"name", "fields", "row_key"}
                if extra:
                    raise SchemaError(f"schema: tables[{i}]: unknown key(s) {sorted(extra)}")
                if not isinstance(t.get("name"), str) or not t.get("name"):
                    raise SchemaError(f"schema: tables[{i}]: 'name' must be a non-empty string")
                tables.append(SchemaTable(name=t["name"], fields=_parse_fields(t.get("fields"), f"tables[{i}]"),
                                          row_key=t.get("row_key")))
            fields: tuple[Field, ...] = ()
        else:
            fields = _parse_fields(d.get("fields"), "schema")
            tables = []
        s = cls(schema_id="", structure=structure, fields=fields, row_key=d.get("row_key") if not tables else None,
                tables=tuple(tables))
        given = d.get("schema_id")
        if strict_id and given is not None and given != s.schema_id:
            raise SchemaError(f"schema: schema_id {given!r} does not match its content ({s.schema_id})")
        return s

    @classmethod
    def from_json(cls, text: str, strict_id: bool = False) -> "Schema":
        """Parse a schema JSON. The id is recomputed from the content (a given id is checked only with
        `strict_id=True`), so ids cannot drift from what they describe."""
        if not isinstance(text, str):
            raise SchemaError(f"schema: expected JSON text, got {type(text).__name__}")
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise SchemaError(f"schema: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
        return cls.from_dict(d, strict_id=strict_id)


def _parse_fields(raw: Any, where: str) -> tuple[Field, ...]:
    if raw is None:
        raise SchemaError(f"{where}: missing field 'fields'")
    if not isinstance(raw, list) or not raw:
        raise SchemaError(f"{where}: 'fields' must be a non-empty list")
    return tuple(Field.from_dict(f, f"{where}: fields[{i}]") for i, f in enumerate(raw))


def compute_schema_id(schema: Schema) -> str:
    canon = json.dumps(schema.to_dict(include_id=False), ensure_ascii=False, separators=(",", ":"))
    return "s_" + hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


def is_snake_case(name: str) -> bool:
    return bool(_NAME_RE.match(name))


# --- structure and schema targets ------------------------------------------------------------
def detect_structure(tables: GoldTable | Sequence[GoldTable] | Table) -> str:
    """Pick the structure from the gold's shape (never its values).

    key/value gold -> kv_single; several tables, a row-header column or more than one data row ->
    multi_row; otherwise (a header row plus one data row) -> flat_single_row."""
    if isinstance(tables, Table):
        if tables.meta.get("kv"):
            return "kv_single"
        return "multi_row" if tables.n_rows > 1 else "flat_single_row"
    ts = as_table_list(tables)
    if not ts:
        raise SchemaError("detect_structure: no tables")
    if len(ts) > 1:
        return "multi_row"
    t = ts[0]
    if t.kv:
        return "kv_single"
    if t.row_header or t.n_rows > 1:
        return "multi_row"
    return "flat_single_row"


def build_assistant_schema(
    tables: GoldTable | Sequence[GoldTable] | Table | Sequence[str],
    structure: str | None = None,
) -> Schema:
    """pi_1's target: field names from the gold headers only, types "string", nothing required.

    Accepts gold table(s), a `Table` with a header, or a bare header list (-> flat_single_row unless
    `structure` says otherwise)."""
    if isinstance(tables, Table):
        if tables.header is None:
            raise SchemaError(f"table {tables.name!r}: cannot build a schema without a header")
        structure = structure or detect_structure(tables)
        return Schema(schema_id="", structure=structure, fields=_string_fields(tables.header))
    if isinstance(tables, (list, tuple)) and tables and all(isinstance(h, str) for h in tables):
        return Schema(schema_id="", structure=structure or "flat_single_row", fields=_string_fields(tables))
    ts = as_table_list(tables)
    structure = structure or detect_structure(ts)
    if len(ts) == 1:
        t = ts[0]
        fields = _string_fields(t.header)
        row_key = fields[0].name if t.row_header else None
        return Schema(schema_id="", structure=structure, fields=fields, row_key=row_key)
    tnames = unique_field_names([t.name or f"table_{i + 1}" for i, t in enumerate(ts)])
    groups = []
    for tname, t in zip(tnames, ts):
        fields = _string_fields(t.header)
        groups.append(SchemaTable(name=tname, fields=fields, row_key=fields[0].name if t.row_header else None))
    return Schema(schema_id="", structure="multi_row", tables=tuple(groups))


def _string_fields(header: Sequence[str]) -> tuple[Field, ...]:
    return tuple(Field(name=n) for n in unique_field_names(header))


# --- rows <-> tables -------------------------------------------------------------------------
def gold_to_rows(tables: GoldTable | Sequence[GoldTable], schema: Schema) -> list[dict[str, Any]]:
    """The pi_2 target rows for gold tables under their `build_assistant_schema` schema: every field in
    order, empty cells as None (JSON null)."""
    ts = as_table_list(tables)
    groups = schema.groups
    if len(groups) != len(ts):
        raise SchemaError(f"schema has {len(groups)} table(s) but the gold has {len(ts)}")
    out: list[dict[str, Any]] = []
    for g, t in zip(groups, ts):
        if len(g.fields) != len(t.header):
            raise SchemaError(f"schema table {g.name!r} has {len(g.fields)} fields, gold has {len(t.header)} columns")
        for r in t.rows:
            row: dict[str, Any] = {TABLE_KEY: g.name} if schema.tables else {}
            for f, v in zip(g.fields, r):
                row[f.name] = v if v != "" else None
            out.append(row)
    return out


def rows_to_tables(rows: Sequence[dict[str, Any]], schema: Schema) -> list[GoldTable]:
    """Predicted NDJSON rows -> tables keyed by field name, for scoring.

    Values become strings (None -> "" = empty cell; numbers via JSON text, so 5 -> "5"). Keys the schema
    does not know are kept as extra columns (they cost precision instead of being silently dropped).
    Rows of a multi-table schema go to the table named by their "_table" key; unknown names are dropped."""
    out: list[GoldTable] = []
    for g in schema.groups:
        if schema.tables:
            mine = [r for r in rows if isinstance(r, dict) and r.get(TABLE_KEY) == g.name]
        else:
            mine = [r for r in rows if isinstance(r, dict)]
        header = list(g.field_names)
        if g.row_key is not None:  # GoldTable keeps its row-header column first
            header.remove(g.row_key)
            header.insert(0, g.row_key)
        for r in mine:
            for k in r:
                if k != TABLE_KEY and k not in header:
                    header.append(k)
        cells = [[value_to_cell(r.get(h)) for h in header] for r in mine]
        kv = schema.structure == "kv_single" and len(cells) == 1
        out.append(GoldTable(name=g.name, header=header, rows=cells, kv=kv, row_header=g.row_key is not None))
    return out


def canonical_gold(tables: GoldTable | Sequence[GoldTable], schema: Schema | None = None) -> list[GoldTable]:
    """Gold tables with headers renamed to their schema field names (and tables to schema table names),
    so gold and NDJSON predictions compare header for header (see docs/t2t.md: the output format fixes
    lower_snake_case names, so header matching happens after that normalisation)."""
    ts = as_table_list(tables)
    schema = schema or build_assistant_schema(ts)
    return rows_to_tables(gold_to_rows(ts, schema), schema)


def value_to_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))
