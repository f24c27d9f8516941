"""Diagnostics for fine-tuned column annotators: collapse figures, the MCL geometry audit,
chunker health and the liveness gate (docs/current/ontology/charter.md).

Model-agnostic by design: inputs are arrays and label lists, never a model or checkpoint, so
nothing here imports `aegir.train`, `aegir.model` or `aegir.checkpoint`.
"""

from aegir.diagnostics.boundaries import (
    BoundaryAccumulator,
    BoundaryConfig,
    StageBoundaryCounts,
    StageHealth,
    chunker_health,
    stage_health,
)
from aegir.diagnostics.collapse import CollapseStats, collapse_stats
from aegir.diagnostics.liveness import (
    CheckResult,
    GateConfig,
    LivenessInputs,
    LivenessReport,
    evaluate_liveness,
    run_liveness,
)
from aegir.diagnostics.mcl import MCLAudit, MCLConfig, MCLResult, knn_cosine_graph, mcl, mcl_audit
from aegir.diagnostics.report import format_report, write_report_files, write_report_json

__all__ = [
    "BoundaryAccumulator", "BoundaryConfig", "StageBoundaryCounts", "StageHealth", "chunker_health", "stage_health",
    "CollapseStats", "collapse_stats",
    "CheckResult", "GateConfig", "LivenessInputs", "LivenessReport", "evaluate_liveness", "run_liveness",
    "MCLAudit", "MCLConfig", "MCLResult", "knn_cosine_graph", "mcl", "mcl_audit",
    "format_report", "write_report_files", "write_report_json",
]
