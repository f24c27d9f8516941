"""`aegir` subcommands, one module each; what several share lives here."""

from __future__ import annotations

from typing import Any


def given_fields(ctx: Any, field_of: dict[str, str]) -> set[str]:
    """The config fields whose flags the command line (or an environment variable) set, for `--resume`: a flag left
    at its default is not given (the run's stored value applies), while one typed against the run's value is a
    conflict even when it equals the default (`--epochs 10` against a run of 4). `field_of` maps the command's
    parameter names to config field names where they differ."""
    def given(name: str) -> bool:
        # By name: typer ships its own copy of click, whose ParameterSource is not click's enum.
        src = ctx.get_parameter_source(name)
        return src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP")

    return {field_of.get(name, name) for name in ctx.params if given(name)}


# `--bf16` of `aegir pretrain` and `aegir train` (ModelConfig.cpu_bf16).
BF16_HELP = ("bf16 autocast on CPU as well (decay, WKV, router and residual stream stay fp32): GEMMs ~2-3x faster "
             "where the CPU has AVX512-BF16 or AMX, slower elsewhere (the run log says which). CUDA always runs "
             "bf16 autocast.")

# `--bf16/--fp32` of `aegir eval`, `aegir liveness` and `aegir annotate` (aegir.inference.inference_precision).
INFER_BF16_HELP = ("Run in bf16 autocast (--bf16) or fp32 (--fp32) instead of the precision the checkpoint was "
                   "trained with (the default): bf16 reads up to ~1.3x faster on CPUs with AVX512-BF16 or AMX and picks "
                   "the same label for most columns (99.6-100% for the tiny SOTAB models of docs/results/cta_precision.md; "
                   "check a smaller model with aegir eval --bf16); fp32 is the reference and the right choice on CPUs without them.")
