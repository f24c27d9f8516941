"""Decoding helpers for pi_1 / pi_2: batched chat generation and xgrammar grammars for constrained output.

pi_2's NDJSON grammar (`ndjson_grammar_ebnf`): every line is one compact JSON object with exactly the schema's
keys in schema order (plus `"_table"` first for multi-table schemas), values typed by the field (null allowed
unless the field is required), no structural whitespace (the compact format part 1 trains on), at most
`max_whitespace` consecutive spaces inside strings, and bounded value lengths / row counts so that one row has
a bounded worst-case length (`row_byte_bound`). pi_1's answer is constrained by a JSON Schema of the schema
format (`schema_json_schema`). Used at inference only (never in RL rollouts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aegir.t2t.models import LoadedModel
from aegir.t2t.schema import FIELD_TYPES, STRUCTURES, TABLE_KEY, Field, Schema


# ------------------------------------------------------------------------------------------------ grammars
@dataclass(frozen=True)
class GrammarLimits:
    """Bounds that make every row finite. `value_units`: a string value is at most this many units, each one
    visible character optionally preceded by up to `max_whitespace` spaces."""

    value_units: int = 96
    max_rows: int = 64
    max_whitespace: int = 1


def _lit(s: str) -> str:
    """An EBNF string literal matching exactly `s`."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _json_lit(v: str) -> str:
    """EBNF literal for the compact JSON encoding of string `v` (what json.dumps(ensure_ascii=False) writes)."""
    return _lit(json.dumps(v, ensure_ascii=False))


# Exponents have at most 2 digits: 1e999 would parse as float('inf') and re-serialise as `Infinity`,
# which is not JSON.
_COMMON_RULES = r"""
ch ::= [^"\\\x00-\x20\x7f] | "\\" ["\\/bfnrt]
int ::= "-"? ("0" | [1-9] [0-9]{0,17})
num ::= int ("." [0-9]{1,8})? ([eE] [+\-]? [0-9]{1,2})?
bool ::= "true" | "false"
"""


def ndjson_grammar_ebnf(schema: Schema, limits: GrammarLimits = GrammarLimits()) -> str:
    """EBNF for pi_2's NDJSON under `schema` (see module doc). Lines are joined by single newlines."""
    ws = max(1, limits.max_whitespace)
    rules = [
        _COMMON_RULES.strip(),
        f'unit ::= ch | " "{{1,{ws}}} ch',
        f'str ::= "\\"" unit{{0,{limits.value_units}}} "\\""',
    ]
    row_names = []
    for gi, g in enumerate(schema.groups):
        parts = []
        first = True
        if schema.tables:
            parts.append(_lit("{") + " " + _lit(json.dumps(TABLE_KEY) + ":") + " " + _json_lit(g.name))
            first = False
        for fi, f in enumerate(g.fields):
            vname = f"v_{gi}_{fi}"
            rules.append(f"{vname} ::= {_value_rule(f)}")
            key = ("{" if first else ",") + json.dumps(f.name) + ":"
            parts.append(_lit(key) + " " + vname)
            first = False
        parts.append(_lit("}"))
        rname = f"row_{gi}"
        rules.append(f"{rname} ::= " + " ".join(parts))
        row_names.append(rname)
    rules.append("row ::= " + " | ".join(row_names))
    n_rows = limits.max_rows if schema.structure == "multi_row" else 1
    rules.insert(0, f'root ::= row ("\\n" row){{0,{max(0, n_rows - 1)}}}')
    return "\n".join(rules) + "\n"


def _value_rule(f: Field) -> str:
    if f.enum:
        alts = " | ".join(_json_lit(e) for e in f.enum)
    elif f.type == "integer":
        alts = "int"
    elif f.type == "number":
        alts = "num"
    elif f.type == "boolean":
        alts = "bool"
    else:  # string, date (and patterned strings: pattern not enforced here)
        alts = "str"
    return alts if f.required else f'{alts} | "null"'


def row_byte_bound(schema: Schema, limits: GrammarLimits) -> int:
    """Worst-case UTF-8 bytes of one row under the grammar (a token is >= 1 byte, so also a token bound)."""
    per_str = 2 + limits.value_units * (limits.max_whitespace + 4)  # 4 bytes: longest UTF-8 character
    worst = 0
    for g in schema.groups:
        n = 2 + (len(json.dumps(TABLE_KEY)) + 1 + len(json.dumps(g.name, ensure_ascii=False).encode()) + 1
                 if schema.tables else 0)
        for f in g.fields:
            n += len(json.dumps(f.name).encode()) + 2
            if f.enum:
                v = max(len(json.dumps(e, ensure_ascii=False).encode()) for e in f.enum)
            else:
                v = {"integer": 19, "number": 19 + 9 + 5, "boolean": 5}.get(f.type, per_str)
            n += max(v, 4)  # "null"
        worst = max(worst, n)
    return worst


