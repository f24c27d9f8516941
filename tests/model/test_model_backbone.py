"""AegirModel / AegirClassifier: config, parameter counts, gradients, padding, heads, input errors."""

from __future__ import annotations

import math

import pytest
import torch

from aegir.config import ModelConfig, ModelConfigError
from aegir.encoding import vocab
from aegir.model import AegirClassifier, AegirModel, ModelInputError, named_lr_multipliers, parameter_counts
from aegir.model.heads import pool_column


def nano(**kw) -> ModelConfig:
    return ModelConfig.preset("nano", **kw)


def batch(B=3, T=48, lengths=(48, 30, 7), seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 256, (B, T), generator=g)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    return ids.masked_fill(~mask, vocab.PAD), mask


# --- config ------------------------------------------------------------------------------------
def test_config_round_trip_strict_and_validated():
    cfg = ModelConfig.preset("tiny", ratio_targets=[4.0, 2.5])
    d = cfg.to_dict()
    assert ModelConfig.from_dict(d) == cfg
    assert d["arch_layout"] == ["w2", ["w2", ["w4"], "w2"], "w2"] and d["d_model"] == [128, 192, 192]
    with pytest.raises(ModelConfigError, match="unknown keys"):
        ModelConfig.from_dict({**d, "dropout": 0.1})
    with pytest.raises(ModelConfigError, match="non-decreasing"):
        ModelConfig.preset("tiny", d_model=[192, 128, 192])
    with pytest.raises(ModelConfigError, match="ratio_targets"):
        ModelConfig.preset("tiny", ratio_targets=[3.0])
    with pytest.raises(ModelConfigError, match="head_size"):
        ModelConfig.preset("nano", head_size=64)  # 96 is not a multiple of 64
    with pytest.raises(ModelConfigError, match="unknown model size"):
        ModelConfig.preset("huge")
    assert (cfg.vocab_size, cfg.n_active) == (vocab.VOCAB_SIZE, vocab.N_ACTIVE)


def test_parameter_counts_match_the_design():
    tiny, small = parameter_counts(ModelConfig.preset("tiny")), parameter_counts(ModelConfig.preset("small"))
    assert abs(tiny.total / 13.5e6 - 1) < 0.02
    assert abs(small.total / 56e6 - 1) < 0.02
    assert tiny.embedding == 65536 * 128 + 2 * 128  # tied table + its input LayerNorm
    assert tiny.total == tiny.embedding + sum(s.params for s in tiny.stages)
    # The meta-device count agrees with a real model.
    real = AegirModel(nano())
    assert parameter_counts(nano()).total == sum(p.numel() for p in real.parameters())


# --- training signal ---------------------------------------------------------------------------
def test_forward_backward_finite_and_every_parameter_reachable():
    torch.manual_seed(0)
    model = AegirModel(nano())
    with torch.no_grad():  # RWKV zero-inits W_o and the channel-mix W_v; perturb so every path carries gradient
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    ids, mask = batch()
    out = model.lm_loss(ids, mask)
    (out.loss + out.ratio_loss).backward()
    assert out.n_tokens == 47 + 29 + 6
    assert len(out.stages) == 2
    for name, p in model.named_parameters():
        if name == "embedding.reserved":  # vocabulary rows no input can hold: frozen, no gradient
            assert not p.requires_grad and p.grad is None
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert model.embedding.live.shape[0] == vocab.N_ACTIVE and model.embedding.live.grad[:256].abs().sum() > 0


