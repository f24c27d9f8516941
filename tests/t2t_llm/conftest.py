import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl")
pytest.importorskip("peft")


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests run many tiny matmuls; with 2 shared cores, 2 OpenMP threads spin against each other and
    make a forward pass ~30x slower than one thread. Restored afterwards so other test folders are unaffected."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session", autouse=True)
def _tiny_cache(tmp_path_factory):
    """Build the tiny random model + tokenizer once per session, in a private cache folder."""
    d = tmp_path_factory.mktemp("aegir-cache")
    old = os.environ.get("AEGIR_CACHE")
    os.environ["AEGIR_CACHE"] = str(d)
    from aegir.t2t.models import tiny_test_model

    tiny_test_model(d)
    yield d
    if old is None:
        os.environ.pop("AEGIR_CACHE", None)
    else:
        os.environ["AEGIR_CACHE"] = old


@pytest.fixture
def tiny(_tiny_cache):
    """A fresh LoadedModel (tiny random Llama) from the session cache."""
    from aegir.t2t.models import tiny_test_model

    return tiny_test_model(_tiny_cache)


@pytest.fixture
def fast_cfg():
    """T2TTrainConfig scaled for 2-core CPU tests: small LoRA, global batch 4, no workers."""
    from aegir.t2t.config import LoraSettings, T2TTrainConfig

    cfg = T2TTrainConfig(num_workers=0, gradient_checkpointing=False, log_freq=1, eval_freq=0,
                         lora=LoraSettings(r=16, alpha=32, dropout=0.0),
                         max_new_tokens_schema=96, max_new_tokens_table=64)
    return cfg.with_global_batch(4, micro_batch=4)


@pytest.fixture
def make_examples():
    """Factory of small (document, key/value table) examples in E2E's shape, without needing ../shared."""
    return _examples


def _examples(n=4):
    from aegir.t2t.datasets import T2TExample
    from aegir.t2t.gold import GoldTable

    names = ["Alimentum", "The Eagle", "Aromi", "Zizzi", "Cotto", "Wildwood"]
    areas = ["city centre", "riverside"]
    out = []
    for i in range(n):
        nm, ar = names[i % len(names)], areas[i % 2]
        out.append(T2TExample(id=f"ex{i}", document=f"{nm} is a family-friendly place in the {ar}.",
                              tables=[GoldTable.from_pairs([["Name", nm], ["Area", ar], ["Family friendly", "Yes"]])],
                              source="test"))
    return out
