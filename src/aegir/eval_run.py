"""`aegir eval`: score a classifier on labelled data and write report, predictions and confusion PNG."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from aegir.encoding.batch import EncodedColumn, encode_dataset
from aegir.evaluation import (
    ClassificationReport, Prediction, SelectiveReport, classification_report, confusion_matrix,
    TemperatureFit, format_classification_report, multilabel_report, plot_confusion_matrix, selective_report,
    write_predictions,
)
from aegir.inference import (LoadedClassifier, Predictions, inference_precision, load_classifiers, precision_name,
                             predict_ensemble, read_at_budget)
from aegir.tables.load import load_labeled, merge
from aegir.tables.table import LabeledDataset, TableError


@dataclass
class EvalRun:
    report: ClassificationReport
    predictions: list[Prediction]
    raw: Predictions
    examples: list[EncodedColumn]
    out_dir: Path | None
    text: str
    precision: str = "fp32"  # what the model ran at: "fp32" or "bf16" (precision_name)
    selective: SelectiveReport | None = None  # single-label: coverage/accuracy per score threshold, ECE
    unknown_gold: dict[str, int] = field(default_factory=dict)  # gold labels the model cannot say -> columns


def predicted_label_sets(raw: Predictions, labels: list[str], multi_label: bool) -> list[tuple[str, ...]]:
    """Single-label: the argmax. Multi-label: every label with sigmoid > 0.5, or the best one if none is."""
    if not multi_label:
        return [(labels[int(j)],) for j in raw.logits.argmax(1)]
    on = 1 / (1 + np.exp(-raw.logits)) > 0.5
    return [tuple(labels[j] for j in np.flatnonzero(r)) or (labels[int(r_logits.argmax())],)
            for r, r_logits in zip(on, raw.logits)]


def unknown_gold_note(unknown: Counter, why: str = "are not in the model's vocabulary") -> str:
    """One line naming gold labels the model cannot predict (most frequent first, with column counts).
    Shared by `aegir eval` and `aegir train` (validation labels training never saw)."""
    shown = ", ".join(f"{g} ({n})" for g, n in unknown.most_common(10)) + (", ..." if len(unknown) > 10 else "")
    return (f"{sum(unknown.values())} gold label(s) of {len(unknown)} name(s) {why} and count as misses: {shown}")


def score_label_sets(gold: list[tuple[str, ...]], predicted: list[tuple[str, ...]],
                     multi_label: bool) -> ClassificationReport:
    """The report for one evaluation; macro-F1 over gold labels, as the SOTAB authors report it.
    Gold labels outside the model's vocabulary count as misses (the model can never say them)."""
    if multi_label:
        return multilabel_report(gold, predicted)
    return classification_report([g[0] for g in gold], [p[0] for p in predicted])


def eval_dataset(lc: LoadedClassifier | Sequence[LoadedClassifier], ds: LabeledDataset, batch_size: int = 64,
                 top_k: int = 3, views: int = 1, max_bytes: int | None = None, bf16: bool | None = None) -> EvalRun:
    """Predict and score every labelled column. `views` > 1 averages the logits over that many row
    views of each column (view 0 deterministic, the rest random row subsets; see encode_dataset).
    Several classifiers (`load_classifiers`) are scored as an ensemble: mean probability. `max_bytes` reads
    that many bytes per column instead of each member's trained budget (`read_at_budget`). `bf16`: run in
    bf16 autocast (True) or fp32 (False) instead of the precision each member was trained with
    (`inference_precision`)."""
    members = [read_at_budget(m, max_bytes) for m in ([lc] if isinstance(lc, LoadedClassifier) else list(lc))]
    lc = members[0]
    check_data_kind(lc, ds)
    labels = lc.vocab.labels
    index = {l: i for i, l in enumerate(labels)}
    examples = encode_dataset(ds, index, lc.serialize_cfg)
    if not examples:
        raise TableError("no labelled columns to evaluate")

    def encode_view(m: LoadedClassifier, v: int) -> list[EncodedColumn]:
        return examples if m is lc and v == 0 else encode_dataset(ds, index, m.serialize_cfg, view=v)

    with inference_precision(members, bf16):
        raw = predict_ensemble(members, encode_view, views, batch_size)
        precision = precision_name(lc)  # the first member's; with bf16=None members trained differently differ
    idx, scores = raw.top_k(top_k, lc.multi_label)
    predicted = predicted_label_sets(raw, labels, lc.multi_label)
    preds: list[Prediction] = []
    for i, t in enumerate(ds.targets):
        cands = tuple((labels[j], float(s)) for j, s in zip(idx[i], scores[i]))
        preds.append(Prediction(table=ds.tables[t.table_index].name, column=t.column, predicted=predicted[i],
                                score=cands[0][1], gold=t.labels, main_column=t.main_column, candidates=cands))
    rep = score_label_sets([p.gold for p in preds], predicted, lc.multi_label)
    text = format_classification_report(rep)
    sel = None
    if not lc.multi_label:  # which `annotate --min-score` threshold keeps which share of columns, how well
        sel = selective_report([p.gold[0] for p in preds], [p.predicted[0] for p in preds], [p.score for p in preds])
        text += "\n" + sel.format()
    unknown = Counter(g for p in preds for g in p.gold if g not in index)
    if unknown:  # misses by construction; a typo in a gold file looks exactly like this
        text += "\nnote: " + unknown_gold_note(unknown)
    return EvalRun(rep, preds, raw, examples, None, text, precision, sel, dict(unknown))


