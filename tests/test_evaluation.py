"""Metrics against hand-computed values and sklearn; confusion matrix; prediction files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from aegir.evaluation import (
    fit_temperature,
    softmax_nll,
    expected_calibration_error,
    selective_report,
    NONE_LABEL,
    OTHER_LABEL,
    Prediction,
    classification_report,
    confusion_matrix,
    format_classification_report,
    indicator_matrix,
    multilabel_report,
    multilabel_report_from_indicators,
    plot_confusion_matrix,
    predictions_from_scores,
    read_predictions,
    report_from_predictions,
    write_evaluation,
    write_predictions,
)
from aegir.tables import TableError

GOLD = ["a", "a", "a", "b", "b", "c"]
PRED = ["a", "a", "b", "b", "c", "c"]


def test_single_label_hand_computed():
    r = classification_report(GOLD, PRED)
    # a: tp2 fp0 fn1 -> P1 R2/3 F0.8 ; b: tp1 fp1 fn1 -> .5 .5 .5 ; c: tp1 fp1 fn0 -> .5 1 2/3
    assert r.label("a").f1 == pytest.approx(0.8)
    assert r.label("b").f1 == pytest.approx(0.5)
    assert r.label("c").f1 == pytest.approx(2 / 3)
    assert r.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert r.macro_precision == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert r.macro_recall == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert r.micro_f1 == pytest.approx(4 / 6) == r.accuracy
    assert r.label("a").support == 3 and r.label("c").predicted == 2
    assert [s.label for s in r.per_label] == ["a", "b", "c"]


def test_macro_only_over_gold_labels_and_unpredicted_gold_scores_zero():
    gold = ["a", "a", "b"]
    pred = ["a", "x", "a"]  # x never in gold; b never predicted
    r = classification_report(gold, pred)
    # a: tp1 fp1 fn1 -> F 0.5 ; b: F 0 ; x excluded from macro, but costs micro precision
    assert r.macro_labels == ("a", "b")
    assert r.macro_f1 == pytest.approx(0.25)
    assert r.micro_f1 == pytest.approx(1 / 3)
    assert r.label("x").fp == 1
    sk = skm.f1_score(gold, pred, labels=sorted(set(gold)), average="macro", zero_division=0)
    assert r.macro_f1 == pytest.approx(sk)


def test_abstention_costs_recall_not_precision():
    gold = ["a", "b", "b", "c"]
    pred = ["a", None, "b", ""]
    r = classification_report(gold, pred)
    assert r.n_abstained == 2
    assert r.micro_precision == pytest.approx(1.0)
    assert r.micro_recall == pytest.approx(0.5)
    assert r.micro_f1 == pytest.approx(2 / 3)
    # sklearn: an abstention sentinel outside `labels` is exactly "no prediction".
    skp = ["__none__" if p in (None, "") else p for p in pred]
    assert r.micro_f1 == pytest.approx(skm.f1_score(gold, skp, labels=["a", "b", "c"], average="micro"))


def test_given_label_list_for_macro():
    r = classification_report(GOLD, PRED, labels=["a", "b", "c", "d"])
    assert r.macro_over == "given" and len(r.macro_labels) == 4
    assert r.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 4)


def test_random_cross_check_with_sklearn():
    rng = np.random.default_rng(0)
    labs = [f"L{i}" for i in range(12)]
    gold = [labs[i] for i in rng.integers(0, 10, 400)]
    pred = [labs[i] for i in rng.integers(0, 12, 400)]
    r = classification_report(gold, pred)
    ls = sorted(set(gold))
    assert r.macro_f1 == pytest.approx(skm.f1_score(gold, pred, labels=ls, average="macro", zero_division=0), abs=1e-12)
    assert r.macro_precision == pytest.approx(
        skm.precision_score(gold, pred, labels=ls, average="macro", zero_division=0), abs=1e-12)
    assert r.micro_f1 == pytest.approx(skm.f1_score(gold, pred, average="micro"), abs=1e-12)
    p, rec, f, sup = skm.precision_recall_fscore_support(gold, pred, labels=ls, zero_division=0)
    for i, lab in enumerate(ls):
        s = r.label(lab)
        assert (s.precision, s.recall, s.f1, s.support) == pytest.approx((p[i], rec[i], f[i], sup[i]))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="gold has 2 columns"):
        classification_report(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="gold label #1"):
        classification_report(["a", ""], ["a", "a"])


def test_multilabel_hand_and_sklearn():
    gold = [{"a", "b"}, {"b"}, {"c"}, {"a"}]
    pred = [{"a"}, {"b", "c"}, set(), {"a", "b"}]
    r = multilabel_report(gold, pred)
    # a: tp2 fp0 fn0 -> 1 ; b: tp1 fp1 fn1 -> .5 ; c: tp0 fp1 fn1 -> 0
    assert r.label("a").f1 == pytest.approx(1.0)
    assert r.label("b").f1 == pytest.approx(0.5)
    assert r.macro_f1 == pytest.approx(0.5)
    assert r.micro_precision == pytest.approx(3 / 5) and r.micro_recall == pytest.approx(3 / 5)
    assert r.n_abstained == 1 and r.accuracy == 0.0
    labs = ["a", "b", "c"]
    yt, yp = indicator_matrix(gold, labs), indicator_matrix(pred, labs)
    assert r.micro_f1 == pytest.approx(skm.f1_score(yt, yp, average="micro"))
    assert r.macro_f1 == pytest.approx(skm.f1_score(yt, yp, average="macro", zero_division=0))
    r2 = multilabel_report_from_indicators(yt.astype(int), yp.astype(int), labs)
    assert r2.macro_f1 == r.macro_f1 and r2.micro_f1 == r.micro_f1


def test_multilabel_macro_ignores_labels_absent_from_gold():
    labs = ["a", "b", "z"]
    yt = np.array([[1, 0, 0], [0, 1, 0]])
    yp = np.array([[1, 0, 1], [0, 1, 0]])
    r = multilabel_report_from_indicators(yt, yp, labs)
    assert r.macro_labels == ("a", "b") and r.macro_f1 == pytest.approx(1.0)
    assert r.micro_precision == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="indicator matrices"):
        multilabel_report_from_indicators(yt, yp[:, :2], labs)


def test_confusion_matrix_matches_sklearn_and_top_n(tmp_path):
    cm = confusion_matrix(GOLD, PRED)
    assert cm.row_labels == ("a", "b", "c") == cm.col_labels
    np.testing.assert_array_equal(cm.matrix, skm.confusion_matrix(GOLD, PRED, labels=["a", "b", "c"]))
    cm2 = confusion_matrix(GOLD + ["d"], PRED + [None], top_n=2)
    assert cm2.row_labels == ("a", "b", OTHER_LABEL)
    assert cm2.col_labels == ("a", "b", OTHER_LABEL, NONE_LABEL)
    # gold c and d fall into the (other) row: c->c lands in (other, other), d->None in (other, none)
    np.testing.assert_array_equal(cm2.matrix, [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]])
    assert cm2.matrix.sum() == 7 and cm2.n_labels_total == 4
    out = plot_confusion_matrix(cm2, tmp_path / "cm.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Many labels: the top-N view stays readable and the file is written.
    rng = np.random.default_rng(1)
    g = [f"label{i}" for i in rng.integers(0, 80, 500)]
    big = confusion_matrix(g, list(reversed(g)), top_n=20)
    assert big.matrix.shape == (21, 21) and big.matrix.sum() == 500
    assert plot_confusion_matrix(big, tmp_path / "big.png").stat().st_size > 1000


def _preds():
    return [
        Prediction("t1.json.gz", 0, ("Book/name",), 0.9, ("Book/name",), None, (("Book/name", 0.9), ("x=y", 0.05))),
        Prediction("t1.json.gz", 2, ("Date",), 0.4, ("Duration",)),
        Prediction("t2.json.gz", 1, (), None, ("Date",)),
        Prediction("t3.json.gz", 3, ("Place",), 0.7, (), 0),
    ]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_predictions_round_trip(tmp_path, suffix):
    path = write_predictions(tmp_path / f"preds.{suffix}", _preds())
    back = read_predictions(path)
    assert back == _preds()
    r = report_from_predictions(back)
    assert r.n == 3 and r.n_abstained == 1  # unlabelled t3 skipped
    assert r.micro_precision == pytest.approx(0.5) and r.micro_recall == pytest.approx(1 / 3)
    if suffix == "csv":
        header = path.read_text().splitlines()[0].split(",")
        assert header[:2] == ["table_name", "column_index"] and "label" in header
    else:
        first = json.loads(path.read_text().splitlines()[0])
        assert first["correct"] is True and first["top_k"][0] == ["Book/name", 0.9]


def test_predictions_bad_files(tmp_path):
    with pytest.raises(ValueError, match="unknown predictions format"):
        write_predictions(tmp_path / "p.txt", _preds())
    with pytest.raises(ValueError, match="contains '\\|'"):
        write_predictions(tmp_path / "p.csv", [Prediction("t", 0, ("a|b",))])
    bad = tmp_path / "bad.csv"
    bad.write_text("table_name,column_index,label\nt1,zero,Date\n")
    with pytest.raises(TableError, match=r"bad.csv:2: field 'column_index'"):
        read_predictions(bad)
    badj = tmp_path / "bad.jsonl"
    badj.write_text('{"table_name": "t", "column_index": 1}\n{oops\n')
    with pytest.raises(TableError, match=r"bad.jsonl:2: not valid JSON"):
        read_predictions(badj)
    with pytest.raises(TableError, match="not found"):
        read_predictions(tmp_path / "missing.csv")


def test_format_report_mentions_numbers():
    text = format_classification_report(classification_report(GOLD, PRED))
    assert "0.6667" in text and "per label" in text and "a" in text


def test_predictions_from_scores_single_label_top_k_and_subset():
    labels = ["Date", "Place", "Book/name", "Duration"]
    scores = np.array([[0.1, 0.6, 0.2, 0.1], [0.5, 0.1, 0.1, 0.3], [0.25, 0.25, 0.4, 0.1]])
    keys = [("t1", 0), ("t1", 1), ("t2", 3)]
    preds = predictions_from_scores(scores, labels, keys, gold=["Place", "Duration", None], top_k=2)
    assert [p.predicted for p in preds] == [("Place",), ("Date",), ("Book/name",)]
    assert preds[0].score == pytest.approx(0.6) and preds[0].candidates == (("Place", 0.6), ("Book/name", 0.2))
    assert preds[2].gold == () and preds[1].correct is False
    r = report_from_predictions(preds)
    assert r.n == 2 and r.accuracy == pytest.approx(0.5)
    sub = predictions_from_scores(scores, labels, keys, allowed={"Date", "Duration"}, top_k=5)
    assert [p.predicted[0] for p in sub] == ["Date", "Date", "Date"]
    assert len(sub[0].candidates) == 2 and sub[1].score == pytest.approx(0.5)
    with pytest.raises(ValueError, match="not in the model's label set"):
        predictions_from_scores(scores, labels, keys, allowed={"Nope"})
    with pytest.raises(ValueError, match=r"scores must be \(N=3, L=4\)"):
        predictions_from_scores(scores[:, :3], labels, keys)


def test_predictions_from_scores_multi_label_threshold():
    labels = ["a", "b", "c"]
    sig = np.array([[0.9, 0.7, 0.1], [0.2, 0.3, 0.4]])
    preds = predictions_from_scores(sig, labels, [("t", 0), ("t", 1)], gold=[("a", "b"), ("c",)], multi_label=True)
    assert preds[0].predicted == ("a", "b") and preds[0].score == pytest.approx(0.9)
    assert preds[1].predicted == () and preds[1].score is None
    r = report_from_predictions(preds)
    assert r.multi_label and r.micro_precision == 1.0 and r.micro_recall == pytest.approx(2 / 3)


def test_write_evaluation_files(tmp_path):
    preds = _preds()
    out = write_evaluation(tmp_path / "eval", preds, meta={"checkpoint": "x.pt"})
    names = sorted(p.name for p in (tmp_path / "eval").iterdir())
    assert names == ["confusion.json", "confusion.png", "metrics.json", "per_label.csv", "predictions.csv", "report.txt"]
    doc = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert doc["summary"]["micro_recall"] == pytest.approx(1 / 3) and doc["meta"]["checkpoint"] == "x.pt"
    rows = (tmp_path / "eval" / "per_label.csv").read_text().splitlines()
    assert rows[0].startswith("label,support") and len(rows) == 1 + len(out.report.per_label)
    assert out.confusion is not None and out.confusion.matrix.sum() == 3
    assert read_predictions(out.files["predictions"]) == preds


def test_expected_calibration_error_hand_computed():
    # 3 bins: (0, 1/3], (1/3, 2/3], (2/3, 1]; a score of exactly 0 joins the first bin.
    conf = [0.0, 0.2, 0.5, 0.6, 0.9, 1.0]
    hit = [False, True, True, False, True, True]
    # bin 0: scores 0.0, 0.2 (mean 0.1), accuracy 0.5 -> |0.5 - 0.1| = 0.4, weight 2/6
    # bin 1: 0.5, 0.6 (mean 0.55), accuracy 0.5 -> 0.05, weight 2/6
    # bin 2: 0.9, 1.0 (mean 0.95), accuracy 1.0 -> 0.05, weight 2/6
    assert expected_calibration_error(conf, hit, n_bins=3) == pytest.approx((0.4 + 0.05 + 0.05) / 3)
    # perfectly calibrated within each bin -> 0; confident and always wrong -> the confidence
    assert expected_calibration_error([0.5, 0.5], [True, False], n_bins=10) == pytest.approx(0.0)
    assert expected_calibration_error([0.8, 0.8, 0.8], [False] * 3, n_bins=5) == pytest.approx(0.8)
    assert expected_calibration_error([], [], n_bins=5) == 0.0
    with pytest.raises(ValueError, match="equally long"):
        expected_calibration_error([0.5], [True, False])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([1.5], [True])


def test_selective_report_hand_computed():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    score = [0.9, 0.4, 0.8, 0.6, 0.3]
    rep = selective_report(gold, pred, score, thresholds=(0.0, 0.5, 0.85, 0.95), n_bins=10)
    assert rep.n == 5
    t0, t5, t85, t95 = rep.rows
    # threshold 0: everything answered; accuracy 3/5; per-label F1: a P=1/2 R=1/2, b P=2/3 R=1, c 0
    assert (t0.answered, t0.coverage, t0.accuracy) == (5, 1.0, pytest.approx(0.6))
    assert t0.macro_f1 == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    # threshold 0.5: columns 0, 2, 3 answered, all right; a: P=1 R=1/2, b: P=1 R=1, c: 0
    assert (t5.answered, t5.coverage, t5.accuracy) == (3, pytest.approx(0.6), pytest.approx(1.0))
    assert t5.macro_f1 == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)
    # threshold 0.85: only column 0; threshold 0.95: nothing answered (accuracy undefined, macro-F1 0)
    assert (t85.answered, t85.accuracy) == (1, pytest.approx(1.0))
    assert (t95.answered, t95.coverage, t95.accuracy, t95.macro_f1) == (0, 0.0, None, 0.0)
    assert rep.ece == pytest.approx(expected_calibration_error(score, [g == p for g, p in zip(gold, pred)], 10))
    assert "coverage" in rep.format() and json.dumps(rep.to_dict())


def test_softmax_nll_hand_computed_and_temperature_fit():
    z = np.array([[0.0, np.log(3.0)], [2.0, 0.0]])  # row 0: p(1) = 3/4; row 1 at T = 2: p(0) = e/(e+1)
    assert softmax_nll(z[:1], np.array([1])) == pytest.approx(-np.log(0.75))
    assert softmax_nll(z[1:], np.array([0]), 2.0) == pytest.approx(-np.log(np.e / (np.e + 1)))
    with pytest.raises(ValueError, match="no labelled"):
        softmax_nll(np.zeros((0, 3)), np.zeros(0))
    # labels drawn from softmax(z / 2.5): the fitted temperature comes back near 2.5 and lowers the NLL
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4000, 12)) * 3
    p = np.exp(z / 2.5)
    p /= p.sum(1, keepdims=True)
    g = np.array([rng.choice(12, p=r) for r in p])
    t = fit_temperature(z, g)
    assert t == pytest.approx(2.5, rel=0.08)
    assert softmax_nll(z, g, t) < softmax_nll(z, g, 1.0)
    # already calibrated scores keep T near 1
    q = np.exp(z)
    q /= q.sum(1, keepdims=True)
    g1 = np.array([rng.choice(12, p=r) for r in q])
    assert fit_temperature(z, g1) == pytest.approx(1.0, rel=0.08)


def test_sigmoid_nll_hand_computed_and_multilabel_temperature_fit():
    from aegir.evaluation import fit_temperature_report, sigmoid_nll

    z = np.array([[0.0, np.log(3.0)]])  # sigmoid: 1/2 and 3/4
    y = np.array([[1.0, 0.0]])
    assert sigmoid_nll(z, y) == pytest.approx((-np.log(0.5) - np.log(0.25)) / 2)
    assert sigmoid_nll(np.array([[800.0, -800.0]]), np.array([[1.0, 0.0]])) == pytest.approx(0.0)  # stable
    with pytest.raises(ValueError, match=r"\(N, L\)"):
        sigmoid_nll(np.zeros((2, 3)), np.zeros((2, 2)))
    # labels drawn independently from sigmoid(z / 3): the fitted temperature comes back near 3
    rng = np.random.default_rng(1)
    z = rng.normal(size=(3000, 10)) * 4
    y = (rng.random(z.shape) < 1 / (1 + np.exp(-z / 3.0))).astype(float)
    fit = fit_temperature_report(z, y, multi_label=True)
    assert fit.temperature == pytest.approx(3.0, rel=0.08)
    assert fit.nll_after < fit.nll_before and fit.ece_after < fit.ece_before and fit.n_columns == 3000
    # T > 0 moves no sigmoid across 0.5: the predicted label sets are the same
    assert ((z / fit.temperature) > 0).tolist() == (z > 0).tolist()



def test_top_k_ranks_by_logits_where_scores_underflow_or_saturate():
    """float32 softmax scores of a confident row underflow to 0 and sigmoids saturate at 1; the
    ranking still follows the logits (not the label order among tied scores)."""
    from aegir.inference import Predictions

    logits = np.array([[0.0, -200.0, -120.0, -150.0], [40.0, 60.0, 50.0, -3.0]], dtype=np.float32)
    p = Predictions(logits, np.zeros((2, 1), np.float32), np.zeros((2, 1)), np.ones((2, 1)))
    idx, scores = p.top_k(4)
    assert idx[0].tolist() == [0, 2, 3, 1] and scores[0].tolist() == [1.0, 0.0, 0.0, 0.0]
    idx, scores = p.top_k(3, multi_label=True)
    assert idx[1].tolist() == [1, 2, 0] and scores[1].tolist() == [1.0, 1.0, 1.0]


def test_restricted_labels_rank_the_subset_and_keep_full_vocabulary_scores():
    """annotate(labels=[...]): the best labels of the subset, scored as in the unrestricted run (hand
    softmax), not renormalised over the subset; multi-label sigmoids likewise unchanged."""
    from aegir.inference import Predictions, restrict_labels

    logits = np.array([[3.0, 1.0, 0.0, -1.0]], dtype=np.float32)
    p = Predictions(logits, np.zeros((1, 1), np.float32), np.zeros((1, 1)), np.ones((1, 1)))
    full = np.exp(logits[0].astype(np.float64)) / np.exp(logits[0].astype(np.float64)).sum()
    r = restrict_labels(p, np.array([False, True, False, True]))
    idx, scores = r.top_k(2)
    assert idx[0].tolist() == [1, 3] and np.allclose(scores[0], full[[1, 3]], rtol=1e-6)
    assert scores[0].sum() < 0.2  # the subset does not fit this column: its scores say so
    idx, scores = r.top_k(2, multi_label=True)
    assert idx[0].tolist() == [1, 3] and np.allclose(scores[0], 1 / (1 + np.exp(-logits[0, [1, 3]])), rtol=1e-6)


def test_ensemble_keeps_the_order_of_labels_its_members_all_find_unlikely():
    """The mean probability of confident members, in float64: labels both members put at e^-150 and
    e^-120 do not tie at a clipped floor, so the ensemble ranks them as each member does."""
    from aegir.inference import Predictions, combine_members

    logits = np.array([[0.0, -150.0, -120.0, 5.0]], dtype=np.float32)
    members = [Predictions(logits + d, np.zeros((1, 1), np.float32), np.zeros((1, 1)), np.ones((1, 1)))
               for d in (0.0, 1.0)]
    for multi_label in (False, True):
        ens = combine_members(members, multi_label)
        assert ens.top_k(4, multi_label)[0][0].tolist() == [3, 0, 2, 1]
