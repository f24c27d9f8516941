"""(document, gold table) data for text -> table: loaders, SFT chat records and length buckets.

Loaders return `T2TExample`s; `build_sft_records` turns them into chat-format records for pi_1 (schema)
or pi_2 (table); `bucket_records` splits records into the 2048 / 4096 / 8192-token curriculum stages.

Record formats read (one JSON object per line; errors name file:line and the field):
- E2E / WikiTableText (Wu et al.'s prepared dev files): `id`, `text`, `table` = [[key, value], ...].
- Rotowire: `id`, `text`, `team_table` / `player_table` = [header row, data rows...] whose first column
  holds the row headers.
- InstructIE-style: `instruction`, `text` (or `input`), `header`, `rows` (one table, no row headers).
- User JSONL: `text` | `document`, and one of `table` (pairs or {key: value}), `header` + `rows`,
  `tables` = [{"name", "header", "rows", "kv"?, "row_header"?}], optional `id`, `metadata`, `instruction`.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from aegir.paths import shared_data_dir
from aegir.tables.table import TableError
from aegir.t2t.gold import GoldTable
from aegir.t2t.ndjson import rows_to_ndjson
from aegir.t2t.policy import DEFAULT_POLICY, Policy
from aegir.t2t.prompts import schema_messages, table_messages
from aegir.t2t.schema import build_assistant_schema, gold_to_rows
from aegir.t2t.synthetic import synthetic_examples

__all__ = ["T2TExample", "GoldTable", "load_e2e", "load_wikitabletext", "load_rotowire", "load_instructie",
           "load_user_jsonl", "load_examples", "synthetic_examples", "build_sft_records", "bucket_records",
           "estimate_tokens", "example_from_record", "SHARED_FILES", "DEFAULT_STAGES", "build_sft_dataset",
           "BuildSFTResult"]

SHARED_FILES = {
    "e2e": "t2t/e2e_dev.jsonl",
    "wikitabletext": "t2t/wikitabletext_dev.jsonl",
    "rotowire": "t2t/rotowire_sample5.jsonl",
}
DEFAULT_STAGES: tuple[int, ...] = (2048, 4096, 8192)
_PROMPT_META_KEYS = ("language", "locale", "table_hints", "missing_value_tokens")


@dataclass
class T2TExample:
    """One document with its gold table(s).

    metadata: what goes into the prompt's [METADATA] block (language, locale, table_hints, ...).
    extra: provenance that must *not* reach the prompt (original meaning representation, style, ...).
    """

    id: str
    document: str
    tables: list[GoldTable]
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.document, "tables": [t.to_dict() for t in self.tables],
                "source": self.source, "metadata": self.metadata}


# --- reading ---------------------------------------------------------------------------------
def read_jsonl_objects(path: str | Path, error: type[Exception] = TableError,
                       missing: str = "no such file") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; `error` names the file and line on bad JSON."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: {missing}")
    with p.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{p}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise error(f"{p}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def _shared(name: str) -> Path:
    root = shared_data_dir()
    if root is None:
        raise TableError(f"shared data folder not found (needed for {name!r}); set AEGIR_SHARED_DATA or pass a path")
    return root / SHARED_FILES[name]


def _pairs_table(raw: Any, where: str) -> GoldTable:
    if isinstance(raw, dict):
        return GoldTable.from_pairs([[k, v] for k, v in raw.items()])
    if isinstance(raw, list):
        try:
            return GoldTable.from_pairs(raw)
        except TableError as e:
            raise TableError(f"{where}: field 'table': {e}") from None
    raise TableError(f"{where}: field 'table' must be [[key, value], ...] or an object")


def example_from_record(d: dict[str, Any], where: str, source: str, default_id: str) -> T2TExample:
    """One record of any supported layout -> T2TExample (see the module docstring)."""
    doc = d.get("text", d.get("document", d.get("input")))
    if not isinstance(doc, str) or not doc.strip():
        raise TableError(f"{where}: missing or empty field 'text' (or 'document' / 'input')")
    tables: list[GoldTable] = []
    try:
        if "tables" in d:
            if not isinstance(d["tables"], list) or not d["tables"]:
                raise TableError(f"{where}: field 'tables' must be a non-empty list")
            tables = [GoldTable.from_dict(t, f"{where}: tables[{i}]") for i, t in enumerate(d["tables"])]
        elif "team_table" in d or "player_table" in d:
            for key, name in (("team_table", "Team"), ("player_table", "Player")):
                grid = d.get(key)
                if grid:
                    if not isinstance(grid, list) or not all(isinstance(r, list) for r in grid):
                        raise TableError(f"{where}: field {key!r} must be a list of rows")
                    if len(grid) > 1:  # a header row alone states nothing
                        tables.append(GoldTable.from_grid(grid, name=name, row_header=True))
        elif "header" in d:
            if not isinstance(d["header"], list) or not isinstance(d.get("rows"), list):
                raise TableError(f"{where}: fields 'header' (list) and 'rows' (list of rows) are required together")
            tables = [GoldTable.from_dict({"name": d.get("table_name", ""), "header": d["header"], "rows": d["rows"],
                                           "row_header": d.get("row_header", False)}, where)]
        elif "table" in d:
            tables = [_pairs_table(d["table"], where)]
        else:
            raise TableError(f"{where}: no gold table: expected 'table', 'header'+'rows', 'tables' or 'team_table'")
    except TableError as e:
        msg = str(e)
        raise TableError(msg if msg.startswith(where) else f"{where}: {msg}") from None
    if not tables:
        raise TableError(f"{where}: the gold table(s) have no data rows")
    md = d.get("metadata") or {}
    if not isinstance(md, dict):
        raise TableError(f"{where}: field 'metadata' must be an object")
    meta = {k: md[k] for k in _PROMPT_META_KEYS if k in md}
    meta.setdefault("language", "en")
    if d.get("instruction"):
        hints = dict(meta.get("table_hints") or {})
        hints["instruction"] = str(d["instruction"])
        meta["table_hints"] = hints
    extra = {k: v for k, v in d.items() if k in ("original_mr", "original_keys", "original_values", "t2t_data_line")}
    return T2TExample(id=str(d.get("id", default_id)), document=doc, tables=tables, source=source,
                      metadata=meta, extra=extra)


def _load(path: str | Path, source: str, limit: int | None) -> list[T2TExample]:
    out = []
    for lineno, d in read_jsonl_objects(path):
        out.append(example_from_record(d, f"{path}:{lineno}", source, f"{source}-{lineno}"))
        if limit is not None and len(out) >= limit:
            break
    return out


def load_e2e(path: str | Path | None = None, limit: int | None = None) -> list[T2TExample]:
    """E2E dev as prepared by Wu et al. (key/value gold). `path=None` reads the shared copy."""
    return _load(path or _shared("e2e"), "e2e", limit)


def load_wikitabletext(path: str | Path | None = None, limit: int | None = None) -> list[T2TExample]:
    return _load(path or _shared("wikitabletext"), "wikitabletext", limit)


def load_rotowire(path: str | Path | None = None, limit: int | None = None) -> list[T2TExample]:
    """Rotowire: two multi-row tables (Team, Player) per report."""
    return _load(path or _shared("rotowire"), "rotowire", limit)


def load_instructie(path: str | Path, limit: int | None = None) -> list[T2TExample]:
    """InstructIE-style records: instruction + text + header + rows. The instruction goes into the prompt
    metadata as `table_hints.instruction`."""
    return _load(path, "instructie", limit)


def load_user_jsonl(path: str | Path, limit: int | None = None, source: str = "user") -> list[T2TExample]:
    return _load(path, source, limit)


def load_examples(spec: str, limit: int | None = None, seed: int = 0, n_synthetic: int = 500) -> list[T2TExample]:
    """`e2e` | `wikitabletext` | `rotowire` | `synthetic` | a JSONL path (any supported layout)."""
    if spec == "synthetic":
        return synthetic_examples(limit if limit is not None else n_synthetic, seed)
    if spec in SHARED_FILES:
        return _load(_shared(spec), spec, limit)
    p = Path(spec)
    if not p.exists():
        raise TableError(f"--data {spec!r}: not a file and not one of e2e, wikitabletext, rotowire, synthetic")
    return _load(p, p.stem, limit)


# --- SFT records -----------------------------------------------------------------------------
def estimate_tokens(messages: Sequence[dict[str, str]], chars_per_token: float = 4.0) -> int:
    """Characters / chars_per_token, plus 4 tokens per message for the chat template's role markers."""
    chars = sum(len(m.get("content", "")) for m in messages)
    return int(math.ceil(chars / chars_per_token)) + 4 * len(messages)


