"""The RWKV-7 WKV recurrence as a C++ CPU kernel (`wkv7_cpu.cpp`), built on first use.

Why: on CPU the chunked PyTorch form (`aegir.model.wkv.wkv_chunked`) spends most of a tiny
training step in small batched GEMMs and full-size elementwise passes, and does ~3x the FLOPs of
the recurrence. The kernel runs the recurrence itself, one (batch, head) per task, with the state
in cache; its backward recomputes states from checkpoints every `SEGMENT` steps.

The extension is compiled with torch.utils.cpp_extension (g++ and ninja) into the torch extensions
cache (`TORCH_EXTENSIONS_DIR`, default ~/.cache/torch_extensions; where that cannot be written, as
with a read-only home on a cluster node, a per-user folder under the system's temp directory), once
per source version and CPU (it is built with -march=native, so the CPU's flags are part of its
name). Where it cannot be built, `available()` is False with the reason in `unavailable_reason()`, and the model's
`wkv_impl="auto"` falls back to the chunked form. `python -m aegir.kernels build` builds it ahead
of time (`make install` does).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

SEGMENT = 16  # backward recomputes states in segments of this many steps (S holds SEGMENT + 1 states)
# One extension: the WKV recurrence and the blocks' fused elementwise ops (tmix_cpu.py); the header
# is shared by the latter two. torch rebuilds when a source or a flag changes, not a header: the
# header's hash goes into the flags (see load).
_SOURCES = [Path(__file__).with_name(n) for n in ("wkv7_cpu.cpp", "tmix_cpu.cpp", "shift_lerp_cpu.cpp")]
_HEADERS = [Path(__file__).with_name("cpu_ops.h")]
_lock = threading.Lock()
_module = None
_error: str | None = None


def _cpu_tag() -> str:
    """A short hash of the CPU model and flags: a -march=native build must not run on another CPU."""
    info = platform.processor() + platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("model name", "flags")):
                    info += line
                if line.startswith("flags"):
                    break
    except OSError:
        pass
    return hashlib.sha1(info.encode()).hexdigest()[:10]


def _headers_hash() -> str:
    """A short hash of the shared headers' text, passed as a define so that editing only a header
    rebuilds the extension (torch hashes the sources and flags, not what they include)."""
    h = hashlib.sha1()
    for p in _HEADERS:
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def build_directory(name: str) -> Path | None:
    """Where to build extension `name`: None (torch's own choice) when TORCH_EXTENSIONS_DIR is set or
    torch's default cache can be written; otherwise a per-user folder under the temp directory, so
    that a read-only home does not silently cost the kernel."""
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return None
    from torch.utils.cpp_extension import get_default_build_root

    root = Path(get_default_build_root())
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):  # os.access says yes to root on read-only mounts
            pass
        return None
    except OSError:
        user = os.getuid() if hasattr(os, "getuid") else os.getlogin()
        path = Path(tempfile.gettempdir()) / f"aegir_torch_extensions_{user}" / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def _ensure_ninja_on_path() -> None:
    """cpp_extension runs `ninja`; a venv's pip-installed ninja is on PATH only when the venv is active."""
    scripts = sysconfig.get_path("scripts")
    if shutil.which("ninja") is None and scripts and (Path(scripts) / "ninja").exists():
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")


def load(verbose: bool = False):
    """The compiled module, building it if needed; None (and the reason kept) if it cannot be built."""
    global _module, _error
    if _module is not None or _error is not None:
        return _module
    with _lock:
        if _module is not None or _error is not None:
            return _module
        if os.environ.get("AEGIR_CPU_KERNEL", "1") == "0":
            _error = "disabled by AEGIR_CPU_KERNEL=0"
            return None
        if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
            _error = f"only built on Linux x86_64/aarch64 (this is {sys.platform} {platform.machine()})"
            return None
        _ensure_ninja_on_path()
        if shutil.which(os.environ.get("CXX", "c++")) is None:
            _error = "no C++ compiler (c++) on PATH"
            return None
        from torch.utils import cpp_extension

        # -fno-math-errno: std::sqrt may then compile to the vector instruction; with errno semantics
        # GCC emits a libm call per element, which kept relu²'s backward (2 sqrt(out)) from vectorising
        # (1.7x slower). Nothing here reads errno.
        march = ["-march=native"] if platform.machine() == "x86_64" else ["-mcpu=native"]
        t0 = time.perf_counter()
        try:
            name = f"aegir_wkv7_cpu_{_cpu_tag()}"
            build_dir = build_directory(name)
            _module = cpp_extension.load(
                name=name,
                build_directory=None if build_dir is None else str(build_dir),
                sources=[str(p) for p in _SOURCES],
                extra_cflags=["-O3", "-fno-math-errno", "-fopenmp", *march, f"-DAEGIR_HEADERS={_headers_hash()}"],
                extra_ldflags=["-fopenmp"],
                verbose=verbose,
            )
        except Exception as e:  # compiler errors, missing ninja, ...: fall back, keep the reason
            _error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else e}"
            return None
        if time.perf_counter() - t0 > 3.0:  # a cached build loads in well under a second
            print(f"aegir: built the WKV CPU kernel in {time.perf_counter() - t0:.0f} s (cached for later runs)",
                  file=sys.stderr)
        return _module


def available() -> bool:
    return load() is not None


def unavailable_reason() -> str | None:
    load()
    return _error


class _WKV7(torch.autograd.Function):
    @staticmethod
    def forward(ctx, r, log_w, k, v, a, b, cu):
        w = log_w.exp()  # one vectorised pass here instead of a scalar exp per element in the kernel
        o, ckpts, final = load().forward(r, w, k, v, a, b, SEGMENT, cu)
        ctx.save_for_backward(r, w, k, v, a, b, ckpts, cu)
        return o, final

    @staticmethod
    @once_differentiable  # hand-written C++ backward: no double backward
    def backward(ctx, d_o, d_final):
        r, w, k, v, a, b, ckpts, cu = ctx.saved_tensors
        d_o = torch.zeros_like(v) if d_o is None else d_o  # o has v's shape (B, T, H, V)
        empty = r.new_empty(0)
        d_state = empty if d_final is None else d_final.contiguous()
        grads = load().backward(r, w, k, v, a, b, ckpts, d_o.contiguous(), d_state, SEGMENT, cu)
        return (*grads, None)


def wkv_cpu(r: Tensor, log_w: Tensor, k: Tensor, v: Tensor, a: Tensor, b: Tensor,
            return_state: bool = False, cu_seqlens: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
    """The WKV recurrence on (B, T, H, N) CPU tensors (fp32 or float64; no mask: the caller turns
    padding into identity steps first). Returns o (B, T, H, V), and with `return_state` also the
    state after the last position (B, H, K, V). With cu_seqlens (S + 1,) int64 and B = 1, the
    positions are S packed sequences (sequence s: cu_seqlens[s] .. cu_seqlens[s+1] - 1), each
    starting from a zero state; the states returned are then (S, H, K, V)."""
    if load() is None:
        raise RuntimeError(f"the WKV CPU kernel is not available: {_error}")
    if r.is_cuda:
        raise ValueError("wkv_cpu needs CPU tensors")
    cu = r.new_empty(0, dtype=torch.long) if cu_seqlens is None else cu_seqlens.to(torch.long).contiguous()
    o, final = _WKV7.apply(*(x.contiguous() for x in (r, log_w, k, v, a, b)), cu)
    return (o, final) if return_state else o
