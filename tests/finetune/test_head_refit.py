"""--refit-head (classifier re-training on frozen features): the fit equals scikit-learn's logistic
regression (float64), labels without training columns are never predicted, the refitted head is what
the classifier then computes, a run's final.pt carries the refit while its last step checkpoint keeps
the joint-trained head, and bad values are refused clearly."""
import dataclasses

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from aegir.checkpoint import load_checkpoint, step_checkpoint_name
from aegir.encoding.batch import collate
from aegir.inference import load_classifier, predict
from aegir.model import AegirClassifier
from aegir.config import ModelConfig
from aegir.train.finetune import FinetuneConfig, finetune
from aegir.train.head_refit import (fit_linear_head, head_features,
                                    refit_classifier_head, save_refit_checkpoint, training_views)
from aegir.tables.table import TableError
from aegir.train.rebalance import balanced_class_weights
from aegir.train.tasks import resolve_task


def _blobs(counts, n_features=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])
    centers = torch.randn(len(counts), n_features, generator=g, dtype=torch.float64) * 1.5
    return centers[y] + torch.randn(len(y), n_features, generator=g, dtype=torch.float64), y


@pytest.mark.parametrize("balanced", [True, False])
def test_fit_equals_sklearn_logistic_regression(balanced):
    x, y = _blobs([60, 30, 12, 5, 3])
    l2 = 0.05
    fit = fit_linear_head(x, y, 5, l2, balanced=balanced)
    # The module's objective is scikit-learn's divided by C * N, with C = 1 / (l2 * N).
    sk = LogisticRegression(C=1 / (l2 * len(y)), class_weight="balanced" if balanced else None, tol=1e-12,
                            max_iter=20_000).fit(x.numpy(), y.numpy())
    p = torch.softmax(x @ fit.weight.t() + fit.bias, dim=1).numpy()
    np.testing.assert_allclose(p, sk.predict_proba(x.numpy()), atol=1e-6)
    np.testing.assert_allclose(fit.weight.numpy(), sk.coef_, atol=1e-6)
    assert fit.grad_norm < 1e-6 and fit.labels_fitted == 5 and fit.n_examples == len(y)
    assert abs(float(fit.bias.mean())) < 1e-12  # centred: softmax does not see a common shift


def test_balanced_weights_give_every_label_the_same_total():
    y = torch.tensor([0, 0, 0, 0, 2, 2, 3])  # label 1 absent
    s = balanced_class_weights(y.tolist(), 4, dtype=torch.float64)[y]  # the refit's per-example weights
    totals = [float(s[y == k].sum()) for k in (0, 2, 3)]
    assert totals == pytest.approx([7 / 3] * 3) and float(s.sum()) == pytest.approx(7.0)


def test_balanced_refit_predicts_rare_labels_more_often():
    # Overlapping blobs, 100 : 6 columns: the plain fit sides with the frequent label, the balanced one less.
    x, y = _blobs([100, 6], n_features=2, seed=3)
    x = x * 0.4
    plain, bal = (fit_linear_head(x, y, 2, 1e-2, balanced=b) for b in (False, True))
    rare = lambda f: int(((x @ f.weight.t() + f.bias).argmax(1) == 1).sum())  # noqa: E731
    assert rare(bal) > rare(plain)


