"""A separable 4-label custom task written as a CSV folder (shared by the fine-tuning tests)."""
import random


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




GROUPS = {"number": "numeric", "date": "numeric", "word": "text", "email": "text"}


def write_multilabel_dataset(folder, n_tables: int = 40, seed: int = 0) -> None:
    """The same tables, each column labelled with its kind and its group (numeric / text): a
    multi-label task (a gold CSV with two rows per column)."""
    write_custom_dataset(folder, n_tables, seed)
    gold = (folder / "labels.csv").read_text().splitlines()
    extra = [f"{t},{j},{GROUPS[k]}" for t, j, k in (line.split(",") for line in gold[1:])]
    (folder / "labels.csv").write_text("\n".join(gold + extra) + "\n")
