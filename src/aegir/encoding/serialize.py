"""The one serialization function: a column (with context) of a table -> byte-level token ids.

Layout (ids; specials in brackets, rendered human-readably by `Serialized.text()`):

    [CLS] [TGT] name [COLON] v1 [CELL] v2 [CELL] v3 [SEP] [CTX] ctx_name [COLON] v1 [CELL] v2 [SEP] ...

i.e. the design's `[CLS] col: v1 | v2 | v3 [SEP] ctx_col: v1 | v2 [SEP]`. Column delimiters are
special ids rather than the bytes ": " and " | " so a cell that contains "|" or ":" cannot forge
structure, and each delimiter costs one position instead of three. Empty cells are [NULL].
Headerless tables (SOTAB, GitTables) simply omit `name [COLON]`.

CPA variant (`main=`): `[CLS] [MAIN] main column [SEP] [TGT] target column [SEP] [CTX] ...` — the
target segment comes after the main column so a causal model reads the subject before the object.

Context columns are chosen by Maximal Marginal Relevance over hashed character-trigram profiles
(header + values): score = λ·sim(c, target) − (1−λ)·max_{s chosen} sim(c, s), greedily, until the
byte budget is spent; ties go to the lower column index, so the output is deterministic.

Budgets never let one cell or column eat the sequence: cells are cut at `max_cell_bytes` (on a UTF-8
character boundary), names at `max_name_bytes`, the target segment at `max_target_bytes`, each context
column at `max_column_bytes`; long tables use `max_rows` evenly spaced rows (the same rows for every
column, so rows stay aligned).
"""

from __future__ import annotations

import functools
import re
import weakref
import zlib
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np

from aegir.encoding.vocab import CELL, CLS, COLON, CTX, MAIN, NULL, SEP, TGT, decode_ids
from aegir.tables.table import Table, TableError

_WS = re.compile(r"[\x00-\x1f\x7f\s]+")


@dataclass(frozen=True)
class SerializeConfig:
    max_bytes: int = 512          # total ids, specials included
    max_target_bytes: int = 256   # the target column's segment (CPA: also the main column's)
    max_column_bytes: int = 128   # one context column's segment
    max_cell_bytes: int = 48
    max_name_bytes: int = 32
    max_rows: int = 32            # rows considered per column (evenly spaced when the table is longer)
    mmr_lambda: float = 0.7       # 1.0 = relevance only, 0.0 = diversity only
    min_context_bytes: int = 12   # do not start a context column with less budget left than this
    use_header: bool = True

    def __post_init__(self) -> None:
        if self.max_bytes < 8:
            raise ValueError("max_bytes must be at least 8")
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError("mmr_lambda must be in [0, 1]")
        if self.max_cell_bytes < 1:
            raise ValueError(f"max_cell_bytes (--max-cell-bytes) must be >= 1, got {self.max_cell_bytes}")
        if self.max_target_bytes < 1:
            raise ValueError(f"max_target_bytes (--max-target-bytes) must be >= 1, got {self.max_target_bytes}")


def at_budget(cfg: SerializeConfig, budget: int) -> SerializeConfig:
    """A trained serialization read at another total budget (test time): `max_bytes` = budget and the target
    segment's cap scaled by budget / trained budget (rounded, at least 1); cell, name and context-column caps as
    trained, so extra bytes go to more of the target column first, then to context. The trained config itself
    at its own budget. Models trained at 256 bytes read 512 at test with a small gain on SOTAB V2
    (docs/results/cta_views_nano.md). A budget below 8 raises SerializeConfig's ValueError."""
    if budget == cfg.max_bytes:
        return cfg
    return replace(cfg, max_bytes=budget, max_target_bytes=max(1, round(cfg.max_target_bytes * budget / cfg.max_bytes)))


@dataclass
class Serialized:
    ids: list[int]
    target_mask: list[bool]            # True on the target column's segment ([TGT] .. [SEP])
    context: list[int] = field(default_factory=list)  # context column indices, in serialized order
    truncated: bool = False            # some cell, column, or context column did not fit
    rows_used: list[int] = field(default_factory=list)  # row indices the cells came from
    target_rows: list[int] = field(default_factory=list)  # the rows whose target cell is in `ids` (whole or cut)
    main_mask: list[bool] = field(default_factory=list)  # CPA: True on the main column's segment ([MAIN] .. [SEP]); else all False

    def __len__(self) -> int:
        return len(self.ids)

    def text(self) -> str:
        return (decode_ids(self.ids).replace("[COLON]", ": ").replace("[CELL]", " | ")
                .replace("[NULL]", "∅"))


# --------------------------------------------------------------------------------------------
def _clean(s: str) -> str:
    """Control characters and whitespace runs -> one space (keeps rows on one line)."""
    return _WS.sub(" ", s).strip()


