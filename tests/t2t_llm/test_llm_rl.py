import dataclasses
import json

import pytest

from aegir.t2t.datasets import build_sft_records
from aegir.t2t.models import read_adapter_meta
from aegir.t2t.rl import grpo_dataset, run_grpo
from aegir.t2t.sft import SFTDataError, run_sft


def test_grpo_from_sft_adapter_has_reward_variance(tiny, fast_cfg, make_examples, tmp_path):
    recs = build_sft_records(make_examples(4), "table")
    # A couple of SFT steps first: RL starts from the saved adapter, as `aegir t2t rl --adapter` does.
    cfg = fast_cfg.replace(stages=tuple(dataclasses.replace(s, learning_rate=3e-3) for s in fast_cfg.stages))
    sft = run_sft(recs, "table", tmp_path / "sft", model=tiny, cfg=cfg, max_steps=2, stage_names=["ctx2048"])
    res = run_grpo(recs, "table", tmp_path / "rl", adapter=sft.adapter_dir, cfg=fast_cfg, max_steps=2,
                   num_generations=4, max_completion_length=12, learning_rate=1e-3)
    assert [s.step for s in res.steps] == [1, 2]
    # part 1's rewards give partial credit, so a group of 4 random completions is not constant
    assert any(s.reward_std > 0 for s in res.steps)
    assert all(0.0 <= s.reward <= 1.0 for s in res.steps)
    assert read_adapter_meta(res.adapter_dir)["rl"] == "grpo"
    assert json.loads((tmp_path / "rl" / "rl_result.json").read_text())["task"] == "table"


def test_grpo_dataset_drops_the_answer_and_keeps_columns(make_examples):
    recs = build_sft_records(make_examples(2), "schema")
    for r in recs:
        r["extra"] = "x"
    ds = grpo_dataset(recs, extra_columns=("extra",))
    assert ds.column_names == ["prompt", "ground_truth", "extra"]
    assert [m["role"] for m in ds[0]["prompt"]] == ["system", "user"]
    assert ds[0]["ground_truth"] == recs[0]["ground_truth"]
    with pytest.raises(SFTDataError, match="ground_truth"):
        grpo_dataset([{"id": "q", "messages": recs[0]["messages"]}])
    with pytest.raises(SFTDataError, match="num_generations"):
        run_grpo(recs, "schema", "unused", model="tiny", num_generations=1)
