"""Tests for the synthetic SOTAB-like table generator (aegir.tables.synth)."""

from __future__ import annotations

import hashlib
import json
import random
import re

import pytest

from aegir.tables import LabeledDataset, Table
from aegir.tables.synth import (
    DOMAINS,
    MISSING_TOKENS,
    SUPPORTED_LABELS,
    SynthConfig,
    generate_column,
    generate_tables,
)


def _digest(ds: LabeledDataset) -> str:
    """A byte-level fingerprint of everything a dataset holds."""
    blob = {
        "tables": [{"columns": t.columns, "header": t.header, "meta": t.meta} for t in ds.tables],
        "targets": [(g.table_index, g.column, g.labels, g.main_column) for g in ds.targets],
        "task": ds.task,
        "source": ds.source,
    }
    return hashlib.sha256(json.dumps(blob, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


@pytest.fixture(scope="module")
def ds() -> LabeledDataset:
    return generate_tables(400, seed=0)


def _sotab_cta_labels() -> list[str]:
    from aegir.tables.labels import label_list

    return label_list("sotab-cta")


# --- determinism -------------------------------------------------------------------------------
def test_same_seed_is_byte_identical():
    assert _digest(generate_tables(60, seed=7)) == _digest(generate_tables(60, seed=7))


def test_byte_identical_across_processes_and_hash_seeds():
    """No dependence on set/dict hash order or process state: a fresh interpreter with another
    PYTHONHASHSEED produces the same bytes."""
    import os
    import subprocess
    import sys

    # Tables, plus every label in every default locale (a Faker list built from a set - it_IT's
    # cities - once made Place/name in Italian tables differ between processes).
    code = ("import json, hashlib, random; from aegir.tables.synth import generate_tables, generate_column, "
            "SUPPORTED_LABELS, DEFAULT_LOCALES; ds = generate_tables(25, seed=9); "
            "cols = [generate_column(lab, 4, random.Random(3), loc) for loc, _ in DEFAULT_LOCALES for lab in SUPPORTED_LABELS]; "
            "print(hashlib.sha256(json.dumps([[t.columns, t.header, t.meta] for t in ds.tables] + "
            "[[g.table_index, g.column, g.labels] for g in ds.targets] + cols, ensure_ascii=False).encode()).hexdigest())")
    outs = set()
    for hs in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hs}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout)
    assert len(outs) == 1


def test_different_seed_differs_and_prefix_property():
    a, b = generate_tables(40, seed=1), generate_tables(40, seed=2)
    assert _digest(a) != _digest(b)
    # table i depends only on (seed, i): a shorter run is a prefix of a longer one
    long = generate_tables(50, seed=1)
    assert [t.columns for t in long.tables[:40]] == [t.columns for t in a.tables]


def test_generate_column_is_deterministic_and_independent_of_history():
    first = generate_column("telephone", 5, random.Random(3), "de_DE")
    generate_column("Person/name", 50, random.Random(99), "de_DE")  # reuses the cached Faker
    assert generate_column("telephone", 5, random.Random(3), "de_DE") == first


# --- contract: shapes, labels, metadata ----------------------------------------------------------
def test_dataset_contract(ds: LabeledDataset):
    assert ds.task == "cta" and ds.source == "synthetic" and not ds.multi_label and ds.skipped == 0
    assert len(ds.tables) == 400
    names = [t.meta["name"] for t in ds.tables]
    assert len(set(names)) == len(names)
    domains = {d.name for d in DOMAINS}
    for t in ds.tables:
        assert isinstance(t, Table)
        assert 2 <= t.n_cols <= 8 and 3 <= t.n_rows <= 20
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", t.meta["name"]) and ".." not in t.meta["name"]
        assert t.meta["source"] == "synthetic" and t.meta["domain"] in domains
        assert t.meta["name"].startswith(t.meta["domain"] + "_")
    for g in ds.targets:
        t = ds.tables[g.table_index]
        assert 0 <= g.column < t.n_cols and len(g.labels) == 1 and g.main_column is None
        # a labelled column must show its type: at most half of its cells are missing
        real = [v for v in t.columns[g.column] if v not in MISSING_TOKENS]
        assert len(real) >= (t.n_rows + 1) // 2
    # every table has at least one target, and some tables have unlabelled context columns
    per_table = {}
    for g in ds.targets:
        per_table.setdefault(g.table_index, set()).add(g.column)
    assert set(per_table) == set(range(len(ds.tables)))
    assert any(len(per_table[i]) < t.n_cols for i, t in enumerate(ds.tables))
    # no duplicate targets
    assert len({(g.table_index, g.column) for g in ds.targets}) == len(ds.targets)