def test_initial_loss_is_near_uniform_and_decreases():
    torch.manual_seed(0)
    model = AegirModel(nano())
    ids, mask = batch(B=2, T=40, lengths=(40, 40), seed=1)
    ids[:, 1::2] = ids[:, 0::2]  # a learnable pattern: every odd byte repeats the previous one
    first = model.lm_loss(ids, mask)
    assert first.loss.item() == pytest.approx(math.log(vocab.N_ACTIVE), abs=0.2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(25):
        out = model.lm_loss(ids, mask)
        opt.zero_grad()
        (out.loss + out.ratio_loss).backward()
        opt.step()
    assert out.loss.item() < first.loss.item() - 1.0


def test_lr_multipliers_tag_every_parameter_by_stage():
    cfg = nano(lr_multipliers=[2.0, 1.5, 1.0])
    clf = AegirClassifier(cfg, n_labels=5)
    mults = named_lr_multipliers(clf)
    assert all(hasattr(p, "_aegir_lr_mult") for p in clf.parameters())
    assert mults["backbone.embedding.live"] == 2.0 and mults["head.proj.weight"] == 2.0
    assert mults["backbone.hnet.encoder.blocks.0.att.w0"] == 2.0
    assert mults["backbone.hnet.router.q.weight"] == 2.0
    assert mults["backbone.hnet.inner.encoder.blocks.0.att.w0"] == 1.5
    assert mults["backbone.hnet.pad_dimension"] == 1.5
    assert mults["backbone.hnet.inner.inner.main.blocks.1.ffn.key.weight"] == 1.0


# --- exactness -----------------------------------------------------------------------------------
def test_padding_does_not_change_valid_outputs_float64():
    torch.manual_seed(0)
    model = AegirModel(nano()).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    ids, mask = batch()
    full = model(ids, mask)
    for i, L in enumerate((48, 30, 7)):
        alone = model(ids[i : i + 1, :L])
        assert torch.allclose(full.hidden[i, :L], alone.hidden[0], atol=1e-10, rtol=0)
        for s_full, s_alone in zip(full.stages, alone.stages):
            n = int(s_alone.valid_mask.sum())
            assert torch.equal(s_full.boundary_mask[i, :n], s_alone.boundary_mask[0])
            assert not s_full.boundary_mask[i, n:].any()  # padding never routes


def test_whole_model_chunked_equals_naive_float64():
    torch.manual_seed(0)
    m_chunk = AegirModel(nano(wkv_chunk=8)).double()
    with torch.no_grad():
        for p in m_chunk.parameters():
            p.add_(0.02 * torch.randn_like(p))
    m_naive = AegirModel(nano(wkv_impl="naive")).double()
    m_naive.load_state_dict(m_chunk.state_dict())
    ids, mask = batch(B=2, T=30, lengths=(30, 19))
    outs = [m(ids, mask) for m in (m_chunk, m_naive)]
    h0, h1 = (o.hidden[mask] for o in outs)
    assert ((h0 - h1).abs().max() / h1.abs().max()).item() <= 1e-10
    grads = [torch.autograd.grad(o.hidden[mask].square().sum(), [p for p in m.parameters() if p.requires_grad], allow_unused=True)
             for o, m in zip(outs, (m_chunk, m_naive))]
    for g0, g1 in zip(*grads):
        if g1 is not None and g1.abs().max() > 0:
            assert ((g0 - g1).abs().max() / g1.abs().max()).item() <= 1e-10


# --- heads -----------------------------------------------------------------------------------------
def test_pooling_hand_computed():
    hidden = torch.arange(2 * 4 * 2, dtype=torch.float32).view(2, 4, 2)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    tmask = torch.tensor([[0, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)  # pad position 3 ignored; row 1 empty
    pooled = pool_column(hidden, mask, tmask)
    # row 0: mean of positions 1, 2 = ([2,3] + [4,5]) / 2; last valid = position 2
    assert pooled[0].tolist() == [3.0, 4.0, 4.0, 5.0]
    # row 1: empty target -> zero mean (not NaN); last valid = position 3
    assert pooled[1].tolist() == [0.0, 0.0, 14.0, 15.0]
    # CPA main-column pooling: [target mean | main mean | last]; padding excluded from the main mean too
    mmask = torch.tensor([[1, 0, 0, 1], [1, 1, 0, 0]], dtype=torch.bool)
    pooled = pool_column(hidden, mask, tmask, mmask)
    assert pooled[0].tolist() == [3.0, 4.0, 0.0, 1.0, 4.0, 5.0]  # main: position 0 only (3 is padding)
    assert pooled[1].tolist() == [0.0, 0.0, 9.0, 10.0, 14.0, 15.0]  # main: ([8,9] + [10,11]) / 2


def test_pool_main_classifier_needs_main_mask():
    torch.manual_seed(0)
    ids, mask = batch()
    tmask, mmask = mask.clone(), torch.zeros_like(mask)
    tmask[:, :6], mmask[:, 1:6] = False, True
    clf = AegirClassifier(nano(), n_labels=5, pool_main=True)
    out = clf(ids, mask, tmask, mmask)
    assert out.pooled.shape == (3, clf.pooled_dim) == (3, 3 * 64)
    # the middle third is the main column's mean of the final hidden state
    hidden = clf.backbone(ids, mask).hidden
    torch.testing.assert_close(out.pooled[:, 64:128], hidden[:, 1:6].mean(dim=1))
    with pytest.raises(ModelInputError, match="main_mask"):
        clf(ids, mask, tmask)
    # a plain classifier ignores main_mask: same output with or without it
    plain = AegirClassifier(nano(), n_labels=5).eval()
    torch.testing.assert_close(plain(ids, mask, tmask, mmask).logits, plain(ids, mask, tmask).logits)


def test_classifier_outputs_and_losses():
    torch.manual_seed(0)
    ids, mask = batch()
    tmask = mask.clone()
    tmask[:, 10:] = False
    clf = AegirClassifier(nano(), n_labels=7)
    out = clf(ids, mask, tmask)
    assert out.logits.shape == (3, 7) and out.pooled.shape == (3, clf.backbone.pooled_dim) == (3, 128)
    assert out.ratio_loss.ndim == 0 and len(out.stages) == 2
    loss = clf.loss(out.logits, torch.tensor([0, 3, 6]))
    loss.backward()
    assert torch.isfinite(loss) and clf.head.proj.weight.grad is not None
    ml = AegirClassifier(nano(), n_labels=4, multi_label=True)
    o2 = ml(ids, mask, tmask)
    assert torch.isfinite(ml.loss(o2.logits, torch.tensor([[1, 0, 1, 0]] * 3)))
    with pytest.raises(ModelInputError, match="multi-label targets"):
        ml.loss(o2.logits, torch.tensor([1, 2, 3]))


def test_bad_inputs_raise_clear_errors():
    model = AegirModel(nano())
    ids, mask = batch()
    with pytest.raises(ModelInputError, match="right-padded"):
        model(ids, mask.flip(1) | torch.tensor([[True] + [False] * 47] * 3))
    with pytest.raises(ModelInputError, match=r"\[0, 65536\)"):
        model(ids + 70000, mask)
    with pytest.raises(ModelInputError, match="does not match"):
        model(ids, mask[:, :10])
    with pytest.raises(ModelInputError, match="n_active"):
        model.lm_loss(torch.full((1, 5), 1000), None)


def test_model_info_command():
    import typer
    from typer.testing import CliRunner

    from aegir.commands.model import register

    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, ["model", "info", "--size", "tiny"])
    assert res.exit_code == 0, res.output
    assert "13,516,224" in res.output and "stage 2 (main)" in res.output
    res = CliRunner().invoke(app, ["model", "info", "--size", "huge"])
    assert res.exit_code == 2 and "unknown model size" in res.output


def test_mixed_precision_path_keeps_router_and_decay_fp32():
    """The CUDA path is bf16 autocast with fp32 islands; CPU bf16 autocast exercises the same code
    (no GPU here). The router probabilities and the returned hidden state must stay fp32."""
    torch.manual_seed(0)
    model = AegirModel(nano())
    ids, mask = batch()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = model(ids, mask)
        lm = model.lm_loss(ids, mask)
    assert all(s.boundary_prob.dtype == torch.float32 for s in out.stages)
    assert out.hidden.dtype == torch.float32 and torch.isfinite(out.hidden).all()
    lm.loss.backward()
    assert torch.isfinite(lm.loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    ref = model(ids, mask)  # fp32 reference: bf16 projections stay close
    assert (out.hidden - ref.hidden).abs().max() < 0.1 * ref.hidden.abs().max()


def test_lm_loss_equals_hand_computed_cross_entropy():
    torch.manual_seed(0)
    model = AegirModel(nano())
    ids, mask = batch(B=2, T=20, lengths=(20, 12))
    out = model.lm_loss(ids, mask)
    hidden = model(ids, mask).hidden
    logits = hidden @ model.embedding.weight[: vocab.N_ACTIVE].t()  # tied rows of the active ids only
    terms = [torch.nn.functional.cross_entropy(logits[b, t : t + 1], ids[b, t + 1 : t + 2])
             for b, L in enumerate((20, 12)) for t in range(L - 1)]
    assert out.n_tokens == len(terms) == 19 + 11
    assert out.loss.item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-5)
    assert out.bits_per_byte == pytest.approx(out.loss.item() / math.log(2), rel=1e-6)


@pytest.mark.parametrize("layout,d_model", [(["w2"], [64]), (["w1", ["w2"], "w1"], [32, 64])])
def test_other_stage_counts_build_and_train(layout, d_model):
    cfg = ModelConfig(d_model=d_model, arch_layout=layout, head_size=32)
    assert len(cfg.ratio_targets) == len(d_model) - 1 and len(cfg.lr_multipliers) == len(d_model)
    model = AegirModel(cfg)
    ids, mask = batch(B=2, T=16, lengths=(16, 9))
    out = model.lm_loss(ids, mask)
    (out.loss + out.ratio_loss).backward()
    assert len(out.stages) == len(d_model) - 1 and torch.isfinite(out.loss)
    with pytest.raises(ModelConfigError, match="d_model"):
        ModelConfig(d_model="wide", arch_layout=layout)


def test_classifier_sized_from_label_dims():
    from aegir.tables.labels import LABEL_DIMS

    ids, mask = batch(B=2, T=16, lengths=(16, 10))
    for key in ("sotab-cta", "sotab-cpa"):
        clf = AegirClassifier.for_labels(nano(), LABEL_DIMS, key)
        assert clf(ids, mask, mask).logits.shape == (2, LABEL_DIMS[key])
    assert AegirClassifier.for_labels(nano(), LABEL_DIMS, "wikitables-cta", multi_label=True).multi_label
    with pytest.raises(ValueError, match="unknown label vocabulary"):
        AegirClassifier.for_labels(nano(), LABEL_DIMS, "nope")


def test_edge_lengths_single_byte_and_nearly_empty_rows():
    model = AegirModel(nano())
    one = model(torch.tensor([[5]]), None)
    assert one.hidden.shape == (1, 1, 64) and [s.boundary_fraction() for s in one.stages] == [1.0, 1.0]
    ids = torch.randint(0, 256, (3, 70))
    mask = torch.zeros(3, 70, dtype=torch.bool)
    mask[:, 0] = True
    mask[0] = True  # one full row, two rows with a single valid byte
    out = model(ids, mask)
    assert torch.isfinite(out.hidden).all()
    assert out.stages[0].boundary_mask[1:].sum() == 2  # only the forced first positions


def test_deepcopy_keeps_lr_multiplier_tags():
    import copy

    clf = AegirClassifier(nano(), n_labels=3)
    for p in clf.head.parameters():
        p._aegir_lr_mult = 7.0  # a caller's own value (e.g. a head learning rate) must survive too
    twin = copy.deepcopy(clf)
    assert named_lr_multipliers(twin) == named_lr_multipliers(clf)
    assert named_lr_multipliers(twin)["head.proj.weight"] == 7.0
    assert twin.backbone.embedding.weight is not clf.backbone.embedding.weight


@pytest.mark.parametrize("mode", ["wkv", "block"])
def test_recompute_gives_identical_gradients(mode):
    torch.manual_seed(0)
    plain = AegirModel(nano())
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(0.02 * torch.randn_like(p))
    again = AegirModel(nano(recompute=mode))
    again.load_state_dict(plain.state_dict())
    ids, mask = batch()
    for m in (plain, again):
        out = m.lm_loss(ids, mask)
        (out.loss + out.ratio_loss).backward()
    for (name, p), q in zip(plain.named_parameters(), again.parameters()):
        if p.requires_grad:
            assert torch.equal(p.grad, q.grad), name
    with pytest.raises(ModelConfigError, match="recompute"):
        nano(recompute="all")


def test_flops_per_byte_hand_count():
    from aegir.model.summary import flops_per_byte

    cfg = ModelConfig.preset("tiny")
    fl = flops_per_byte(cfg)  # nominal compression (3, 2)
    # One block at C = 128 with v-LoRA: 4C^2 + 2C(32+32+32+64) + 8C^2 MACs, plus 9*N*C for the WKV.
    C = 128
    block = 2 * (4 * C * C + 2 * C * (32 + 32 + 32 + 64) + 8 * C * C) + 9 * 64 * C
    first = block - 2 * 2 * C * 32  # no value-residual LoRA in a stack's first block
    stage0 = 2 * first + 2 * block + 2 * 3 * C * C  # enc w2 + dec w2 + router q, k, residual_proj
    assert fl.stages[0] == pytest.approx(stage0)
    assert fl.head == 2 * 268 * 128
    assert fl.train == pytest.approx(3 * (sum(fl.stages) + fl.head))
    assert sum(fl.stages) / 1e6 == pytest.approx(4.6, rel=0.02)  # ../shared/docs/architecture.md section 3
    assert flops_per_byte(cfg, [6.0, 2.0]).stages[1] == pytest.approx(fl.stages[1] / 2)


def test_relu_square_matches_autograd_float64():
    from aegir.model.rwkv7 import relu_square

    x = torch.randn(4, 7, 16, dtype=torch.float64, requires_grad=True)
    g = torch.randn(4, 7, 16, dtype=torch.float64)
    (gx,) = torch.autograd.grad(relu_square(x), x, g)
    x2 = x.detach().clone().requires_grad_()
    (gx2,) = torch.autograd.grad(torch.relu(x2).square(), x2, g)
    assert torch.equal(relu_square(x).detach(), torch.relu(x).square().detach())
    assert torch.allclose(gx, gx2, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(relu_square, (x[:1, :2].detach().clone().requires_grad_(),))


def test_tied_embedding_keeps_one_full_table_in_state_dicts():
    """Split into trainable live rows and frozen reserved rows, but checkpoints still hold one
    (vocab_size, D) `embedding.weight`, loadable both ways with nn.Embedding of the full table."""
    torch.manual_seed(0)
    model = AegirModel(nano())
    emb = model.embedding
    sd = model.state_dict()
    assert "embedding.weight" in sd and not any(k.startswith("embedding.live") or k.startswith("embedding.reserved") for k in sd)
    full = torch.nn.Embedding(65536, 64)
    full.load_state_dict({"weight": sd["embedding.weight"]})
    ids = torch.tensor([[0, 65, 255, vocab.N_ACTIVE - 1]])
    assert torch.equal(emb(ids), full(ids))
    # An id beyond the live rows embeds from the reserved rows (and so matches the full table too).
    far = torch.tensor([[3, 40000]])
    assert torch.equal(emb(far), full(far))
    with torch.no_grad():
        full.weight.mul_(2.0)
    other = AegirModel(nano())
    other.load_state_dict({**sd, "embedding.weight": full.weight.detach()}, strict=True)
    assert torch.equal(other.embedding.weight, full.weight)
    assert not emb.reserved.requires_grad and emb.live.requires_grad
    assert sum(p.numel() for p in emb.parameters()) == 65536 * 64  # the design's count is unchanged
    with pytest.raises(RuntimeError, match="size mismatch for embedding.weight"):
        other.load_state_dict({**sd, "embedding.weight": torch.zeros(1000, 64)})
    with pytest.raises(RuntimeError, match="Missing key"):
        other.load_state_dict({k: v for k, v in sd.items() if k != "embedding.weight"})
