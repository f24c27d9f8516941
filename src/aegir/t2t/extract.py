"""Extraction at inference: document -> pi_1 schema -> pi_2 NDJSON rows, with grammar-constrained decoding.

`extract(text)` runs pi_1 (unless a schema is given) and then pi_2 on every chunk of the document, decoding
pi_2's answer under an xgrammar EBNF grammar built from the schema: every line is one compact JSON object with
exactly the schema's keys in schema order (plus `"_table"` first for multi-table schemas), values typed by the
field (null allowed unless the field is required), and no free whitespace: structural whitespace is fixed by
the compact format and inside strings at most `max_whitespace` consecutive spaces are allowed. Value lengths
and the row count are bounded, so a row always has a bounded worst-case length; when a generation still runs
out of tokens before one row is complete, a second pass with a tight grammar (short values, one row) and a
token budget that provably fits it is used, so `extract` always returns valid NDJSON with the schema's keys.
Constraints apply at inference only (see docs/t2t_training.md: never during RL rollouts).

Deviations: a field's `pattern` is not enforced by the grammar (it is kept in the schema and checked by the
metrics); `date` fields are strings.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aegir.t2t.config import T2TTrainConfig
from aegir.t2t.decoding import (  # re-exported: extraction's public API
    GrammarFactory,
    GrammarLimits,
    generate_batch,
    ndjson_grammar_ebnf,
    row_byte_bound,
    schema_json_schema,
)
from aegir.t2t.models import LoadedModel, load_model
from aegir.t2t.ndjson import parse_ndjson, rows_to_ndjson
from aegir.t2t.prompts import schema_messages, table_messages
from aegir.t2t.schema import TABLE_KEY, Schema, SchemaError, unique_field_names


class ExtractionError(ValueError):
    """Extraction could not produce a usable schema (e.g. pi_1 never wrote one) or got bad input."""


# ------------------------------------------------------------------------------------------------ pieces
def chunk_document(text: str, max_chars: int) -> list[str]:
    """Split on paragraph, then sentence, then hard boundaries so every chunk has <= max_chars characters."""
    if max_chars <= 0:
        raise ExtractionError(f"chunk size must be positive (got {max_chars})")
    text = text.strip()
    if len(text) <= max_chars:
        return [text] if text else []
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        if len(para) <= max_chars:
            pieces.append(para)
            continue
        for sent in re.split(r"(?<=[.!?])\s+", para):
            while len(sent) > max_chars:
                pieces.append(sent[:max_chars])
                sent = sent[max_chars:]
            pieces.append(sent)
    chunks: list[str] = []
    cur = ""
    for p in pieces:
        p = p.strip()
        if not p:
            continue
        cand = f"{cur}\n\n{p}" if cur else p
        if len(cand) <= max_chars:
            cur = cand
        else:
            chunks.append(cur)
            cur = p
    if cur:
        chunks.append(cur)
    return chunks


def merge_rows(chunk_rows: list[list[dict[str, Any]]], schema: Schema) -> list[dict[str, Any]]:
    """Rows from several chunks -> one table. Single-row structures: one row, each key's first non-null value.
    multi_row: rows sharing a row_key value (per table) are merged the same way; exact duplicates collapse."""
    flat = [r for rows in chunk_rows for r in rows]
    if not flat:
        return []
    if schema.structure != "multi_row":
        merged: dict[str, Any] = {}
        for r in flat:
            for k, v in r.items():
                if merged.get(k) is None:
                    merged[k] = v
        return [merged]
    out: list[dict[str, Any]] = []
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    seen: set[str] = set()
    for r in flat:
        g = schema.group(r.get(TABLE_KEY)) if schema.tables else schema.groups[0]
        rk = g.row_key if g is not None else None
        kv = r.get(rk) if rk else None
        if rk and kv is not None:
            key = (str(r.get(TABLE_KEY, "")), json.dumps(kv))
            if key in by_key:
                tgt = by_key[key]
                for k, v in r.items():
                    if tgt.get(k) is None:
                        tgt[k] = v
                continue
            by_key[key] = dict(r)
            out.append(by_key[key])
            continue
        sig = json.dumps(r, sort_keys=True, ensure_ascii=False)
        if sig not in seen:
            seen.add(sig)
            out.append(dict(r))
    return out


def parse_schema_answer(text: str) -> Schema:
    """pi_1's answer -> Schema, repairing what grammar-constrained output can still get wrong (duplicate
    names are made unique; a row_key that is not a field is dropped)."""
    try:
        d = json.loads(text.strip())
    except json.JSONDecodeError as e:
        raise SchemaError(f"pi_1 answer is not JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
    if isinstance(d, dict):
        groups = d.get("tables") if isinstance(d.get("tables"), list) else [d]
        for g in groups:
            if isinstance(g, dict) and isinstance(g.get("fields"), list):
                names = [f.get("name", "") if isinstance(f, dict) else str(f) for f in g["fields"]]
                for f, n in zip(g["fields"], unique_field_names(names)):
                    if isinstance(f, dict):
                        f["name"] = n
                if g.get("row_key") is not None and g["row_key"] not in unique_field_names(names):
                    g.pop("row_key")
        if isinstance(d.get("tables"), list):
            tn = unique_field_names([t.get("name", "") for t in d["tables"] if isinstance(t, dict)])
            for t, n in zip([t for t in d["tables"] if isinstance(t, dict)], tn):
                t["name"] = n
    return Schema.from_dict(d)


# ------------------------------------------------------------------------------------------------ extract
@dataclass
class ExtractResult:
    schema: Schema
    rows: list[dict[str, Any]]
    ndjson: str
    schema_source: str  # "given" | "pi_1"
    n_chunks: int
    constrained: bool
    raw_outputs: list[str] = field(default_factory=list)  # pi_2's raw text per chunk
    fallback_chunks: int = 0  # chunks that needed the tight second pass
    schema_raw: str | None = None  # pi_1's raw answer
    base_only: list[str] = field(default_factory=list)  # stages ("pi_1", "pi_2") run on a model without an adapter

    @property
    def schema_json(self) -> str:
        return self.schema.to_json()


def _as_loaded(m: str | LoadedModel | None, default: LoadedModel | None) -> LoadedModel:
    if isinstance(m, LoadedModel):
        return m
    if m is None:
        if default is None:
            raise ExtractionError("no model given")
        return default
    return load_model(m)


def predict_schema(
    loaded: LoadedModel, document: str, *, cfg: T2TTrainConfig = T2TTrainConfig(), constrained: bool = True,
    metadata: dict[str, Any] | None = None, retries: int = 2, grammars: GrammarFactory | None = None,
) -> tuple[Schema, str]:
    """pi_1: document -> Schema (and its raw answer). Constrained decoding keeps the answer in the schema
    JSON shape; after `retries` failed attempts (sampled), a clear ExtractionError suggests --schema."""
    gf = grammars or (GrammarFactory(loaded) if constrained else None)
    msgs = schema_messages(document, metadata)
    last = ""
    for attempt in range(retries + 1):
        grammar = None
        budget = cfg.max_new_tokens_schema
        if gf is not None:
            # Later attempts use a smaller field cap so the bounded answer fits the budget.
            grammar = gf.schema_json(32 if attempt == 0 else 8)
            budget = budget if attempt == 0 else max(budget, 8 * 80 + 64)
        last = generate_batch(loaded, [msgs], budget, grammar=grammar, do_sample=attempt > 0, temperature=0.7)[0]
        try:
            return parse_schema_answer(last), last
        except SchemaError:
            continue
    raise ExtractionError(
        f"pi_1 did not produce a valid schema after {retries + 1} attempts (last answer: {last[:120]!r}); "
        "pass a schema with --schema S.json"
    )


def fill_table(
    loaded: LoadedModel, document: str, schema: Schema, *, cfg: T2TTrainConfig = T2TTrainConfig(),
    constrained: bool = True, metadata: dict[str, Any] | None = None, grammars: GrammarFactory | None = None,
    limits: GrammarLimits | None = None, fallback: bool = True,
) -> tuple[list[dict[str, Any]], str, bool]:
    """pi_2 on one chunk -> (valid rows, raw text, whether the tight fallback pass was used).
    `fallback=False` skips the guaranteed second pass (RL reward loops prefer speed over the guarantee)."""
    msgs = table_messages(document, schema, metadata)
    if not constrained:
        raw = generate_batch(loaded, [msgs], cfg.max_new_tokens_table)[0]
        p = parse_ndjson(raw, "strict")
        return p.rows[: p.valid_prefix], raw, False
    gf = grammars or GrammarFactory(loaded)
    lim = limits or GrammarLimits(max_whitespace=cfg.max_whitespace)
    raw = generate_batch(loaded, [msgs], cfg.max_new_tokens_table, grammar=gf.ndjson(schema, lim))[0]
    rows = _complete_rows(raw)
    if rows or not fallback:
        return rows, raw, False
    # Tight pass: one row, short values, and a budget >= its worst-case length, so it always completes.
    tight = GrammarLimits(value_units=16, max_rows=1, max_whitespace=1)
    budget = row_byte_bound(schema, tight) + 8
    raw2 = generate_batch(loaded, [msgs], budget, grammar=gf.ndjson(schema, tight))[0]
    return _complete_rows(raw2), raw + "\n" + raw2, True


def _complete_rows(raw: str) -> list[dict[str, Any]]:
    """Rows of the valid prefix; a last line cut off by the token budget is dropped."""
    p = parse_ndjson(raw, "strict")
    return p.rows[: p.valid_prefix]


def extract(
    text: str,
    *,
    schema: Schema | str | dict[str, Any] | None = None,
    model: str | LoadedModel | None = "smollm2",
    schema_model: str | LoadedModel | None = None,
    table_model: str | LoadedModel | None = None,
    constrained: bool = True,
    cfg: T2TTrainConfig = T2TTrainConfig(),
    metadata: dict[str, Any] | None = None,
) -> ExtractResult:
    """Document text -> schema + NDJSON rows. pi_1 = `schema_model` (default `model`), pi_2 = `table_model`
    (default `model`); a given `schema` (Schema, JSON text or dict) skips pi_1."""
    if not isinstance(text, str) or not text.strip():
        raise ExtractionError("extract: the document is empty")
    base = None
    if (schema is None and schema_model is None) or table_model is None:
        base = _as_loaded(model, None)
    pi2 = _as_loaded(table_model, base)
    chunks = chunk_document(text, cfg.chunk_chars)
    raw_schema = pi1 = None
    if schema is None:
        pi1 = _as_loaded(schema_model, base)
        sch, raw_schema = predict_schema(pi1, chunks[0], cfg=cfg, constrained=constrained, metadata=metadata)
        source = "pi_1"
    else:
        sch = _coerce_schema(schema)
        source = "given"
    base_only = [name for name, m in (("pi_1", pi1), ("pi_2", pi2))  # pi1 is None with a given schema
                 if m is not None and m.adapter is None]
    gf = GrammarFactory(pi2) if constrained else None
    per_chunk, raws, fallbacks = [], [], 0
    for c in chunks:
        rows, raw, fb = fill_table(pi2, c, sch, cfg=cfg, constrained=constrained, metadata=metadata, grammars=gf)
        per_chunk.append(rows)
        raws.append(raw)
        fallbacks += int(fb)
    rows = merge_rows(per_chunk, sch)
    return ExtractResult(
        schema=sch, rows=rows, ndjson=rows_to_ndjson(rows, sch), schema_source=source, n_chunks=len(chunks),
        constrained=constrained, raw_outputs=raws, fallback_chunks=fallbacks, schema_raw=raw_schema,
        base_only=base_only,
    )


def _coerce_schema(schema: Schema | str | dict[str, Any]) -> Schema:
    if isinstance(schema, Schema):
        return schema
    if isinstance(schema, dict):
        return Schema.from_dict(schema)
    if isinstance(schema, str):
        return Schema.from_json(schema)
    raise ExtractionError(f"schema must be a Schema, JSON text or dict (got {type(schema).__name__})")


@dataclass
class ExtractFiles:
    schema_path: str
    ndjson_path: str
    result: ExtractResult


def extract_file(
    doc_path: str | Path, out_dir: str | Path | None = None, *, schema_path: str | Path | None = None, **kw: Any
) -> ExtractFiles:
    """`aegir extract DOC.txt [--schema S.json]`: writes DOC.schema.json and DOC.ndjson (beside the document
    unless `out_dir` is given)."""
    doc = Path(doc_path)
    if not doc.is_file():
        raise ExtractionError(f"{doc}: no such file")
    try:
        text = doc.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ExtractionError(f"{doc}: not UTF-8 text (byte {e.start})") from None
    schema = None
    if schema_path is not None:
        sp = Path(schema_path)
        if not sp.is_file():
            raise ExtractionError(f"{sp}: no such schema file")
        try:
            schema = Schema.from_json(sp.read_text(encoding="utf-8"))
        except SchemaError as e:
            raise ExtractionError(f"{sp}: {e}") from None
    res = extract(text, schema=schema, **kw)
    od = Path(out_dir) if out_dir is not None else doc.parent
    od.mkdir(parents=True, exist_ok=True)
    s_out, n_out = od / f"{doc.stem}.schema.json", od / f"{doc.stem}.ndjson"
    s_out.write_text(json.dumps(res.schema.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    n_out.write_text(res.ndjson + ("\n" if res.ndjson else ""), encoding="utf-8")
    return ExtractFiles(schema_path=str(s_out), ndjson_path=str(n_out), result=res)


__all__ = [
    "extract", "extract_file", "ExtractResult", "ExtractFiles", "ExtractionError", "GrammarLimits",
    "GrammarFactory", "ndjson_grammar_ebnf", "schema_json_schema", "row_byte_bound", "generate_batch",
    "chunk_document", "merge_rows", "predict_schema", "fill_table", "parse_schema_answer",
]
