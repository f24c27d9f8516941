"""The fused CPU ops of an RWKV-7 block (aegir.kernels.tmix_cpu) against the eager PyTorch code,
which is the reference: float64 outputs and every gradient (inputs, v_first, each parameter) of
the time-mix and the channel-mix, with padding, both kinds of layer (with and without the value
residual), a removal key that hits F.normalize's eps, the specialised and a generic head size, and
a whole model; fp32 closeness; and when the fused path is (not) taken."""

from __future__ import annotations

import shutil

import pytest
import torch

from aegir.config import ModelConfig
from aegir.kernels import tmix_cpu, wkv_cpu
from aegir.model import AegirModel
from aegir.model.rwkv7 import RWKV7ChannelMix, RWKV7TimeMix

from test_model_wkv import TOL, rel_err

if shutil.which("c++") is None:  # no compiler: the model runs the eager code
    pytest.skip("no C++ compiler on this machine", allow_module_level=True)

LORA = {"w": 8, "a": 8, "v": 8, "g": 16}


def perturbed(module: torch.nn.Module, seed: int, scale: float = 0.3) -> torch.nn.Module:
    """Move every parameter off its init (W_o = 0, W_v2 = 0, ...) so that every path carries signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def grads_of(run, module, inputs, fused: bool, weight: torch.Tensor):
    """Outputs and gradients of sum(weight * outputs) w.r.t. inputs and every parameter."""
    module.zero_grad(set_to_none=True)
    for x in inputs:
        x.grad = None
    with tmix_cpu.fused_time_mix(fused):
        outs = run()
        loss = sum((o * weight).sum() for o in outs)
        loss.backward()
    return ([o.detach().clone() for o in outs], [x.grad.clone() for x in inputs],
            {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None})


def assert_same(got, ref, tol=TOL):
    (o1, x1, p1), (o2, x2, p2) = got, ref
    for a, b in zip(o1, o2):
        assert rel_err(a, b) <= tol
    for a, b in zip(x1, x2):
        assert rel_err(a, b) <= tol
    assert p1.keys() == p2.keys()
    for name in p1:
        assert rel_err(p1[name], p2[name]) <= tol, name


@pytest.mark.parametrize("layer", [0, 2])  # layer 0 defines v_first; later layers mix towards it
@pytest.mark.parametrize("C,N,padded", [(64, 32, True), (128, 64, False), (24, 8, True)])
def test_time_mix_fused_equals_eager_float64(layer, C, N, padded):
    B, T = 3, 41
    tm = perturbed(RWKV7TimeMix(C, N, layer, n_layers=4, lora=LORA, wkv_impl="kernel").double(), seed=C + layer)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(B, T, C, generator=g, dtype=torch.float64, requires_grad=True)
    v_first = torch.randn(B, T, C, generator=g, dtype=torch.float64, requires_grad=True) if layer else None
    mask = torch.arange(T)[None, :] < torch.tensor([T, 17, 3])[:, None] if padded else None  # (B, T)
    weight = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    inputs = [x] if v_first is None else [x, v_first]

    def run():
        out, vf = tm(x, v_first, mask)
        return [out] if layer else [out, vf]  # layer 0's v_first is its value projection: check it too

    fused = grads_of(run, tm, inputs, True, weight)
    eager = grads_of(run, tm, inputs, False, weight)
    assert_same(fused, eager)
    # the fused path really ran: its autograd nodes, not the eager ops, made the output
    with tmix_cpu.fused_time_mix(True):
        out = tm(x, v_first, mask)[0]
    assert _graph_has(out, "_TimeMixCoreBackward") and _graph_has(out, "_ShiftLerpBackward")
    with tmix_cpu.fused_time_mix(False):
        out = tm(x, v_first, mask)[0]
    assert not _graph_has(out, "_TimeMixCoreBackward")


@pytest.mark.parametrize("layer,padded", [(0, False), (2, True)])
def test_time_mix_core_reads_and_returns_bf16_exactly(layer, padded):
    """Under CPU bf16 autocast the projection outputs reach the fused core in bf16 and it returns
    bf16: the fp32 computation on the same values, with the output and the gradients of the bf16
    inputs rounded once, as autocast's casts around an fp32 core would round them. Equal up to that
    rounding: a vector reduction (the removal key's norm) may sum in another order when it reads bf16."""
    B, T, C, N = 2, 37, 64, 32
    g = torch.Generator().manual_seed(11 + layer)

    def rnd(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=g)

    proj = {k: rnd(B, T, C).bfloat16() for k in ("k_raw", "a_l", "v", "g")}  # bf16 projection outputs
    if layer:
        proj.update(v_first=rnd(B, T, C).bfloat16(), v_l=rnd(B, T, C, scale=0.3).bfloat16())
    r, w_l = rnd(B, T, C), rnd(B, T, C, scale=0.5)
    params = dict(w0=rnd(C), a0=rnd(C), v0=rnd(C) if layer else None, k_k=rnd(C), k_a=rnd(C), r_k=rnd(C // N, N),
                  ln_w=rnd(C), ln_b=rnd(C))
    mask = torch.arange(T)[None, :] < torch.tensor([T, 20])[:, None] if padded else None
    d_out = rnd(B, T, C).bfloat16()

    def run(low: bool):
        leaves = {k: t.clone().requires_grad_() if low else t.float().requires_grad_() for k, t in proj.items()}
        r_, w_ = r.clone().requires_grad_(), w_l.clone().requires_grad_()
        ps = {k: None if t is None else t.clone().requires_grad_() for k, t in params.items()}
        out = tmix_cpu.time_mix_core(r_, leaves["k_raw"], w_, leaves["a_l"], leaves["v"], leaves.get("v_first"),
                                     leaves.get("v_l"), leaves["g"], mask, ps["w0"], ps["a0"], ps["v0"], ps["k_k"],
                                     ps["k_a"], ps["r_k"], ps["ln_w"], ps["ln_b"], 1e-5 * N, N)
        out.backward(d_out if low else d_out.float())
        grads = {k: t.grad for k, t in leaves.items()}
        grads.update(r=r_.grad, w_l=w_.grad, **{k: t.grad for k, t in ps.items() if t is not None})
        return out.detach(), grads

    out_low, g_low = run(True)
    out_ref, g_ref = run(False)
    def close(a: torch.Tensor, ref: torch.Tensor) -> bool:  # within one bf16 rounding of the fp32 value
        ulp = 2.0**-8 if a.dtype == torch.bfloat16 else 1e-5
        return bool(((a.float() - ref).abs() <= ulp * ref.abs() + 1e-6 * ref.abs().max()).all())

    assert out_low.dtype == torch.bfloat16 and close(out_low, out_ref)
    for k, t in g_low.items():
        assert t.dtype == (torch.bfloat16 if k in proj else torch.float32), k
        assert close(t, g_ref[k]), k


def _graph_has(t: torch.Tensor, node: str) -> bool:
    seen, todo = set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if type(fn).__name__ == node:
            return True
        todo.extend(f for f, _ in fn.next_functions)
    return False


def test_time_mix_zero_removal_key_takes_the_normalize_eps_branch():
    """A head whose key projection is zero: kk = k / max(|k|, eps) = 0 and its gradient is d_kk / eps
    (F.normalize's clamp); the fused backward must take the same branch."""
    C, N = 64, 32
    tm = perturbed(RWKV7TimeMix(C, N, 1, n_layers=4, lora=LORA, wkv_impl="kernel").double(), seed=3)
    with torch.no_grad():
        tm.key.weight[:N].zero_()  # head 0: k_raw = 0 at every position
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 20, C, generator=g, dtype=torch.float64, requires_grad=True)
    v_first = torch.randn(2, 20, C, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 20, C, generator=g, dtype=torch.float64)

    def run():
        return [tm(x, v_first, None)[0]]

    fused = grads_of(run, tm, [x, v_first], True, weight)
    eager = grads_of(run, tm, [x, v_first], False, weight)
    assert fused[2]["key.weight"][:N].abs().max() > 0  # the eps branch passes a gradient back
    assert_same(fused, eager)


@pytest.mark.parametrize("layer", [0, 3])
def test_channel_mix_fused_equals_eager_float64(layer):
    C = 48
    cm = perturbed(RWKV7ChannelMix(C, layer, n_layers=4, wkv_impl="kernel").double(), seed=layer)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 33, C, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 33, C, generator=g, dtype=torch.float64)
    fused = grads_of(lambda: [cm(x)], cm, [x], True, weight)
    eager = grads_of(lambda: [cm(x)], cm, [x], False, weight)
    assert_same(fused, eager)
    # x = 0 exactly on some entries: relu's gradient there is 0 on both paths
    with torch.no_grad():
        x[0, :5] = 0.0
    assert_same(grads_of(lambda: [cm(x)], cm, [x], True, weight), grads_of(lambda: [cm(x)], cm, [x], False, weight))


