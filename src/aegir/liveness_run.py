"""`aegir liveness`: run a classifier on validation data and apply the liveness gate.

Glue only: the checks live in `aegir.diagnostics` (model-agnostic), the model in `aegir.inference`.
"""

from __future__ import annotations

from pathlib import Path

from aegir.diagnostics import GateConfig, LivenessInputs, LivenessReport, StageBoundaryCounts, run_liveness
from aegir.eval_run import eval_data, eval_dataset
from aegir.inference import LoadedClassifier, load_classifier
from aegir.tables.table import LabeledDataset


def liveness_for(lc: LoadedClassifier, ds: LabeledDataset, out_dir: str | Path | None = None,
                 cfg: GateConfig | None = None, batch_size: int = 64, views: int = 1) -> LivenessReport:
    run = eval_dataset(lc, ds, batch_size=batch_size, views=views)
    raw = run.raw
    counts = [StageBoundaryCounts(boundaries=raw.n_boundary[:, s], lengths=raw.n_valid[:, s])
              for s in range(raw.n_valid.shape[1])]
    multi = lc.multi_label
    inputs = LivenessInputs(
        embeddings=raw.pooled,
        predicted=[p.predicted if multi else p.predicted[0] for p in run.predictions],
        gold=[p.gold if multi else p.gold[0] for p in run.predictions],
        boundaries=counts,
        label_names=lc.vocab.labels,
        meta={"checkpoint": lc.source, "task": lc.task, "data": ds.source, "n_columns": len(ds.targets)},
    )
    return run_liveness(inputs, cfg, out_dir)


def run_liveness_cmd(checkpoint: str | Path, data: str | None = None, fmt: str | None = None,
                     out: str | Path | None = None, batch_size: int = 64, views: int = 1) -> tuple[LivenessReport, Path]:
    lc = load_classifier(checkpoint)
    ds = eval_data(lc, data, fmt)
    out_dir = Path(out) if out else Path(lc.source).parent / "liveness"
    return liveness_for(lc, ds, out_dir, batch_size=batch_size, views=views), out_dir
