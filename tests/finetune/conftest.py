import pytest

from custom_task import write_custom_dataset


@pytest.fixture(scope="session")
def custom_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("custom")
    write_custom_dataset(d)
    return d


@pytest.fixture(scope="session")
def trained(custom_data, tmp_path_factory):
    """One small from-random fine-tune shared by the tests in this folder."""
    from aegir.train.finetune import FinetuneConfig, finetune

    out = tmp_path_factory.mktemp("runs")
    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", epochs=5, batch_size=8, lr=3e-3,
                         warmup_steps=5, max_bytes=48, out=str(out), progress=False, checkpoint_every=10_000)
    return finetune(cfg)