def _cut(b: bytes, limit: int) -> tuple[bytes, bool]:
    """Truncate UTF-8 bytes to `limit` without splitting a character (drops the partial char)."""
    if len(b) <= limit:
        return b, False
    b = b[:limit]
    # Drop a trailing partial multi-byte sequence: continuation bytes are 10xxxxxx.
    i = len(b)
    while i > 0 and (b[i - 1] & 0xC0) == 0x80:
        i -= 1
    if i > 0 and b[i - 1] >= 0xC0:  # lead byte whose sequence was cut
        need = 2 if b[i - 1] < 0xE0 else 3 if b[i - 1] < 0xF0 else 4
        if len(b) - (i - 1) < need:
            b = b[: i - 1]
    return b, True


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", errors="replace")  # lone surrogates never raise


def row_sample(n_rows: int, max_rows: int, seed: int | None = None) -> list[int]:
    """Row indices to serialize. Without a seed: evenly spaced (all rows when the table is short),
    in table order -- the deterministic view used for evaluation and annotation. With a seed: a
    random subset of up to `max_rows` rows in random order -- a different "view" of the same column,
    used as training augmentation and for test-time averaging over views (column types do not
    depend on row order, and the byte budget then shows different cells)."""
    if seed is not None:
        import random

        return random.Random(seed).sample(range(n_rows), min(n_rows, max_rows))
    if n_rows <= max_rows:
        return list(range(n_rows))
    return sorted({int(round(i * (n_rows - 1) / (max_rows - 1))) for i in range(max_rows)}) if max_rows > 1 else [0]


def _segment(role: int, name: str, cells: list[str], cfg: SerializeConfig, budget: int) -> tuple[list[int], bool, int]:
    """One column's ids: role [name COLON] cells joined by CELL, closed by SEP, within `budget`; whether
    anything was cut, and how many of `cells` (the first ones) are in the ids, whole or cut."""
    ids = [role]
    truncated = False
    n_cells = 0
    if name and cfg.use_header:
        nb, t = _cut(_utf8(_clean(name)), cfg.max_name_bytes)
        truncated |= t
        if nb:
            ids += list(nb) + [COLON]
    budget -= 1  # reserve the closing SEP
    for k, cell in enumerate(cells):
        sep = [CELL] if k > 0 else []
        cb, t = _cut(_utf8(_clean(cell)), cfg.max_cell_bytes)
        truncated |= t
        piece = sep + (list(cb) if cb else [NULL])
        if len(ids) + len(piece) > budget:
            room = budget - len(ids) - len(sep)
            if room >= 4 and cb:  # a partial cell still carries signal
                cb2, _ = _cut(cb, room)
                if cb2:
                    ids += sep + list(cb2)
                    n_cells += 1
            truncated = True
            break
        ids += piece
        n_cells += 1
    if len(ids) > budget:  # a long name alone can overflow a tiny budget
        ids = ids[:budget]
        truncated = True
        n_cells = 0
    return ids + [SEP], truncated, n_cells


def _profile(name: str, cells: list[str], dim: int = 512) -> np.ndarray:
    """Hashed character-trigram counts of header + values, L2-normalised (for MMR similarity).
    Cached by content (read-only arrays): serializing every column of a table asks for each
    column's profile once per target column, n^2 profiles for n columns without the cache."""
    return _profile_cached(name, tuple(cells), dim)


@functools.lru_cache(maxsize=4096)
def _profile_cached(name: str, cells: tuple[str, ...], dim: int) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float64)
    text = " ".join([_clean(name).lower()] + [_clean(c).lower() for c in cells])
    padded = f"  {text} "
    for i in range(len(padded) - 2):
        # crc32, not hash(): Python's str hash is salted per process and would break determinism.
        v[zlib.crc32(padded[i : i + 3].encode("utf-8", "replace")) % dim] += 1.0
    n = np.linalg.norm(v)
    out = v / n if n > 0 else v
    out.setflags(write=False)  # shared through the cache
    return out


def mmr_iter(target_profile: np.ndarray, candidates: dict[int, np.ndarray], lam: float) -> Iterator[int]:
    """Candidate columns in MMR order (greedy; ties broken by lower column index), lazily: each
    next column costs one pass over the remaining candidates, so a caller that stops once its byte
    budget is spent (a few context columns) pays O(k n), not the O(n^2) of ordering all n columns
    per target column (docs/results/wide_tables.md times whole tables)."""
    idx = sorted(candidates)
    if idx:
        yield from (idx[i] for i in _mmr(target_profile, np.stack([candidates[j] for j in idx]),
                                         np.ones(len(idx), dtype=bool), lam))


