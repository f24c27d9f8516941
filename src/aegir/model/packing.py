"""Packing a right-padded batch into one row of its valid positions (varlen), for the RWKV stacks.

Why: H-Net's inner stages see (B, Tc) batches right-padded to the longest chunk sequence in the
batch; on real text with B = 8 that is ~10% padding at tiny's stage 1 and ~16% at stage 2, and
more on fine-tuning batches of table serializations of very different lengths. Every GEMM and
elementwise pass of a padded stack also runs on that padding. A packed stack runs on the valid
positions only: (B, T, C) -> (1, N, C), N = the number of valid positions, with each row's
sequence kept apart by `cu_seqlens` (the WKV restarts from a zero state) and `starts` (the token
shift reads zero there). Everything else in a block is per position and needs nothing. On the
fused CPU path and with the CPU kernel the WKV itself runs packed; the other WKV forms (chunked,
naive, fla) run padded inside an otherwise packed block (`rwkv7._wkv_packed`).

Only right padding packs (what batches and `hnet.chunk` produce); `Packing.of` returns None for
any other mask, and the stack then runs padded, as it always did. How much padding makes packing
pay depends on the path (`min_padding`), and a stack packs by default only where that was measured:
- the WKV on the CPU kernel (fused or eager block ops): `MIN_PADDING` = 3%. Copying the stream into
  the packed row and back costs about 1-2% of a stack's fwd+bwd (hand-timed at tiny's stage-1
  width, B=8, T=500), what that much padding costs;
- a WKV form that runs padded inside the packed block (chunked, naive) on the CPU:
  `MIN_PADDING_PADDED_WKV` = 25%. Its six inputs and its output are copied around it in every
  block: packing cost 3-5% at 6-16% padding and gained 8-17% at about 50% (docs/results/backbone.md,
  nano and tiny);
- CUDA (chunked or fla): not measured, so not by default; `RWKV7Stack.packs = True` forces it, and
  `benchmarks/gpu_check.py` times it on a lent GPU.
`AEGIR_PACK=0` turns packing off everywhere (every stack then runs its batch padded).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor

MIN_PADDING = 0.03  # share of padding from which a stack packs, with the WKV on the CPU kernel
MIN_PADDING_PADDED_WKV = 0.25  # the same where the WKV runs padded inside the packed block (CPU)
ENABLED = os.environ.get("AEGIR_PACK", "1") != "0"


def min_padding(wkv_impl: str, device: torch.device, forced: bool) -> float | None:
    """The share of padding from which a stack whose WKV resolved to `wkv_impl` on `device` packs,
    or None where it does not pack by default (see the module docstring); `forced` (a stack's
    `packs = True`): `MIN_PADDING` on every path."""
    if forced or wkv_impl == "kernel":
        return MIN_PADDING
    if device.type == "cpu":
        return MIN_PADDING_PADDED_WKV
    return None


@dataclass
class Packing:
    """Where the valid positions of a right-padded (B, T) batch go in its packed row."""

    index: Tensor  # (N,) long: flat position b * T + t of each packed position, in order
    cu_seqlens: Tensor  # (B + 1,) long: row b is packed positions cu_seqlens[b] .. cu_seqlens[b+1] - 1
    starts: Tensor  # (N,) bool: the first position of a row
    mask: Tensor  # (B, T) bool: the padded batch's valid positions

    @classmethod
    def of(cls, mask: Tensor, min_padding: float = 0.0) -> "Packing | None":
        """The packing of mask (B, T) bool, or None where it is not right padding or where less
        than `min_padding` of it is padding."""
        B, T = mask.shape
        lengths = mask.long().sum(1)  # (B,)
        if B * T == 0 or 1 - float(lengths.sum()) / (B * T) < min_padding:
            return None
        if not bool((mask == (torch.arange(T, device=mask.device)[None, :] < lengths[:, None])).all()):
            return None
        cu = torch.nn.functional.pad(lengths.cumsum(0), (1, 0))  # (B + 1,)
        index = mask.reshape(-1).nonzero().squeeze(1)  # (N,): row-major, so rows stay in order
        starts = torch.zeros(index.numel(), dtype=torch.bool, device=mask.device)
        starts[cu[:-1][lengths > 0]] = True
        return cls(index=index, cu_seqlens=cu.cpu(), starts=starts, mask=mask.bool())

    @property
    def n(self) -> int:
        return self.index.numel()

    def pack(self, x: Tensor) -> Tensor:
        """x (B, T, ...) -> (1, N, ...), the valid positions in order."""
        return x.flatten(0, 1).index_select(0, self.index).unsqueeze(0)  # (B*T, ...) -> (1, N, ...)

    def unpack(self, y: Tensor) -> Tensor:
        """y (1, N, ...) -> (B, T, ...), zero on padding."""
        B, T = self.mask.shape
        out = y.new_zeros(B * T, *y.shape[2:]).index_copy(0, self.index, y[0])  # (B*T, ...)
        return out.unflatten(0, (B, T))  # (B*T, ...) -> (B, T, ...)

    def shift(self, x: Tensor) -> Tensor:
        """x (1, N, C) -> the previous position of the same sequence, zero at each start (token shift)."""
        prev = torch.nn.functional.pad(x, (0, 0, 1, -1))  # (1, N, C): previous packed position
        return prev.masked_fill(self.starts[None, :, None], 0.0)
