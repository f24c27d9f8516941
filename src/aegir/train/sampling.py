"""Repeat-factor sampling for long-tailed label sets (`aegir train --repeat-threshold T`).

Gupta, Dollar & Girshick, "LVIS: A Dataset for Large Vocabulary Instance Segmentation" (CVPR 2019),
section 4: a label c carried by a share f_c of the labelled training columns gets the repeat factor
r_c = max(1, sqrt(t / f_c)); a column repeats r = max over its labels of r_c times per epoch (the
fractional part by a seeded coin, so an epoch holds floor(r) or ceil(r) copies and r on average).
Labels at or above the share t are not repeated; a label at t/4 is seen twice as often, at t/16
four times.

Why here, next to class weights and logit adjustment: those two rescale the loss of the same
examples. Repeats with row views (`--row-views`, the default) are new examples: each extra copy of a
column is serialized from another random subset of its table's rows, so a label with four training
columns shows more of its values per epoch instead of a louder gradient on the same bytes. Without
row views the copies are identical (plain oversampling).

Everything is a function of (seed, epoch), so a resumed run rebuilds the same epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


def check_threshold(threshold: float) -> None:
    """The one check of a repeat threshold (config and `repeat_factors` both call it)."""
    if not (0.0 <= threshold <= 1.0 and math.isfinite(threshold)):
        raise ValueError(f"--repeat-threshold must be in [0, 1], got {threshold}")


def repeat_factors(label_sets: Sequence[Sequence[int]], threshold: float) -> np.ndarray:
    """(N,) float repeat factor of each training example from its label ids (LVIS's r = max_c
    max(1, sqrt(t / f_c)), f_c the share of labelled examples carrying label c). Unlabelled examples
    (teacher targets only) get 1. threshold 0 gives all ones."""
    check_threshold(threshold)
    r = np.ones(len(label_sets))
    labelled = [s for s in label_sets if len(s)]
    if threshold == 0.0 or not labelled:
        return r
    counts: dict[int, int] = {}
    for s in labelled:
        for c in set(s):
            counts[c] = counts.get(c, 0) + 1
    r_c = {c: max(1.0, math.sqrt(threshold / (n / len(labelled)))) for c, n in counts.items()}
    for i, s in enumerate(label_sets):
        if len(s):
            r[i] = max(r_c[c] for c in s)
    return r


def epoch_repeats(factors: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """(N,) int copies of each example in `epoch`: floor(r), plus one with probability frac(r). The
    coins are seeded by (seed, epoch): the same epoch always gets the same counts (resume)."""
    rng = np.random.default_rng([seed, epoch, 0x5EED])
    base = np.floor(factors)
    return (base + (rng.random(len(factors)) < factors - base)).astype(np.int64)


@dataclass
class EpochExamples:
    """One epoch's training list: every example once, then the extra copies (each a different row
    view where row views are on). `source[i]` is the position of item i in the base list, so
    per-example data (teacher targets) follows the copies."""

    examples: list
    source: list[int]


def epoch_examples(base: list, counts: np.ndarray, encode_copies: Callable[[list[int], int], list]) -> EpochExamples:
    """`base` (the epoch's view of every example) plus, for k = 1 .. max(counts) - 1, a copy of each
    example with counts > k from `encode_copies(positions, k)` (positions in `base`; k picks the row
    view of that round of copies)."""
    if len(counts) != len(base):
        raise ValueError(f"{len(counts)} repeat counts for {len(base)} examples")
    examples, source = list(base), list(range(len(base)))
    for k in range(1, int(counts.max(initial=1))):
        pos = np.flatnonzero(counts > k).tolist()
        copies = encode_copies(pos, k)
        if len(copies) != len(pos):
            raise ValueError(f"encode_copies returned {len(copies)} examples for {len(pos)} positions")
        examples += copies
        source += pos
    return EpochExamples(examples, source)
