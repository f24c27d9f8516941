import string

import numpy as np

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegir.encoding.serialize import SerializeConfig, mmr_order, serialize, _profile
from aegir.encoding.vocab import CELL, CLS, COLON, CTX, MAIN, N_ACTIVE, NULL, SEP, TGT, decode_ids
from aegir.tables import Table, TableError

cell = st.text(min_size=0, max_size=80)  # includes control chars, surrogates, emoji


@st.composite
def tables(draw):
    n_cols = draw(st.integers(1, 7))
    n_rows = draw(st.integers(1, 12))
    cols = [draw(st.lists(cell, min_size=n_rows, max_size=n_rows)) for _ in range(n_cols)]
    header = draw(st.one_of(st.none(), st.lists(st.text(max_size=50), min_size=n_cols, max_size=n_cols)))
    return Table(columns=cols, header=header)


cfgs = st.builds(SerializeConfig, max_bytes=st.integers(16, 600), max_target_bytes=st.integers(8, 300),
                 max_column_bytes=st.integers(8, 200), max_cell_bytes=st.integers(1, 64),
                 max_rows=st.integers(1, 40), mmr_lambda=st.floats(0, 1))


@settings(max_examples=150, deadline=None)
@given(tables(), cfgs, st.data())
def test_budget_layout_determinism(table, cfg, data):
    target = data.draw(st.integers(0, table.n_cols - 1))
    s = serialize(table, target, cfg)
    assert len(s.ids) <= cfg.max_bytes
    assert all(0 <= i < N_ACTIVE for i in s.ids)
    assert len(s.target_mask) == len(s.ids)
    # target-first layout: CLS, then the TGT segment, closed by SEP, marked by the mask
    assert s.ids[0] == CLS and s.ids[1] == TGT
    first_sep = s.ids.index(SEP)
    assert s.target_mask == [False] + [True] * first_sep + [False] * (len(s.ids) - first_sep - 1)
    assert s.ids.count(CTX) == len(s.context) and target not in s.context
    assert len(set(s.context)) == len(s.context)
    assert s.ids[-1] == SEP
    assert serialize(table, target, cfg).ids == s.ids  # deterministic
    assert s.text()  # always renderable
    # target_rows: the first rows of the sample, one per cell in the target segment (CELL-separated)
    n = len(s.target_rows)
    assert s.target_rows == s.rows_used[:n]
    assert s.ids[1:first_sep].count(CELL) == max(n - 1, 0)
    assert n == len(s.rows_used) or s.truncated


@settings(max_examples=60, deadline=None)
@given(tables(), st.data())
def test_cpa_variant(table, data):
    if table.n_cols < 2:
        return
    main, target = data.draw(st.permutations(range(table.n_cols)))[:2]
    s = serialize(table, target, SerializeConfig(max_bytes=300), main=main)
    assert s.ids[:2] == [CLS, MAIN] and len(s.ids) <= 300
    tgt_pos = s.ids.index(TGT)
    assert s.target_mask[tgt_pos] and not any(s.target_mask[:tgt_pos])
    assert main not in s.context and target not in s.context
    # main_mask is exactly the [MAIN] .. [SEP] segment before [TGT], disjoint from the target's
    assert len(s.main_mask) == len(s.ids)
    assert s.main_mask == [1 <= i < tgt_pos for i in range(len(s.ids))]
    assert s.ids[tgt_pos - 1] == SEP
    assert not any(m and t for m, t in zip(s.main_mask, s.target_mask))
    # without a main column (CTA) the mask is all False
    assert not any(serialize(table, target, SerializeConfig(max_bytes=300)).main_mask)


def test_one_long_cell_cannot_eat_the_budget():
    t = Table(columns=[["x" * 10_000, "short"], ["ctx"] * 2], header=["a", "b"])
    cfg = SerializeConfig(max_bytes=200, max_cell_bytes=20)
    s = serialize(t, 0, cfg)
    assert s.truncated and b"short" in bytes(i for i in s.ids if i < 256)
    assert 1 in s.context  # budget left for the context column


