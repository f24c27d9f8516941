"""`aegir liveness`: run a classifier on validation data and apply the liveness gate.

Glue only: the checks live in `aegir.diagnostics` (model-agnostic), the model in `aegir.inference`.
"""

from __future__ import annotations

from pathlib import Path

from aegir.diagnostics import GateConfig, LivenessInputs, LivenessReport, StageBoundaryCounts, run_liveness
from aegir.eval_run import eval_dataset
from aegir.inference import LoadedClassifier, load_classifier
from aegir.tables.load import load_labeled, merge
from aegir.tables.table import LabeledDataset, TableError


def liveness_for(lc: LoadedClassifier, ds: LabeledDataset, out_dir: str | Path | None = None,
                 cfg: GateConfig | None = None, batch_size: int = 64) -> LivenessReport:
    run = eval_dataset(lc, ds, batch_size=batch_size)
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


def default_validation(lc: LoadedClassifier) -> LabeledDataset:
    """The validation split of the data the classifier was trained on (same paths, seed, synthetic size).

    For sotab-cta that is the SOTAB V2 validation sample; reusing the run's own arguments matters for
    split-by-hash tasks (synthetic, custom), where other arguments would leak training tables.
    """
    from aegir.train.tasks import resolve_task

    a = lc.meta.get("run_args", {})
    task = lc.task
    td = resolve_task(task, a.get("data"), a.get("valid_data"), n_synthetic=a.get("n_synthetic", 600),
                      seed=a.get("seed", 0))
    if td.valid is None:
        raise TableError(f"task {task}: no validation data; pass --data")
    return td.valid


def run_liveness_cmd(checkpoint: str | Path, data: str | None = None, fmt: str | None = None,
                     out: str | Path | None = None, batch_size: int = 64) -> tuple[LivenessReport, Path]:
    lc = load_classifier(checkpoint)
    if data is not None:
        if fmt is None:
            raise TableError("--data needs --format (sotab | gittables | csv | turl | synthetic)")
        ds = merge(list(load_labeled(fmt, data).values()))
    else:
        ds = default_validation(lc)
    out_dir = Path(out) if out else Path(lc.source).parent / "liveness"
    return liveness_for(lc, ds, out_dir, batch_size=batch_size), out_dir
