"""`aegir` subcommands, one module each; what several share lives here."""

# `--bf16` of `aegir pretrain` and `aegir train` (ModelConfig.cpu_bf16).
BF16_HELP = ("bf16 autocast on CPU as well (decay, WKV, router and residual stream stay fp32): GEMMs ~2-3x faster "
             "where the CPU has AVX512-BF16 or AMX, slower elsewhere (the run log says which). CUDA always runs "
             "bf16 autocast.")
