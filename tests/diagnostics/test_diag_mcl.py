"""MCL on graphs with known clusters."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

from aegir.diagnostics.mcl import MCLConfig, auto_k, knn_cosine_graph, mcl, mcl_audit


def _blobs(n_blobs: int, per: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_blobs, dim)) * 5.0
    x = np.concatenate([c + rng.normal(size=(per, dim)) for c in centers])
    return x, np.repeat(np.arange(n_blobs), per)


@pytest.mark.parametrize("n_blobs", [3, 4])
def test_gaussian_blobs_recovered_at_coarse_and_medium_inflation(n_blobs):
    x, y = _blobs(n_blobs, 40, 16, seed=n_blobs)
    audit = mcl_audit(x)  # auto k for 120-160 points: 4-5 neighbours
    assert audit.k == auto_k(len(x)) and [r.inflation for r in audit.results] == [1.4, 2.0, 3.0, 5.0]
    c = audit.coarse
    assert c.converged and c.n_clusters == n_blobs and c.sizes == (40,) * n_blobs
    assert adjusted_rand_score(y, c.labels) == pytest.approx(1.0)
    # A denser graph (k = 10) keeps the blobs whole at inflation 2.0 as well.
    dense = mcl_audit(x, MCLConfig(k=10))
    for r in dense.results[:2]:
        assert r.n_clusters == n_blobs and adjusted_rand_score(y, r.labels) == pytest.approx(1.0)
    # Finer inflations only split further, never merge blobs (kNN has no cross-blob edges here).
    for a in (audit, dense):
        counts = [r.n_clusters for r in a.results]
        assert counts == sorted(counts)
        for r in a.results:
            for lab in np.unique(r.labels):
                assert len(set(y[r.labels == lab])) == 1


def test_auto_k_grows_with_sample_size():
    assert [auto_k(n) for n in (10, 50, 100, 200, 400, 765, 5000)] == [3, 3, 4, 6, 8, 10, 10]
    # Small sample, many small classes: k = 10 would chain the classes into one coarse cluster.
    x, _ = _blobs(25, 2, 24, seed=11)
    assert mcl_audit(x).coarse.count(2) >= 3
    assert mcl_audit(x, MCLConfig(k=10)).coarse.count(2) < mcl_audit(x).coarse.count(2)


def test_planted_block_graph():
    rng = np.random.default_rng(7)
    sizes = [15, 20, 25]
    n = sum(sizes)
    block = np.repeat(np.arange(3), sizes)
    same = block[:, None] == block[None, :]
    p = np.where(same, 0.6, 0.02)  # dense inside blocks, a few cross edges
    upper = np.triu(rng.random((n, n)) < p, 1)
    a = (upper | upper.T).astype(float)
    r = mcl(sp.csr_matrix(a), inflation=2.0)
    assert r.converged
    assert sorted(r.sizes) == sorted(sizes)
    assert adjusted_rand_score(block, r.labels) == pytest.approx(1.0)
    # Label 0 is the largest cluster.
    assert np.sum(r.labels == 0) == max(sizes)


def test_two_triangles_and_an_isolated_node_by_hand():
    a = np.zeros((7, 7))
    for i, j in [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5)]:
        a[i, j] = a[j, i] = 1.0
    r = mcl(a, inflation=2.0)
    assert r.sizes == (3, 3, 1)
    assert len({r.labels[0], r.labels[1], r.labels[2]}) == 1
    assert len({r.labels[3], r.labels[4], r.labels[5]}) == 1
    assert len(set(r.labels.tolist())) == 3


def test_inflation_controls_granularity_on_a_ring_of_cliques():
    # 6 cliques of 5 joined in a ring by single edges: coarse inflation merges, fine splits.
    k, m = 6, 5
    n = k * m
    a = np.zeros((n, n))
    for c in range(k):
        idx = np.arange(c * m, (c + 1) * m)
        a[np.ix_(idx, idx)] = 1.0
        nxt = ((c + 1) % k) * m
        a[c * m, nxt + 1] = a[nxt + 1, c * m] = 1.0
    np.fill_diagonal(a, 0.0)
    fine = mcl(a, inflation=3.0)
    assert fine.n_clusters == k
    coarse = mcl(a, inflation=1.2)
    assert coarse.n_clusters <= fine.n_clusters


def test_constant_embeddings_form_one_cluster_even_with_float_noise():
    rng = np.random.default_rng(0)
    x = np.ones((120, 8)) + 1e-10 * rng.normal(size=(120, 8))
    g = knn_cosine_graph(x, k=5)
    assert g.nnz == 120 * 119  # ties within tie_tol: complete graph, no index-order artefact
    audit = mcl_audit(x)
    assert [r.n_clusters for r in audit.results] == [1, 1, 1, 1]
    # And the plain MCL iteration reaches the same verdict on that graph.
    assert mcl(g, 2.0).sizes == (120,)


def test_unstructured_noise_is_one_coarse_cluster():
    x = np.random.default_rng(3).normal(size=(200, 32))
    assert mcl_audit(x).coarse.n_clusters <= 2


def test_knn_graph_shape_and_symmetry():
    x, _ = _blobs(3, 10, 4)
    g = knn_cosine_graph(x, k=3)
    assert (g != g.T).nnz == 0 and g.diagonal().sum() == 0
    assert (np.diff(g.indptr) >= 3).all()
    assert g.data.min() > 0


def test_subsampling_and_bad_input():
    x, _ = _blobs(3, 30, 8)
    audit = mcl_audit(x, MCLConfig(max_points=50))
    assert audit.n_points == 50 and audit.n_total == 90 and audit.subsampled
    with pytest.raises(ValueError, match="inflations must be > 1"):
        MCLConfig(inflations=(1.0,))
    with pytest.raises(ValueError, match="NaN"):
        mcl_audit(np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="non-negative"):
        mcl(np.array([[0.0, -1.0], [-1.0, 0.0]]))