def _mmr(target_profile: np.ndarray, profiles: np.ndarray, alive: np.ndarray, lam: float) -> Iterator[int]:
    """`mmr_iter` over the rows of `profiles` (n, dim) that `alive` (n,) marks (a copy is taken): row positions in
    MMR order. One matrix-vector product per pick instead of a Python loop over the candidates (a 1,500-column
    table spent 28 s of its 56 s there)."""
    alive = alive.copy()
    rel = profiles @ target_profile  # (n,)
    red = np.zeros(len(rel))
    for _ in range(int(alive.sum())):
        # Rounded: BLAS may sum two equal rows (duplicate columns) in different orders, a last-bit difference that
        # would break their tie, which goes to the lower column index (as the pairwise dot products of before).
        score = np.where(alive, np.round(lam * rel - (1 - lam) * red, 12), -np.inf)
        best = int(np.argmax(score))  # the first of equal scores: the lower column index
        yield best
        alive[best] = False
        np.maximum(red, profiles @ profiles[best], out=red)  # (n,)


_PROFILES: list = [None, None, None]  # (weakref to the table, rows, (n_cols, dim) profiles): the last table's


def _table_profiles(table: Table, rows: list[int]) -> np.ndarray:
    """Every column's `_profile` over `rows`, as one (n_cols, dim) matrix, kept for the last table asked: serializing
    each column of a table (annotate, a training pass) reads the same matrix n times. A table changed in place
    between calls would be read stale; readers and the data layer build new tables instead."""
    ref, key, mat = _PROFILES
    if ref is not None and ref() is table and key == rows:
        return mat
    mat = np.stack([_profile(table.column_name(j), [table.columns[j][i] for i in rows]) for j in range(table.n_cols)])
    mat.setflags(write=False)
    _PROFILES[:] = [weakref.ref(table), list(rows), mat]
    return mat


def mmr_order(target_profile: np.ndarray, candidates: dict[int, np.ndarray], lam: float) -> list[int]:
    """All candidate columns in MMR order (`mmr_iter`, run to the end)."""
    return list(mmr_iter(target_profile, candidates, lam))


def serialize(table: Table, target: int, cfg: SerializeConfig = SerializeConfig(), main: int | None = None,
              row_seed: int | None = None) -> Serialized:
    """Serialize column `target` of `table` (CPA: the pair (`main`, `target`)) with MMR context.
    `row_seed` picks a random row view (see `row_sample`); None gives the deterministic one."""
    if table.n_cols == 0:
        raise TableError(f"table {table.name!r} has no columns")
    for what, j in (("target", target), ("main", main)):
        if j is not None and not 0 <= j < table.n_cols:
            raise TableError(f"table {table.name!r}: {what} column {j} out of range (0..{table.n_cols - 1})")
    rows = row_sample(table.n_rows, cfg.max_rows, row_seed)
    cells = lambda j: [table.columns[j][i] for i in rows]  # noqa: E731
    ids: list[int] = [CLS]
    mask: list[bool] = [False]
    main_mask: list[bool] = [False]
    truncated = len(rows) < table.n_rows
    if main is not None and main != target:
        seg, t, _ = _segment(MAIN, table.column_name(main), cells(main), cfg, min(cfg.max_target_bytes, (cfg.max_bytes - 1) // 2))
        ids += seg
        mask += [False] * len(seg)
        main_mask += [True] * len(seg)
        truncated |= t
    seg, t, n_target = _segment(TGT, table.column_name(target), cells(target), cfg,
                                min(cfg.max_target_bytes, cfg.max_bytes - len(ids)))
    ids += seg
    mask += [True] * len(seg)
    truncated |= t

    used = {target} | ({main} if main is not None else set())
    cand_idx = [j for j in range(table.n_cols) if j not in used]
    context: list[int] = []
    if cand_idx and cfg.max_bytes - len(ids) >= cfg.min_context_bytes:
        profiles = _table_profiles(table, rows)  # (n_cols, dim)
        alive = np.zeros(table.n_cols, dtype=bool)
        alive[cand_idx] = True
        for j in _mmr(profiles[target], profiles, alive, cfg.mmr_lambda):  # lazy: stops with the budget
            room = cfg.max_bytes - len(ids)
            if room < cfg.min_context_bytes:
                truncated = True
                break
            seg, t, _ = _segment(CTX, table.column_name(j), cells(j), cfg, min(cfg.max_column_bytes, room))
            ids += seg
            mask += [False] * len(seg)
            truncated |= t
            context.append(j)
    main_mask += [False] * (len(ids) - len(main_mask))
    return Serialized(ids=ids, target_mask=mask, context=context, truncated=truncated, rows_used=rows,
                      main_mask=main_mask, target_rows=rows[:n_target])


def serialize_table_text(table: Table, cfg: SerializeConfig = SerializeConfig(), target: int = 0) -> list[int]:
    """A whole table as ids for LM pretraining: the same layout fine-tuning sees, target `target`."""
    return serialize(table, target, cfg).ids
