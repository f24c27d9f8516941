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


@pytest.fixture
def byte_batch():
    """(ids, mask, target_mask) of 4 serialized columns x 40 ids, row 2 padded from position 30 and
    the target segment at 1..9: the inputs of the hand-computed loss checks."""
    import torch

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 200, (4, 40), generator=g)
    mask = torch.ones(4, 40, dtype=torch.bool)
    mask[2, 30:] = False
    target_mask = torch.zeros(4, 40, dtype=torch.bool)
    target_mask[:, 1:10] = True
    return ids, mask, target_mask