def test_target_rows_are_the_values_that_fit():
    # 10-byte cells, 40 ids: [CLS], then a 39-id target segment whose closing SEP is reserved: [TGT] + 3 whole
    # cells (1 + 10 + 11 + 11 = 33 ids), then CELL and 4 bytes of the fourth: 4 of the 6 rows reach the model.
    t = Table(columns=[[f"{i}" * 10 for i in range(6)]])
    s = serialize(t, 0, SerializeConfig(max_bytes=40, max_target_bytes=40))
    assert s.rows_used == list(range(6)) and s.target_rows == [0, 1, 2, 3]
    assert bytes(i for i in s.ids if i < 256) == b"0" * 10 + b"1" * 10 + b"2" * 10 + b"3" * 4
    # With room for 3 bytes of the fourth cell, a cut this short is dropped: 3 rows.
    assert serialize(t, 0, SerializeConfig(max_bytes=39, max_target_bytes=39)).target_rows == [0, 1, 2]
    assert serialize(t, 0, SerializeConfig(max_bytes=200)).target_rows == list(range(6))


def test_utf8_cut_keeps_characters_whole():
    t = Table(columns=[["€€€€€€"]])  # 3-byte characters
    s = serialize(t, 0, SerializeConfig(max_cell_bytes=7))
    body = bytes(i for i in s.ids if i < 256)
    assert body.decode("utf-8") == "€€"


def test_control_bytes_and_invalid_text_are_safe():
    t = Table(columns=[["a\x00b\nc\td", "\ud800x", ""]], header=["n\x1bame"])
    s = serialize(t, 0)
    body = bytes(i for i in s.ids if i < 256)
    assert b"\x00" not in body and b"\n" not in body and b"\x1b" not in body
    assert NULL in s.ids  # empty cell marked


def test_exact_layout_small_table():
    t = Table(columns=[["1", ""], ["x", "y"]], header=["id", "name"])
    s = serialize(t, 1)
    assert s.ids == [CLS, TGT, *b"name", COLON, *b"x", CELL, *b"y", SEP, CTX, *b"id", COLON, *b"1", CELL, NULL, SEP]
    assert s.text() == "[CLS][TGT]name: x | y[SEP][CTX]id: 1 | ∅[SEP]"
    headerless = serialize(Table(columns=[["a"]]), 0)
    assert headerless.ids == [CLS, TGT, *b"a", SEP]


def test_mmr_skips_redundant_column():
    # Target: city names. Context 1 and 2 are identical country columns (2 is redundant once 1 is
    # chosen); column 3 (postal codes) is less similar to the target but new information.
    cities = ["Berlin", "Paris", "Rome", "Madrid", "Vienna", "Lisbon"]
    countries = ["Germany", "France", "Italy", "Spain", "Austria", "Portugal"]
    codes = ["10115", "75001", "00118", "28001", "1010", "1100"]
    t = Table(columns=[cities, countries, list(countries), codes], header=["city", "country", "country", "zip"])
    seg = 2 + len("country") + sum(len(c) + 1 for c in countries) + 1
    cfg = SerializeConfig(max_bytes=2 + 4 + 60 + 2 * seg + 6, mmr_lambda=0.5, max_column_bytes=seg + 4, min_context_bytes=8)
    s = serialize(t, 0, cfg)
    assert s.context[0] in (1, 2)
    assert s.context[1] == 3, f"MMR should prefer the new zip column over the duplicate: {s.context}"
    # Relevance-only ordering (lambda=1) takes the duplicate instead.
    profiles = {j: _profile(t.column_name(j), t.columns[j]) for j in (1, 2, 3)}
    tp = _profile("city", cities)
    assert mmr_order(tp, profiles, 1.0)[:2] in ([1, 2], [2, 1])
    assert mmr_order(tp, profiles, 0.5)[1] == 3