def test_absent_labels_are_never_predicted_and_bad_input_is_refused():
    x, y = _blobs([20, 10])
    fit = fit_linear_head(x, y, 4, 1e-2)
    assert fit.labels_fitted == 2
    assert torch.all(fit.weight[2:] == 0) and float(fit.bias[2:].max()) < float(fit.bias[:2].min()) - 50
    assert set((x @ fit.weight.t() + fit.bias).argmax(1).tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="l2 must be > 0"):
        fit_linear_head(x, y, 4, 0.0)
    with pytest.raises(ValueError, match=r"need x \(N, F\) and y \(N,\)"):
        fit_linear_head(x, y[:-1], 4, 1e-2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        fit_linear_head(x, y + 1, 2, 1e-2)


def test_refitted_head_is_what_the_classifier_computes(custom_data, tmp_path):
    td = resolve_task("custom", str(custom_data))
    clf = AegirClassifier(ModelConfig.preset("nano"), len(td.vocab)).eval()
    scfg = FinetuneConfig(max_bytes=48).serialize_config()
    views = training_views(td.train, td.vocab.labels, scfg, 2)
    assert len(views) == 2 and all(e.label_ids for v in views for e in v) and len(views[0]) == len(views[1])
    feats = head_features(clf, views)
    assert feats.x.shape == (2 * len(views[0]), clf.head.proj.in_features) and feats.views == 2
    backbone = {k: v.clone() for k, v in clf.backbone.state_dict().items()}
    refit = refit_classifier_head(clf, feats, "balanced", 1e-2)
    assert all(torch.equal(v, clf.backbone.state_dict()[k]) for k, v in backbone.items())  # backbone untouched
    # The classifier's logits on view 0 are the fitted linear map of those features.
    b = collate(views[0])
    with torch.no_grad():
        got = clf(b.ids, b.mask, b.target_mask).logits.double()
    want = feats.x[: len(views[0])] @ refit.fit.weight.t() + refit.fit.bias
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert refit.summary()["mode"] == "balanced" and refit.summary()["examples"] == 2 * len(views[0])
    with pytest.raises(ValueError, match="refit mode must be one of"):
        refit_classifier_head(clf, feats, "none")
    multi = AegirClassifier(ModelConfig.preset("nano"), len(td.vocab), multi_label=True)
    with pytest.raises(ValueError, match="multi-label"):
        head_features(multi, views)


def test_run_writes_the_refit_into_final_and_keeps_the_joint_head(custom_data, tmp_path):
    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", epochs=2, batch_size=8, lr=3e-3,
                         warmup_steps=1, max_bytes=48, out=str(tmp_path), progress=False, checkpoint_every=1000,
                         refit_head="balanced", refit_l2=1e-2, refit_views=2)
    res = finetune(cfg)
    final = load_checkpoint(res.final_checkpoint)
    joint = load_checkpoint(res.run_dir / step_checkpoint_name(res.steps))
    s = final.extra["head_refit"]
    assert s["mode"] == "balanced" and s["l2"] == 1e-2 and s["views"] == 2 and s["grad_norm"] < 1e-5
    head = [k for k in final.model_state if "head.proj" in k]
    assert head and not all(torch.equal(final.model_state[k], joint.model_state[k]) for k in head)
    others = [k for k in final.model_state if "head.proj" not in k]
    assert all(torch.equal(final.model_state[k], joint.model_state[k]) for k in others)
    assert "joint_valid_macro_f1" in res.valid_metrics and "valid_macro_f1" in res.valid_metrics
    # A refit saved by the benchmark's path loads strictly and predicts as the classifier it came from.
    lc = load_classifier(res.run_dir / step_checkpoint_name(res.steps))
    td = resolve_task("custom", str(custom_data))
    views = training_views(td.train, lc.vocab.labels, lc.serialize_cfg, 2)
    refit = refit_classifier_head(lc.model, head_features(lc.model, views), "balanced", 1e-2)
    path = save_refit_checkpoint(lc, refit, tmp_path / "refit.pt")
    again = load_classifier(path)
    np.testing.assert_allclose(predict(again.model, views[0]).logits, predict(lc.model, views[0]).logits, atol=1e-5)
    # The same refit of the same joint weights is the run's final head (one convex optimum).
    np.testing.assert_allclose(predict(again.model, views[0]).logits,
                               predict(load_classifier(res.final_checkpoint).model, views[0]).logits, atol=1e-3)
    assert load_checkpoint(path).extra["head_refit"]["mode"] == "balanced"


@pytest.mark.parametrize("over, msg", [({"refit_head": "cRT"}, "--refit-head must be one of"),
                                       ({"refit_l2": 0.0}, "--refit-l2 must be"),
                                       ({"refit_l2": float("inf")}, "--refit-l2 must be"),
                                       ({"refit_views": 0}, "--refit-views must be")])
def test_bad_values_are_refused(over, msg):
    with pytest.raises(ValueError, match=msg):
        FinetuneConfig(**over)


def test_multi_label_task_is_refused_at_start(custom_data, tmp_path):
    cfg = FinetuneConfig(task="custom", data=str(custom_data), model_size="nano", epochs=1, max_steps=2, batch_size=8,
                         warmup_steps=1, max_bytes=48, out=str(tmp_path), progress=False, refit_head="balanced")
    multi = dataclasses.replace(resolve_task("custom", str(custom_data)), multi_label=True)
    with pytest.raises(TableError, match="--refit-head is for single-label tasks"):
        finetune(cfg, task_data=multi)
