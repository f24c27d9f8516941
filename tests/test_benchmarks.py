"""Helpers of the benchmark scripts under benchmarks/ (on pytest's pythonpath, see pyproject.toml):
result-file naming and the bootstrap's resampled metrics, specs and paired differences."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cta_bootstrap import (fold_mismatch, macro_f1_resampled, paired_difference, parse_compare, parse_folds, parse_mean_of,
                           plot_differences, resample_weights, support_split)
from result_files import result_file
from serialization_budget import measure, segment_bytes

from aegir.evaluation import classification_report


def test_dotted_stems_do_not_collide():
    a, b = result_file("docs/results/cta_t0.02", ".json"), result_file("docs/results/cta_t0.05", ".json")
    assert a == Path("docs/results/cta_t0.02.json") and b == Path("docs/results/cta_t0.05.json")
    assert result_file("out/cta", ".md") == Path("out/cta.md")
    assert result_file("out/cta.md", ".png") == Path("out/cta.png")  # a stem given with its extension


def test_bootstrap_macro_f1_is_the_metric_on_each_resample():
    """benchmarks/cta_bootstrap.py scores thousands of resamples at once from multiplicities; each
    must equal classification_report's macro-F1 on the resample spelled out column by column."""
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 7, 60)
    pred = np.where(rng.random(60) < 0.6, gold, rng.integers(0, 9, 60))  # some labels only predicted
    weights = resample_weights(60, 6, rng)
    fast = macro_f1_resampled(gold, pred, 9, weights)
    for s in range(6):
        idx = np.repeat(np.arange(60), weights[s].astype(int))
        want = classification_report([str(x) for x in gold[idx]], [str(x) for x in pred[idx]]).macro_f1
        assert fast[s] == pytest.approx(want, abs=1e-12)


def test_bootstrap_mean_of_spec_and_plot(tmp_path):
    assert parse_mean_of("student=a/final.pt,b/final.pt") == ("student", ["a/final.pt", "b/final.pt"])
    for bad in ("a.pt,b.pt", "x=a.pt", "=a.pt,b.pt"):
        with pytest.raises(SystemExit, match="NAME=CHECKPOINT"):
            parse_mean_of(bad)
    with pytest.raises(SystemExit, match="--ensemble 'x=a.pt'"):  # the option named is the one given
        parse_mean_of("x=a.pt", "--ensemble")
    # A cross-validation row pooled over one fold (--folds 4) names one run.
    assert parse_mean_of("plain=a.pt", "--checkpoint", at_least=1) == ("plain", ["a.pt"])
    with pytest.raises(SystemExit, match=r"--checkpoint 'plain=': expected NAME=CHECKPOINT\[,...\]$"):
        parse_mean_of("plain=", "--checkpoint", at_least=1)
    rows = [{"checkpoint": "a" * 80}, {"checkpoint": "b"}]
    plot_differences(rows, [np.linspace(-0.1, 0.1, 50), np.linspace(0, 0.2, 50)], tmp_path / "d.png")
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bootstrap_compare_spec_and_paired_difference():
    known = ["student", "plain", "C:/runs/a:b/final.pt"]
    assert parse_compare("student:plain", known) == ("student", "plain")
    assert parse_compare("C:/runs/a:b/final.pt:plain", known) == ("C:/runs/a:b/final.pt", "plain")  # ':' in a path
    for bad in ("student", "student:student", "student:nope", "plain-student"):
        with pytest.raises(SystemExit, match="--compare .*expected A:B"):
            parse_compare(bad, known)
    a = np.array([0.5, 0.4, 0.6, 0.3, 0.5])
    b = np.array([0.4, 0.4, 0.5, 0.4, 0.45])  # differences 0.1, 0, 0.1, -0.1, 0.05
    got = paired_difference(0.47, a, 0.43, b)
    assert got["diff"] == pytest.approx(0.04)
    assert got["share_not_above"] == pytest.approx(2 / 5)  # the tie counts as not above
    assert got["ci95"] == pytest.approx(list(np.percentile(a - b, [2.5, 97.5])))
    assert got["ci95"][0] < 0 < got["ci95"][1]


