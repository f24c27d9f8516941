"""Auxiliary heads for the hierarchical CTA loss (`aegir train --loss hierarchical`).

Next to the leaf label, two linear heads read the same pooled column embedding and predict the
label's path: its *group* (the Schema.org type of a `Type/property` label, e.g. `Book` for
`Book/name`, or a type label's parent from `resources/schema_hierarchy.json`) and its *property*
(`name` for `Book/name`; the label itself for plain types). Sharing structure across leaves gives
rare labels gradient from their frequent siblings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class AuxLogits:
    group: Tensor     # (B, n_groups)
    property: Tensor  # (B, n_properties)


class HierarchyHeads(nn.Module):
    def __init__(self, pooled_dim: int, n_groups: int, n_properties: int):
        super().__init__()
        self.group = nn.Linear(pooled_dim, n_groups)
        self.property = nn.Linear(pooled_dim, n_properties)
        for lin in (self.group, self.property):
            nn.init.normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)

    def forward(self, pooled: Tensor) -> AuxLogits:
        return AuxLogits(group=self.group(pooled), property=self.property(pooled))


def label_path(label: str, parents: dict[str, str]) -> tuple[str, str]:
    """(group, property) of a label: `Book/name` -> (Book, name); `Date` -> (DataType, Date)."""
    if "/" in label:
        group, prop = label.split("/", 1)
        return group, prop
    return parents.get(label, "Other"), label


def path_targets(labels: list[str], parents: dict[str, str]) -> tuple[list[str], list[str], Tensor, Tensor]:
    """Group and property vocabularies plus, per leaf index, its group and property index."""
    paths = [label_path(l, parents) for l in labels]
    groups = sorted({g for g, _ in paths})
    props = sorted({p for _, p in paths})
    g_idx = torch.tensor([groups.index(g) for g, _ in paths], dtype=torch.long)
    p_idx = torch.tensor([props.index(p) for _, p in paths], dtype=torch.long)
    return groups, props, g_idx, p_idx
