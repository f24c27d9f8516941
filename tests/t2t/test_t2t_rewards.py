"""Rewards: 1.0 for gold, graded partial credit (GRPO groups need variance), TRL and VERL entry points."""

import json
import statistics

import pytest

from aegir.t2t.datasets import build_sft_records, synthetic_examples
from aegir.t2t.gold import GoldTable
from aegir.t2t.rewards import (
    GroundTruthError,
    compute_score,
    schema_reward,
    table_reward,
    table_reward_details,
    trl_schema_reward,
    trl_table_reward,
)
from aegir.t2t.ndjson import rows_to_ndjson
from aegir.t2t.prompts import table_messages
from aegir.t2t.schema import build_assistant_schema, gold_to_rows

GOLD = GoldTable.from_pairs([["Name", "Alimentum"], ["Area", "City centre"], ["Family friendly", "No"],
                             ["Near", "Burger King"]])
SCHEMA = build_assistant_schema(GOLD)
ROWS = gold_to_rows(GOLD, SCHEMA)
TABLE_GT = json.dumps({"schema": SCHEMA.to_dict(), "rows": ROWS})
GOLD_NDJSON = rows_to_ndjson(ROWS, SCHEMA)


def test_table_reward_group_has_variance_and_sensible_order():
    one_wrong = GOLD_NDJSON.replace("Burger King", "Pizza Hut")
    reordered = '{"area":"City centre","name":"Alimentum","family_friendly":"No","near":"Burger King"}'
    group = {
        "gold": GOLD_NDJSON,
        "fenced": "```json\n" + GOLD_NDJSON + "\n```",
        "reordered": reordered,
        "one_wrong": one_wrong,
        "truncated": GOLD_NDJSON[: len(GOLD_NDJSON) // 2],
        "prose": "The restaurant is Alimentum in the city centre.",
        "empty": "",
    }
    r = {k: table_reward(v, TABLE_GT) for k, v in group.items()}
    assert r["gold"] == 1.0
    assert r["empty"] == 0.0
    assert 1.0 > r["fenced"] > r["one_wrong"] > r["truncated"] > r["prose"] > r["empty"]
    assert 1.0 > r["reordered"] > r["one_wrong"]
    assert len(set(r.values())) == len(r)  # every output distinguishable
    assert statistics.pstdev(r.values()) > 0.2
    assert all(0.0 <= v <= 1.0 for v in r.values())


def test_table_reward_parts_hand_values():
    d = table_reward_details('{"name":"Alimentum","area":"City centre"}', TABLE_GT)
    assert d.parts["json_valid"] == 1.0 and d.parts["strict_ok"] == 1.0
    assert d.parts["key_order"] == 0.0  # two of four fields: the policy asks for every field
    assert d.parts["types"] == 1.0
    assert d.parts["cell_exact"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # P 2/2, R 2/4


def test_multi_row_reward_penalises_duplicates():
    team = GoldTable.from_grid([["", "Wins"], ["Hawks", "46"], ["Magic", "19"]], "Team")
    s = build_assistant_schema(team)
    rows = gold_to_rows(team, s)
    gt = json.dumps({"schema": s.to_dict(), "rows": rows})
    first = rows_to_ndjson(rows[:1], s)
    assert table_reward(rows_to_ndjson(rows, s), gt) == 1.0
    assert table_reward(first + "\n" + first, gt) < table_reward(first, gt)


def test_schema_reward_group_has_variance():
    gt = SCHEMA.to_json()
    target = SCHEMA.to_json(include_id=False)
    group = {
        "gold": target,
        "with_id": SCHEMA.to_json(),
        "fenced": "```json\n" + target + "\n```",
        "missing_field": '{"structure":"kv_single","fields":[{"name":"name"},{"name":"area"},{"name":"family_friendly"}]}',
        "wrong_structure": '{"structure":"multi_row","fields":[{"name":"name"},{"name":"area"},'
                           '{"name":"family_friendly"},{"name":"near"}]}',
        "not_snake": '{"structure":"kv_single","fields":[{"name":"Name"},{"name":"Area"}]}',
        "salvage": 'fields: "name": "name", "name": "area" and more',
        "garbage": "I cannot do that",
        "empty": "",
    }
    r = {k: schema_reward(v, gt) for k, v in group.items()}
    assert r["gold"] == 1.0 and r["with_id"] == 1.0 and r["empty"] == 0.0
    assert 1.0 > r["fenced"] > r["missing_field"] > r["not_snake"] > r["salvage"] > r["garbage"]
    assert 1.0 > r["wrong_structure"] > r["missing_field"]
    assert statistics.pstdev(r.values()) > 0.2


def test_shaping_separates_non_json_outputs():
    # what an untrained policy writes: none of it parses, yet the rewards differ
    outs = ['{"structure": "kv_si', "name area near", "zzzz", '{"fields":[{"name":"nam']
    vals = [schema_reward(o, SCHEMA.to_json()) for o in outs]
    assert len(set(vals)) == len(vals) and max(vals) > 0


def test_trl_reward_functions_accept_messages():
    prompt = table_messages("Alimentum, city centre, not family-friendly, near Burger King.", SCHEMA)
    comps = [[{"role": "assistant", "content": GOLD_NDJSON}], [{"role": "assistant", "content": "nope"}]]
    got = trl_table_reward(prompts=[prompt, prompt], completions=comps, ground_truth=[TABLE_GT, TABLE_GT],
                           completion_ids=[[1], [2]])
    assert got[0] == 1.0 and 0.0 <= got[1] < 0.1
    # ground truth without a schema: the prompt's [SCHEMA] block supplies it
    rows_only = json.dumps({"rows": ROWS})
    assert trl_table_reward(prompts=[prompt], completions=[GOLD_NDJSON], ground_truth=[rows_only]) == [1.0]
    with pytest.raises(GroundTruthError, match="no 'schema'"):
        trl_table_reward(prompts=[None], completions=[GOLD_NDJSON], ground_truth=[rows_only])
    s = trl_schema_reward(prompts=["x"], completions=[SCHEMA.to_json(include_id=False)],
                          ground_truth=[SCHEMA.to_json()])
    assert s == [1.0]
    assert trl_schema_reward.__name__ == "t2t_schema_reward"


def test_trl_on_sft_records_gives_one_for_targets():
    exs = synthetic_examples(10, seed=5)
    for stage, fn in (("schema", trl_schema_reward), ("table", trl_table_reward)):
        recs = build_sft_records(exs, stage)
        got = fn(prompts=[r["messages"][:2] for r in recs], completions=[r["messages"][2]["content"] for r in recs],
                 ground_truth=[r["ground_truth"] for r in recs])
        assert got == [1.0] * len(recs)


def test_verl_compute_score():
    out = compute_score("aegir_t2t/e2e", GOLD_NDJSON, TABLE_GT)
    assert out["score"] == 1.0 and out["stage_is_table"] == 1.0 and "cell_exact" in out
    out = compute_score("aegir_t2t/e2e", SCHEMA.to_json(include_id=False), SCHEMA.to_json())
    assert out["score"] == 1.0 and out["stage_is_table"] == 0.0
    out = compute_score("x", "garbage", SCHEMA.to_json(), extra_info={"stage": "schema"})
    assert 0.0 <= out["score"] < 0.1
    assert all(isinstance(v, float) for v in out.values())
    with pytest.raises(GroundTruthError, match="not valid JSON"):
        compute_score("x", "y", "{broken")
    with pytest.raises(GroundTruthError, match="unknown stage"):
        compute_score("x", "y", SCHEMA.to_json(), extra_info={"stage": "other"})


def test_runaway_outputs_are_scored_on_a_capped_prefix():
    """A runaway answer is scored on a prefix (row alignment is cubic, soft schema F1 quadratic) and
    its content terms shrink by the share scored: equal to the prefix's terms times that share."""
    from aegir.t2t.rewards import _MAX_NAMES, schema_reward_details

    lines = [ln for ln in "\n".join([GOLD_NDJSON] * 2000).splitlines() if ln.strip()]
    cap = 2 * len(ROWS) + 16
    full = table_reward_details("\n".join(lines), TABLE_GT)
    prefix = table_reward_details("\n".join(lines[:cap]), TABLE_GT)
    assert prefix.parts["cell_exact"] > 0
    assert full.parts["cell_exact"] == pytest.approx(cap / len(lines) * prefix.parts["cell_exact"])
    assert 0.0 < full.score < table_reward(GOLD_NDJSON, TABLE_GT)

    def schema_answer(n: int) -> str:
        return '{"structure":"kv_single","fields":[' + ",".join(f'{{"name":"f{i}"}}' for i in range(n)) + "]}"

    runaway = schema_reward_details(schema_answer(3000), SCHEMA.to_json())
    head = schema_reward_details(schema_answer(_MAX_NAMES), SCHEMA.to_json())
    assert head.parts["names_ok"] > 0
    assert runaway.parts["names_ok"] == pytest.approx(_MAX_NAMES / 3000 * head.parts["names_ok"])
    assert runaway.parts["soft_f1"] == pytest.approx(_MAX_NAMES / 3000 * head.parts["soft_f1"])
    assert 0.0 < schema_reward(schema_answer(3000), SCHEMA.to_json()) < 0.5