def test_bootstrap_fold_subset_spec():
    """--folds picks part of a k-fold cross-validation; each checkpoint must then be its named fold's run."""
    assert parse_folds(None, 5) == [0, 1, 2, 3, 4]
    assert parse_folds("0,1", 5) == [0, 1] and parse_folds("3,1", 5) == [3, 1]
    for bad in ("", "0,0", "5", "-1", "0;1", "a"):
        with pytest.raises(SystemExit, match="--folds"):
            parse_folds(bad, 5)
    assert fold_mismatch({"cv_fold": 3, "cv_folds": 5, "split_seed": 0}, 3, 5, 0) is None
    assert "trained as fold 1 of 5" in fold_mismatch({"cv_fold": 1, "cv_folds": 5, "split_seed": 0}, 3, 5, 0)


def test_bootstrap_support_split_partitions_macro_f1():
    gold = ["a"] * 6 + ["b"] * 5 + ["c"] * 2 + ["d"]
    pred = ["a"] * 5 + ["b"] + ["b"] * 4 + ["a"] + ["c", "a"] + ["x"]
    big, small, nb, ns = support_split(gold, pred, 5)
    # a: tp 5, fp 2 (from b and c), fn 1 -> 10/13; b: tp 4, fp 1, fn 1 -> 8/10; c: tp 1, fn 1 -> 2/3; d: 0
    assert (nb, ns) == (2, 2)
    assert big == pytest.approx((10 / 13 + 8 / 10) / 2) and small == pytest.approx((2 / 3 + 0) / 2)
    assert (nb * big + ns * small) / (nb + ns) == pytest.approx(classification_report(gold, pred).macro_f1)
    # no label below the threshold: the rare part is None (printed "–"), not NaN
    big, small, nb, ns = support_split(gold, pred, 1)
    assert (nb, ns, small) == (4, 0, None) and big == pytest.approx(classification_report(gold, pred).macro_f1)


