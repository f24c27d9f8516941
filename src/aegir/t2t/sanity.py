"""Cheap format checks on pi_2 output (and on SFT records): JSON validity per line, key order, types.

`quick_table_sanity` is the report evaluation prints next to cell F1; the per-row checks are reused by
the rewards. Pure Python: runs inside RL reward workers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Sequence

from aegir.t2t.ndjson import parse_ndjson
from aegir.t2t.schema import TABLE_KEY, Schema, SchemaError, SchemaTable

_DATE_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def row_group(row: dict[str, Any], schema: Schema) -> SchemaTable | None:
    """The schema table a row belongs to (None: a multi-table row naming no known table)."""
    if not schema.tables:
        return schema.groups[0]
    return schema.group(row.get(TABLE_KEY)) if isinstance(row.get(TABLE_KEY), str) else None


def key_order_ok(row: dict[str, Any], schema: Schema) -> bool:
    """The row's keys are exactly the schema's fields in the schema's order (every field present; the
    policy asks for null rather than omission, so the check can be exact)."""
    g = row_group(row, schema)
    if g is None:
        return False
    return list(row.keys()) == schema.key_order(g.name if schema.tables else None)


def value_type_ok(value: Any, f: Any) -> bool:
    """One value against one Field: JSON type, then enum and pattern. null is fine unless required."""
    if value is None:
        return not f.required
    t = f.type
    if t == "string":
        ok = isinstance(value, str)
    elif t == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif t == "boolean":
        ok = isinstance(value, bool)
    elif t == "date":
        ok = isinstance(value, str) and bool(_DATE_RE.match(value))
    else:
        ok = False
    if not ok:
        return False
    if f.required and isinstance(value, str) and not value.strip():
        return False
    if f.enum is not None and (value if isinstance(value, str) else json.dumps(value)) not in f.enum:
        return False
    if f.pattern is not None:
        try:
            if re.fullmatch(f.pattern, value if isinstance(value, str) else json.dumps(value)) is None:
                return False
        except re.error:
            return False
    return True


def row_types_ok(row: dict[str, Any], schema: Schema) -> bool:
    g = row_group(row, schema)
    if g is None:
        return False
    return all(value_type_ok(row.get(f.name), f) for f in g.fields)


def coerce_schema(x: Schema | str | dict[str, Any]) -> Schema:
    """A Schema from a Schema, schema JSON (text or dict), or a table-stage ground truth
    ({"schema": ..., "rows": ...}, text or dict) - callers often hold the SFT record's ground_truth."""
    if isinstance(x, Schema):
        return x
    if isinstance(x, str):
        try:
            x = json.loads(x)
        except json.JSONDecodeError as e:
            raise SchemaError(f"schema: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if isinstance(x, dict) and "schema" in x and "structure" not in x:
        x = x["schema"]
    return Schema.from_dict(x)


@dataclass
class SanityReport:
    n_completions: int
    n_lines: int
    n_valid_lines: int
    n_rows: int
    json_valid_rate: float
    key_order_pass_rate: float
    type_check_pass_rate: float
    strict_ok_rate: float  # completions whose every line parsed strictly

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def table_sanity(completions: Sequence[str], schemas: Any) -> SanityReport:
    """Format checks over a batch. JSON validity is per line in strict mode (an empty completion counts
    as one invalid line, so silence is not "100% valid"); key order and types are per valid row."""
    comps = list(completions)
    if isinstance(schemas, (Schema, str, dict)):
        schema_list = [schemas] * len(comps)
    else:
        schema_list = list(schemas)
    if len(schema_list) != len(comps):
        raise ValueError(f"quick_table_sanity: {len(comps)} completions but {len(schema_list)} schemas")
    n_lines = n_valid = n_rows = n_order = n_types = n_ok = 0
    for text, sch in zip(comps, schema_list):
        schema = coerce_schema(sch)
        p = parse_ndjson(text or "", mode="strict")
        n_lines += max(p.n_lines, 1)
        n_valid += p.n_valid
        n_ok += int(p.ok)
        for row in p.rows:
            n_rows += 1
            n_order += int(key_order_ok(row, schema))
            n_types += int(row_types_ok(row, schema))
    return SanityReport(
        n_completions=len(comps),
        n_lines=n_lines,
        n_valid_lines=n_valid,
        n_rows=n_rows,
        json_valid_rate=n_valid / n_lines if n_lines else 0.0,
        key_order_pass_rate=n_order / n_rows if n_rows else 0.0,
        type_check_pass_rate=n_types / n_rows if n_rows else 0.0,
        strict_ok_rate=n_ok / len(comps) if comps else 0.0,
    )


def quick_table_sanity(completions: Sequence[str], schemas: Any) -> dict[str, Any]:
    """`table_sanity` as a plain dict: json_valid_rate, key_order_pass_rate, type_check_pass_rate, ...

    `schemas`: one per completion (or one for all), each a Schema, schema JSON, or a table-stage
    ground_truth string {"schema", "rows"}."""
    return table_sanity(completions, schemas).to_dict()


def check_sft_record(record: dict[str, Any]) -> list[str]:
    """Problems with one SFT record (empty list = fine): shape, and that the assistant target parses
    and agrees with the ground truth. Used by tests and `build-sft` before writing."""
    from aegir.t2t.prompts import PromptError, parse_sections

    problems: list[str] = []
    msgs = record.get("messages")
    if not isinstance(msgs, list) or [m.get("role") for m in msgs if isinstance(m, dict)] != [
        "system", "user", "assistant"]:
        return ["messages must be [system, user, assistant]"]
    stage = record.get("stage")
    try:
        sec = parse_sections(msgs[1]["content"])
    except PromptError as e:
        return [f"user message: {e}"]
    target = msgs[2]["content"]
    try:
        gt = json.loads(record.get("ground_truth", ""))
    except (TypeError, json.JSONDecodeError):
        return ["ground_truth is not JSON"]
    if stage == "schema":
        try:
            s = Schema.from_json(target)
        except SchemaError as e:
            return [f"assistant target: {e}"]
        if Schema.from_dict(gt).schema_id != s.schema_id:
            problems.append("assistant schema differs from ground_truth")
        if sec.schema is not None:
            problems.append("schema-stage prompt contains a [SCHEMA] block")
    elif stage == "table":
        if sec.schema is None:
            return ["table-stage prompt has no parseable [SCHEMA] block"]
        p = parse_ndjson(target, mode="strict")
        if not p.ok:
            problems.append(f"assistant NDJSON has {p.n_lines - p.n_valid} invalid line(s)")
        if not all(key_order_ok(r, sec.schema) for r in p.rows):
            problems.append("assistant rows break the schema key order")
        if p.rows != gt.get("rows"):
            problems.append("assistant rows differ from ground_truth rows")
    else:
        problems.append(f"unknown stage {stage!r}")
    return problems
