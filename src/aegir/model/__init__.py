"""The backbone: RWKV-7 blocks inside an H-Net with dynamic chunking (docs/architecture.md)."""

from aegir.model.aegir import (
    AegirClassifier,
    AegirModel,
    BackboneOutput,
    ClassifierOutput,
    LMOutput,
    ModelInputError,
    StepOutput,
    named_lr_multipliers,
)
from aegir.model.hnet import StageState, StageStats
from aegir.model.summary import FlopsPerByte, ParamCounts, flops_per_byte, format_parameter_counts, parameter_counts

__all__ = [
    "AegirModel",
    "AegirClassifier",
    "BackboneOutput",
    "ClassifierOutput",
    "LMOutput",
    "StageStats",
    "StageState",
    "StepOutput",
    "ModelInputError",
    "named_lr_multipliers",
    "ParamCounts",
    "parameter_counts",
    "format_parameter_counts",
    "FlopsPerByte",
    "flops_per_byte",
]
