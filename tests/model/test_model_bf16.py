"""bf16 autocast on CPU (`ModelConfig.cpu_bf16`): the CUDA precision recipe, runnable here.

The projections run in bf16, the decay, WKV, router and residual stream stay fp32, the model stays
close to its fp32 self, and it trains.
"""

from __future__ import annotations

import torch

from aegir.config import ModelConfig
from aegir.encoding import vocab
from aegir.model import AegirModel
from aegir.runtime import describe_precision


def _live_nano(cpu_bf16: bool) -> AegirModel:
    """nano with every block's output projection given weights (at init they are zero, which would
    make every block the identity and hide what precision the block ran at)."""
    torch.manual_seed(0)
    model = AegirModel(ModelConfig.preset("nano", cpu_bf16=cpu_bf16))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("att.output.weight", "ffn.value.weight")):
                p.normal_(0.0, 0.05)
    return model


def _text_batch(B: int = 3, T: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    text = ("The cat sees the owl. SELECT id, name FROM pets; city | price | date\n" * 40).encode()
    ids = torch.tensor(list(text[: B * T]), dtype=torch.long).view(B, T)  # (B, T)
    lengths = torch.tensor([T, T - 20, T - 41])
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
    return ids.masked_fill(~mask, vocab.PAD), mask


def test_cpu_bf16_runs_projections_in_bf16_and_keeps_the_fp32_islands() -> None:
    ids, mask = _text_batch()
    fp32, bf16 = _live_nano(False), _live_nano(True)
    bf16.load_state_dict(fp32.state_dict())
    seen: dict[str, torch.dtype] = {}
    block = bf16.hnet.encoder.blocks[0]
    block.att.receptance.register_forward_hook(lambda m, i, o: seen.__setitem__("projection", o.dtype))
    out = bf16(ids, mask)
    ref = fp32(ids, mask)
    assert seen["projection"] == torch.bfloat16  # autocast was on
    assert out.hidden.dtype == torch.float32 and all(s.boundary_prob.dtype == torch.float32 for s in out.stages)
    diff = (out.hidden - ref.hidden).abs().max()
    assert 0 < diff < 0.05 * ref.hidden.abs().max()  # bf16 rounding, not a different function
    # the outer router reads fp32 states: its decisions match the fp32 model's on nearly every byte
    s_bf, s_ref = out.stages[0], ref.stages[0]
    assert ((s_bf.boundary_mask == s_ref.boundary_mask)[mask]).float().mean() > 0.97
    lb, lf = bf16.lm_loss(ids, mask), fp32.lm_loss(ids, mask)
    assert abs(lb.loss.item() - lf.loss.item()) < 0.02 * lf.loss.item()
    lb.loss.backward()
    grads = [p.grad for p in bf16.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_cpu_bf16_is_off_by_default_and_trains() -> None:
    assert ModelConfig.preset("nano").cpu_bf16 is False
    ids, mask = _text_batch()
    model = _live_nano(True)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        out = model.lm_loss(ids, mask)
        opt.zero_grad()
        (out.loss + out.ratio_loss).backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_precision_line_says_what_runs(monkeypatch) -> None:
    import aegir.runtime as rt

    cfg = ModelConfig.preset("nano")
    assert describe_precision(cfg, "cpu") == "fp32"
    assert describe_precision(cfg, "cuda").startswith("bf16 autocast")
    cfg.cpu_bf16 = True
    monkeypatch.setattr(rt, "cpu_has_native_bf16", lambda: True)
    assert describe_precision(cfg, "cpu").startswith("bf16 autocast on CPU") and "warning" not in describe_precision(cfg, "cpu")
    monkeypatch.setattr(rt, "cpu_has_native_bf16", lambda: False)
    assert "slower than fp32" in describe_precision(cfg, "cpu")
