import math
import os

import pytest

from aegir.t2t.config import LoraSettings, T2TConfigError, T2TTrainConfig


def test_defaults_match_the_issue():
    c = T2TTrainConfig()
    assert (c.lora.r, c.lora.alpha, c.lora.dropout) == (128, 256, 0.05)
    assert c.lora.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    assert [s.max_length for s in c.stages] == [2048, 4096, 8192]
    assert [s.hours for s in c.stages] == [4.0, 5.0, 5.0]
    assert c.est_step_seconds == 22.0
    assert [s.learning_rate for s in c.stages] == [1.5e-4, 8e-5, 5e-5]
    assert [s.warmup_ratio for s in c.stages] == [0.08, 0.05, 0.03]
    assert (c.stages[0].micro_batch, c.stages[0].grad_accum) == (8, 4)
    assert all(s.micro_batch * s.grad_accum == 32 for s in c.stages)
    assert [s.micro_batch for s in c.stages] == sorted([s.micro_batch for s in c.stages], reverse=True)
    assert (c.per_step_eval_samples, c.final_eval_samples, c.log_freq, c.eval_freq) == (200, 1000, 50, 200)
    assert c.num_workers == min(8, os.cpu_count() or 1)
    assert (c.prefetch_factor, c.persistent_workers) == (2, False)
    assert (c.max_new_tokens("schema"), c.max_new_tokens("table")) == (256, 512)


def test_curriculum_steps_and_learning_rates():
    plan = T2TTrainConfig().plan()
    # hours * 3600 / 22, floored: 14400/22 = 654.5..., 18000/22 = 818.1...
    assert [p.max_steps for p in plan] == [654, 818, 818]
    assert [p.learning_rate for p in plan] == [1.5e-4, 8e-5, 5e-5]
    # warmup = ceil(ratio * steps): ceil(52.32) = 53, ceil(40.9) = 41, ceil(24.54) = 25
    assert [p.warmup_steps for p in plan] == [53, 41, 25]
    assert [p.global_batch for p in plan] == [32, 32, 32]


def test_max_steps_overrides_hours_and_stage_selection():
    plan = T2TTrainConfig().plan(max_steps=10, stage_names=["ctx4096"])
    assert len(plan) == 1 and plan[0].name == "ctx4096"
    assert plan[0].max_steps == 10 and plan[0].warmup_steps == math.ceil(0.05 * 10)
    with pytest.raises(T2TConfigError, match="unknown curriculum stage"):
        T2TTrainConfig().plan(stage_names=["ctx999"])
    with pytest.raises(T2TConfigError, match="max-steps"):
        T2TTrainConfig().plan(max_steps=0)


def test_est_step_seconds_changes_steps():
    c = T2TTrainConfig(est_step_seconds=36.0)
    assert [p.max_steps for p in c.plan()] == [400, 500, 500]


def test_roundtrip_and_strictness():
    c = T2TTrainConfig(lora=LoraSettings(r=8, alpha=16)).with_global_batch(8, micro_batch=2)
    d = c.to_dict()
    assert T2TTrainConfig.from_dict(d) == c
    assert all(s["micro_batch"] == 2 and s["grad_accum"] == 4 for s in d["stages"])
    with pytest.raises(T2TConfigError, match="unknown T2TTrainConfig keys"):
        T2TTrainConfig.from_dict({**d, "lr": 1})


def test_invalid_values_are_named():
    with pytest.raises(T2TConfigError, match="lora.dropout"):
        T2TTrainConfig(lora=LoraSettings(dropout=1.5))
    with pytest.raises(T2TConfigError, match="global_batch"):
        T2TTrainConfig(global_batch=64)
    with pytest.raises(T2TConfigError, match="task"):
        T2TTrainConfig().max_new_tokens("rows")
    with pytest.raises(T2TConfigError, match="precision"):
        T2TTrainConfig(precision="fp8")
    with pytest.raises(T2TConfigError, match="divisible"):
        T2TTrainConfig().with_global_batch(10, micro_batch=4)
