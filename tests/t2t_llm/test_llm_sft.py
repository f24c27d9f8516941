import dataclasses
import json

import pytest
import torch

from aegir.t2t.config import T2TTrainConfig
from aegir.t2t.datasets import build_sft_records
from aegir.t2t.models import load_model, read_adapter_meta
from aegir.t2t.sft import SFTDataError, bucket_by_length, run_sft, token_lengths


def _fast_lr(cfg, lr=3e-3):
    return cfg.replace(stages=tuple(dataclasses.replace(s, learning_rate=lr, warmup_ratio=0.0) for s in cfg.stages))


def test_sft_trains_saves_and_reloads(tiny, fast_cfg, make_examples, tmp_path):
    recs = build_sft_records(make_examples(5), "table")
    train, ev = recs[:4], recs[4:]
    res = run_sft(train, "table", tmp_path / "run", model=tiny, cfg=_fast_lr(fast_cfg), max_steps=6,
                  stage_names=["ctx2048"], eval_records=ev)
    (st,) = res.stages
    assert st.steps == 6 and len(st.losses) == 6 and st.n_records == 4
    assert st.losses[-1] < st.losses[0] - 0.5  # assistant-only loss falls on a memorisable target
    assert st.tokens > 0 and st.tokens_per_s > 0
    # pi_2's quick sanity report ran on the held-out record
    assert res.sanity is not None and res.sanity["n_eval_records"] == 1
    assert 0.0 <= res.sanity["json_valid_rate"] <= 1.0
    assert read_adapter_meta(res.adapter_dir)["base_spec"] == "tiny"
    saved = json.loads((tmp_path / "run" / "sft_result.json").read_text())
    assert saved["stages"][0]["steps"] == 6

    # Reloading the adapter gives the trained model's logits exactly (float32).
    ids = tiny.tokenizer("Alimentum is in the city centre.", return_tensors="pt")["input_ids"]
    tiny.model.eval()
    with torch.no_grad():
        want = tiny.model(input_ids=ids).logits
        got = load_model(res.adapter_dir).model(input_ids=ids).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    base = load_model("tiny").model
    with torch.no_grad():
        assert not torch.allclose(base(input_ids=ids).logits, want, atol=1e-3)  # the adapter changed something


def test_curriculum_stages_continue_one_adapter(tiny, fast_cfg, make_examples, tmp_path):
    recs = build_sft_records(make_examples(4), "schema")
    cfg = _fast_lr(fast_cfg)
    res = run_sft(recs, "schema", tmp_path / "cur", model=tiny, cfg=cfg, max_steps=3,
                  stage_names=["ctx2048", "ctx4096"])
    s1, s2 = res.stages
    assert (s1.name, s2.name) == ("ctx2048", "ctx4096")
    assert (s1.learning_rate, s2.learning_rate) == (3e-3, 3e-3)
    # stage 2 starts where stage 1 ended, not from the base model
    assert s2.losses[0] < s1.losses[0]
    assert (tmp_path / "cur" / "ctx2048" / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "cur" / "ctx4096" / "adapter" / "adapter_model.safetensors").is_file()


def test_length_buckets_are_cumulative_and_exact(tiny, make_examples):
    plan = T2TTrainConfig().plan()
    b = bucket_by_length([100, 3000, 5000, 9000], plan)
    assert b.per_stage == {"ctx2048": [0], "ctx4096": [0, 1], "ctx8192": [0, 1, 2]}
    assert b.dropped == [3]
    recs = build_sft_records(make_examples(2), "table")
    n = token_lengths(recs, tiny.tokenizer)
    text = tiny.tokenizer.apply_chat_template(recs[0]["messages"], tokenize=False)
    assert n[0] == len(tiny.tokenizer(text, add_special_tokens=False)["input_ids"])


def test_bad_records_name_the_record(tiny, fast_cfg, tmp_path):
    with pytest.raises(SFTDataError, match="record r7: the last message must be the assistant"):
        run_sft([{"id": "r7", "messages": [{"role": "user", "content": "x"}]}], "table", tmp_path, model=tiny,
                cfg=fast_cfg, max_steps=1)
    with pytest.raises(SFTDataError, match="no record fits"):
        too_long = [{"id": "a", "messages": [{"role": "user", "content": "word " * 3000},
                                             {"role": "assistant", "content": "{}"}]}]
        run_sft(too_long, "table", tmp_path, model=tiny, cfg=fast_cfg, max_steps=1, stage_names=["ctx2048"])
