"""Rewards for pi_1 (schema) and pi_2 (table), built from the metrics in metrics.py.

Every reward is in [0, 1] and equals 1.0 for the gold answer. It is a weighted sum of graded parts so
that a GRPO group of partly valid outputs has reward variance (a constant reward gives zero advantage):
format (strict / lenient JSON, valid NDJSON prefix), policy conformance (snake_case names, key order,
types) and content (field-name F1, cell F1). A small dense "shaping" term - chrF between the completion
and the gold answer text - still separates outputs that are not JSON at all, which is what a fresh
policy mostly writes.

Exposed three ways: plain functions, TRL reward functions (lists in, list[float] out) and VERL's
`compute_score`. Pure Python (no torch / transformers).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from aegir.t2t.metrics import cell_f1, chrf_sim, schema_f1
from aegir.t2t.ndjson import parse_ndjson, rows_to_ndjson, strip_fence
from aegir.t2t.policy import Policy
from aegir.t2t.sanity import key_order_ok, row_types_ok
from aegir.t2t.schema import Schema, SchemaError, is_snake_case, rows_to_tables

SCHEMA_WEIGHTS = {"format": 0.10, "valid": 0.10, "structure": 0.05, "names_ok": 0.05, "soft_f1": 0.35,
                  "exact_f1": 0.20, "order": 0.10, "shaping": 0.05}
TABLE_WEIGHTS = {"json_valid": 0.05, "prefix": 0.05, "strict_ok": 0.05, "key_order": 0.05, "types": 0.05,
                 "cell_exact": 0.40, "cell_chrf": 0.30, "shaping": 0.05}
_MAX_NAMES = 256  # schema answers beyond this many field names are scored on a prefix
_SHAPING_CHARS = 4000  # chrF of long texts is slow; the shaping term only needs the beginning


class GroundTruthError(ValueError):
    """A ground_truth string that is not what the stage needs (a data bug, not a model failure)."""


@dataclass
class RewardBreakdown:
    score: float
    parts: dict[str, float]

    def to_dict(self) -> dict[str, float]:
        return {"score": self.score, **{k: float(v) for k, v in self.parts.items()}}


def _weighted(parts: dict[str, float], weights: dict[str, float]) -> float:
    # Rounded and clipped so the gold answer scores exactly 1.0 despite float summation.
    return min(1.0, max(0.0, round(float(sum(weights[k] * parts.get(k, 0.0) for k in weights)), 12)))


def _shaping(completion: str, target: str) -> float:
    return chrf_sim(completion.strip()[:_SHAPING_CHARS], target[:_SHAPING_CHARS]) if completion.strip() else 0.0


def _load_gt(ground_truth: Any) -> Any:
    if isinstance(ground_truth, (dict, list)):
        return ground_truth
    if not isinstance(ground_truth, str):
        raise GroundTruthError(f"ground_truth must be a JSON string, got {type(ground_truth).__name__}")
    try:
        return json.loads(ground_truth)
    except json.JSONDecodeError as e:
        raise GroundTruthError(f"ground_truth is not valid JSON: {e.msg} at column {e.colno}") from None


# --- pi_1 ------------------------------------------------------------------------------------
_NAME_RE = re.compile(r'"name"\s*:\s*"([^"\n]{1,80})"')


def _extract_object(text: str) -> tuple[Any, float]:
    """(parsed JSON, format credit): 1.0 if the whole completion is one JSON object, 0.5 if one could be
    cut out of fences / surrounding text, (None, 0.0) otherwise."""
    t = text.strip()
    try:
        obj = json.loads(t)
        if isinstance(obj, dict):
            return obj, 1.0
    except json.JSONDecodeError:
        pass
    inner, _ = strip_fence(t)
    start = inner.find("{")
    while start >= 0:
        try:
            obj, _ = json.JSONDecoder().raw_decode(inner[start:])
            if isinstance(obj, dict):
                return obj, 0.5
        except json.JSONDecodeError:
            pass
        start = inner.find("{", start + 1)
    return None, 0.0


def _lcs_ratio(pred: list[str], gold: list[str]) -> float:
    """Order agreement of the names both lists share: LCS length / number shared."""
    common = set(pred) & set(gold)
    a = [x for x in pred if x in common]
    b = [x for x in gold if x in common]
    if not common:
        return 0.0
    dp = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a)):
        for j in range(len(b)):
            dp[i + 1][j + 1] = dp[i][j] + 1 if a[i] == b[j] else max(dp[i][j + 1], dp[i + 1][j])
    return dp[-1][-1] / len(common)


def _schema_names(s: Schema) -> list[str]:
    return s.field_names


def schema_reward_details(completion: str, ground_truth: Any, policy: Policy | None = None) -> RewardBreakdown:
    gt = _load_gt(ground_truth)
    if isinstance(gt, dict) and "schema" in gt and "structure" not in gt:
        gt = gt["schema"]
    try:
        gold = Schema.from_dict(gt)
    except SchemaError as e:
        raise GroundTruthError(f"schema ground_truth: {e}") from None
    completion = completion or ""
    obj, fmt = _extract_object(completion)
    parts: dict[str, float] = {k: 0.0 for k in SCHEMA_WEIGHTS}
    parts["format"] = fmt
    parts["shaping"] = _shaping(completion, gold.to_json(include_id=False))
    pred: Schema | None = None
    if obj is not None:
        try:
            pred = Schema.from_dict(obj)
        except SchemaError:
            pred = None
    if pred is not None:
        allowed = set(policy.allowed_types) if policy else None
        type_ok = allowed is None or all(f.type in allowed for g in pred.groups for f in g.fields)
        parts["valid"] = 1.0 if type_ok else 0.5
        parts["structure"] = float(pred.structure == gold.structure)
        # Shaping on the canonical rendering: ids, whitespace and key order are not content.
        parts["shaping"] = _shaping(pred.to_json(include_id=False), gold.to_json(include_id=False))
        names = _schema_names(pred)
        content_scale = 1.0
    else:
        # Salvage: names written as "name": "..." still earn (halved) content credit.
        names = _NAME_RE.findall(completion)
        content_scale = 0.5
    gold_names = _schema_names(gold)
    if len(names) > _MAX_NAMES:
        # A runaway answer: score a prefix (soft F1 is quadratic in chrF calls) and scale content down.
        content_scale *= _MAX_NAMES / len(names)
        names = names[:_MAX_NAMES]
    if names:
        parts["names_ok"] = content_scale * sum(
            all(is_snake_case(p) for p in n.split(".")) for n in names) / len(names)
        parts["soft_f1"] = content_scale * schema_f1(names, gold_names, soft=True).f1
        parts["exact_f1"] = content_scale * schema_f1(names, gold_names).f1
        parts["order"] = content_scale * _lcs_ratio(names, gold_names)
    return RewardBreakdown(score=_weighted(parts, SCHEMA_WEIGHTS), parts=parts)


def schema_reward(completion: str, ground_truth: Any) -> float:
    """pi_1 reward in [0, 1]; `ground_truth` is the gold schema JSON."""
    return schema_reward_details(completion, ground_truth).score


# --- pi_2 ------------------------------------------------------------------------------------
def table_reward_details(completion: str, ground_truth: Any, schema: Schema | None = None) -> RewardBreakdown:
    gt = _load_gt(ground_truth)
    if not isinstance(gt, dict) or "rows" not in gt:
        raise GroundTruthError("table ground_truth must be an object with 'rows' (and 'schema')")
    if "schema" in gt:
        try:
            schema = Schema.from_dict(gt["schema"])
        except SchemaError as e:
            raise GroundTruthError(f"table ground_truth: {e}") from None
    if schema is None:
        raise GroundTruthError("table ground_truth has no 'schema' and no prompt [SCHEMA] was given")
    rows = gt["rows"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise GroundTruthError("table ground_truth: 'rows' must be a list of objects")
    completion = completion or ""
    lenient = parse_ndjson(completion, mode="lenient")
    strict = parse_ndjson(completion, mode="strict")
    parts: dict[str, float] = {k: 0.0 for k in TABLE_WEIGHTS}
    parts["json_valid"] = lenient.valid_rate
    parts["prefix"] = lenient.prefix_rate
    parts["strict_ok"] = float(strict.ok)
    parts["shaping"] = _shaping(completion, rows_to_ndjson(rows, schema))
    if lenient.rows:
        parts["key_order"] = sum(key_order_ok(r, schema) for r in lenient.rows) / len(lenient.rows)
        parts["types"] = sum(row_types_ok(r, schema) for r in lenient.rows) / len(lenient.rows)
    gold_tabs = rows_to_tables(rows, schema)
    pred_rows, scale = lenient.rows, 1.0
    cap = 2 * len(rows) + 16
    if len(pred_rows) > cap:
        # A runaway answer: Hungarian row alignment is cubic, so only the first `cap` rows are scored and
        # the cell terms shrink by the share scored (extra rows could only have cost precision anyway).
        pred_rows, scale = pred_rows[:cap], cap / len(pred_rows)
    pred_tabs = rows_to_tables(pred_rows, schema)
    exact = cell_f1([pred_tabs], [gold_tabs], sim="exact", normalize=True)
    if exact.n_tables == 0:
        # Gold states nothing: the right answer is rows without values.
        empty_pred = not any(v != "" for t in pred_tabs for r in t.rows for v in r)
        parts["cell_exact"] = parts["cell_chrf"] = float(empty_pred and strict.ok)
    else:
        parts["cell_exact"] = scale * exact.f1
        parts["cell_chrf"] = scale * cell_f1([pred_tabs], [gold_tabs], sim="chrf", normalize=True).f1
    return RewardBreakdown(score=_weighted(parts, TABLE_WEIGHTS), parts=parts)


def table_reward(completion: str, ground_truth: Any) -> float:
    """pi_2 reward in [0, 1]; `ground_truth` is {"schema": ..., "rows": [...]} as JSON."""
    return table_reward_details(completion, ground_truth).score


# --- TRL -------------------------------------------------------------------------------------
def completion_text(c: Any) -> str:
    """TRL passes completions as strings (standard format) or message lists (conversational)."""
    if c is None:
        return ""
    if isinstance(c, str):
        return c
    if isinstance(c, dict):
        return str(c.get("content", ""))
    if isinstance(c, (list, tuple)):
        return "".join(completion_text(m) for m in c if not isinstance(m, dict) or m.get("role", "assistant")
                       == "assistant")
    return str(c)


def _prompt_sections(prompt: Any):
    from aegir.t2t.prompts import PromptError, parse_sections

    if prompt is None:
        return None
    try:
        return parse_sections(prompt if isinstance(prompt, (str, list)) else str(prompt))
    except PromptError:
        return None


def _broadcast(x: Any, n: int, what: str) -> list[Any]:
    if x is None or isinstance(x, (str, dict)):
        return [x] * n
    x = list(x)
    if len(x) != n:
        raise ValueError(f"{what}: {len(x)} entries for {n} completions")
    return x


def _trl_rewards(prompts, completions, ground_truth, score: Callable[[str, Any, Any], float]) -> list[float]:
    """One score per completion; `score(text, ground_truth, prompt_sections_or_None)`."""
    n = len(completions)
    gts = _broadcast(ground_truth, n, "ground_truth")
    ps = _broadcast(prompts, n, "prompts")
    return [score(completion_text(c), g, _prompt_sections(p)) for p, c, g in zip(ps, completions, gts)]


def trl_schema_reward(prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (),
                      ground_truth: Sequence[str] | str | None = None, **kw: Any) -> list[float]:
    """TRL GRPO reward function for pi_1 (`ground_truth` is a dataset column)."""
    return _trl_rewards(prompts, completions, ground_truth, lambda text, g, sec: schema_reward_details(
        text, g, policy=sec.parsed_policy if sec is not None else None).score)


def trl_table_reward(prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (),
                     ground_truth: Sequence[str] | str | None = None, **kw: Any) -> list[float]:
    """TRL GRPO reward function for pi_2; a ground truth without a schema takes it from the prompt."""
    return _trl_rewards(prompts, completions, ground_truth, lambda text, g, sec: table_reward_details(
        text, g, schema=sec.schema if sec is not None else None).score)


trl_schema_reward.__name__ = "t2t_schema_reward"
trl_table_reward.__name__ = "t2t_table_reward"


# --- VERL ------------------------------------------------------------------------------------
def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                  **kw: Any) -> dict[str, float]:
    """VERL custom reward (`custom_reward_function.name=compute_score`). The stage comes from
    `extra_info["stage"]` when given, else from the ground truth's shape ("rows" -> table)."""
    gt = _load_gt(ground_truth)
    stage = (extra_info or {}).get("stage")
    if stage is None:
        stage = "table" if isinstance(gt, dict) and "rows" in gt else "schema"
    if stage == "table":
        res = table_reward_details(solution_str or "", gt)
    elif stage == "schema":
        res = schema_reward_details(solution_str or "", gt)
    else:
        raise GroundTruthError(f"compute_score: unknown stage {stage!r} (data_source {data_source!r})")
    out = res.to_dict()
    out["stage_is_table"] = float(stage == "table")
    return out


__all__ = ["RewardBreakdown", "GroundTruthError", "schema_reward", "table_reward", "schema_reward_details",
           "table_reward_details", "trl_schema_reward", "trl_table_reward", "compute_score", "completion_text"]
