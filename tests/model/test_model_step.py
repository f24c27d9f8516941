"""Step (recurrent) mode: one byte at a time through the H-Net equals the parallel forward pass;
and `aegir generate`, which samples from a pretrained backbone with it."""

from __future__ import annotations

import pytest
import torch

from aegir.config import ModelConfig
from aegir.model import AegirModel, ModelInputError
from aegir.model.hnet import put_rows, select_rows
from aegir.model.wkv import wkv_chunked, wkv_naive, wkv_step


def _perturbed(preset: str, seed: int = 0) -> AegirModel:
    """float64 model with noise on every weight: at init the output projections are zero (every
    block is the identity) and the routers are the identity, which would hide mistakes."""
    torch.manual_seed(seed)
    m = AegirModel(ModelConfig.preset(preset)).double().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def _run_steps(m: AegirModel, ids: torch.Tensor):
    st = m.initial_state(ids.shape[0])
    hidden, bounds = [], []
    for t in range(ids.shape[1]):
        out = m.step(ids[:, t], st)
        st = out.state
        hidden.append(out.hidden)
        bounds.append(torch.stack(out.boundaries, dim=1))  # (B, R)
    return torch.stack(hidden, 1), torch.stack(bounds, 1)  # (B, T, D), (B, T, R)


@pytest.mark.parametrize("preset", ["nano", "tiny"])
def test_step_mode_equals_forward_float64(preset):
    m = _perturbed(preset)
    B, T = 3, 70
    ids = torch.randint(0, 256, (B, T), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[2, 45:] = False  # a padded row in the parallel batch: its valid prefix must still match
    with torch.no_grad():
        full = m(ids, mask)
        hid, bnd = _run_steps(m, ids)
    scale = full.hidden.abs().max()
    err = ((hid - full.hidden).abs() * mask[:, :, None]).max()
    assert err <= 1e-10 * scale, f"step vs forward: max abs error {float(err):.3g} (scale {float(scale):.3g})"
    s0, s1 = full.stages
    assert torch.equal(bnd[:, :, 0] & mask, s0.boundary_mask)
    assert 0 < float(s0.boundary_fraction()) < 1 and s1.n_valid() > 0  # both routers really route
    # Router 1 runs on stage-0 chunk positions: step mode reports it at the byte that opened the chunk.
    for b in range(B):
        starts = s0.boundary_mask[b].nonzero().squeeze(1)  # byte positions of the stage-1 sequence
        assert torch.equal(bnd[b, starts, 1], s1.boundary_mask[b, : starts.numel()])
        assert not bool(bnd[b, ~s0.boundary_mask[b] & mask[b], 1].any())  # inner routers only see chunk starts


def test_prefill_then_step_equals_forward_float64():
    """forward(..., return_state=True) on ragged prefixes, then step mode on each row's next bytes,
    gives the forward pass of the whole sequence (the WKV's final state under padding included)."""
    m = _perturbed("nano", seed=1)
    B, T = 3, 80
    ids = torch.randint(0, 256, (B, T), generator=torch.Generator().manual_seed(2))
    lens = torch.tensor([40, 33, 70])  # 70 > one 64-wide WKV chunk: the chunked form's state carries over
    mask = torch.arange(T)[None, :] < lens[:, None]
    with torch.no_grad():
        full = m(ids)
        pre = m(ids, mask, return_state=True)
        st, rows = pre.state, torch.arange(B)
        for j in range(10):
            out = m.step(ids[rows, lens + j], st)
            st = out.state
            want = full.hidden[rows, lens + j]  # (B, D)
            assert (out.hidden - want).abs().max() <= 1e-10 * want.abs().max(), j
    assert m(ids).state is None  # the state is only built when asked for


def test_wkv_step_is_one_naive_step_float64():
    g = torch.Generator().manual_seed(0)
    B, T, H, N = 2, 5, 2, 8
    r, k, v = (torch.randn(B, T, H, N, generator=g, dtype=torch.float64) for _ in range(3))
    log_w = -torch.rand(B, T, H, N, generator=g, dtype=torch.float64)
    kk = torch.nn.functional.normalize(torch.randn(B, T, H, N, generator=g, dtype=torch.float64), dim=-1)
    a, b = -kk, kk * torch.rand(B, T, H, N, generator=g, dtype=torch.float64)
    want = wkv_naive(r, log_w, k, v, a, b)
    M = torch.zeros(B, H, N, N, dtype=torch.float64)
    for t in range(T):
        o, M = wkv_step(r[:, t], log_w[:, t], k[:, t], v[:, t], a[:, t], b[:, t], M)
        torch.testing.assert_close(o, want[:, t], rtol=1e-12, atol=1e-12)
    # final states of the parallel forms, ragged (padding steps leave the state alone), with c = 2 < T
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    _, M_naive = wkv_naive(r, log_w, k, v, a, b, mask, return_state=True)
    _, M_chunk = wkv_chunked(r, log_w, k, v, a, b, mask, chunk=2, return_state=True)
    torch.testing.assert_close(M_chunk, M_naive, rtol=1e-10, atol=1e-12)
    _, M_short = wkv_naive(r[1:, :3], log_w[1:, :3], k[1:, :3], v[1:, :3], a[1:, :3], b[1:, :3], return_state=True)
    torch.testing.assert_close(M_naive[1:], M_short, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(M_naive[:1], M[:1], rtol=1e-12, atol=1e-12)


def test_select_and_put_rows_round_trip():
    m = _perturbed("nano")
    st = m.initial_state(4)
    with torch.no_grad():
        for t in range(5):
            st = m.step(torch.tensor([65, 66, 67, 68]) + t, st).state
    idx = torch.tensor([3, 1])
    sub = select_rows(st, idx)
    assert sub.blocks[0].wkv.shape[0] == 2 and sub.inner.h_prev.shape[0] == 2
    assert torch.equal(sub.zbar, st.zbar[idx]) and torch.equal(sub.inner.started, st.inner.started[idx])
    zeroed = put_rows(st, idx, select_rows(m.initial_state(4), idx))
    assert torch.equal(zeroed.zbar[idx], torch.zeros_like(sub.zbar)) and torch.equal(zeroed.zbar[[0, 2]], st.zbar[[0, 2]])
    back = put_rows(zeroed, idx, sub)
    assert torch.equal(back.decoder[0].ffn_x, st.decoder[0].ffn_x) and torch.equal(back.inner.inner.blocks[0].wkv,
                                                                                   st.inner.inner.blocks[0].wkv)


def test_step_rejects_bad_ids():
    m = AegirModel(ModelConfig.preset("nano"))
    st = m.initial_state(2)
    with pytest.raises(ModelInputError, match=r"shape \(B,\)"):
        m.step(torch.zeros(2, 3, dtype=torch.long), st)
    with pytest.raises(ModelInputError, match="ids must be in"):
        m.step(torch.tensor([1, 70000]), st)


def _pattern_lm(tmp_path):
    """nano trained for a few seconds on one repeated line, saved as a pretraining checkpoint."""
    from aegir.checkpoint import save_checkpoint
    from aegir.encoding.vocab import BOS, encode_text

    torch.manual_seed(0)
    cfg = ModelConfig.preset("nano")
    m = AegirModel(cfg)
    text = encode_text("id,name;" * 40)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    first = last = None
    for _ in range(70):
        starts = torch.randint(0, 8, (8,), generator=g)
        ids = torch.stack([torch.tensor([BOS] + text[s: s + 63]) for s in starts.tolist()])  # (8, 64)
        out = m.lm_loss(ids)
        loss = out.loss + out.ratio_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(out.loss.detach()) if first is None else first
        last = float(out.loss.detach())
    assert last < 0.3 * first, (first, last)
    return save_checkpoint(tmp_path / "final.pt", m, cfg, kind="pretrain", commit=None)


def test_generate_continues_what_the_lm_learned(tmp_path):
    from typer.testing import CliRunner

    from aegir.cli import app
    from aegir.generate import GenerateError, generate, step_threads

    path = _pattern_lm(tmp_path)
    g = generate(path, "id,name;id,na", max_bytes=20, temperature=0)
    assert g.text == "me;id,name;id,name;i" and g.stopped == "max_bytes"
    assert len(g.boundaries) == 2 and 0 in g.boundaries[0]  # BOS opens the first chunk
    full = "id,name;id,na" + g.text
    # Chunk starts found by prefill (prompt) and step mode (sampled bytes) = those of one forward pass.
    from aegir.encoding.vocab import BOS, encode_text
    from aegir.generate import load_lm

    with torch.no_grad():
        stages = load_lm(path)(torch.tensor([[BOS, *encode_text(full)]])).stages
    s0 = stages[0].boundary_mask[0].nonzero().squeeze(1)
    assert g.boundaries[0] == s0.tolist() and g.boundaries[1] == s0[stages[1].boundary_mask[0]].tolist()
    # A separator before every chunk start but the BOS (0) and the first text byte (1, which has nothing before it).
    assert g.chunked(0).replace("|", "") == full and g.chunked(0).count("|") == sum(p >= 2 for p in g.boundaries[0])
    # Steps run with one intra-op thread on CPU (aegir.generate.step_threads); the caller's count comes back.
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with step_threads(torch.device("cpu")):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        assert generate(path, "id,name;id,na", max_bytes=20, temperature=0).text == g.text
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    sampled = generate(path, "id,", max_bytes=12, temperature=1.0, top_k=5, seed=3)
    assert sampled.ids == generate(path, "id,", max_bytes=12, temperature=1.0, top_k=5, seed=3).ids  # seeded
    with pytest.raises(GenerateError, match="temperature"):
        generate(path, "x", temperature=-1)
    if not torch.cuda.is_available():
        with pytest.raises(GenerateError, match="CUDA is not available"):
            generate(path, "x", device="cuda")
    with pytest.raises(GenerateError, match="router"):
        g.chunked(2)

    res = CliRunner().invoke(app, ["generate", "--checkpoint", str(tmp_path), "--prompt", "id,name;id,na",
                                   "--max-bytes", "20", "--temperature", "0", "--show-chunks"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("id,name;id,name;id,name;id,name;i\n") and "chunks opened by router 1" in res.output
    res = CliRunner().invoke(app, ["generate", "--checkpoint", str(tmp_path), "--max-bytes", "0"])
    assert res.exit_code == 2 and "max_bytes must be >= 1" in res.output
