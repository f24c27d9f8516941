import random

import pytest

KINDS = {
    "number": lambda r: str(r.randint(0, 99999)),
    "word": lambda r: "".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(4, 9))),
    "date": lambda r: f"20{r.randint(10, 29)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    "email": lambda r: f"{''.join(r.choice('abcdefgh') for _ in range(5))}@{r.choice(['x', 'mail', 'corp'])}.com",
}


def write_custom_dataset(folder, n_tables: int = 40, seed: int = 0) -> None:
    """A separable 4-label task: each column's kind is visible in every one of its cells."""
    r = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    gold = ["table_name,column_index,label"]
    for t in range(n_tables):
        kinds = r.sample(list(KINDS), k=3)
        rows = [[KINDS[k](r) for k in kinds] for _ in range(4)]
        header = ",".join(f"col{j + 1}" for j in range(3))  # uninformative names: values must carry the signal
        (folder / f"t{t}.csv").write_text("\n".join([header] + [",".join(row) for row in rows]) + "\n")
        gold += [f"t{t}.csv,{j},{k}" for j, k in enumerate(kinds)]
    (folder / "labels.csv").write_text("\n".join(gold) + "\n")


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
