"""From model scores to prediction records, and the one-call writer behind `aegir eval`."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Sequence

import numpy as np

from aegir.evaluation._io import atomic_write_bytes
from aegir.evaluation.confusion import ConfusionMatrix, confusion_matrix, plot_confusion_matrix
from aegir.evaluation.metrics import ClassificationReport, format_classification_report
from aegir.evaluation.predictions import Prediction, report_from_predictions, write_predictions

__all__ = ["predictions_from_scores", "EvalOutputs", "write_evaluation"]


def predictions_from_scores(
    scores: Any,
    labels: Sequence[str],
    keys: Sequence[tuple[str, int]],
    gold: Sequence[str | Collection[str] | None] | None = None,
    main_columns: Sequence[int | None] | None = None,
    multi_label: bool = False,
    threshold: float = 0.5,
    top_k: int = 3,
    allowed: Collection[str] | None = None,
) -> list[Prediction]:
    """Decode an (N, L) score matrix (softmax probabilities, or sigmoids when multi_label) whose
    columns are `labels` into Prediction records keyed by (table, column).

    Single-label: the arg-max label and its score. Multi-label: every label scoring >= threshold,
    best first (none above the threshold = an abstention). `allowed` restricts decoding to a label
    subset (scores of other labels are ignored; scores are not renormalised, so they stay
    comparable with unrestricted runs). `candidates` holds the top_k (label, score) pairs.
    """
    s = np.asarray(scores.detach().cpu().numpy() if hasattr(scores, "detach") else scores, dtype=np.float64)
    if s.ndim != 2 or s.shape != (len(keys), len(labels)):
        raise ValueError(f"scores must be (N={len(keys)}, L={len(labels)}), got shape {s.shape}")
    if gold is not None and len(gold) != len(keys):
        raise ValueError(f"{len(keys)} columns but {len(gold)} gold entries")
    if main_columns is not None and len(main_columns) != len(keys):
        raise ValueError(f"{len(keys)} columns but {len(main_columns)} main-column entries")
    usable = np.ones(len(labels), dtype=bool)
    if allowed is not None:
        unknown = set(allowed) - set(labels)
        if unknown:
            raise ValueError(f"allowed labels not in the model's label set: {sorted(unknown)[:10]}")
        usable = np.array([lab in allowed for lab in labels])
        if not usable.any():
            raise ValueError("allowed is empty: no label left to predict")
    masked = np.where(usable[None, :], s, -np.inf)  # (N, L)
    k = max(1, min(top_k, int(usable.sum())))
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]  # (N, k) best first
    out: list[Prediction] = []
    for i, (table, column) in enumerate(keys):
        cands = tuple((labels[j], float(s[i, j])) for j in order[i])
        if multi_label:
            above = [j for j in np.argsort(-masked[i], kind="stable") if usable[j] and s[i, j] >= threshold]
            predicted = tuple(labels[j] for j in above)
            score = float(s[i, above[0]]) if above else None
        else:
            predicted = (cands[0][0],)
            score = cands[0][1]
        g: tuple[str, ...] = ()
        if gold is not None and gold[i] is not None and gold[i] != "":
            g = (gold[i],) if isinstance(gold[i], str) else tuple(gold[i])  # type: ignore[arg-type]
        out.append(Prediction(str(table), int(column), predicted, score, g,
                              None if main_columns is None else main_columns[i], cands))
    return out


@dataclass(frozen=True)
class EvalOutputs:
    report: ClassificationReport
    confusion: ConfusionMatrix | None
    files: dict[str, Path] = field(default_factory=dict)


def _clean(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_evaluation(
    out_dir: str | Path,
    predictions: Sequence[Prediction],
    labels: Sequence[str] | None = None,
    multi_label: bool | None = None,
    top_n: int = 30,
    predictions_format: str = "csv",
    meta: dict[str, Any] | None = None,
) -> EvalOutputs:
    """Score `predictions` (those with gold) and write, under out_dir: metrics.json (headline +
    per-label scores + meta), per_label.csv, report.txt, predictions.<csv|jsonl> (all predictions,
    labelled or not) and, for single-label tasks, confusion.png + confusion.json (top_n labels)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = report_from_predictions(predictions, labels=labels, multi_label=multi_label)
    files: dict[str, Path] = {}
    doc = {"summary": report.summary(), "macro_over": report.macro_over,
           "macro_labels": list(report.macro_labels), "per_label": report.to_dict()["per_label"],
           "meta": dict(meta or {})}
    files["metrics"] = _write_text(out / "metrics.json", json.dumps(_clean(doc), indent=2, ensure_ascii=False) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["label", "support", "predicted", "tp", "fp", "fn", "precision", "recall", "f1"])
    for s in report.per_label:
        w.writerow([s.label, s.support, s.predicted, s.tp, s.fp, s.fn,
                    f"{s.precision:.6f}", f"{s.recall:.6f}", f"{s.f1:.6f}"])
    files["per_label"] = _write_text(out / "per_label.csv", buf.getvalue())
    files["text"] = _write_text(out / "report.txt", format_classification_report(report))
    files["predictions"] = write_predictions(out / f"predictions.{predictions_format}", predictions)
    cm = None
    if not report.multi_label:
        scored = [p for p in predictions if p.gold]
        cm = confusion_matrix([p.gold[0] for p in scored], [p.predicted[0] if p.predicted else None for p in scored],
                              top_n=top_n)
        files["confusion"] = plot_confusion_matrix(cm, out / "confusion.png")
        files["confusion_json"] = _write_text(out / "confusion.json", json.dumps(cm.to_dict()) + "\n")
    return EvalOutputs(report, cm, files)
