"""Sampling bytes from a pretrained backbone in step (recurrent) mode: `aegir generate`.

What it is for: looking at what the byte LM learned (does it continue a CREATE TABLE, a table row,
a sentence?) and where its routers open chunks on that text. The prompt is read in one parallel
forward pass that also returns the recurrent state (`forward(..., return_state=True)`); every
sampled byte then costs O(1) work in step mode (`AegirModel.step`).

A document is `[BOS] bytes [EOS]` in pretraining (encoding/corpus.py), so the prompt is preceded
by BOS and sampling stops at EOS. Only the ids that occur (bytes + specials, `n_active`) are scored.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aegir.checkpoint import CheckpointError, load_checkpoint, load_weights
from aegir.config import ModelConfig
from aegir.encoding.vocab import BOS, EOS, N_BYTES, decode_ids, encode_text
from aegir.model import AegirModel


class GenerateError(ValueError):
    """Bad sampling arguments (a user mistake: one clear line at the CLI)."""


@dataclass
class Generation:
    prompt: str
    ids: list[int]  # the sampled ids, prompt excluded (EOS included when sampling stopped there)
    stopped: str  # "eos" or "max_bytes"
    boundaries: list[list[int]]  # per router, outer first: positions in [BOS] prompt sample that opened a chunk
    seconds: float  # wall time of reading the prompt and sampling
    prompt_ids: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The continuation, bytes decoded as UTF-8 (with replacement), specials as [NAME]."""
        return decode_ids([i for i in self.ids if i != EOS])

    @property
    def bytes_per_second(self) -> float:
        n = 1 + len(self.prompt_ids) + len(self.ids)
        return n / self.seconds if self.seconds > 0 else float("inf")

    def chunked(self, stage: int = 0, sep: str = "|") -> str:
        """Prompt + continuation with `sep` before every byte that opened a chunk at router `stage`
        (the BOS position is left out, and so is a separator before the first byte). Chunks split where the router says, which can be inside a
        multi-byte UTF-8 character: such pieces show replacement characters."""
        if not 0 <= stage < len(self.boundaries):
            raise GenerateError(f"stage {stage}: this model has {len(self.boundaries)} router(s)")
        seq = [BOS, *self.prompt_ids, *(i for i in self.ids if i != EOS)]
        opens = set(self.boundaries[stage])
        pieces, cur = [], []
        for pos in range(1, len(seq)):
            if pos in opens and cur:
                pieces.append(decode_ids(cur))
                cur = []
            cur.append(seq[pos])
        if cur:
            pieces.append(decode_ids(cur))
        return sep.join(pieces)


def load_lm(path: str | Path, device: str | torch.device = "cpu") -> AegirModel:
    """A pretraining checkpoint (file, or a run folder's final.pt), loaded strictly, in eval mode."""
    path = Path(path)
    if path.is_dir():
        if not (path / "final.pt").is_file():
            raise CheckpointError(f"{path}: a folder without final.pt (give the checkpoint file)")
        path = path / "final.pt"
    ck = load_checkpoint(path)
    if ck.kind != "pretrain" or not isinstance(ck.config, ModelConfig):
        raise CheckpointError(f"{path}: a {ck.kind!r} checkpoint; generate samples from a pretraining "
                              "checkpoint of the byte-level backbone (aegir pretrain)")
    model = AegirModel(ck.config)
    load_weights(model, ck, strict=True)
    return model.to(device).eval()


@torch.no_grad()
def generate(model: AegirModel | str | Path, prompt: str = "", max_bytes: int = 200, temperature: float = 0.8,
             top_k: int | None = 40, seed: int = 0, bytes_only: bool = True,
             device: str | torch.device = "cpu") -> Generation:
    """Continue `prompt` by sampling up to `max_bytes` ids (stops early at EOS).

    temperature 0 is greedy decoding; top_k keeps the k most likely ids (None: all). With
    `bytes_only`, specials other than EOS are never sampled (a text continuation has none).
    `device` applies when a checkpoint path is given (a model stays where it is); on CUDA the step
    runs under the model's bf16 autocast like the forward pass."""
    if max_bytes < 1:
        raise GenerateError(f"max_bytes must be >= 1, got {max_bytes}")
    if temperature < 0:
        raise GenerateError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise GenerateError(f"top_k must be >= 1 (or None for all ids), got {top_k}")
    if not isinstance(model, AegirModel):
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise GenerateError(f"device {device!r}: CUDA is not available here (use --device cpu)")
        model = load_lm(model, device)
    device = model.embedding.live.device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    prompt_ids = encode_text(prompt)
    t0 = time.perf_counter()
    # The prompt in one parallel pass (prefill); then one step per sampled byte.
    seq = torch.tensor([[BOS, *prompt_ids]], device=device)  # (1, T)
    pre = model(seq, return_state=True)
    state, pos = pre.state, seq.shape[1]
    bounds: list[list[int]] = []
    where = torch.arange(seq.shape[1], device=device)  # byte positions of the current stage's sequence
    for st in pre.stages:  # router s runs on the positions that opened chunks at router s - 1
        where = where[st.boundary_mask[0, : where.numel()]]
        bounds.append(where.tolist())

    def feed(i: int):
        nonlocal state, pos
        out = model.step(torch.tensor([i], device=device), state)
        state = out.state
        for b, opened in zip(bounds, out.boundaries):
            if bool(opened[0]):
                b.append(pos)
        pos += 1
        return out

    hidden = pre.hidden[:, -1]  # (1, D): predicts the first sampled byte
    ids: list[int] = []
    stopped = "max_bytes"
    with step_threads(device):
        for _ in range(max_bytes):
            logits = model.lm_logits(hidden)[0].float().cpu()  # (1, n_active) -> (n_active,)
            if bytes_only:
                keep = torch.zeros_like(logits, dtype=torch.bool)
                keep[:N_BYTES] = True
                keep[EOS] = True
                logits = logits.masked_fill(~keep, float("-inf"))
            nxt = _sample(logits, temperature, top_k, gen)
            ids.append(nxt)
            if nxt == EOS:
                stopped = "eos"
                break
            hidden = feed(nxt).hidden
    return Generation(prompt=prompt, ids=ids, stopped=stopped, boundaries=bounds,
                      seconds=time.perf_counter() - t0, prompt_ids=prompt_ids)


@contextmanager
def step_threads(device: torch.device, n: int = 1) -> Iterator[None]:
    """Run step mode on CPU with `n` intra-op threads (restored afterwards).

    Why: a step is ~1,300 tiny aten calls (nano), too small for intra-op parallelism to pay, and with
    OMP_WAIT_POLICY=PASSIVE (recommended on shared CPUs, docs/architecture.md) every parallel region
    wakes sleeping workers. Measured on 2 cores (docs/results/generation.md): nano 6.7 -> 4.0 ms per
    step at B=1 and 23.2 -> 5.4 ms at B=8, tiny 14.3 -> 9.4 and 48.3 -> 14.5 ms, from 2 threads to 1.
    The prefill, a parallel pass with real matmuls, keeps the caller's threads."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sample(logits: torch.Tensor, temperature: float, top_k: int | None, gen: torch.Generator) -> int:
    """One id from (n,) logits: argmax at temperature 0, else softmax(logits / T) over the top k."""
    if temperature == 0:
        return int(logits.argmax())
    if top_k is not None and top_k < logits.numel():
        kth = logits.topk(top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen))
