import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aegir.t2t.datasets import build_sft_records
from aegir.t2t.verl import RL_COLUMNS, VerlExportError, export_verl, load_reward_module, validate_rl_parquet


@pytest.fixture
def exported(make_examples, tmp_path):
    ex = make_examples(6)
    recs = build_sft_records(ex, "schema") + build_sft_records(ex, "table")
    return recs, export_verl(recs, tmp_path / "verl", val_fraction=0.2, seed=1)


def test_rl_parquet_matches_verl_contract(exported, tmp_path):
    recs, res = exported
    for task in ("schema", "table"):
        path = tmp_path / "verl" / task / "rl_train.parquet"
        assert validate_rl_parquet(path) == []
        t = pq.read_table(path)
        assert tuple(t.column_names) == RL_COLUMNS
        assert t.schema.field("prompt").type == pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
        row = t.to_pylist()[0]
        assert row["reward_model"]["style"] == "rule"
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["extra_info"]["stage"] == task and row["extra_info"]["split"] == "train"
        assert row["ability"].startswith("t2t_")
    # 6 records per task, 20% validation -> 1 val + 5 train (rounded), disjoint and complete
    tr = pq.read_table(tmp_path / "verl" / "table" / "rl_train.parquet").to_pylist()
    va = pq.read_table(tmp_path / "verl" / "table" / "rl_val.parquet").to_pylist()
    ids = [r["extra_info"]["id"] for r in tr + va]
    assert len(va) == 1 and sorted(ids) == sorted(r["id"] for r in recs if r["stage"] == "table")


def test_sft_parquet_has_messages_per_stage(exported, tmp_path):
    _recs, res = exported
    for stage in ("ctx2048", "ctx4096", "ctx8192"):
        t = pq.read_table(tmp_path / "verl" / "schema" / f"sft_{stage}_train.parquet")
        assert t.column_names[:2] == ["messages", "id"]
        assert [m["role"] for m in t.to_pylist()[0]["messages"]] == ["system", "user", "assistant"]
    assert res.counts["schema/sft_ctx2048_train.parquet"] == 5


def test_reward_module_scores_like_compute_score(exported, tmp_path):
    recs, res = exported
    mod = load_reward_module(res.reward_module)  # imported by file path, as VERL does
    rows = pq.read_table(tmp_path / "verl" / "table" / "rl_train.parquet").to_pylist()
    by_id = {r["id"]: r for r in recs if r["stage"] == "table"}
    for row in rows:
        gold_answer = by_id[row["extra_info"]["id"]]["messages"][-1]["content"]
        out = mod.compute_score(row["data_source"], gold_answer, row["reward_model"]["ground_truth"],
                                row["extra_info"])
        assert out["score"] == 1.0 and out["stage_is_table"] == 1.0
        bad = mod.compute_score(row["data_source"], "no table here", row["reward_model"]["ground_truth"],
                                row["extra_info"])
        assert 0.0 <= bad["score"] < 0.2
    srow = pq.read_table(tmp_path / "verl" / "schema" / "rl_train.parquet").to_pylist()[0]
    s = mod.compute_score(srow["data_source"], "{}", srow["reward_model"]["ground_truth"], srow["extra_info"])
    assert s["stage_is_table"] == 0.0 and 0.0 <= s["score"] < 1.0


def test_launch_scripts_carry_the_lora_settings(exported, tmp_path):
    _recs, res = exported
    sft = (tmp_path / "verl" / "sft_fsdp.sh").read_text()
    grpo = (tmp_path / "verl" / "grpo.sh").read_text()
    assert "model.lora_rank=128 model.lora_alpha=256" in sft
    assert "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj" in sft
    assert "lora_dropout=" not in sft.replace("+model.lora_dropout would", "")  # VERL SFT has no dropout key
    assert "NO dropout key" in sft
    for name, steps, lr in (("ctx2048", 654, "0.00015"), ("ctx4096", 818, "8e-05"), ("ctx8192", 818, "5e-05")):
        assert f"run_stage {name} {name[3:]} {lr}" in sft and f" {steps} " in sft
    assert "algorithm.adv_estimator=grpo" in grpo
    assert "custom_reward_function.name=compute_score" in grpo and "t2t_reward.py" in grpo
    assert "actor_rollout_ref.model.lora_rank=128" in grpo and "lora_adapter_path" in grpo
    for p in res.scripts:
        assert subprocess.run(["bash", "-n", p]).returncode == 0


def test_export_errors_name_the_record(tmp_path):
    with pytest.raises(VerlExportError, match="stage"):
        export_verl([{"id": "x", "messages": []}], tmp_path)
    with pytest.raises(VerlExportError, match="no records"):
        export_verl([], tmp_path)
