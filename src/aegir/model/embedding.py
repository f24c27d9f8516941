"""The tied byte embedding: the design's 65,536-row table, stored as live rows plus reserved rows.

Only the first `n_active` ids (256 bytes + specials) can occur, so only those rows are ever read
(input embedding) or scored (the tied LM head). Stored as one (vocab_size, D) parameter, every
training step would still pay for the other ~65k rows: autograd zero-fills a full-size gradient
for each use of a slice of the table (the embedding lookup and the head), and AdamW updates all
rows (tiny: 65,536 x 128 floats; docs/results/backbone_parts.md times both forms).

So the table is two parameters: `live` (n_active, D), trainable, and `reserved`
(vocab_size - n_active, D), frozen (requires_grad=False: no gradient buffer, no optimizer state,
ignored by DDP's reducer). The parameter count is the design's (the reserved rows still count),
and the state dict keeps the single `<prefix>weight` key, so checkpoints are unchanged in both
directions. Deviation: ids >= n_active still embed (from the reserved rows) but do not learn.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TiedByteEmbedding(nn.Module):
    def __init__(self, vocab_size: int, n_active: int, dim: int) -> None:
        super().__init__()
        if not 0 < n_active <= vocab_size:
            raise ValueError(f"n_active={n_active} must be in 1..vocab_size={vocab_size}")
        self.vocab_size, self.n_active, self.dim = vocab_size, n_active, dim
        self.live = nn.Parameter(torch.empty(n_active, dim))
        self.reserved = nn.Parameter(torch.empty(vocab_size - n_active, dim), requires_grad=False)
        self.reset_parameters(std=1.0)  # nn.Embedding's default; the model re-draws it (see AegirModel)

    @torch.no_grad()
    def reset_parameters(self, std: float) -> None:
        """N(0, std) over the whole table, drawn as one (vocab_size, D) tensor: the same random
        stream as an nn.Embedding of the full table, so a seed gives the same weights as before."""
        if self.live.is_meta:  # parameter counting builds on the meta device
            return
        w = torch.empty(self.vocab_size, self.dim, dtype=self.live.dtype, device=self.live.device).normal_(0.0, std)
        self.live.copy_(w[: self.n_active])
        self.reserved.copy_(w[self.n_active:])

    @property
    def weight(self) -> Tensor:
        """The whole (vocab_size, D) table (a new tensor; differentiable in the live rows)."""
        return torch.cat([self.live, self.reserved], dim=0)  # (vocab_size, D)

    def forward(self, ids: Tensor) -> Tensor:
        # One bound check decides whether the reserved rows are needed at all (they never are for
        # serialized tables or the pretraining corpus).
        if ids.numel() == 0 or int(ids.max()) < self.n_active:
            return F.embedding(ids, self.live)  # (..., D)
        return F.embedding(ids, self.weight)  # (..., D)

    # -- one `weight` key in state dicts, as an nn.Embedding of the full table would have --------
    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        w = self.weight
        destination[prefix + "weight"] = w if keep_vars else w.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        key = prefix + "weight"
        for k in state_dict:
            if k.startswith(prefix) and k != key and "." not in k[len(prefix):]:
                unexpected_keys.append(k)
        if key not in state_dict:
            missing_keys.append(key)
            return
        w = state_dict[key]
        if tuple(w.shape) != (self.vocab_size, self.dim):
            error_msgs.append(f"size mismatch for {key}: copying a param with shape {tuple(w.shape)} from "
                              f"checkpoint, the shape in current model is {(self.vocab_size, self.dim)}.")
            return
        with torch.no_grad():
            self.live.copy_(w[: self.n_active])
            self.reserved.copy_(w[self.n_active:])

    def extra_repr(self) -> str:
        return f"{self.vocab_size}, {self.dim}, n_active={self.n_active} (trainable rows)"