def check_data_kind(lc: LoadedClassifier, ds: LabeledDataset) -> None:
    """A CPA (column-pair) model scores pairs with a main column, a CTA model single columns: scoring one on the
    other's data would read shared label names (email, telephone) as comparable and miss the rest."""
    pairs = ds.task == "cpa" or any(t.main_column is not None for t in ds.targets)
    if pairs != lc.cpa:
        kind, other = ("CPA", "CTA") if lc.cpa else ("CTA", "CPA")
        raise TableError(f"{lc.source}: a {kind} model ({lc.task}) cannot be scored on {other} data "
                         f"({ds.source or 'the data given'}); pass {kind} data")


def default_validation(lc: LoadedClassifier) -> LabeledDataset:
    """The validation split of the data the classifier was trained on (same paths, seed, synthetic size).

    For sotab-cta that is the SOTAB V2 validation sample; reusing the run's own arguments matters for
    split-by-hash tasks (synthetic, custom), where other arguments would leak training tables.
    """
    from aegir.train.tasks import resolve_task

    a = lc.meta.get("run_args", {})
    task = lc.task
    for key, flag in (("data", "--data"), ("valid_data", "--valid-data")):
        # Runs record their data paths absolute; older ones as typed, relative to where training ran.
        if a.get(key) and "://" not in str(a[key]) and not Path(a[key]).exists():
            raise TableError(f"{lc.source}: the run's {flag} {a[key]} (recorded in the checkpoint) is not there "
                             "from here; pass --data and --format to evaluate on it")
    # Runs from before split_seed held their validation tables out with the training seed.
    td = resolve_task(task, a.get("data"), a.get("valid_data"), n_synthetic=a.get("n_synthetic", 600),
                      seed=a.get("seed", 0), split_seed=a.get("split_seed", a.get("seed", 0)),
                      cv=(a["cv_fold"], a["cv_folds"]) if a.get("cv_folds") else None)
    if td.valid is None:
        raise TableError(f"task {task}: no validation data; pass --data")
    return td.valid


def eval_data(lc: LoadedClassifier, data: str | None = None, fmt: str | None = None,
              task: str | None = None) -> LabeledDataset:
    """--data/--format when given; else `task`'s validation split, or the checkpoint's own one."""
    if data is not None:
        if fmt is None:
            raise TableError("--data needs --format (sotab | gittables | csv | turl | synthetic)")
        return merge(list(load_labeled(fmt, data).values()))
    if task and task != lc.task:
        from aegir.train.tasks import resolve_task

        td = resolve_task(task)
        if td.valid is None:
            raise TableError(f"task {task} has no validation data; pass --data")
        return td.valid
    return default_validation(lc)


