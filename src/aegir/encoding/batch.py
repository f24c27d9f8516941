"""Labelled columns -> serialized examples -> padded tensors. Shared by training, eval and annotate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from aegir.encoding.serialize import SerializeConfig, serialize
from aegir.encoding.vocab import PAD
from aegir.tables.table import LabeledDataset, Table


@dataclass
class EncodedColumn:
    ids: list[int]
    target_mask: list[bool]
    label_ids: tuple[int, ...]  # empty when unlabelled (annotate) or label outside the vocabulary
    table_index: int
    column: int
    main_column: int | None = None
    truncated: bool = False
    main_mask: list[bool] = field(default_factory=list)  # CPA: the main column's segment; empty = none
    target_rows: tuple[int, ...] = ()  # rows whose cell of the target column fit the budget (annotate reports them)


@dataclass
class Batch:
    ids: torch.Tensor          # (B, T) long, PAD on the right
    mask: torch.Tensor         # (B, T) bool
    target_mask: torch.Tensor  # (B, T) bool
    labels: torch.Tensor       # (B,) long (single-label; -1 = none) or (B, L) float (multi-label)
    main_mask: torch.Tensor    # (B, T) bool, the CPA main column's segment (all False without one)

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.ids.to(device), self.mask.to(device), self.target_mask.to(device), self.labels.to(device),
                     self.main_mask.to(device))


def encode_column(table: Table, column: int, cfg: SerializeConfig, main: int | None = None,
                  label_ids: tuple[int, ...] = (), table_index: int = 0, row_seed: int | None = None) -> EncodedColumn:
    s = serialize(table, column, cfg, main=main, row_seed=row_seed)
    return EncodedColumn(s.ids, s.target_mask, label_ids, table_index, column, main, s.truncated, s.main_mask,
                         tuple(s.target_rows))


def view_seed(view: int, table_index: int) -> int | None:
    """Row seed of a table in view `view`: None (the deterministic view) for view 0. One seed per
    table and view, so all columns of a table use the same rows and stay row-aligned."""
    return None if view == 0 else view * 1_000_003 + table_index


def encode_dataset(ds: LabeledDataset, label_index: dict[str, int] | None, cfg: SerializeConfig,
                   view: int = 0, indices: Sequence[int] | None = None) -> list[EncodedColumn]:
    """Serialize every target (or the targets at `indices`, in that order). Labels outside
    `label_index` give empty label_ids (evaluated as misses). `view` 0 is the deterministic
    serialization; views 1, 2, ... use random row subsets (see `view_seed`), for training
    augmentation and test-time averaging."""
    out = []
    for t in (ds.targets if indices is None else [ds.targets[i] for i in indices]):
        lab = tuple(label_index[l] for l in t.labels if l in label_index) if label_index else ()
        out.append(encode_column(ds.tables[t.table_index], t.column, cfg, t.main_column, lab, t.table_index,
                                 view_seed(view, t.table_index)))
    return out


def collate(examples: Sequence[EncodedColumn], n_labels: int = 0, multi_label: bool = False) -> Batch:
    B = len(examples)
    T = max(len(e.ids) for e in examples)
    ids = torch.full((B, T), PAD, dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.bool)
    tmask = torch.zeros((B, T), dtype=torch.bool)
    mmask = torch.zeros((B, T), dtype=torch.bool)
    for i, e in enumerate(examples):
        n = len(e.ids)
        ids[i, :n] = torch.tensor(e.ids, dtype=torch.long)
        mask[i, :n] = True
        tmask[i, :n] = torch.tensor(e.target_mask, dtype=torch.bool)
        if e.main_mask:
            mmask[i, :n] = torch.tensor(e.main_mask, dtype=torch.bool)
    if multi_label:
        labels = torch.zeros((B, n_labels), dtype=torch.float32)
        for i, e in enumerate(examples):
            for j in e.label_ids:
                labels[i, j] = 1.0
    else:
        labels = torch.tensor([e.label_ids[0] if e.label_ids else -1 for e in examples], dtype=torch.long)
    return Batch(ids, mask, tmask, labels, mmask)
