"""AdamW groups: decay only on >=2-D tensors, per-stage lr multipliers, warmup + cosine values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from aegir.train.optim import OptimConfig, WarmupCosine, build_optimizer, describe_groups, lr_factor, param_groups


class Two(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.inner = nn.Linear(4, 4)  # weight 2-D (decay), bias 1-D (no decay)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight  # tied: must appear once
        for p in self.inner.parameters():
            p._aegir_lr_mult = 0.5
        for p in [*self.emb.parameters(), *self.norm.parameters()]:
            p._aegir_lr_mult = 2.0


def test_groups_decay_and_multipliers() -> None:
    m = Two()
    groups = param_groups(m, 1e-4)
    info = {(g.lr_mult, g.decay): g.n_params for g in describe_groups(groups)}
    assert info == {(2.0, True): 40, (2.0, False): 8, (0.5, True): 16, (0.5, False): 4}
    for g in groups:
        assert g["weight_decay"] == (1e-4 if g["decay"] else 0.0)
        assert all((p.ndim >= 2) == g["decay"] for p in g["params"])
    assert sum(len(g["params"]) for g in groups) == 5  # tied weight counted once


def test_untagged_parameters_get_multiplier_one() -> None:
    groups = param_groups(nn.Linear(3, 3), 0.1)
    assert {g["lr_mult"] for g in groups} == {1.0}


def test_schedule_values() -> None:
    cfg = OptimConfig(lr=1.0, warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
    assert [lr_factor(s, 4, 14, 0.1) for s in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lr_factor(4, 4, 14, 0.1) == pytest.approx(1.0)
    assert lr_factor(9, 4, 14, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(14, 4, 14, 0.1) == pytest.approx(0.1)
    assert lr_factor(100, 4, 14, 0.1) == pytest.approx(0.1)
    m = Two()
    opt = build_optimizer(m, cfg)
    sch = WarmupCosine(opt, cfg)
    sch.set_step(9)
    f = lr_factor(9, 4, 14, 0.1)
    assert sorted(g["lr"] for g in opt.param_groups) == pytest.approx(sorted([2.0 * f, 2.0 * f, 0.5 * f, 0.5 * f]))
    sch2 = WarmupCosine(build_optimizer(Two(), cfg), cfg)
    sch2.load_state_dict(sch.state_dict())
    assert sch2.step_value == 9


def test_weight_decay_only_touches_matrices() -> None:
    """With zero gradients, AdamW changes a parameter only through decay: 1-D ones must not move."""
    m = Two()
    cfg = OptimConfig(lr=0.1, weight_decay=0.5, warmup_steps=0, total_steps=10)
    opt = build_optimizer(m, cfg)
    WarmupCosine(opt, cfg)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in m.named_parameters():
        mult = p._aegir_lr_mult
        if p.ndim >= 2:
            assert torch.allclose(p, before[n] * (1 - 0.1 * mult * 0.5)), n
        else:
            assert torch.equal(p, before[n]), n


def test_bad_optim_config() -> None:
    with pytest.raises(ValueError, match="lr must be a positive"):
        OptimConfig(lr=0)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(nn.Module(), OptimConfig())


def test_time_budget_schedule() -> None:
    # warmup still counts steps; afterwards the cosine follows elapsed / budget
    assert lr_factor(0, 4, 10**6, 0.1, time_fraction=0.0) == pytest.approx(0.2)
    assert lr_factor(10, 4, 10**6, 0.1, time_fraction=0.5) == pytest.approx(0.55)
    assert lr_factor(10, 4, 10**6, 0.1, time_fraction=1.5) == pytest.approx(0.1)


def test_resume_fits_moments_saved_for_the_whole_embedding_table():
    """Runs saved before the tied table was split hold AdamW moments for all 65,536 rows of
    `embedding.weight`; resuming keeps the live rows' moments and steps normally."""
    from aegir.config import ModelConfig
    from aegir.model import AegirModel
    from aegir.train.distributed import load_optimizer_state

    torch.manual_seed(0)
    model = AegirModel(ModelConfig.preset("nano"))
    cfg = OptimConfig(lr=1e-3, weight_decay=1e-4, warmup_steps=1, total_steps=10)
    opt = build_optimizer(model, cfg)
    ids = torch.randint(0, 256, (2, 24))
    model.lm_loss(ids).loss.backward()
    opt.step()
    live = model.embedding.live
    sd = opt.state_dict()
    pid = next(i for i, p in enumerate(p for g in opt.param_groups for p in g["params"]) if p is live)
    old = {k: v.clone() for k, v in sd["state"][pid].items()}
    for k in ("exp_avg", "exp_avg_sq"):  # as the split-less model saved them: 65,536 rows, live ones first
        full = torch.randn(65536, live.shape[1])
        full[: live.shape[0]] = old[k]
        sd["state"][pid][k] = full
    opt2 = build_optimizer(model, cfg)
    load_optimizer_state(model, opt2, sd)
    for k in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(opt2.state[live][k], old[k])
    model.zero_grad()
    model.lm_loss(ids).loss.backward()
    opt2.step()  # shapes fit