def test_labels_cover_at_least_50_of_the_sotab_vocabulary(ds: LabeledDataset):
    vocab = set(_sotab_cta_labels())
    assert len(vocab) == 82
    assert set(SUPPORTED_LABELS) <= vocab and len(SUPPORTED_LABELS) >= 50
    seen = set(ds.label_counts())
    assert seen <= vocab
    assert len(seen) >= 50, f"only {len(seen)} labels occur in 400 tables"
    for d in DOMAINS:  # domains only name labels the generator can produce
        assert {d.main, *d.labels} <= set(SUPPORTED_LABELS)


@pytest.mark.parametrize("label", SUPPORTED_LABELS)
def test_every_label_generates_strings(label: str):
    for loc in ("en_US", "de_DE", "ja_JP", "en_NZ", "en_PH", "zh_TW"):  # the last three lack some providers
        vals = generate_column(label, 6, random.Random(label + loc), loc)
        assert len(vals) == 6 and all(isinstance(v, str) for v in vals)
        assert any(v.strip() for v in vals)


# --- formats are varied --------------------------------------------------------------------------
DATE_PATTERNS = {
    "iso": r"\d{4}-\d{2}-\d{2}",
    "slash": r"\d{1,2}/\d{1,2}/\d{4}",
    "dot": r"\d{2}\.\d{2}\.\d{4}",
    "month_name_us": r"[A-Z][a-z]{2,8}\.? \d{1,2}, \d{4}",
    "day_month_year": r"\d{1,2}\.? [A-Za-zäéû]+ \d{4}",
    "iso_datetime_tz": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2}|\.000Z)",
}


def _values(ds: LabeledDataset, label: str) -> list[str]:
    return [v for g in ds.targets if g.label == label for v in ds.tables[g.table_index].columns[g.column]]


def test_date_formats_are_varied(ds: LabeledDataset):
    vals = _values(ds, "Date") + _values(ds, "DateTime")
    hit = {k for k, p in DATE_PATTERNS.items() if any(re.fullmatch(p, v) for v in vals)}
    assert len(hit) >= 3, hit
    assert "iso_datetime_tz" in hit


def test_phone_and_price_formats_are_varied(ds: LabeledDataset):
    phones = _values(ds, "telephone") + _values(ds, "faxNumber")
    phone_pats = [r"\(\d{3}\) \d{3}-\d{4}", r"\d{3}-\d{3}-\d{4}", r"\d{3}\.\d{3}\.\d{4}", r"\+\d[\d ()-]+"]
    assert sum(any(re.search(p, v) for v in phones) for p in phone_pats) >= 3
    prices = _values(ds, "price")
    assert any("$" in v for v in prices) and any("€" in v for v in prices)
    assert any(re.search(r"\d,\d{2}(?!\d)", v) for v in prices)  # decimal comma (38,27 €)
    assert any(re.fullmatch(r"\d+(\.\d+)?", v) for v in prices)  # bare number
    assert any(re.search(r"\b(USD|EUR|GBP|BRL|JPY|AUD|CAD)\b", v) for v in _values(ds, "currency"))


def test_locales_vary_and_can_be_chosen():
    ds = generate_tables(80, seed=3)
    assert len({t.meta["locale"] for t in ds.tables}) >= 5
    ja = generate_tables(10, seed=3, locales=["ja_JP"])
    assert {t.meta["locale"] for t in ja.tables} == {"ja_JP"}
    text = " ".join(v for t in ja.tables for col in t.columns for v in col)
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text)  # kana/kanji from the Japanese locale