def _slug(name: str) -> str:
    """A data path's last part as a folder-name suffix: `CTA/Validation` -> `Validation`, `sp_cv_3.csv` -> `sp_cv_3`."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.removesuffix(".csv").removesuffix(".gz"))[:60] or "data"


def default_out_dir(source: str | Path, name: str) -> Path:
    """Where a command writes about a classifier by default: beside a checkpoint file (its run folder's
    `name`/), inside an exported specialist folder (`specialists/cta/name`: a folder of specialists
    would otherwise share one report)."""
    source = Path(source)
    return source / name if source.is_dir() else source.parent / name


def run_eval(checkpoint: str | Path | Sequence[str | Path], task: str | None = None, data: str | None = None,
             fmt: str | None = None, out: str | Path | None = None, batch_size: int = 64, views: int = 1,
             max_bytes: int | None = None, bf16: bool | None = None) -> EvalRun:
    """Evaluate one classifier, or several as an ensemble (a list of checkpoints: mean probability;
    the validation data and the default output folder come from the first)."""
    members = load_classifiers([checkpoint] if isinstance(checkpoint, (str, Path)) else list(checkpoint))
    lc = members[0]
    ds = eval_data(lc, data, fmt, task)
    run = eval_dataset(members, ds, batch_size, views=views, max_bytes=max_bytes, bf16=bf16)
    name = "eval" if len(members) == 1 else f"eval-ensemble{len(members)}"
    if data is not None:  # other data than the run's validation split: its own folder, not over the run's report
        name += "-" + _slug(Path(data).name or "data")
    out_dir = Path(out) if out else default_out_dir(lc.source, name)
    out_dir.mkdir(parents=True, exist_ok=True)
    sel = {"selective": run.selective.to_dict()} if run.selective is not None else {}
    what = {"checkpoints": [m.source for m in members], "task": task or lc.task,
            "data": str(Path(data).resolve()) if data is not None else "the checkpoint's validation split",
            "format": fmt, "views": views, "max_bytes": max_bytes, "columns": len(run.predictions)}
    (out_dir / "report.json").write_text(json.dumps({**run.report.to_dict(), "precision": run.precision, **sel,
                                                     "unknown_gold": run.unknown_gold, "evaluated": what}, indent=1))
    write_predictions(out_dir / "predictions.jsonl", run.predictions)
    if not lc.multi_label:
        cm = confusion_matrix([p.gold[0] for p in run.predictions], [p.predicted[0] for p in run.predictions], top_n=30)
        plot_confusion_matrix(cm, out_dir / "confusion.png", title=f"{lc.task}: confusion (top 30 gold labels)")
    run.out_dir = out_dir
    return run


@dataclass
class CalibrationResult(TemperatureFit):
    """What `calibrate` fitted, on which columns, and what it changed (scores only: no argmax moves):
    the fit's figures, plus where the calibrated copy went and the columns left out."""

    checkpoint: Path  # the calibrated copy
    n_skipped: int  # columns whose gold label the model cannot predict (not in its vocabulary)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "checkpoint": str(self.checkpoint)}


def calibrate(checkpoint: str | Path, out: str | Path, task: str | None = None, data: str | None = None,
              fmt: str | None = None, views: int = 1, batch_size: int = 64) -> CalibrationResult:
    """Fit a temperature for a classifier on labelled data (default: the validation split it was
    trained with; use data it was not trained on) and write a copy of the checkpoint that carries it
    (`extra["temperature"]`, and the figures under `extra["calibration"]`), so annotate/eval scores
    are softmax(logits / T), or for multi-label models sigmoid(logits / T) per label (fitted on the
    binary cross-entropy of every column-label pair; no label crosses 0.5, so predicted sets stay).
    Fit with the `views` you will annotate with. A checkpoint that already has a temperature is
    refitted from its raw logits."""
    from dataclasses import replace as dc_replace

    from aegir.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from aegir.evaluation import fit_temperature_report, indicator_matrix
    from aegir.inference import classifier_source, load_classifier

    src = classifier_source(checkpoint)
    if src.is_dir():
        raise CheckpointError(f"{src}: calibrate takes a training checkpoint (final.pt); calibrate it, then export")
    lc = load_classifier(src)
    out = Path(out)
    if out.resolve() == src.resolve():
        raise CheckpointError(f"{out}: write the calibrated copy to a new path, not over the checkpoint itself")
    ds = eval_data(lc, data, fmt, task)
    run = eval_dataset(dc_replace(lc, temperature=1.0), ds, batch_size, views=views)
    index = {l: i for i, l in enumerate(lc.vocab.labels)}
    # Single-label: the first gold label must be in the vocabulary; multi-label: at least one (the
    # others count as absent labels the model cannot score).
    rows = [i for i, p in enumerate(run.predictions)
            if p.gold and (any(g in index for g in p.gold) if lc.multi_label else p.gold[0] in index)]
    if not rows:
        raise TableError("no labelled column has a gold label in the model's vocabulary: nothing to fit on")
    logits = run.raw.logits[rows].astype(np.float64)  # (N, L)
    if lc.multi_label:  # (N, L) 0/1 targets over the vocabulary
        gold = indicator_matrix([[g for g in run.predictions[i].gold if g in index] for i in rows], lc.vocab.labels)
    else:
        gold = np.array([index[run.predictions[i].gold[0]] for i in rows])  # (N,)
    fit = fit_temperature_report(logits, gold, multi_label=lc.multi_label)
    res = CalibrationResult(**fit.to_dict(), checkpoint=out, n_skipped=len(run.predictions) - len(rows))
    ck = load_checkpoint(src, kind="classifier")
    info = {**{k: v for k, v in res.to_dict().items() if k != "checkpoint"}, "views": views,
            "data": data or f"validation split of {task or lc.task}", "source_checkpoint": str(src)}
    save_checkpoint(out, ck.model_state, ck.config, {**ck.extra, "temperature": fit.temperature, "calibration": info},
                    kind="classifier", step=ck.step, run_args=ck.run_args, metrics=ck.metrics, commit=ck.git_commit)
    return res
