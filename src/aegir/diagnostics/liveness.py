"""The liveness gate: has a fine-tuned column annotator collapsed?

See docs/current/ontology/charter.md for why the gate exists and how to read it. The gate is
model-agnostic: it takes pooled validation embeddings, predicted and gold labels and per-stage
boundary counts (`LivenessInputs`), never a model or a checkpoint, so it can be unit-tested on
constructed inputs and reused by fine-tuning, `aegir liveness` and the benchmarks.

Required checks (all must pass):
  1. geometry: >= min_clusters MCL clusters (of at least min_cluster_size members) at the coarse
     inflation of a cosine kNN graph over the embeddings;
  2. quality: macro-F1 >= min_macro_f1 on the validation columns;
  3. diversity: >= min_distinct_predicted distinct predicted labels;
  4. chunker: no degenerate H-Net stage (all-boundary or no-boundary).
Informational figures (thresholds optional): spread of the embeddings, mode-class share.

Deviation from a literal reading of the issue: the cluster and distinct-label thresholds are
capped at the number of gold labels present (a 6-label task cannot show 10 labels, and then has
to use all 6); set `cap_at_gold_labels=False` for the literal thresholds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Collection, Sequence

import numpy as np

from aegir.diagnostics.boundaries import BoundaryConfig, StageBoundaryCounts, StageHealth, chunker_health
from aegir.diagnostics.collapse import CollapseStats, as_numpy, collapse_stats
from aegir.diagnostics.mcl import MCLAudit, MCLConfig, mcl_audit
from aegir.evaluation import (
    ClassificationReport,
    ConfusionMatrix,
    classification_report,
    confusion_matrix,
    multilabel_report,
)

__all__ = ["GateConfig", "LivenessInputs", "CheckResult", "LivenessReport", "evaluate_liveness", "run_liveness"]

SCHEMA = "aegir.liveness/1"


@dataclass(frozen=True)
class GateConfig:
    min_clusters: int = 3
    min_macro_f1: float = 0.10
    min_distinct_predicted: int = 10
    min_cluster_size: int = 2  # smaller MCL clusters are outliers and are not counted
    cap_at_gold_labels: bool = True  # see module doc
    require_boundaries: bool = True  # no stage statistics given -> the chunker check fails
    max_mode_share: float | None = None  # informational unless set
    min_mean_spread: float | None = None  # informational unless set
    confusion_top_n: int = 30
    mcl: MCLConfig = field(default_factory=MCLConfig)
    boundary: BoundaryConfig = field(default_factory=BoundaryConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GateConfig":
        """Strict inverse of to_dict (e.g. from a run's liveness.json): unknown keys raise."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"GateConfig: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        kw = dict(d)
        if isinstance(kw.get("mcl"), dict):
            bad = set(kw["mcl"]) - set(MCLConfig.__dataclass_fields__)
            if bad:
                raise ValueError(f"GateConfig.mcl: unknown field(s) {sorted(bad)}")
            m = dict(kw["mcl"])
            if "inflations" in m:
                m["inflations"] = tuple(m["inflations"])
            kw["mcl"] = MCLConfig(**m)
        if isinstance(kw.get("boundary"), dict):
            bad = set(kw["boundary"]) - set(BoundaryConfig.__dataclass_fields__)
            if bad:
                raise ValueError(f"GateConfig.boundary: unknown field(s) {sorted(bad)}")
            kw["boundary"] = BoundaryConfig(**kw["boundary"])
        return cls(**kw)


@dataclass
class LivenessInputs:
    """What the gate needs, computed by the caller on the validation set.

    embeddings: (N, D) pooled column embeddings (numpy or torch).
    predicted: N predicted labels (str; None = abstained) or label sets for multi-label tasks.
    gold: N gold labels (str) or label sets.
    boundaries: per H-Net stage, per-sequence boundary counts (see BoundaryAccumulator).
    label_names: the model's label vocabulary (reported; predictions outside it are flagged).
    meta: free provenance (checkpoint path, data path, task) copied into the report.
    """

    embeddings: Any
    predicted: Sequence[str | Collection[str] | None]
    gold: Sequence[str | Collection[str]]
    boundaries: Sequence[StageBoundaryCounts] = ()
    label_names: Sequence[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    name: str
    figure: float
    threshold: float | None
    op: str  # ">=" | "<="
    passed: bool | None  # None: informational without a threshold
    required: bool
    detail: str


@dataclass(frozen=True)
class LivenessReport:
    passed: bool
    checks: tuple[CheckResult, ...]
    failures: tuple[str, ...]  # one readable reason per failed required check
    metrics: ClassificationReport
    collapse: CollapseStats
    mcl: MCLAudit
    stages: tuple[StageHealth, ...]
    predicted_counts: tuple[tuple[str, int], ...]  # descending
    gold_counts: tuple[tuple[str, int], ...]
    confusion: ConfusionMatrix | None  # single-label tasks only
    out_of_vocabulary: tuple[str, ...]  # predicted labels not in label_names
    config: GateConfig
    meta: dict[str, Any]

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (no numpy); MCL keeps sizes per inflation, not per-node labels."""
        return {
            "schema": SCHEMA,
            "verdict": "PASS" if self.passed else "FAIL",
            "passed": self.passed,
            "failures": list(self.failures),
            "checks": [asdict(c) for c in self.checks],
            "metrics": self.metrics.summary(),
            "per_label": [asdict(s) for s in self.metrics.per_label],
            "collapse": asdict(self.collapse),
            "mcl": {
                "n_total": self.mcl.n_total, "n_points": self.mcl.n_points, "k": self.mcl.k,
                "n_edges": self.mcl.n_edges,
                "inflations": [
                    {"inflation": r.inflation, "n_clusters": r.n_clusters,
                     "n_clusters_counted": r.count(self.config.min_cluster_size), "sizes": list(r.sizes),
                     "iterations": r.iterations, "converged": r.converged}
                    for r in self.mcl.results
                ],
            },
            "stages": [asdict(s) for s in self.stages],
            "predicted_counts": [list(x) for x in self.predicted_counts],
            "gold_counts": [list(x) for x in self.gold_counts],
            "confusion": self.confusion.to_dict() if self.confusion is not None else None,
            "out_of_vocabulary": list(self.out_of_vocabulary),
            "config": asdict(self.config),
            "meta": self.meta,
        }


def _label_counts(rows: Sequence[Any]) -> Counter:
    c: Counter = Counter()
    for r in rows:
        if r is None or r == "":
            continue
        if isinstance(r, str):
            c[r] += 1
        else:
            c.update(str(x) for x in r)
    return c


def _validate(inputs: LivenessInputs) -> tuple[np.ndarray, bool]:
    x = as_numpy(inputs.embeddings)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"liveness: embeddings must be a non-empty (N, D) array, got shape {x.shape}")
    n = x.shape[0]
    if len(inputs.predicted) != n or len(inputs.gold) != n:
        raise ValueError(
            f"liveness: {n} embeddings but {len(inputs.predicted)} predictions and {len(inputs.gold)} gold labels"
        )
    multi = [not isinstance(g, str) for g in inputs.gold]
    if any(multi) and not all(multi):
        raise ValueError("liveness: gold mixes single labels (str) and label sets")
    return x, all(multi)


def _op_pass(figure: float, threshold: float | None, op: str) -> bool | None:
    if threshold is None:
        return None
    return figure >= threshold if op == ">=" else figure <= threshold


def evaluate_liveness(inputs: LivenessInputs, cfg: GateConfig | None = None) -> LivenessReport:
    """Compute every figure and the verdict. Pure: no files are written."""
    cfg = cfg or GateConfig()
    x, multi = _validate(inputs)
    if multi:
        metrics = multilabel_report(
            [tuple(g) for g in inputs.gold],
            [tuple(p) if p is not None and not isinstance(p, str) else ((p,) if p else ()) for p in inputs.predicted],
        )
        confusion = None
    else:
        pred = [p if (p is None or isinstance(p, str)) else (next(iter(p), None)) for p in inputs.predicted]
        metrics = classification_report(list(inputs.gold), pred)  # type: ignore[arg-type]
        confusion = confusion_matrix(list(inputs.gold), pred, top_n=cfg.confusion_top_n)  # type: ignore[arg-type]
    collapse = collapse_stats(x, inputs.predicted)
    audit = mcl_audit(x, cfg.mcl)
    stages = tuple(chunker_health(inputs.boundaries, cfg.boundary))
    pred_counts = _label_counts(inputs.predicted)
    gold_counts = _label_counts(inputs.gold)
    vocab = set(inputs.label_names) if inputs.label_names is not None else None
    # The cap counts the gold labels the model can say: one outside its vocabulary (a typo in a gold file) cannot
    # add a distinct prediction, and is named in the detail instead.
    unsayable = sorted(lab for lab in gold_counts if vocab is not None and lab not in vocab)
    n_gold_labels = len(gold_counts) - len(unsayable)
    cap = (lambda t: min(t, n_gold_labels)) if cfg.cap_at_gold_labels else (lambda t: t)
    oov = tuple(sorted(lab for lab in pred_counts if vocab is not None and lab not in vocab))

    checks: list[CheckResult] = []
    failures: list[str] = []

    def add(name: str, figure: float, threshold: float | None, op: str, required: bool, detail: str, why: str) -> None:
        ok = _op_pass(figure, threshold, op)
        checks.append(CheckResult(name, float(figure), threshold, op, ok, required, detail))
        if required and ok is False:
            failures.append(why)

    coarse = audit.coarse
    n_clusters = coarse.count(cfg.min_cluster_size)
    t_clusters = cap(cfg.min_clusters)
    n_cols = len(inputs.predicted)
    # Fewer columns than the clusters need cannot show them, collapsed or not: still no proof (FAIL),
    # but the reason says what is missing.
    geometry_why = (f"too few validation columns ({n_cols}) to show {t_clusters} MCL clusters of >= "
                    f"{cfg.min_cluster_size} members: evaluate on more labelled columns"
                    if n_cols < t_clusters * cfg.min_cluster_size else
                    f"embedding geometry collapsed: {n_clusters} MCL cluster(s) at inflation {coarse.inflation}, "
                    f"need >= {t_clusters}")
    add("mcl_clusters", n_clusters, t_clusters, ">=", True,
        f"clusters of >= {cfg.min_cluster_size} members at coarse inflation {coarse.inflation} "
        f"(all: {coarse.n_clusters}; sizes {list(coarse.sizes[:8])}{'...' if coarse.n_clusters > 8 else ''})",
        geometry_why)
    add("macro_f1", metrics.macro_f1, cfg.min_macro_f1, ">=", True,
        f"over {len(metrics.macro_labels)} gold labels, {metrics.n} columns (micro-F1 {metrics.micro_f1:.3f})",
        f"macro-F1 {metrics.macro_f1:.3f} < {cfg.min_macro_f1}")
    t_distinct = cap(cfg.min_distinct_predicted)
    add("distinct_predicted", collapse.n_distinct_predicted, t_distinct, ">=", True,
        f"{n_gold_labels} labels in gold" + (f", {len(oov)} predicted label(s) outside the vocabulary" if oov else "")
        + (f"; gold labels not in the model's vocabulary (misses, not counted): {', '.join(unsayable[:5])}"
           + (", ..." if len(unsayable) > 5 else "") if unsayable else ""),
        f"only {collapse.n_distinct_predicted} distinct predicted label(s), need >= {t_distinct}")
    degenerate = [s for s in stages if s.degenerate]
    if stages:
        detail = "; ".join(f"stage {s.stage}: F={s.boundary_fraction:.3f} free={s.free_rate:.3f}"
                           + (f" [{s.reason}]" if s.reason else "") for s in stages)
        why = "degenerate chunker: " + ", ".join(f"stage {s.stage} {s.reason}" for s in degenerate)
        add("chunker", len(degenerate), 0, "<=", True, detail, why)
    else:
        checks.append(CheckResult("chunker", float("nan"), 0, "<=", False if cfg.require_boundaries else None,
                                  cfg.require_boundaries, "no boundary statistics given"))
        if cfg.require_boundaries:
            failures.append("no boundary statistics given for the chunker check")
    add("mode_share", collapse.mode_share, cfg.max_mode_share, "<=", cfg.max_mode_share is not None,
        f"most frequent prediction: {collapse.mode_label!r}",
        f"mode class {collapse.mode_label!r} takes {collapse.mode_share:.1%} of predictions")
    add("mean_spread", collapse.mean_spread, cfg.min_mean_spread, ">=", cfg.min_mean_spread is not None,
        f"mean pairwise L2 / mean norm (max {collapse.max_spread:.3g}; mean norm {collapse.mean_norm:.3g})",
        f"embeddings have collapsed: mean pairwise L2 is {collapse.mean_spread:.3g} of their norm")

    return LivenessReport(
        passed=not failures,
        checks=tuple(checks),
        failures=tuple(failures),
        metrics=metrics,
        collapse=collapse,
        mcl=audit,
        stages=stages,
        predicted_counts=tuple(sorted(pred_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        gold_counts=tuple(sorted(gold_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        confusion=confusion,
        out_of_vocabulary=oov,
        config=cfg,
        meta=dict(inputs.meta),
    )


def run_liveness(inputs: LivenessInputs, cfg: GateConfig | None = None, out_dir: str | Path | None = None) -> LivenessReport:
    """Evaluate the gate and, when out_dir is given, write liveness.json, liveness.txt (the
    table) and the PNG plots there. Returns the report."""
    report = evaluate_liveness(inputs, cfg)
    if out_dir is not None:
        from aegir.diagnostics.report import write_report_files

        write_report_files(report, out_dir)
    return report
