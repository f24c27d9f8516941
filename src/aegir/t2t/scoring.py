"""`aegir t2t score`: score a predictions file against a gold file with every metric in metrics.py.

Predictions (JSONL, matched to gold by `id`) may be
- NDJSON text in `prediction` | `completion` | `output` | `ndjson`, optionally with the `schema` pi_1
  produced (JSON text or object; without one the gold's own schema is assumed), or
- `rows` (a list of objects) with an optional `schema`, or
- any gold layout the loaders read (then a gold file scored against itself gives 1.0 everywhere).
A gold id with no prediction scores 0 (Wu et al.: a missing prediction counts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from aegir.tables.table import TableError
from aegir.t2t.datasets import read_jsonl_objects, example_from_record, load_examples
from aegir.t2t.metrics import cell_f1, end_to_end_score, schema_f1
from aegir.t2t.ndjson import parse_ndjson, rows_to_ndjson
from aegir.t2t.sanity import table_sanity
from aegir.t2t.schema import Schema, SchemaError, build_assistant_schema, canonical_gold, gold_to_rows, rows_to_tables

_TEXT_KEYS = ("prediction", "completion", "output", "ndjson")


@dataclass
class Prediction:
    schema: Schema | None
    rows: list[dict[str, Any]] | None
    text: str  # the NDJSON text as written (or rendered from rows)
    strict_ok: bool


@dataclass
class ScoreReport:
    n_gold: int
    n_pred: int
    n_missing: int  # gold ids without a prediction
    n_unmatched: int  # prediction ids not in the gold
    metrics: dict[str, float | None]
    by_table: dict[str, float] = field(default_factory=dict)  # exact raw cell F1 per gold table name

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _parse_prediction(d: dict[str, Any], where: str, gold_schema: Schema) -> Prediction:
    raw_schema = d.get("schema")
    schema = gold_schema
    if raw_schema is not None:
        try:
            schema = Schema.from_json(raw_schema) if isinstance(raw_schema, str) else Schema.from_dict(raw_schema)
        except SchemaError as e:
            raise TableError(f"{where}: field 'schema': {e}") from None
    for k in _TEXT_KEYS:
        if k in d:
            text = d[k] if isinstance(d[k], str) else ""
            p = parse_ndjson(text, mode="lenient")
            return Prediction(schema, p.rows, text, parse_ndjson(text, mode="strict").ok)
    if "rows" in d and "header" not in d:
        rows = d["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise TableError(f"{where}: field 'rows' must be a list of objects")
        return Prediction(schema, rows, rows_to_ndjson(rows, schema), True)
    ex = example_from_record(d, where, "pred", "")  # a gold-layout record
    s = build_assistant_schema(ex.tables)
    rows = gold_to_rows(ex.tables, s)
    return Prediction(s, rows, rows_to_ndjson(rows, s), True)


def score_files(pred_path: str | Path, gold_path: str, limit: int | None = None,
                progress: Callable[[int, int], None] | None = None) -> ScoreReport:
    """Score predictions against gold (a path or one of e2e / wikitabletext / rotowire)."""
    gold = load_examples(str(gold_path), limit=limit)
    ids = {ex.id for ex in gold}
    if len(ids) != len(gold):
        raise TableError(f"{gold_path}: duplicate ids in the gold file")
    raw_preds: dict[str, tuple[str, dict[str, Any]]] = {}
    unmatched = 0
    for lineno, d in read_jsonl_objects(pred_path):
        pid = d.get("id")
        if pid is None:
            raise TableError(f"{pred_path}:{lineno}: missing field 'id'")
        if str(pid) not in ids:
            unmatched += 1
            continue
        raw_preds[str(pid)] = (f"{pred_path}:{lineno}", d)
    schemas_p, rows_p, texts, strict_ok, gold_tabs, pred_tabs, gold_schemas = [], [], [], [], [], [], []
    n_missing = 0
    for i, ex in enumerate(gold):
        gs = build_assistant_schema(ex.tables)
        gold_schemas.append(gs)
        gold_tabs.append(canonical_gold(ex.tables, gs))
        if ex.id in raw_preds:
            where, d = raw_preds[ex.id]
            p = _parse_prediction(d, where, gs)
        else:
            n_missing += 1
            p = Prediction(None, None, "", False)
        schemas_p.append(p.schema)
        rows_p.append(p.rows)
        texts.append(p.text)
        strict_ok.append(p.strict_ok)
        pred_tabs.append(rows_to_tables(p.rows, p.schema) if p.schema is not None and p.rows is not None else None)
        if progress is not None:
            progress(i + 1, len(gold))
    m: dict[str, float | None] = {}
    by_table: dict[str, float] = {}
    for sim in ("exact", "chrf"):
        for norm in (False, True):
            c = cell_f1(pred_tabs, gold_tabs, sim=sim, normalize=norm)
            tag = f"{sim}_{'norm' if norm else 'raw'}"
            m[f"cell_precision_{tag}"] = c.precision
            m[f"cell_recall_{tag}"] = c.recall
            m[f"cell_f1_{tag}"] = c.f1
            m[f"row_header_f1_{tag}"] = c.row_header_f1
            m[f"col_header_f1_{tag}"] = c.col_header_f1
            if tag == "exact_raw":
                by_table = c.by_name
    for soft in (False, True):
        vals = [schema_f1(s.field_names if s else [], g.field_names, soft=soft).f1
                for s, g in zip(schemas_p, gold_schemas)]
        m[f"schema_f1_{'soft' if soft else 'exact'}"] = sum(vals) / len(vals) if vals else 0.0
    e2e = end_to_end_score(schemas_p, rows_p, [ex.tables for ex in gold], sim="chrf", normalize=True)
    m["end_to_end_cell_f1"] = e2e.cell.f1
    present = [(t, s) for t, s, p in zip(texts, schemas_p, rows_p) if s is not None and p is not None]
    san = table_sanity([t for t, _ in present], [s for _, s in present]) if present else None
    m["json_valid_rate"] = san.json_valid_rate if san else 0.0
    m["key_order_pass_rate"] = san.key_order_pass_rate if san else 0.0
    m["type_check_pass_rate"] = san.type_check_pass_rate if san else 0.0
    # Wu et al.'s "wrong format" ratio, reported as its complement so that 1.0 is best like the rest.
    m["format_ok_rate"] = sum(strict_ok) / len(strict_ok) if strict_ok else 0.0
    return ScoreReport(n_gold=len(gold), n_pred=len(raw_preds), n_missing=n_missing, n_unmatched=unmatched,
                       metrics=m, by_table=by_table)


def write_report(report: ScoreReport, out: str | Path) -> Path:
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(p)
    return p