def test_mmr_is_lazy_and_profiles_are_cached():
    """Wide tables: the serializer takes context columns from `mmr_iter` only until the byte budget
    is spent, so MMR must do O(n) work per column taken (one matrix-vector product), not order all n columns
    up front (O(n^2) per target column); each profile is read once, computed once per (name, cells) and shared
    read-only."""
    import itertools
    import random

    from aegir.encoding.serialize import mmr_iter

    rnd = random.Random(0)
    n = 60
    cols = [[f"{rnd.choice('abcxyz')}{rnd.randint(0, 10**rnd.randint(1, 5))}" for _ in range(12)] for _ in range(n)]
    profiles = {j: _profile(f"c{j}", cols[j]) for j in range(1, n)}

    class Counting(dict):
        reads = 0

        def __getitem__(self, key):
            Counting.reads += 1
            return super().__getitem__(key)

    cand = Counting(profiles)
    it = mmr_iter(_profile("c0", cols[0]), cand, 0.5)
    first = next(it)
    assert Counting.reads == n - 1  # each profile once, into one matrix
    second = next(it)
    assert Counting.reads == n - 1
    assert [first, second, *itertools.islice(it, 3)] == mmr_order(_profile("c0", cols[0]), profiles, 0.5)[:5]
    # the cache: the same content gives the same (read-only) array object
    p1, p2 = _profile("c1", cols[1]), _profile("c1", list(cols[1]))
    assert p1 is p2 and not p1.flags.writeable
    # and a wide table serializes with the context MMR orders, column by column
    t = Table(columns=cols, header=[f"c{j}" for j in range(n)])
    cfg = SerializeConfig(max_bytes=400, max_column_bytes=40, min_context_bytes=8)
    for target in (0, 17, n - 1):
        s = serialize(t, target, cfg)
        others = {j: _profile(f"c{j}", [cols[j][i] for i in s.rows_used]) for j in range(n) if j != target}
        full = mmr_order(_profile(f"c{target}", [cols[target][i] for i in s.rows_used]), others, cfg.mmr_lambda)
        assert len(s.context) >= 3 and s.context == full[: len(s.context)]


def test_long_tables_sample_rows_evenly():
    t = Table(columns=[[str(i) for i in range(1000)]])
    s = serialize(t, 0, SerializeConfig(max_rows=5, max_bytes=512))
    assert s.rows_used == [0, 250, 500, 749, 999] and s.truncated


def test_errors():
    with pytest.raises(TableError, match="out of range"):
        serialize(Table(columns=[["a"]]), 3)
    with pytest.raises(TableError, match="no columns"):
        serialize(Table(columns=[]), 0)


def _mmr_reference(tp, candidates, lam):
    """MMR as first written: a Python loop of pairwise float64 dot products (the vectorised form must agree)."""
    rest = sorted(candidates)
    rel = {j: float(candidates[j] @ tp) for j in rest}
    red = dict.fromkeys(rest, 0.0)
    out = []
    while rest:
        best = max(rest, key=lambda j: (lam * rel[j] - (1 - lam) * red[j], -j))
        out.append(best)
        rest.remove(best)
        for j in rest:
            red[j] = max(red[j], float(candidates[j] @ candidates[best]))
    return out


def test_vectorised_mmr_matches_the_pairwise_loop_and_breaks_ties_by_index():
    rng = np.random.default_rng(0)
    for lam in (0.3, 0.7, 1.0):
        vecs = rng.random((40, 16))
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        cands = {j: vecs[j] for j in range(1, 40)}
        assert mmr_order(vecs[0], cands, lam) == _mmr_reference(vecs[0], cands, lam)
    dup = {3: vecs[5], 7: vecs[5].copy(), 9: vecs[6]}  # two equal columns: the lower index first
    assert mmr_order(vecs[0], dup, 1.0).index(3) < mmr_order(vecs[0], dup, 1.0).index(7)


def test_column_profiles_are_computed_once_per_table_and_not_reused_for_another():
    from aegir.encoding.serialize import _table_profiles

    a = Table(columns=[["x1", "x2"], ["y1", "y2"]], header=["a", "b"])
    b = Table(columns=[["x1", "x2"], ["zz", "zz"]], header=["a", "b"])
    pa = _table_profiles(a, [0, 1])
    assert _table_profiles(a, [0, 1]) is pa  # the same table and rows: the cached matrix
    assert _table_profiles(a, [1]) is not pa  # another row view
    pb = _table_profiles(b, [0, 1])
    assert np.array_equal(pb[0], pa[0]) and not np.array_equal(pb[1], pa[1])
    assert np.array_equal(pb[1], _profile("b", ["zz", "zz"]))
    rnd = __import__("random").Random(1)  # distinct columns: no near-ties, whose order is a last-bit matter
    wide = Table(columns=[["".join(rnd.choices(string.ascii_lowercase, k=8)) for _ in range(2)] for _ in range(60)],
                 header=[f"c{i}" for i in range(60)])
    for j in (0, 17, 59):  # whole serializations agree with MMR over per-column profiles
        s = serialize(wide, j)
        profiles = {k: _profile(f"c{k}", wide.columns[k]) for k in range(60) if k != j}
        assert s.context == _mmr_reference(_profile(f"c{j}", wide.columns[j]), profiles, SerializeConfig().mmr_lambda)[:len(s.context)]
