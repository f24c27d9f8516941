import dataclasses

from aegir.t2t.datasets import build_sft_records
from aegir.t2t.gold import GoldTable
from aegir.t2t.pipeline import PipelineReward, pipeline_dataset, rekey_gold, run_pipeline_rl
from aegir.t2t.schema import Schema
from aegir.t2t.sft import run_sft


def test_rekey_gold_by_alignment():
    pred = Schema.from_dict({"structure": "kv_single", "fields": ["restaurant", "area", "rating"]})
    gold = [GoldTable(name="", header=["name", "area", "family_friendly"], rows=[["Aromi", "riverside", ""]], kv=True)]
    rows = rekey_gold(pred, {"restaurant": "name", "area": "area"}, gold)
    # unaligned predicted field -> null; gold "" (empty cell) -> null
    assert rows == [{"restaurant": "Aromi", "area": "riverside", "rating": None}]
    assert rekey_gold(pred, {}, gold) is None  # nothing aligned: no training target
    multi = Schema.from_dict({"structure": "multi_row", "tables": [{"name": "t", "fields": ["a"]}]})
    assert rekey_gold(multi, {"t.a": "name"}, gold) is None


def test_pipeline_reward_uses_pi2_rows(tiny, fast_cfg, make_examples):
    ex = make_examples(1)
    data = pipeline_dataset(ex)
    gold_schema = data[0]["ground_truth"]
    reward = PipelineReward(tiny, fast_cfg.replace(max_new_tokens_table=24))
    answer = Schema.from_json(gold_schema).to_json(include_id=False)  # what pi_1 is trained to write
    bad, good = reward(completions=["not json", answer],
                       ground_truth=[gold_schema] * 2, gold_table=[data[0]["gold_table"]] * 2,
                       document=[data[0]["document"]] * 2, metadata=[data[0]["metadata"]] * 2)
    # the gold schema gets the full schema part (0.3) plus whatever the random pi_2 extracts
    assert good >= 0.3 - 1e-9 and bad < good
    assert reward.n_sampled == 2 and reward.n_valid == 1


def test_pipeline_rl_runs_one_round(tiny, _tiny_cache, fast_cfg, make_examples, tmp_path):
    from aegir.t2t.models import tiny_test_model

    ex = make_examples(4)
    cfg = fast_cfg.replace(
        stages=tuple(dataclasses.replace(s, learning_rate=1e-2, warmup_ratio=0.0) for s in fast_cfg.stages),
        rl_temperature=0.3, max_new_tokens_table=32,
    )
    # pi_1 first learns to write schemas (a random model never writes one, and then pi_2 has nothing to run)
    run_sft(build_sft_records(ex, "schema"), "schema", tmp_path / "sft1", model=tiny, cfg=cfg, max_steps=20,
            stage_names=["ctx2048"])
    pi2 = tiny_test_model(_tiny_cache)
    res = run_pipeline_rl(ex, tmp_path / "pipe", pi1=tiny, pi2=pi2, cfg=cfg, rounds=1, pi1_steps=2, pi2_steps=1,
                          num_generations=4, schema_completion_length=96, table_completion_length=16)
    (r,) = res.rounds
    assert r.n_sampled_schemas == 8 and len(r.pipeline_rewards) == 8
    assert r.n_valid_schemas > 0
    # a valid schema earns at least the schema part of the reward (0.3 x schema reward)
    assert max(r.pipeline_rewards) >= 0.3 * 0.99
    assert r.n_pi2_records > 0 and r.pi2 is not None and len(r.pi2.steps) == 1
    assert res.pi1_adapter.endswith("pi1/adapter") and res.pi2_adapter.endswith("pi2/adapter")
    assert (tmp_path / "pipe" / "pipeline_result.json").is_file()
