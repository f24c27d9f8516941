"""The compiled CPU WKV kernel against the naive recurrence (float64): outputs, final state and every
gradient (its backward is hand-written), ragged lengths around the recompute segment, padding,
the specialised (32, 64) and generic head sizes, and the whole time-mix."""

from __future__ import annotations

import shutil

import pytest
import torch

from aegir.kernels import wkv_cpu
from aegir.model.wkv import describe_impl, resolve_impl, wkv, wkv_naive

from test_model_wkv import TOL, make_inputs, rel_err, time_mix_outputs

if shutil.which("c++") is None:  # no compiler: the model falls back to the chunked form
    pytest.skip("no C++ compiler on this machine", allow_module_level=True)


def test_kernel_builds_here():
    # With a compiler present, a build failure is a bug in the kernel source, not a skip.
    assert wkv_cpu.available(), wkv_cpu.unavailable_reason()


@pytest.mark.parametrize(
    "B,T,H,N",
    [(2, 37, 2, 8),  # generic head size; T not a multiple of the segment
     (1, wkv_cpu.SEGMENT, 1, 32),  # exactly one segment, specialised N = 32
     (2, 3 * wkv_cpu.SEGMENT + 1, 2, 64),  # one step into a fourth segment, specialised N = 64
     (3, 5, 1, 16)],  # shorter than one segment
)
def test_kernel_matches_naive_float64(B, T, H, N):
    inputs = make_inputs(B, T, H, N, seed=T + N)
    o_ref, s_ref = wkv_naive(*inputs, return_state=True)
    o, s = wkv_cpu.wkv_cpu(*inputs, return_state=True)
    assert o.dtype == torch.float64
    assert rel_err(o, o_ref) <= TOL
    assert rel_err(s, s_ref) <= TOL
    # Gradients through both the outputs and the final state.
    g_o, g_s = torch.randn_like(o_ref), torch.randn_like(s_ref)
    grads_ref = torch.autograd.grad((o_ref * g_o).sum() + (s_ref * g_s).sum(), inputs, retain_graph=True)
    grads = torch.autograd.grad((o * g_o).sum() + (s * g_s).sum(), inputs, retain_graph=True)
    for name, gx, gr in zip("r log_w k v a b".split(), grads, grads_ref):
        assert rel_err(gx, gr) <= TOL, name
    # Only the outputs, or only the state, carrying a gradient.
    for loss_ref, loss in (((o_ref * g_o).sum(), (o * g_o).sum()), ((s_ref * g_s).sum(), (s * g_s).sum())):
        got = torch.autograd.grad(loss, inputs, retain_graph=True)
        ref = torch.autograd.grad(loss_ref, inputs, retain_graph=True, allow_unused=True)
        for x, gx, gr in zip(inputs, got, ref):
            gr = torch.zeros_like(x) if gr is None else gr  # r does not reach the state
            assert (gx - gr).abs().max() <= TOL * max(1.0, float(gr.abs().max()))


def test_kernel_padding_and_noncontiguous_inputs():
    B, T, H, N = 3, 40, 2, 8
    inputs = make_inputs(B, T, H, N, seed=11)
    mask = torch.arange(T)[None, :] < torch.tensor([40, 23, 4])[:, None]  # (B, T) right-padded
    o_ref = wkv_naive(*inputs, mask=mask)
    o = wkv(*inputs, mask=mask, impl="kernel")
    assert rel_err(o[mask], o_ref[mask]) <= TOL
    g = torch.randn_like(o) * mask[:, :, None, None]
    for gx, gr in zip(torch.autograd.grad((o * g).sum(), inputs), torch.autograd.grad((o_ref * g).sum(), inputs)):
        assert rel_err(gx, gr) <= TOL
    # (B, H, T, N) storage seen as (B, T, H, N): the kernel makes its own contiguous copies.
    strided = [x.detach().transpose(1, 2).contiguous().transpose(1, 2) for x in inputs]
    assert not strided[0].is_contiguous()
    assert rel_err(wkv_cpu.wkv_cpu(*strided), wkv_naive(*strided)) <= TOL


@pytest.mark.parametrize("N", [32, 64])  # the fp32 vector forms (16 lanes) differ from float64's (8)
def test_kernel_fp32_close_to_float64_reference(N):
    inputs = make_inputs(2, 300, 2, N, seed=5, extreme_decay=True)
    o_ref = wkv_naive(*inputs)
    in32 = [x.detach().float().requires_grad_() for x in inputs]
    o32 = wkv_cpu.wkv_cpu(*in32)
    assert o32.dtype == torch.float32
    assert rel_err(o32.double(), o_ref) < 2e-5
    g = torch.randn_like(o_ref)
    for name, g32, gref in zip("r log_w k v a b".split(), torch.autograd.grad((o32 * g.float()).sum(), in32),
                               torch.autograd.grad((o_ref * g).sum(), inputs)):
        assert rel_err(g32.double(), gref) < 1e-4, name


def test_auto_picks_the_kernel_on_cpu():
    assert resolve_impl("auto", "cpu") == "kernel"
    assert resolve_impl("chunked", "cpu") == "chunked"
    assert describe_impl("auto", "cpu") == "compiled CPU kernel"


def test_time_mix_kernel_equals_naive_float64():
    got, ref = time_mix_outputs("kernel", C=64, N=32)  # N = 32: the kernel's other vectorised size
    for g, r in zip(got, ref):
        assert rel_err(g, r) <= TOL


def test_disabled_by_environment(monkeypatch):
    """AEGIR_CPU_KERNEL=0 opts out (the chunked form is used); the reason is kept."""
    monkeypatch.setattr(wkv_cpu, "_module", None)
    monkeypatch.setattr(wkv_cpu, "_error", None)
    monkeypatch.setenv("AEGIR_CPU_KERNEL", "0")
    assert not wkv_cpu.available()
    assert "AEGIR_CPU_KERNEL" in wkv_cpu.unavailable_reason()
    assert resolve_impl("auto", "cpu") == "chunked"
    assert "AEGIR_CPU_KERNEL=0" in describe_impl("auto", "cpu")  # run logs say why
    with pytest.raises(RuntimeError, match="not available"):
        wkv_cpu.wkv_cpu(*make_inputs(1, 4, 1, 8, seed=0))


def test_build_folder_falls_back_when_the_cache_cannot_be_written(monkeypatch, tmp_path):
    """A read-only home (torch's default extensions cache unwritable) builds under the temp
    directory instead of losing the kernel; TORCH_EXTENSIONS_DIR, when set, is torch's to use."""
    import tempfile

    blocked = tmp_path / "not_a_dir"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # writable: torch's default stands
    assert wkv_cpu.build_directory("ext") is None
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    got = wkv_cpu.build_directory("ext")
    assert got is not None and got.is_dir() and got.name == "ext" and (tmp_path / "tmp") in got.parents
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "mine"))
    assert wkv_cpu.build_directory("ext") is None


def test_kernel_empty_sequence():
    """T = 0 (outputs, checkpoints and final state are allocated without a zero fill): the state stays
    zero and the backward runs on empty gradients."""
    inputs = make_inputs(2, 0, 1, 8, seed=0)
    o, s = wkv_cpu.wkv_cpu(*inputs, return_state=True)
    assert o.shape == (2, 0, 1, 8) and s.shape == (2, 1, 8, 8) and s.abs().max() == 0
    grads = torch.autograd.grad(o.sum() + s.sum(), inputs)
    assert all(g.shape == x.shape for g, x in zip(grads, inputs))
