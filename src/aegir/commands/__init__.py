"""`aegir` subcommands, one module each; what several share lives here."""

# `--bf16` of `aegir pretrain` and `aegir train` (ModelConfig.cpu_bf16).
BF16_HELP = ("bf16 autocast on CPU as well (decay, WKV, router and residual stream stay fp32): GEMMs ~2-3x faster "
             "where the CPU has AVX512-BF16 or AMX, slower elsewhere (the run log says which). CUDA always runs "
             "bf16 autocast.")

# `--bf16/--fp32` of `aegir eval`, `aegir liveness` and `aegir annotate` (aegir.inference.inference_precision).
INFER_BF16_HELP = ("Run in bf16 autocast (--bf16) or fp32 (--fp32) instead of the precision the checkpoint was "
                   "trained with (the default): bf16 reads up to ~1.3x faster on CPUs with AVX512-BF16 or AMX and picks "
                   "the same label for most columns (99.6-100% for the tiny SOTAB models of docs/results/cta_precision.md; "
                   "check a smaller model with aegir eval --bf16); fp32 is the reference and the right choice on CPUs without them.")
