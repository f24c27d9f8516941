"""CTA / CPA evaluation: the one metrics implementation for column annotation.

Fine-tuning, `aegir eval`, the liveness gate and the benchmarks all call it:
* metrics.py: micro-/macro-F1 over labelled columns (SOTAB convention: macro over the labels
  present in gold), per-label precision/recall/F1, single- and multi-label;
* confusion.py: confusion matrix as an array and as a PNG (top-N labels, the rest pooled);
* predictions.py: prediction records and their CSV/JSONL files;
* outputs.py: decoding score matrices into predictions, and `write_evaluation` (all files);
* selective.py: the risk-coverage table and calibration error of the top-1 score (abstention thresholds).
No torch import anywhere in this package.
"""

from aegir.evaluation.confusion import NONE_LABEL, OTHER_LABEL, ConfusionMatrix, confusion_matrix, plot_confusion_matrix
from aegir.evaluation.metrics import (
    ClassificationReport,
    LabelScore,
    classification_report,
    format_classification_report,
    indicator_matrix,
    multilabel_report,
    multilabel_report_from_indicators,
)
from aegir.evaluation.outputs import EvalOutputs, predictions_from_scores, write_evaluation
from aegir.evaluation.predictions import Prediction, read_predictions, report_from_predictions, write_predictions
from aegir.evaluation.selective import (CoverageRow, SelectiveReport, TemperatureFit, expected_calibration_error,
                                       fit_temperature, fit_temperature_report, selective_report, sigmoid_nll,
                                       softmax_nll)

__all__ = [
    "LabelScore", "ClassificationReport", "classification_report", "multilabel_report",
    "multilabel_report_from_indicators", "indicator_matrix", "format_classification_report",
    "ConfusionMatrix", "confusion_matrix", "plot_confusion_matrix", "OTHER_LABEL", "NONE_LABEL",
    "Prediction", "write_predictions", "read_predictions", "report_from_predictions",
    "predictions_from_scores", "EvalOutputs", "write_evaluation",
    "CoverageRow", "SelectiveReport", "expected_calibration_error", "selective_report", "fit_temperature",
    "TemperatureFit", "fit_temperature_report",
    "softmax_nll", "sigmoid_nll",
]