def build_sft_records(examples: Sequence[T2TExample], stage: str, policy: Policy = DEFAULT_POLICY,
                      chars_per_token: float = 4.0) -> list[dict[str, Any]]:
    """Chat records for pi_1 (`stage="schema"`) or pi_2 (`stage="table"`).

    Each record: {"messages": [system, user, assistant], "stage", "id", "data_source", "ground_truth",
    "est_tokens"}. ground_truth is a JSON string: the gold schema (schema stage) or {"schema", "rows"}
    (table stage) - exactly what `rewards.compute_score` expects."""
    if stage not in ("schema", "table"):
        raise ValueError(f"stage must be 'schema' or 'table', got {stage!r}")
    out = []
    for ex in examples:
        schema = build_assistant_schema(ex.tables)
        if stage == "schema":
            msgs = schema_messages(ex.document, ex.metadata, policy)
            target = schema.to_json(include_id=False)
            gt = schema.to_json()
        else:
            rows = gold_to_rows(ex.tables, schema)
            msgs = table_messages(ex.document, schema, ex.metadata, policy)
            target = rows_to_ndjson(rows, schema)
            gt = json.dumps({"schema": schema.to_dict(), "rows": rows}, ensure_ascii=False, separators=(",", ":"))
        msgs = msgs + [{"role": "assistant", "content": target}]
        out.append({
            "messages": msgs,
            "stage": stage,
            "id": ex.id,
            "data_source": f"aegir_t2t/{ex.source}",
            "ground_truth": gt,
            "est_tokens": estimate_tokens(msgs, chars_per_token),
        })
    return out


