"""The gate on constructed embeddings: a live model PASSes, collapsed ones FAIL for the right reasons."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from aegir.diagnostics import (
    GateConfig,
    LivenessInputs,
    MCLConfig,
    StageBoundaryCounts,
    evaluate_liveness,
    format_report,
    run_liveness,
)

N_LABELS, PER = 12, 15
LABELS = [f"Type{i}" for i in range(N_LABELS)]


def _healthy_stages(n: int, seed: int = 0) -> list[StageBoundaryCounts]:
    rng = np.random.default_rng(seed)
    out = []
    for t in (48, 16):
        b = rng.random((n, t)) < 0.3
        b[:, 0] = True
        out.append(StageBoundaryCounts.from_masks(b, np.ones((n, t), bool)))
    return out


def _live_inputs(seed: int = 0, acc: float = 0.8) -> LivenessInputs:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(N_LABELS), PER)
    centers = rng.normal(size=(N_LABELS, 24)) * 4.0
    emb = centers[y] + rng.normal(size=(y.size, 24))
    pred = [LABELS[i] if rng.random() < acc else LABELS[rng.integers(0, N_LABELS)] for i in y]
    return LivenessInputs(emb, pred, [LABELS[i] for i in y], _healthy_stages(y.size, seed), LABELS,
                          meta={"checkpoint": "constructed"})


def test_live_model_passes():
    rep = evaluate_liveness(_live_inputs())
    assert rep.passed and rep.failures == ()
    assert rep.check("mcl_clusters").figure == N_LABELS
    assert rep.check("distinct_predicted").figure == N_LABELS
    assert rep.check("macro_f1").figure > 0.7
    assert rep.check("chunker").figure == 0 and rep.check("chunker").passed
    assert rep.check("mode_share").passed is None  # informational by default


def test_constant_embedding_collapse_fails_with_the_right_reasons():
    live = _live_inputs()
    n = len(live.gold)
    # The classic collapse: one embedding for every column, hence one predicted label.
    collapsed = LivenessInputs(np.tile(np.linspace(-1, 1, 24), (n, 1)), [LABELS[3]] * n, live.gold,
                               _healthy_stages(n), LABELS)
    rep = evaluate_liveness(collapsed)
    assert not rep.passed
    failed = {c.name for c in rep.checks if c.required and c.passed is False}
    assert failed == {"mcl_clusters", "macro_f1", "distinct_predicted"}  # chunker is healthy here
    assert rep.check("mcl_clusters").figure == 1
    assert rep.check("distinct_predicted").figure == 1
    # One label right for 1/12 of columns: F1 of that label = 2*(1/12)/(1+1/12) ... over 12 labels.
    p, r = 1 / 12, 1.0
    assert rep.check("macro_f1").figure == pytest.approx((2 * p * r / (p + r)) / 12)
    assert rep.collapse.max_pairwise_l2 == 0.0 and rep.collapse.mode_share == 1.0
    assert any("1 MCL cluster" in f for f in rep.failures)
    assert any("only 1 distinct predicted label" in f for f in rep.failures)
    text = format_report(rep)
    assert "VERDICT: FAIL" in text and "macro-F1" in text


def test_each_check_fails_alone():
    live = _live_inputs()
    n = len(live.gold)
    # Good geometry but a model that predicts only 4 labels: diversity check fails alone.
    four = [LABELS[LABELS.index(g) % 4] for g in live.gold]
    rep = evaluate_liveness(LivenessInputs(live.embeddings, four, live.gold, live.boundaries, LABELS))
    assert [c.name for c in rep.checks if c.passed is False] == ["distinct_predicted"]
    # Every label used but always the wrong one (gold i -> i+1): macro-F1 0 fails alone.
    wrong = [LABELS[(LABELS.index(g) + 1) % N_LABELS] for g in live.gold]
    rep = evaluate_liveness(LivenessInputs(live.embeddings, wrong, live.gold, live.boundaries, LABELS))
    assert [c.name for c in rep.checks if c.passed is False] == ["macro_f1"]
    assert rep.check("macro_f1").figure == 0.0 and rep.failures == ("macro-F1 0.000 < 0.1",)
    # Degenerate chunker: stage 1 keeps only the forced first boundary.
    stuck = StageBoundaryCounts(np.ones(n, int), np.full(n, 16))
    rep = evaluate_liveness(LivenessInputs(live.embeddings, live.predicted, live.gold,
                                           [live.boundaries[0], stuck], LABELS))
    assert not rep.passed and rep.failures == ("degenerate chunker: stage 1 no-boundary",)
    # All-boundary stage 0.
    allb = StageBoundaryCounts(np.full(n, 48), np.full(n, 48))
    rep = evaluate_liveness(LivenessInputs(live.embeddings, live.predicted, live.gold,
                                           [allb, live.boundaries[1]], LABELS))
    assert rep.failures == ("degenerate chunker: stage 0 all-boundary",)
    # Missing boundary statistics fail unless the config says they are not required.
    rep = evaluate_liveness(LivenessInputs(live.embeddings, live.predicted, live.gold, (), LABELS))
    assert rep.failures == ("no boundary statistics given for the chunker check",)
    assert evaluate_liveness(LivenessInputs(live.embeddings, live.predicted, live.gold, (), LABELS),
                             GateConfig(require_boundaries=False)).passed


def test_too_few_columns_fail_the_geometry_check_without_calling_it_collapse():
    live = _live_inputs()
    keep = [0, PER, 2 * PER, 3 * PER, 4 * PER]  # five columns of five labels: 3 clusters of >= 2 cannot exist
    few = LivenessInputs(live.embeddings[keep], [live.predicted[i] for i in keep], [live.gold[i] for i in keep],
                         _healthy_stages(len(keep)), LABELS)
    rep = evaluate_liveness(few)
    assert not rep.passed and not rep.check("mcl_clusters").passed
    assert any("too few validation columns (5)" in f for f in rep.failures)
    assert not any("collapsed" in f for f in rep.failures)
    assert any("collapsed" in f for f in evaluate_liveness(LivenessInputs(
        np.tile(np.linspace(-1, 1, 24), (len(live.gold), 1)), live.predicted, live.gold,
        _healthy_stages(len(live.gold)), LABELS)).failures)  # enough columns: a collapse is called one


def test_two_blob_geometry_fails_cluster_check_only():
    live = _live_inputs()
    x = np.asarray(live.embeddings)
    rng = np.random.default_rng(1)
    half = np.arange(len(x)) % 2
    two = np.stack([np.eye(24)[0] * 5, np.eye(24)[1] * 5])[half] + 0.01 * rng.normal(size=x.shape)
    rep = evaluate_liveness(LivenessInputs(two, live.predicted, live.gold, live.boundaries, LABELS))
    assert rep.check("mcl_clusters").figure == 2
    assert [c.name for c in rep.checks if c.passed is False] == ["mcl_clusters"]


def test_thresholds_configurable_and_capped_at_gold_labels():
    live = _live_inputs()
    strict = GateConfig(min_macro_f1=0.99, max_mode_share=0.05, min_mean_spread=10.0)
    rep = evaluate_liveness(live, strict)
    failed = [c.name for c in rep.checks if c.passed is False]
    assert failed == ["macro_f1", "mode_share", "mean_spread"]
    # A 5-label task: thresholds cap at 5 (uses all labels) unless the literal mode is asked for.
    keep = [i for i, g in enumerate(live.gold) if LABELS.index(g) < 5]
    five = LivenessInputs(np.asarray(live.embeddings)[keep], [live.gold[i] for i in keep],
                          [live.gold[i] for i in keep], _healthy_stages(len(keep)), LABELS[:5])
    assert evaluate_liveness(five).passed
    assert evaluate_liveness(five).check("distinct_predicted").threshold == 5
    assert not evaluate_liveness(five, GateConfig(cap_at_gold_labels=False)).passed


def test_multilabel_inputs_and_out_of_vocabulary():
    live = _live_inputs()
    gold = [(g, "Thing") for g in live.gold]
    pred = [(p, "Thing") for p in live.predicted]
    rep = evaluate_liveness(LivenessInputs(live.embeddings, pred, gold, live.boundaries, LABELS + ["Thing"]))
    assert rep.metrics.multi_label and rep.confusion is None and rep.passed
    pred2 = list(live.predicted)
    pred2[0] = "NotALabel"
    rep = evaluate_liveness(LivenessInputs(live.embeddings, pred2, live.gold, live.boundaries, LABELS))
    assert rep.out_of_vocabulary == ("NotALabel",)


def test_bad_inputs():
    live = _live_inputs()
    with pytest.raises(ValueError, match="embeddings but"):
        evaluate_liveness(LivenessInputs(live.embeddings, live.predicted[:-1], live.gold, live.boundaries))
    with pytest.raises(ValueError, match="non-empty"):
        evaluate_liveness(LivenessInputs(np.zeros((0, 3)), [], [], ()))
    with pytest.raises(ValueError, match="mixes"):
        evaluate_liveness(LivenessInputs(np.zeros((2, 3)), ["a", "b"], ["a", ("b",)], ()))


def test_run_liveness_writes_json_text_and_pngs(tmp_path):
    rep = run_liveness(_live_inputs(), out_dir=tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["boundary_rates.png", "cluster_sizes.png", "confusion.png", "liveness.json",
                     "liveness.txt", "predicted_labels.png"]
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    d = json.loads((tmp_path / "liveness.json").read_text())
    assert d["verdict"] == "PASS" and d["schema"] == "aegir.liveness/1"
    assert d["mcl"]["inflations"][0]["n_clusters"] == N_LABELS
    assert {c["name"] for c in d["checks"]} >= {"mcl_clusters", "macro_f1", "distinct_predicted", "chunker"}
    assert d["metrics"]["macro_f1"] == pytest.approx(rep.metrics.macro_f1)
    assert "VERDICT: PASS" in (tmp_path / "liveness.txt").read_text()
    # A failing run with no boundary data still writes valid JSON (NaN figure -> null).
    bad = _live_inputs()
    bad.boundaries = ()
    run_liveness(bad, out_dir=tmp_path / "bad")
    d = json.loads((tmp_path / "bad" / "liveness.json").read_text())
    assert d["verdict"] == "FAIL" and [c for c in d["checks"] if c["name"] == "chunker"][0]["figure"] is None


def test_diagnostics_import_no_model_train_or_torch():
    code = ("import sys, aegir.diagnostics, aegir.evaluation; "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('aegir.train', 'aegir.model', "
            "'aegir.checkpoint'))]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_gate_config_round_trip_and_strictness(tmp_path):
    cfg = GateConfig(min_macro_f1=0.2, mcl=MCLConfig(inflations=(1.5, 2.5), k=7))
    assert GateConfig.from_dict(cfg.to_dict()) == cfg
    # The config written into liveness.json reads back too.
    run_liveness(_live_inputs(), cfg, out_dir=tmp_path)
    d = json.loads((tmp_path / "liveness.json").read_text())
    assert GateConfig.from_dict(d["config"]) == cfg
    with pytest.raises(ValueError, match="unknown field"):
        GateConfig.from_dict({"min_clusterz": 3})
    with pytest.raises(ValueError, match="GateConfig.mcl: unknown"):
        GateConfig.from_dict({"mcl": {"kk": 3}})


def _sotab_validation_columns():
    import csv
    import gzip

    from aegir.paths import shared_data_dir

    root = shared_data_dir()
    if root is None or not (root / "sotab_v2_sample" / "CTA" / "CTA_validation_gt.csv").is_file():
        pytest.skip("../shared/data/sotab_v2_sample not present")
    cta = root / "sotab_v2_sample" / "CTA"
    tables: dict[str, list[dict]] = {}
    texts, gold = [], []
    with open(cta / "CTA_validation_gt.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            name = r["table_name"]
            if name not in tables:
                with gzip.open(cta / "Validation" / name, "rt", encoding="utf-8") as g:
                    tables[name] = [json.loads(line) for line in g if line.strip()]
            texts.append(" ".join(str(row.get(r["column_index"], "")) for row in tables[name])[:400])
            gold.append(r["label"])
    return texts, gold


def test_real_sotab_columns_live_representation_vs_collapse():
    """On real SOTAB V2 validation columns: a simple live representation (character n-gram
    TF-IDF + SVD, nearest-centroid labels fitted on half the columns) passes the geometry,
    diversity and quality checks; the same columns collapsed to one vector fail them."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts, gold = _sotab_validation_columns()
    x = TruncatedSVD(32, random_state=0).fit_transform(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2).fit_transform(texts))
    fit = np.arange(len(gold)) % 2 == 0
    labs = sorted(set(np.asarray(gold)[fit]))
    cent = np.stack([x[fit & (np.asarray(gold) == lab)].mean(axis=0) for lab in labs])
    cn = cent / np.linalg.norm(cent, axis=1, keepdims=True)
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    pred = [labs[i] for i in np.argmax(xn @ cn.T, axis=1)]
    ev = ~fit
    g_ev, p_ev = [g for g, m in zip(gold, ev) if m], [p for p, m in zip(pred, ev) if m]
    stages = _healthy_stages(int(ev.sum()))
    rep = evaluate_liveness(LivenessInputs(x[ev], p_ev, g_ev, stages))
    assert rep.passed, rep.failures
    assert rep.check("mcl_clusters").figure >= 10
    collapsed = evaluate_liveness(LivenessInputs(np.ones_like(x[ev]), [p_ev[0]] * len(p_ev), g_ev, stages))
    assert {c.name for c in collapsed.checks if c.passed is False} == {"mcl_clusters", "macro_f1", "distinct_predicted"}