SCHEMA_NAME_PATTERN = "^[a-z][a-z0-9_]{0,39}$"


def schema_json_schema(max_fields: int = 32) -> dict[str, Any]:
    """JSON Schema of pi_1's answer (the `Schema.to_json(include_id=False)` shape), for constrained pi_1."""
    fld = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": SCHEMA_NAME_PATTERN},
            "type": {"enum": list(FIELD_TYPES)},
            "required": {"type": "boolean"},
        },
        "required": ["name", "type", "required"],
        "additionalProperties": False,
    }
    fields = {"type": "array", "items": fld, "minItems": 1, "maxItems": max_fields}
    name = {"type": "string", "pattern": SCHEMA_NAME_PATTERN}
    single = {
        "type": "object",
        "properties": {"structure": {"enum": list(STRUCTURES)}, "fields": fields, "row_key": name},
        "required": ["structure", "fields"],
        "additionalProperties": False,
    }
    table = {
        "type": "object",
        "properties": {"name": name, "fields": fields, "row_key": name},
        "required": ["name", "fields"],
        "additionalProperties": False,
    }
    multi = {
        "type": "object",
        "properties": {"structure": {"const": "multi_row"},
                       "tables": {"type": "array", "items": table, "minItems": 1, "maxItems": 8}},
        "required": ["structure", "tables"],
        "additionalProperties": False,
    }
    return {"anyOf": [single, multi]}


class GrammarFactory:
    """Compiles grammars for one tokenizer (the tokenizer info is built once; compiled grammars are cached)."""

    def __init__(self, loaded: LoadedModel):
        import xgrammar as xgr

        tok = loaded.tokenizer
        vocab = getattr(loaded.model.config, "vocab_size", None) or len(tok)
        info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=max(vocab, len(tok)), stop_token_ids=[tok.eos_token_id])
        self._compiler = xgr.GrammarCompiler(info)
        self._cache: dict[str, Any] = {}

    def ndjson(self, schema: Schema, limits: GrammarLimits) -> Any:
        ebnf = ndjson_grammar_ebnf(schema, limits)
        if ebnf not in self._cache:
            self._cache[ebnf] = self._compiler.compile_grammar(ebnf)
        return self._cache[ebnf]

    def schema_json(self, max_fields: int) -> Any:
        key = f"__schema_json_{max_fields}"
        if key not in self._cache:
            self._cache[key] = self._compiler.compile_json_schema(
                json.dumps(schema_json_schema(max_fields)), any_whitespace=False, separators=(",", ":")
            )
        return self._cache[key]


# ------------------------------------------------------------------------------------------------ generation
def generate_batch(
    loaded: LoadedModel,
    prompts: list[list[dict[str, str]]],
    max_new_tokens: int,
    *,
    grammar: Any | list[Any] | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    batch_size: int = 4,
    stats: dict[str, float] | None = None,
) -> list[str]:
    """Chat prompts -> assistant completions (special tokens stripped).

    `grammar`: one compiled xgrammar grammar for every prompt, or a list with one per prompt. `stats`, when
    given, accumulates "new_tokens" (generated tokens, EOS included, padding excluded) and "seconds"."""
    import time

    import torch

    tok, model = loaded.tokenizer, loaded.model
    if isinstance(grammar, list) and len(grammar) != len(prompts):
        raise ValueError(f"generate_batch: {len(grammar)} grammars for {len(prompts)} prompts")
    tok.padding_side = "left"
    model.eval()
    outs: list[str] = []
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i : i + batch_size]
        texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in chunk]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": tok.pad_token_id,
                              "eos_token_id": tok.eos_token_id, "do_sample": do_sample}
        if do_sample:
            kw["temperature"] = temperature
        else:  # silence "generation flags are not valid" warnings from checkpoints' sampling defaults
            kw.update(temperature=None, top_p=None, top_k=None)
        if grammar is not None:
            import xgrammar as xgr

            g = grammar[i : i + batch_size] if isinstance(grammar, list) else grammar
            kw["logits_processor"] = [xgr.contrib.hf.LogitsProcessor(g)]  # one per call (stateful)
        t0 = time.perf_counter()
        with torch.no_grad():
            gen = model.generate(**enc, **kw)
        new = gen[:, enc["input_ids"].shape[1] :]  # (B, T_new)
        if stats is not None:
            stats["seconds"] = stats.get("seconds", 0.0) + time.perf_counter() - t0
            stats["new_tokens"] = stats.get("new_tokens", 0.0) + float((new != tok.pad_token_id).sum())
        outs.extend(tok.batch_decode(new, skip_special_tokens=True))
    return outs


__all__ = ["GrammarLimits", "GrammarFactory", "ndjson_grammar_ebnf", "schema_json_schema", "row_byte_bound",
           "generate_batch", "SCHEMA_NAME_PATTERN"]