def test_headerless_and_headed_tables_occur(ds: LabeledDataset):
    headed = [t for t in ds.tables if t.header is not None]
    headless = [t for t in ds.tables if t.header is None]
    assert 0.35 < len(headless) / len(ds.tables) < 0.65
    assert all(len(t.header) == t.n_cols for t in headed)
    all_headers = {h for t in headed for h in t.header}
    assert len(all_headers) > 100  # plausible names with noise, not one fixed string per label
    assert generate_tables(20, seed=0, headerless_fraction=0.0).tables[0].header is not None
    assert all(t.header is None for t in generate_tables(20, seed=0, headerless_fraction=1.0).tables)


def test_missing_values_occur_in_several_spellings(ds: LabeledDataset):
    cells = [v for t in ds.tables for col in t.columns for v in col]
    assert "" in cells
    tokens = {v for v in cells if v in set(MISSING_TOKENS) - {""}}
    assert len(tokens) >= 3, tokens
    none = generate_tables(50, seed=0, missing_rate=0.0)
    # missing_rate=0 switches missing cells off entirely
    assert sum(v == "" for t in none.tables for col in t.columns for v in col) == 0


# --- bad input -----------------------------------------------------------------------------------
def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="no generator for label 'Nope'"):
        generate_column("Nope", 3, random.Random(0))
    with pytest.raises(ValueError, match="unknown Faker locale 'xx_YY'"):
        generate_tables(3, locales=["xx_YY"])
    with pytest.raises(ValueError, match="n_tables"):
        generate_tables(-1)
    with pytest.raises(ValueError, match="headerless_fraction"):
        generate_tables(3, headerless_fraction=1.5)
    with pytest.raises(ValueError, match="missing_rate"):
        SynthConfig(missing_rate=0.9)
    assert generate_tables(0).tables == []




# --- learnability ----------------------------------------------------------------------------------
def column_text(t: Table, j: int) -> str:
    # the first cells, each cut short, the way a byte budget sees a column
    return " | ".join(v[:40] for v in t.columns[j][:6])


def test_char_ngram_logreg_learns_the_labels():
    """Sanity check that the labels are learnable from values alone (no header): a character
    n-gram TF-IDF + logistic regression on 600 tables must score well above chance (1/82) on
    200 held-out tables. The logistic regression is fitted by SGD (log loss): lbfgs on 82
    classes takes ~30 s here, SGD ~2 s for the same macro-F1 (~0.90 at the time of writing)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import f1_score

    ds = generate_tables(800, seed=5)
    train = [g for g in ds.targets if g.table_index < 600]
    test = [g for g in ds.targets if g.table_index >= 600]
    x_tr = [column_text(ds.tables[g.table_index], g.column) for g in train]
    x_te = [column_text(ds.tables[g.table_index], g.column) for g in test]
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), max_features=20000, sublinear_tf=True)
    clf = SGDClassifier(loss="log_loss", alpha=1e-5, max_iter=15, tol=None, random_state=0)
    clf.fit(vec.fit_transform(x_tr), [g.label for g in train])
    pred = clf.predict(vec.transform(x_te))
    gold = [g.label for g in test]
    macro = f1_score(gold, pred, average="macro", labels=sorted(set(gold)), zero_division=0)
    assert macro > 0.3, f"macro-F1 {macro:.3f}"


def test_synthetic_tables_serialize_target_first():
    """The synthetic tables go through the one serialization function like real ones do."""
    from aegir.encoding.serialize import SerializeConfig, serialize
    from aegir.encoding.vocab import CLS

    cfg = SerializeConfig()
    ds = generate_tables(30, seed=4)
    for g in ds.targets:
        s = serialize(ds.tables[g.table_index], g.column, cfg)
        assert s.ids[0] == CLS and len(s.ids) <= cfg.max_bytes
        assert any(s.target_mask) and g.column not in s.context
        assert s.target_mask.index(True) == 1  # the target segment comes right after CLS
