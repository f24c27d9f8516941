"""Shared fixtures for the training tests: a small user corpus (text, JSONL, CSV tables, SQL)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

# Passive OpenMP waiting: with other processes on the 2 cores, spinning OpenMP threads made these
# tests ~8x slower (125 s -> 16 s measured). Only effective if torch is not imported yet.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest


def write_corpus(root: Path) -> Path:
    rng = random.Random(0)
    root.mkdir(parents=True, exist_ok=True)
    animals = ["cat", "dog", "owl", "fox", "eel", "yak", "elk", "ant"]
    verbs = ["sees", "chases", "follows", "greets", "ignores"]
    paras = []
    for _ in range(120):
        s = " ".join(f"The {rng.choice(animals)} {rng.choice(verbs)} the {rng.choice(animals)}." for _ in range(3))
        paras.append(s)
    (root / "story.txt").write_text("\n\n".join(paras[:80]))
    with open(root / "notes.jsonl", "w") as f:
        for p in paras[80:]:
            f.write(json.dumps({"text": p, "id": rng.randrange(1000)}) + "\n")
    cities = ["Oslo", "Lima", "Kyiv", "Pune", "Nice", "Bern"]
    for t in range(6):
        rows = ["id,city,price,date"]
        for i in range(30):
            rows.append(f"{i + 1},{rng.choice(cities)},{rng.randrange(100, 999)}.{rng.randrange(10, 99)},2024-0{rng.randrange(1, 9)}-1{rng.randrange(0, 9)}")
        (root / f"sales_{t}.csv").write_text("\n".join(rows) + "\n")
    (root / "schema.sql").write_text("CREATE TABLE pets (\n  id INTEGER PRIMARY KEY,\n  name VARCHAR(32)\n);\n")
    return root


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "data")