def test_shift_lerp_with_some_outputs_unused():
    """Outputs that get no gradient (None in the backward) contribute nothing, as in eager."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 9, 16, generator=g, dtype=torch.float64, requires_grad=True)
    mu = torch.rand(6, 16, generator=g, dtype=torch.float64, requires_grad=True)
    outs = tmix_cpu.shift_lerp(x, mu)
    prev = torch.nn.functional.pad(x, (0, 0, 1, -1))  # (B, T, C): previous position, zero at t = 0
    ref = [x + (prev - x) * mu[j] for j in range(6)]
    for o, r in zip(outs, ref):
        assert rel_err(o, r) <= TOL
    gx, gmu = torch.autograd.grad(outs[1].sum() + 2 * outs[4].sum(), (x, mu))
    rx, rmu = torch.autograd.grad(ref[1].sum() + 2 * ref[4].sum(), (x, mu))
    assert rel_err(gx, rx) <= TOL and rel_err(gmu, rmu) <= TOL
    assert gmu[[0, 2, 3, 5]].abs().max() == 0


@pytest.mark.parametrize("B,T", [(2, 9), (3, 50), (1, 1)])  # 150 rows: tasks of 32 start mid-sequence
def test_shift_lerp_with_the_pre_norm_fused(B, T):
    """shift_lerp(x, mu, norm) = the lerps of norm(x) (eager LayerNorm then token shift) in float64:
    outputs and the gradients of x, mu and the norm's weight and bias, with an unused output; rows
    split over parallel tasks whose first row continues another task's sequence."""
    g = torch.Generator().manual_seed(B * 100 + T)
    C = 24
    x = (3.0 + 2.0 * torch.randn(B, T, C, generator=g, dtype=torch.float64)).requires_grad_()  # off-centre rows
    mu = torch.rand(6, C, generator=g, dtype=torch.float64, requires_grad=True)
    norm = torch.nn.LayerNorm(C, eps=1e-5).double()
    with torch.no_grad():
        norm.weight.copy_(1 + 0.5 * torch.randn(C, generator=g, dtype=torch.float64))
        norm.bias.copy_(0.3 * torch.randn(C, generator=g, dtype=torch.float64))
    w = torch.randn(6, B, T, C, generator=g, dtype=torch.float64)
    w[3] = 0  # one output's gradient is all zero
    params = (x, mu, norm.weight, norm.bias)

    outs = tmix_cpu.shift_lerp(x, mu, norm)
    got = torch.autograd.grad(sum((o * w[j]).sum() for j, o in enumerate(outs)), params)
    y = norm(x)
    prev = torch.nn.functional.pad(y, (0, 0, 1, -1))  # (B, T, C): previous position, zero at t = 0
    ref_outs = [y + (prev - y) * mu[j] for j in range(6)]
    ref = torch.autograd.grad(sum((o * w[j]).sum() for j, o in enumerate(ref_outs)), params)
    for o, r in zip(outs, ref_outs):
        assert rel_err(o, r) <= TOL
    for a, b in zip(got, ref):
        assert rel_err(a, b) <= TOL