def bucket_records(records: Sequence[dict[str, Any]], stages: Sequence[int] = DEFAULT_STAGES,
                   chars_per_token: float = 4.0, bucket_margin: float = 0.25) -> dict[int, list[dict[str, Any]]]:
    """Split records into context-length stages by estimated tokens.

    A record goes to the smallest stage `s` with `est * (1 + bucket_margin) <= s`: the margin is headroom
    for the chars/token estimate being off for a real tokenizer, so records just under a boundary move up
    a stage rather than being truncated. A record beyond the largest stage's headroom but within the
    stage itself still goes there; longer ones are dropped with a warning (their answer would be cut).
    The estimate is recomputed from the messages with `chars_per_token`."""
    if not stages or list(stages) != sorted(stages):
        raise ValueError(f"stages must be increasing, got {list(stages)}")
    if bucket_margin < 0:
        raise ValueError(f"bucket_margin must be >= 0, got {bucket_margin}")
    out: dict[int, list[dict[str, Any]]] = {int(s): [] for s in stages}
    dropped = 0
    for rec in records:
        est = estimate_tokens(rec["messages"], chars_per_token)
        for s in stages:
            if est * (1.0 + bucket_margin) <= s:
                out[int(s)].append(rec)
                break
        else:
            if est <= stages[-1]:
                out[int(stages[-1])].append(rec)
            else:
                dropped += 1
    if dropped:
        warnings.warn(f"bucket_records: {dropped} record(s) longer than {stages[-1]} estimated tokens were dropped",
                      stacklevel=2)
    return out


# --- writing ---------------------------------------------------------------------------------
@dataclass
class BuildSFTResult:
    out_dir: Path
    stage: str
    n_examples: int
    n_records: int
    buckets: dict[int, int]  # stage length -> records
    files: list[Path]


def _write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)  # atomic: a crashed build never leaves a half-written file under the final name


def build_sft_dataset(data: str, stage: str, out_dir: str | Path, limit: int | None = None, seed: int = 0,
                      stages: Sequence[int] = DEFAULT_STAGES, chars_per_token: float = 4.0,
                      bucket_margin: float = 0.25, progress: Any = None) -> BuildSFTResult:
    """Load `data`, build `stage` records, check each one, and write `<stage>.jsonl`, one
    `<stage>_<len>.jsonl` per length bucket and `manifest.json` into `out_dir`."""
    from aegir.t2t.sanity import check_sft_record

    examples = load_examples(data, limit=limit, seed=seed)
    records = build_sft_records(examples, stage, chars_per_token=chars_per_token)
    for i, r in enumerate(records):
        problems = check_sft_record(r)
        if problems:
            raise TableError(f"{data}: example {r['id']!r} builds a bad {stage} record: {'; '.join(problems)}")
        if progress is not None:
            progress(i + 1, len(records))
    buckets = bucket_records(records, stages, chars_per_token, bucket_margin)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"{stage}.jsonl"]
    _write_jsonl(files[0], records)
    for s, recs in buckets.items():
        f = out / f"{stage}_{s}.jsonl"
        _write_jsonl(f, recs)
        files.append(f)
    manifest = {"data": data, "stage": stage, "n_examples": len(examples), "n_records": len(records),
                "buckets": {str(k): len(v) for k, v in buckets.items()}, "chars_per_token": chars_per_token,
                "bucket_margin": bucket_margin, "seed": seed, "limit": limit,
                "files": [f.name for f in files]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return BuildSFTResult(out_dir=out, stage=stage, n_examples=len(examples), n_records=len(records),
                          buckets={k: len(v) for k, v in buckets.items()}, files=files)
