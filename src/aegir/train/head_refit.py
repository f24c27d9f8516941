"""Classifier re-training on frozen features ("cRT", Kang et al., ICLR 2020: *Decoupling Representation
and Classifier for Long-Tailed Recognition*).

After joint fine-tuning, the backbone stays as it is and only the head's final linear layer is refitted,
by a class-balanced, L2-regularised multinomial logistic regression on the pooled features of the
labelled training columns (several row views of each, so the fit sees how a column's features move
when other rows are sampled). The objective is convex, so the refit has one optimum whatever the
joint-trained head was; it is solved to convergence with L-BFGS in float64:

    minimise  (1/N) * sum_i s_i * CE(W x_i + b, y_i)  +  (l2 / 2) * ||W||^2        (b unpenalised)

with s_i = N / (K * n_{y_i}) ("balanced": every one of the K labels present carries the same total
weight, scikit-learn's `class_weight="balanced"`) or s_i = 1. That is scikit-learn's
`LogisticRegression(C=1 / (l2 * N), class_weight=...)` objective divided by C * N (tested against it).

Why: training the whole network with class weights trades away the representation (micro-F1 collapsed
in our GitTables runs), while the same weights on a linear model over fixed features are what makes the
TF-IDF baseline strong on rare labels. Labels with no training column cannot be fitted; their rows
get zero weight and a bias far below every fitted one, so they are never predicted (the joint head
never saw a positive example of them either).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from aegir.train.rebalance import balanced_class_weights

REFIT_MODES = ("none", "balanced", "plain")
# Absent labels' bias sits this far below the lowest fitted bias: exp(-60) ~ 1e-26 relative probability.
_ABSENT_BIAS_GAP = 60.0


@dataclass(frozen=True)
class LinearFit:
    weight: Tensor            # (K, F) float64
    bias: Tensor              # (K,) float64
    objective: float          # final value of the objective above
    iterations: int
    grad_norm: float          # max |gradient| at the solution (convergence check)
    n_examples: int
    labels_fitted: int        # labels with at least one training example


def fit_linear_head(x: Tensor, y: Tensor, n_labels: int, l2: float, balanced: bool = True,
                    max_iter: int = 500, tol: float = 1e-9) -> LinearFit:
    """Solve the objective in the module docstring for features x (N, F) and labels y (N,)."""
    if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"fit_linear_head: need x (N, F) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] == 0:
        raise ValueError("fit_linear_head: no training examples")
    if l2 <= 0:
        raise ValueError(f"fit_linear_head: l2 must be > 0 (the problem has no unique optimum without it), got {l2}")
    if int(y.min()) < 0 or int(y.max()) >= n_labels:
        raise ValueError(f"fit_linear_head: labels must lie in [0, {n_labels}), got {int(y.min())}..{int(y.max())}")
    x = x.double()
    y = y.long()
    n, f = x.shape
    counts = torch.bincount(y, minlength=n_labels)  # (K,)
    fitted = (counts > 0).nonzero().squeeze(1)  # (K_present,)
    remap = torch.full((n_labels,), -1, dtype=torch.long)
    remap[fitted] = torch.arange(len(fitted))
    yk = remap[y]  # (N,) labels as indices into the fitted rows
    # s_i = N / (K * n_{y_i}) over the fitted labels, so each carries total weight N / K; or all ones.
    s = balanced_class_weights(yk.tolist(), len(fitted), dtype=torch.float64)[yk] if balanced \
        else torch.ones(n, dtype=torch.float64)  # (N,)
    w = torch.zeros(len(fitted), f, dtype=torch.float64, requires_grad=True)  # (K_present, F)
    b = torch.zeros(len(fitted), dtype=torch.float64, requires_grad=True)  # (K_present,)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-15,
                            history_size=20, line_search_fn="strong_wolfe")

    def objective() -> Tensor:
        logits = x @ w.t() + b  # (N, K_present)
        ce = torch.nn.functional.cross_entropy(logits, yk, reduction="none")  # (N,)
        return (s * ce).sum() / n + 0.5 * l2 * (w * w).sum()

    def closure() -> Tensor:
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    opt.step(closure)
    loss = objective()
    gw, gb = torch.autograd.grad(loss, [w, b])
    weight = torch.zeros(n_labels, f, dtype=torch.float64)
    bias = torch.zeros(n_labels, dtype=torch.float64)
    weight[fitted] = w.detach()
    bias[fitted] = b.detach() - b.detach().mean()  # softmax is shift-invariant in b: centre it
    absent = counts == 0
    if absent.any():
        bias[absent] = bias[fitted].min() - _ABSENT_BIAS_GAP
    iters = int(opt.state[w].get("n_iter", 0))
    return LinearFit(weight, bias, float(loss.detach()), iters, float(max(gw.abs().max(), gb.abs().max())), n,
                     len(fitted))


@dataclass(frozen=True)
class HeadFeatures:
    """What the head's linear layer sees for the labelled training columns, over several row views."""
    x: Tensor                 # (N, F) float64: pooled embeddings after the head's LayerNorm
    y: Tensor                 # (N,) label ids
    views: int