def test_shift_lerp_writes_bf16_outputs_as_autocast_would_cast_them():
    """bf16_out (CPU bf16 autocast): those outputs are exactly the fp32 ones rounded to bf16, and
    bf16 gradients for them give exactly the gradients of their fp32 values; float64 is refused."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 40, 16, generator=g, requires_grad=True)
    mu = torch.rand(6, 16, generator=g, requires_grad=True)
    norm = torch.nn.LayerNorm(16)
    low = (True, False, True, True, False, True)
    outs = tmix_cpu.shift_lerp(x, mu, norm, low)
    ref = tmix_cpu.shift_lerp(x, mu, norm)
    for o, r, f in zip(outs, ref, low):
        assert o.dtype == (torch.bfloat16 if f else torch.float32)
        assert torch.equal(o, r.to(o.dtype))
    grads = [torch.randn(r.shape, generator=g).to(o.dtype) for o, r in zip(outs, ref)]
    got = torch.autograd.grad(outs, (x, mu, norm.weight, norm.bias), grads)
    want = torch.autograd.grad(ref, (x, mu, norm.weight, norm.bias), [t.float() for t in grads])
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="bf16 outputs need an fp32 input"):
        tmix_cpu.shift_lerp(x.detach().double(), mu.detach().double(), None, low)


def test_block_fuses_its_pre_norms_into_the_token_shift():
    """On the fused path a block hands its LayerNorms to the token-shift ops (no separate norm in
    the graph); the eager path, and prefill (which keeps the normalised last positions), apply them
    as modules. The whole-model float64 test below checks the values."""
    from aegir.model.rwkv7 import RWKV7Block

    torch.manual_seed(0)
    blk = perturbed(RWKV7Block(32, 16, 0, n_layers=2, lora=LORA, wkv_impl="kernel"), seed=5, scale=0.05)
    x = torch.randn(2, 7, 32, requires_grad=True)
    out, _ = blk(x, None, None)
    assert not _graph_has(out, "NativeLayerNormBackward0") and _graph_has(out, "_ShiftLerpBackward")
    with tmix_cpu.fused_time_mix(False):
        ref, _ = blk(x, None, None)
    assert _graph_has(ref, "NativeLayerNormBackward0")
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)
    pre, _, state = blk.run(x, None, None, last=torch.tensor([6, 3]))
    assert torch.allclose(pre, ref, atol=1e-5, rtol=1e-5)
    assert torch.allclose(state.att_x, blk.ln1(x)[[0, 1], [6, 3]], atol=1e-6)


def test_whole_model_fused_equals_eager_float64():
    """nano (three stages, padded inner stacks, both layer kinds) in float64: LM loss and every gradient."""
    torch.manual_seed(0)
    model = perturbed(AegirModel(ModelConfig.preset("nano", wkv_impl="kernel")).double(), seed=0, scale=0.02)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 256, (2, 96), generator=g)
    mask = torch.ones(2, 96, dtype=torch.bool)
    mask[1, 60:] = False

    def run():
        out = model.lm_loss(ids, mask)
        return [out.loss + out.ratio_loss]

    one = torch.ones((), dtype=torch.float64)
    assert_same(grads_of(run, model, [], True, one), grads_of(run, model, [], False, one))


def test_fp32_fused_as_accurate_as_eager():
    """In fp32, the fused path's loss and gradients are as close to the float64 model as the eager
    path's are (its vectorised exp and reordered sums cost no accuracy that matters)."""
    import copy

    torch.manual_seed(0)
    m64 = perturbed(AegirModel(ModelConfig.preset("nano", wkv_impl="kernel")).double(), seed=1, scale=0.02)
    m32 = copy.deepcopy(m64).float()
    ids = torch.randint(0, 256, (3, 160))
    mask = torch.ones(3, 160, dtype=torch.bool)
    mask[2, 100:] = False

    def run(model, fused):
        one = torch.ones((), dtype=next(model.parameters()).dtype)

        def loss():
            out = model.lm_loss(ids, mask)
            return [out.loss + out.ratio_loss]

        (l,), _, g = grads_of(loss, model, [], fused, one)
        return float(l), {n: t.double() for n, t in g.items()}

    l_ref, g_ref = run(m64, False)
    worst = {}
    for fused in (True, False):
        l, g = run(m32, fused)
        assert abs(l - l_ref) <= 1e-5 * abs(l_ref)
        worst[fused] = max(float((g[n] - g_ref[n]).norm() / g_ref[n].norm().clamp(min=1e-30)) for n in g_ref)
    assert worst[True] <= 1e-4
    assert worst[True] <= 3 * worst[False], worst