def test_generation_benchmark_smoke(tmp_path):
    """benchmarks/generation.py on nano at toy sizes: every figure is present and positive, the boundary
    rates are rates, and the result table has the preset's row."""
    import generation

    m = generation.bench_preset("nano", prompt_len=24, steps=6, batch=2, reps=1, threads=2)
    assert [(r["threads"], r["B"]) for r in m["step"]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert m["prefill_bytes_per_s"] > 0 and all(r["ms_per_step"] > 0 for r in m["step"])
    assert m["generate_sampled"] <= 6 and m["recompute_ms_per_byte_at_end"] > 0
    assert len(m["boundary_rate"]) == 2 and all(0.0 <= r <= 1.0 for r in m["boundary_rate"])
    res = {"date": "d", "machine": "m", "torch": "t", "threads": 2, "omp_wait_policy": None, "reps": 1, "prompt_len": 24, "steps": 6,
           "batch": 2, "load_before": [0], "load_after": [0], "models": [m]}
    generation.write_results(res, tmp_path / "generation")
    md = (tmp_path / "generation.md").read_text()
    assert "| nano |" in md and "| nano | 2 | 2 |" in md
    assert (tmp_path / "generation.json").is_file()


def _cpa_pairs(n: int, seed: int):
    """CPA pairs whose object columns are drawn from one pool of dates: only the main column (book titles
    against event names) tells datePublished from startDate."""
    from aegir.tables.table import LabeledColumn, LabeledDataset, Table

    rng = np.random.default_rng(seed)
    tables, targets = [], []
    for i in range(n):
        book = i % 2 == 0
        subjects = [f"{w} {rng.integers(100)}" for w in (("The Novel of", "Collected Poems", "A History of") if book
                                                           else ("Jazz Night", "Marathon", "Tech Summit"))]
        dates = [f"20{rng.integers(10, 25)}-0{rng.integers(1, 10)}-1{rng.integers(0, 10)}" for _ in range(3)]
        tables.append(Table(columns=[subjects, dates], meta={"name": f"t{i}"}))
        targets.append(LabeledColumn(i, 1, ("datePublished" if book else "startDate",), main_column=0))
    return LabeledDataset(tables, targets, task="cpa")


def test_baseline_reads_the_main_column_only_when_asked():
    from classical_baseline import tfidf_logreg

    train, test = _cpa_pairs(60, 0), _cpa_pairs(40, 1)
    with_main = tfidf_logreg(train, test, main_column=True)
    assert with_main.predictions == with_main.gold  # the subject's words separate the two properties
    alone = tfidf_logreg(train, test)
    assert np.mean(np.array(alone.predictions) == np.array(alone.gold)) < 0.8  # dates alone do not
    with pytest.raises(ValueError, match="needs CPA data"):
        cta = replace(train, targets=[replace(t, main_column=None) for t in train.targets], task="cta")
        tfidf_logreg(cta, test, main_column=True)


def test_baseline_reads_only_max_cells():
    """The label shows only from the third cell on: a baseline reading two cells cannot see it."""
    from classical_baseline import tfidf_logreg

    from aegir.tables.table import LabeledColumn, LabeledDataset, Table

    def data(n: int, seed: int) -> LabeledDataset:
        rng = np.random.default_rng(seed)
        tables, targets = [], []
        for i in range(n):
            kind = ("colour", "number")[i % 2]
            tail = [("red", "green", "blue")[rng.integers(3)] if i % 2 == 0 else str(rng.integers(1000)) for _ in range(4)]
            tables.append(Table(columns=[["n/a", "n/a", *tail]], meta={"name": f"t{i}"}))
            targets.append(LabeledColumn(i, 0, (kind,)))
        return LabeledDataset(tables, targets)

    train, test = data(40, 0), data(20, 1)
    full, two = tfidf_logreg(train, test), tfidf_logreg(train, test, max_cells=2)
    assert full.predictions == full.gold
    assert len(set(two.predictions)) == 1  # every column reads the same "n/a | n/a"


def test_serialization_budget_segments_and_completeness():
    """benchmarks/serialization_budget.py: segment lengths add up to the serialization, and a column is
    complete exactly when the budget left it whole."""
    from aegir.encoding.serialize import SerializeConfig, serialize
    from aegir.tables.table import LabeledColumn, Table

    tab = Table(columns=[["Dune", "Emma", "Ulysses"], ["1965", "1815", "1922"], ["Herbert", "Austen", "Joyce"]])
    t = LabeledColumn(0, 1, ("Book/datePublished",), main_column=0)
    wide = SerializeConfig(max_bytes=512)
    ids = serialize(tab, 1, wide, 0).ids
    seg = segment_bytes(ids)
    # [MAIN] Dune|Emma|Ulysses [SEP] = 1 + 4+1+4+1+7 + 1; [TGT] 1965|1815|1922 [SEP] = 1 + 14 + 1
    assert seg["main"] == 19 and seg["target"] == 16
    assert seg["main"] + seg["target"] + seg["context"] + 1 == len(ids)  # + [CLS]
    got = measure([(tab, t)], wide)
    assert got["main_complete"] == 1.0 and got["target_complete"] == 1.0 and got["with_context"] == 1.0
    tight = measure([(tab, t)], SerializeConfig(max_bytes=24, max_target_bytes=12, min_context_bytes=4))
    assert tight["main_complete"] == 0.0 and tight["mean_main"] <= 11  # the main column's half of the window
    assert tight["mean_ids"] <= 24
    cta = measure([(tab, LabeledColumn(0, 1, ("year",)))], wide)
    assert cta["mean_main"] is None and cta["main_complete"] is None and cta["target_complete"] == 1.0


def test_synthetic_data_benchmark_probe_and_files(tmp_path):
    """benchmarks/synthetic_data.py: the probe reads values only (first 6 non-empty cells, 40 characters), the
    held-out split re-indexes its tables, the synthetic probe learns (far above chance), and the files are written."""
    import synthetic_data as sd
    from aegir.tables.table import LabeledColumn, LabeledDataset, Table

    long = "x" * 50
    tab = Table(columns=[["", "a", "b", "c", "d", "e", "f", "g"], [long, "2"] + [""] * 6], header=["HEADER", "h2"])
    ds = LabeledDataset([Table(columns=[["z"]]), tab], [LabeledColumn(1, 0, ("L",)), LabeledColumn(1, 1, ("M",))])
    assert sd.values_text(ds) == ["a | b | c | d | e | f", "x" * 40 + " | 2"]
    sub = sd.subset(ds, range(1, 2))
    assert len(sub.tables) == 1 and [t.table_index for t in sub.targets] == [0, 0]
    assert sd.values_text(sub) == sd.values_text(ds)

    res = sd.run(n_tables=20, reps=1, sotab=None, synth_probe=(150, 50))
    assert res["speed"]["n_tables"] == 20 and len(res["speed"]["seconds"]) == 2 and res["speed"]["tables_per_s_warm"] > 0
    (row,) = res["probe"]
    assert row["test_labels"] > 20 and row["macro_f1"] > 0.5  # chance is about 1/82
    assert "absent" in res["notes"][0]
    sd.write_results(res, tmp_path / "synth")
    assert "| 150 synthetic tables (seed 0) |" in (tmp_path / "synth.md").read_text()
    assert (tmp_path / "synth.json").is_file() and (tmp_path / "synth.png").stat().st_size > 0


def test_views_benchmark_specs_and_plot(tmp_path):
    from cta_views import parse_counts, plot_curves

    assert parse_counts("16,1, 4,4,2", "--views") == [1, 2, 4, 16]
    for bad in ("", "0,2", "two", "1,-4"):
        with pytest.raises(SystemExit, match="--budgets .*expected positive integers"):
            parse_counts(bad, "--budgets")
    plot_curves({"C0, 256 B": {1: 0.6, 4: 0.65}, "C0, 512 B": {1: 0.62, 4: 0.7}}, 0.707, tmp_path / "v.png", "t")
    assert (tmp_path / "v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_baseline_class_weight_option_is_shared_and_converted():
    import argparse

    from classical_baseline import add_class_weight_option, class_weight_arg

    ap = argparse.ArgumentParser()
    add_class_weight_option(ap)
    assert class_weight_arg(ap.parse_args([]).baseline_class_weight) is None
    assert class_weight_arg(ap.parse_args(["--baseline-class-weight", "balanced"]).baseline_class_weight) == "balanced"
    with pytest.raises(SystemExit):
        ap.parse_args(["--baseline-class-weight", "heavy"])


def test_gpu_check_runs_its_checks_on_cpu(tmp_path):
    """benchmarks/gpu_check.py (prepared for a lent GPU) end to end on CPU with small shapes: the
    chunked form and the CPU kernel against the float64 recurrence (ragged padding, final state,
    every input gradient), a nano training step per path, and both result files. A wrong WKV would
    fail its bound here as on the GPU: the check compares, it does not just run."""
    import gpu_check

    res = gpu_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path / "gc")])
    impls = {c["impl"] for c in res["wkv"]}
    assert {"chunked"} <= impls and res["all_passed"]
    assert all(c["worst"] < 1e-5 and set(c["errors"]) >= {"out", "state", "d_a", "d_log_w"} for c in res["wkv"])
    losses = [s["loss"] for s in res["steps"]]
    assert len(losses) == len(impls) and max(losses) - min(losses) < 1e-2  # same model, same batch
    (xd,) = res["cross_device"]  # on CPU: the kernel path against the chunked form, same weights
    assert xd["passed"] and xd["same_params"] and xd["worst_grad_rel_err"] < 1e-4
    assert (tmp_path / "gc.md").is_file() and "All checks passed: **True**" in (tmp_path / "gc.md").read_text()
    assert {c["impl"] for c in res["packing"]} == impls and all(c["padding"] > 0.03 for c in res["packing"])
    assert "Packed vs padded stacks" in (tmp_path / "gc.md").read_text()
    # a wrong path fails its bound: the naive recurrence checked against itself with a flipped removal key
    bad = gpu_check.wkv_case("chunked", 1, 40, 1, 8, "cpu", padded=False)
    assert bad["passed"]
    from aegir.model import wkv as wkv_mod

    orig = wkv_mod.wkv_chunked
    try:
        wkv_mod.wkv_chunked = lambda r, lw, k, v, a, b, *rest, **kw: orig(r, lw, k, v, -a, b, *rest, **kw)
        assert not gpu_check.wkv_case("chunked", 1, 40, 1, 8, "cpu", padded=False)["passed"]
    finally:
        wkv_mod.wkv_chunked = orig


def test_encodings_benchmark_counts_right_decodings(shared_data, tmp_path):
    """benchmarks/text_encodings.py on 25 real tables: each file is counted under the encodings its text calls for,
    and a detection is right exactly when it gives back the table's text."""
    import text_encodings as bench
    assert bench._its_language("Café", "cp1252") and not bench._its_language("Café", "cp1250")
    assert bench._its_language("Wrocław", "cp1250") and not bench._its_language("Wrocław", "gb18030")
    assert bench._its_language("東京", "cp932") and not bench._its_language("Café “x”", "cp1251")
    raw = "Zürich".encode("cp1252")
    assert bench.decodes_right(raw, "latin-1", "Zürich") and not bench.decodes_right(raw, "cp1250", "Zürich!")
    r = bench.main(["--limit", "25", "--out", str(tmp_path / "enc")])
    assert r["tables"] == 25 and r["total"]["files"] >= 15  # most in cp1252 (not the Japanese ones, say)
    assert r["total"]["now"] >= r["total"]["before"]
    assert sum(x["now"] for x in r["rows"]) == r["total"]["now"] <= r["total"]["files"]
    assert (tmp_path / "enc.md").read_text().count("| cp1252 |") == 1