@dataclass(frozen=True)
class HeadRefit:
    mode: str
    l2: float
    views: int
    fit: LinearFit

    def summary(self) -> dict[str, float | int | str]:
        return {"mode": self.mode, "l2": self.l2, "views": self.views, "examples": self.fit.n_examples,
                "labels_fitted": self.fit.labels_fitted, "objective": round(self.fit.objective, 6),
                "iterations": self.fit.iterations, "grad_norm": self.fit.grad_norm}


def head_features(classifier, views: Sequence[Sequence], batch_size: int = 64,
                  device: str | torch.device | None = None) -> HeadFeatures:
    """Features of the labelled columns in `views` (one list of encoded columns per row view;
    unlabelled columns are skipped). Multi-label classifiers are refused: the balanced weighting is
    for one label per column."""
    from aegir.inference import predict

    if classifier.multi_label:
        raise ValueError("head refit is for single-label tasks; this classifier is multi-label")
    feats, ys = [], []
    for examples in views:
        labelled = [e for e in examples if e.label_ids]
        if not labelled:
            continue
        raw = predict(classifier, labelled, batch_size=batch_size, device=device)
        feats.append(torch.from_numpy(raw.pooled))  # (N_v, 2 * d0)
        ys.append(torch.tensor([e.label_ids[0] for e in labelled]))  # (N_v,)
    if not feats:
        raise ValueError("head refit: no labelled training columns")
    norm = classifier.head.norm
    with torch.no_grad():
        x = norm(torch.cat(feats).to(norm.weight.device)).double().cpu()  # (N, 2 * d0), as the linear layer sees it
    return HeadFeatures(x, torch.cat(ys), len(views))


def refit_classifier_head(classifier, features: HeadFeatures, mode: str = "balanced", l2: float = 1e-2) -> HeadRefit:
    """Refit `classifier.head.proj` in place on `features` (from `head_features` of this classifier)."""
    if mode not in REFIT_MODES or mode == "none":
        raise ValueError(f"refit mode must be one of {REFIT_MODES[1:]}, got {mode!r}")
    proj = classifier.head.proj
    fit = fit_linear_head(features.x, features.y, proj.out_features, l2, balanced=(mode == "balanced"))
    with torch.no_grad():
        proj.weight.copy_(fit.weight.to(proj.weight))
        proj.bias.copy_(fit.bias.to(proj.bias))
    return HeadRefit(mode, l2, features.views, fit)


def training_views(train, labels: Sequence[str], scfg, n_views: int) -> list[list]:
    """The labelled columns of `train` (a LabeledDataset) encoded with serialization `scfg` for
    label vocabulary `labels`: view 0 deterministic, views 1.. random row subsets."""
    from aegir.encoding.batch import encode_dataset

    if n_views < 1:
        raise ValueError(f"refit views must be >= 1, got {n_views}")
    index = {l: i for i, l in enumerate(labels)}
    return [[e for e in encode_dataset(train, index, scfg, view=v) if e.label_ids] for v in range(n_views)]


def save_refit_checkpoint(lc, refit: HeadRefit, path) -> Path:
    """Write `lc` (its head refitted) as a classifier checkpoint that records the refit and its source."""
    from aegir.checkpoint import save_checkpoint
    from aegir.inference import classifier_extra

    extra = classifier_extra(lc.vocab, lc.serialize_cfg, lc.task, lc.multi_label, lc.cpa,
                             head_refit=refit.summary(), refit_source=str(lc.source))
    return save_checkpoint(Path(path), lc.model, lc.model.cfg, extra, kind="classifier",
                           step=int(lc.meta.get("step") or 0), run_args=lc.meta.get("run_args"),
                           metrics=lc.meta.get("metrics"))
