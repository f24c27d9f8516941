"""`aegir liveness`: run a classifier on validation data and apply the liveness gate.

Glue only: the checks live in `aegir.diagnostics` (model-agnostic), the model in `aegir.inference`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from aegir.diagnostics import GateConfig, LivenessInputs, LivenessReport, StageBoundaryCounts, run_liveness
from aegir.eval_run import default_out_dir, eval_data, eval_dataset
from aegir.inference import LoadedClassifier, Predictions, load_classifier
from aegir.tables.table import LabeledDataset


def gate_inputs(raw: Predictions, predicted: Sequence[tuple[str, ...]], gold: Sequence[tuple[str, ...]],
                labels: list[str], multi_label: bool, meta: dict) -> LivenessInputs:
    """What the gate reads from one evaluation: pooled embeddings, per-stage boundary counts, and the
    predicted and gold label sets (single-label: their one label)."""
    counts = [StageBoundaryCounts(boundaries=raw.n_boundary[:, s], lengths=raw.n_valid[:, s])
              for s in range(raw.n_valid.shape[1])]
    return LivenessInputs(
        embeddings=raw.pooled,
        predicted=[p if multi_label else p[0] for p in predicted],
        gold=[g if multi_label else g[0] for g in gold],
        boundaries=counts,
        label_names=labels,
        meta=meta,
    )


def liveness_for(lc: LoadedClassifier, ds: LabeledDataset, out_dir: str | Path | None = None,
                 cfg: GateConfig | None = None, batch_size: int = 64, views: int = 1,
                 bf16: bool | None = None) -> LivenessReport:
    run = eval_dataset(lc, ds, batch_size=batch_size, views=views, bf16=bf16)
    inputs = gate_inputs(run.raw, [p.predicted for p in run.predictions], [p.gold for p in run.predictions],
                         lc.vocab.labels, lc.multi_label,
                         {"checkpoint": lc.source, "task": lc.task, "data": ds.source, "n_columns": len(ds.targets),
                          "precision": run.precision})
    return run_liveness(inputs, cfg, out_dir)


def run_liveness_cmd(checkpoint: str | Path, data: str | None = None, fmt: str | None = None,
                     out: str | Path | None = None, batch_size: int = 64, views: int = 1,
                     bf16: bool | None = None) -> tuple[LivenessReport, Path]:
    lc = load_classifier(checkpoint)
    ds = eval_data(lc, data, fmt)
    out_dir = Path(out) if out else default_out_dir(lc.source, "liveness")  # inside a specialist's folder
    return liveness_for(lc, ds, out_dir, batch_size=batch_size, views=views, bf16=bf16), out_dir