def test_fused_path_only_where_it_applies():
    x32 = torch.randn(1, 4, 32)
    assert tmix_cpu.usable(x32) and tmix_cpu.usable(x32.double())
    assert not tmix_cpu.usable(x32.bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):  # cpu_bf16: the residual stream is fp32
        assert tmix_cpu.usable(x32)
    with tmix_cpu.fused_time_mix(False):
        assert not tmix_cpu.usable(x32)
    # a model on the chunked or naive WKV runs the eager (reference) code throughout
    tm = RWKV7TimeMix(32, 16, 1, n_layers=2, lora=LORA, wkv_impl="chunked")
    out = tm(x32, torch.randn(1, 4, 32), None)[0]
    assert not _graph_has(out, "_TimeMixCoreBackward")


def test_bad_shapes_are_refused_with_a_message():
    lib = wkv_cpu.load()
    e = torch.empty(0)
    with pytest.raises(RuntimeError, match="shift_lerp"):
        lib.shift_lerp_forward(torch.randn(2, 3, 8), torch.randn(6, 4), e, e, 1e-5, [], e.bool())
    with pytest.raises(RuntimeError, match="norm weight and bias"):  # a norm over the wrong width
        lib.shift_lerp_forward(torch.randn(2, 3, 8), torch.randn(6, 8), torch.randn(4), torch.randn(4), 1e-5, [],
                               e.bool())
    with pytest.raises(RuntimeError, match="starts must be a contiguous bool tensor of 6 rows"):
        lib.shift_lerp_forward(torch.randn(2, 3, 8), torch.randn(6, 8), e, e, 1e-5, [], torch.ones(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="affine LayerNorm"):
        tmix_cpu.shift_lerp(torch.randn(2, 3, 8), torch.randn(6, 8), torch.nn.LayerNorm(8, elementwise_affine=False))
    k = torch.randn(2, 3, 24)
    with pytest.raises(RuntimeError, match="multiple of the head size"):
        lib.prep_forward(k, k, k, k, e, e, e.bool(), *(torch.randn(24) for _ in range(2)), e,
                         torch.randn(24), torch.randn(24), 16)


def test_bf16_autocast_fused_close_to_eager():
    """Under CPU bf16 autocast (ModelConfig.cpu_bf16) the projections run in bf16 on both paths and the
    fused ops compute in fp32 where the eager path has its fp32 islands: the same model up to bf16
    rounding, fp32 gradients, and the fused nodes in the graph."""
    torch.manual_seed(0)
    model = perturbed(AegirModel(ModelConfig.preset("nano", wkv_impl="kernel", cpu_bf16=True)), seed=2, scale=0.02)
    ids = torch.randint(0, 256, (2, 128))
    mask = torch.ones(2, 128, dtype=torch.bool)
    mask[1, 90:] = False
    seen: dict[str, torch.dtype] = {}
    att = model.hnet.encoder.blocks[-1].att
    att.receptance.register_forward_hook(lambda m, i, o: seen.__setitem__("projection", o.dtype))
    out = {}
    for fused in (True, False):
        model.zero_grad(set_to_none=True)
        with tmix_cpu.fused_time_mix(fused):
            lm = model.lm_loss(ids, mask)
            if fused:
                assert _graph_has(lm.loss, "_TimeMixCoreBackward")
            (lm.loss + lm.ratio_loss).backward()
        out[fused] = (float(lm.loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert seen["projection"] == torch.bfloat16
    (lf, gf), (le, ge) = out[True], out[False]
    assert abs(lf - le) < 0.01 * le
    assert gf.keys() == ge.keys()
    for name in gf:
        assert gf[name].dtype == torch.float32 and torch.isfinite(gf[name]).all(), name
    cos = torch.nn.functional.cosine_similarity(torch.cat([g.flatten() for g in gf.values()]),
                                                torch.cat([g.flatten() for g in ge.values()]), dim=0)
    assert cos > 0.99


def test_double_backward_is_refused():
    """The C++ backwards are not differentiable: asking for a second derivative must raise, not
    silently treat the first one as a constant."""
    tm = perturbed(RWKV7TimeMix(32, 16, 1, n_layers=2, lora=LORA, wkv_impl="kernel").double(), seed=5)
    x = torch.randn(1, 6, 32, dtype=torch.float64, requires_grad=True)
    out = tm(x, torch.randn(1, 6, 32, dtype=torch.float64), None)[0]
    (gx,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|double backward|not differentiable"):
        gx.sum().backward()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relu_square_gradient_from_its_output_is_exact(dtype):
    """The backward reads relu(x)^2 and takes 2 sqrt(out): equal to 2 relu(x) to the last bit (a
    correctly rounded root of a correctly rounded square), over magnitudes from 1e-15 to 1e15."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(4096, generator=g, dtype=torch.float64) * 10.0 ** torch.randint(-15, 16, (4096,), generator=g)).to(dtype)
    x[:7] = torch.tensor([0.0, -0.0, -1.0, 1.0, 3.0, 1e-30, -1e-30], dtype=dtype)
    x.requires_grad_()
    out = tmix_cpu.relu_square(x)
    assert torch.equal(out, torch.relu(x) * torch.relu(x))
    (gx,) = torch.autograd.grad(out.sum(), x)
    tiny = x.detach().abs() < (1e-19 if dtype == torch.float32 else 1e-154)  # r^2 underflows there
    expect = 2 * torch.relu(x.detach())
    assert torch.equal(gx[~tiny], expect[~tiny])
    assert (gx[tiny] - expect[tiny]).abs().max() < 1e-18


def test_relu_square_on_bf16_equals_the_eager_bf16_ops():
    """bf16 activations (CPU bf16 autocast): the fused op and its backward give, bit for bit, what
    eager bf16 relu -> square and autograd give (each product computed in fp32, rounded once)."""
    from aegir.model.rwkv7 import relu_square as eager_relu_square

    g = torch.Generator().manual_seed(3)
    x = (torch.randn(3, 50, 64, generator=g) * 4).bfloat16()
    x[0, 0, :3] = torch.tensor([0.0, -0.0, float("nan")])
    grad = torch.randn(3, 50, 64, generator=g).bfloat16()
    outs, grads = [], []
    for fn in (tmix_cpu.relu_square, eager_relu_square):
        xi = x.clone().requires_grad_()
        out = fn(xi)
        out.backward(grad)
        outs.append(out.detach())
        grads.append(xi.grad)
    assert outs[0].dtype == torch.bfloat16 and grads[0].dtype == torch.bfloat16
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0, equal_nan=True)  # NaN stays NaN
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0, equal_nan=True)
