"""TF-IDF, LSI and the peak-space kNN graph."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from scipy.spatial.distance import cdist

import sctransfer as st
from sctransfer._knn import knn_graph, similarity_blocks, top_columns, unit_rows
from sctransfer.pp._lsi import tfidf
from sctransfer.pp._neighbors import neighbor_indices, tfidf_lsi

# --------------------------------------------------------------------------------------------
# TF-IDF
# --------------------------------------------------------------------------------------------
COUNTS = np.array([[1, 0, 1, 0], [0, 2, 2, 0], [3, 1, 0, 0]], dtype=np.float32)


def test_tfidf_hand_computed():
    # cell totals 2, 4, 4; peak totals 4, 3, 3, 0 -> idf = 3/4, 1, 1, (0: peak without counts)
    # value = log1p(count / cell total * idf * 1e4)
    by_hand = np.log1p(
        np.array(
            [
                [1 / 2 * 3 / 4 * 1e4, 0, 1 / 2 * 1e4, 0],  # 3750, 5000
                [0, 2 / 4 * 1e4, 2 / 4 * 1e4, 0],  # 5000, 5000
                [3 / 4 * 3 / 4 * 1e4, 1 / 4 * 1e4, 0, 0],  # 5625, 2500
            ]
        )
    )
    for x in (COUNTS, sp.csr_matrix(COUNTS), sp.csc_matrix(COUNTS)):
        out = tfidf(x)
        assert isinstance(out, sp.csr_matrix) and out.dtype == np.float32 and out.nnz == 6
        np.testing.assert_allclose(out.toarray(), by_hand, rtol=1e-6)
    np.testing.assert_allclose(tfidf(COUNTS, scale_factor=1.0)[0, 0], np.log1p(0.375), rtol=1e-6)
    assert COUNTS[2, 0] == 3  # the input is not changed


def test_tfidf_cell_without_counts_stays_zero():
    x = np.vstack([COUNTS, np.zeros(4, dtype=np.float32)])
    out = tfidf(sp.csr_matrix(x)).toarray()
    assert np.isfinite(out).all() and not out[3].any()
    np.testing.assert_allclose(out[0, 0], np.log1p(1 / 2 * 4 / 4 * 1e4), rtol=1e-6)  # idf now 4 cells / 4 counts


# --------------------------------------------------------------------------------------------
# LSI
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def peak_counts():
    rng = np.random.default_rng(0)
    profiles = rng.gamma(0.3, 1.0, size=(4, 300))
    labels = rng.integers(0, 4, 200)
    return sp.csr_matrix(rng.poisson(profiles[labels] * 0.5).astype(np.float32))


def test_tfidf_lsi_shape_dtype_and_first_component(peak_counts):
    emb = tfidf_lsi(peak_counts, n_components=10)
    assert emb.shape == (200, 9) and emb.dtype == np.float32 and emb.flags["C_CONTIGUOUS"]
    full = tfidf_lsi(peak_counts, n_components=10, drop_first=False)
    assert full.shape == (200, 10)
    np.testing.assert_array_equal(emb, full[:, 1:])  # only the first component is dropped
    # the components are the left singular vectors times the singular values of the TF-IDF matrix
    singular = np.linalg.svd(tfidf(peak_counts).toarray(), compute_uv=False)
    np.testing.assert_allclose(np.linalg.norm(full[:, :4], axis=0), singular[:4], rtol=1e-3)
    gram = full.T @ full
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-2 * singular[0] ** 2)


def test_tfidf_lsi_is_deterministic_and_reads_layers(peak_counts):
    first = tfidf_lsi(peak_counts, n_components=8, random_state=3)
    np.testing.assert_array_equal(first, tfidf_lsi(peak_counts, n_components=8, random_state=3))
    adata = AnnData(X=sp.csr_matrix(peak_counts.shape, dtype=np.float32), layers={"counts": peak_counts})
    np.testing.assert_array_equal(first, tfidf_lsi(adata, n_components=8, layer="counts", random_state=3))


def test_tfidf_lsi_rejects_bad_n_components(peak_counts):
    with pytest.raises(ValueError, match=r"n_components must be between 2 and min\(cells, peaks\) - 1 = 199; got 200"):
        tfidf_lsi(peak_counts, n_components=200)
    with pytest.raises(ValueError, match="got 1"):
        tfidf_lsi(peak_counts, n_components=1)
    with pytest.raises(ValueError, match="NaN"):
        tfidf_lsi(np.full((5, 5), np.nan), n_components=2)


# --------------------------------------------------------------------------------------------
# kNN graph
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_knn_equals_brute_force(metric):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    idx, dist = knn_graph(x, n_neighbors=10, metric=metric, method="exact")
    assert idx.shape == dist.shape == (400, 10) and idx.dtype == np.int64 and dist.dtype == np.float32
    brute = cdist(x.astype(np.float64), x.astype(np.float64), metric=metric)
    np.fill_diagonal(brute, np.inf)
    expected = np.argsort(brute, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_allclose(dist, np.take_along_axis(brute, expected, axis=1), atol=1e-5)
    assert not (idx == np.arange(400)[:, None]).any()
    # auto uses the exact search at this size
    np.testing.assert_array_equal(knn_graph(x, n_neighbors=10, metric=metric)[0], idx)


def test_knn_never_returns_self_even_with_duplicate_points():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(40, 5)).astype(np.float32)
    x = np.vstack([base, base, base, 2 * base])  # every point has three exact (cosine) duplicates
    for metric in ("cosine", "euclidean"):
        idx, dist = knn_graph(x, n_neighbors=4, metric=metric, method="exact")
        assert not (idx == np.arange(len(x))[:, None]).any()
        assert (np.diff(np.sort(idx, axis=1), axis=1) > 0).all()
        copies = 3 if metric == "cosine" else 2  # 2 * base is far away in euclidean distance
        np.testing.assert_allclose(dist[:40, :copies], 0, atol=1e-3)
        assert ((idx[:40, :copies] % 40) == np.arange(40)[:, None]).all()


def test_similarity_blocks_cover_every_row_once():
    rng = np.random.default_rng(4)
    query, target = rng.normal(size=(23, 4)), rng.normal(size=(9, 4))
    for chunk_size in (1, 5, 23, 100):
        blocks = list(similarity_blocks(query, target, chunk_size))
        assert [b.shape[0] for _, b in blocks] == [min(chunk_size, 23 - r.start) for r, _ in blocks]
        np.testing.assert_allclose(np.vstack([b for _, b in blocks]), query @ target.T, rtol=1e-12)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got 0"):
        next(similarity_blocks(query, target, 0))


def test_top_columns_and_unit_rows():
    block = np.array([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]])
    assert [sorted(row) for row in top_columns(block, 2).tolist()] == [[1, 3], [0, 1]]
    np.testing.assert_array_equal(top_columns(block, 9), np.tile(np.arange(4), (2, 1)))
    x = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]], dtype=np.float32)
    unit = unit_rows(x)
    assert unit.dtype == np.float32
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]])


def test_knn_errors():
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="more than n_neighbors=10"):
        knn_graph(x, n_neighbors=10)
    with pytest.raises(ValueError, match="method must be"):
        knn_graph(x, n_neighbors=3, method="annoy")
    with pytest.raises(ValueError, match="exact search supports metric"):
        knn_graph(x, n_neighbors=3, metric="manhattan", method="exact")


def test_pynndescent_agrees_with_exact():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 10)).astype(np.float32)
    exact, _ = knn_graph(x, n_neighbors=10, method="exact")
    approx, approx_dist = knn_graph(x, n_neighbors=10, method="pynndescent", random_state=0)
    assert approx.shape == (2000, 10) and approx.dtype == np.int64 and approx_dist.dtype == np.float32
    assert not (approx == np.arange(2000)[:, None]).any()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx, strict=True)])
    print(f"\npynndescent recall of the exact cosine neighbours (2,000 points, 10-D): {recall:.3f}")
    assert recall >= 0.9
    true = 1 - np.sum(x[:, None, :] * x[approx], axis=2) / (
        np.linalg.norm(x, axis=1)[:, None] * np.linalg.norm(x[approx], axis=2)
    )
    np.testing.assert_allclose(approx_dist, true, atol=1e-4)  # distances are 1 - cosine similarity


# --------------------------------------------------------------------------------------------
# peak_neighbors on MOp ATAC
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mop_atac():
    mdata = st.datasets.mop_label_transfer()
    st.pp.peak_neighbors(mdata)  # MuData input: writes into mdata["atac"]
    return mdata["atac"]


def test_peak_neighbors_writes_the_graph(mop_atac):
    atac, n, k = mop_atac, mop_atac.n_obs, 10
    assert atac.obsm["X_lsi"].shape == (n, 29) and atac.obsm["X_lsi"].dtype == np.float32
    dist = atac.obsp["peak_neighbors_distances"]
    conn = atac.obsp["peak_neighbors_connectivities"]
    for graph in (dist, conn):
        assert isinstance(graph, sp.csr_matrix) and graph.shape == (n, n)
        assert (np.diff(graph.indptr) == k).all()
        assert not graph.diagonal().any() and not (graph.indices.reshape(n, k) == np.arange(n)[:, None]).any()
        assert (np.diff(np.sort(graph.indices.reshape(n, k), axis=1), axis=1) > 0).all()  # k distinct cells
    assert dist.dtype == np.float32 and (dist.data >= 0).all() and (dist.data <= 2).all()
    assert (np.diff(dist.data.reshape(n, k), axis=1) >= 0).all()  # nearest first
    np.testing.assert_array_equal(conn.indices, dist.indices)
    assert (conn.data == 1).all()
    info = atac.uns["peak_neighbors"]
    assert info["distances_key"] == "peak_neighbors_distances"
    assert info["connectivities_key"] == "peak_neighbors_connectivities"
    assert info["params"]["n_neighbors"] == k and info["params"]["use_rep"] == "X_lsi"
    assert info["params"]["metric"] == "cosine" and info["params"]["n_components"] == 30


def test_peak_neighbors_share_cell_types(mop_atac):
    idx = neighbor_indices(mop_atac)
    labels = mop_atac.obs["cell_type"].to_numpy()
    purity = float((labels[idx] == labels[:, None]).mean())
    counts = pd.Series(labels).value_counts(normalize=True)
    chance = float((counts**2).sum())
    print(f"\nMOp ATAC peak-space neighbour purity (cosine, LSI 2..30, k=10): {purity:.3f} (chance {chance:.3f})")
    assert purity >= 0.45  # measured 0.477


def test_neighbor_indices_round_trip(mop_atac):
    idx = neighbor_indices(mop_atac)
    assert idx.shape == (mop_atac.n_obs, 10) and idx.dtype == np.int64
    expected, expected_dist = knn_graph(mop_atac.obsm["X_lsi"], n_neighbors=10)
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_allclose(mop_atac.obsp["peak_neighbors_distances"].data.reshape(-1, 10), expected_dist)


def test_peak_neighbors_use_rep():
    rng = np.random.default_rng(4)
    emb = rng.normal(size=(300, 6))
    adata = AnnData(X=sp.csr_matrix((300, 20), dtype=np.float32), obsm={"X_emb": emb})
    st.pp.peak_neighbors(adata, use_rep="X_emb", n_neighbors=5, metric="euclidean", key_added="emb")
    assert "X_lsi" not in adata.obsm  # the LSI is not computed (an all-zero matrix would have failed)
    assert adata.uns["emb"]["params"]["use_rep"] == "X_emb"
    expected, expected_dist = knn_graph(emb, n_neighbors=5, metric="euclidean")
    np.testing.assert_array_equal(neighbor_indices(adata, "emb"), expected)
    np.testing.assert_allclose(adata.obsp["emb_distances"].data.reshape(-1, 5), expected_dist)
    with pytest.raises(KeyError, match="X_nope"):
        st.pp.peak_neighbors(adata, use_rep="X_nope")


def test_missing_graph_raises_key_error():
    adata = AnnData(X=sp.csr_matrix((30, 5), dtype=np.float32))
    with pytest.raises(KeyError, match="'peak_neighbors'.*run sctransfer.pp.peak_neighbors"):
        neighbor_indices(adata)
    adata.uns["peak_neighbors"] = {}
    with pytest.raises(KeyError, match="peak_neighbors"):
        neighbor_indices(adata)  # the obsp graph is missing too


def test_knn_query_exact_and_approximate_agree():
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(8, 16)) * 3
    reference = (centres[rng.integers(0, 8, 3000)] + rng.normal(size=(3000, 16))).astype(np.float32)
    query = (centres[rng.integers(0, 8, 500)] + rng.normal(size=(500, 16))).astype(np.float32)
    exact, exact_dist = st.pp.knn_query(reference, query, 15, method="exact")
    brute = cdist(query, reference, metric="cosine")
    np.testing.assert_array_equal(np.sort(exact, axis=1), np.sort(np.argsort(brute, axis=1)[:, :15], axis=1))
    np.testing.assert_allclose(exact_dist, np.sort(brute, axis=1)[:, :15], atol=1e-5)
    assert (np.diff(exact_dist, axis=1) >= 0).all()  # nearest first
    approx, approx_dist = st.pp.knn_query(reference, query, 15, method="pynndescent")
    recall = np.mean([len(set(a) & set(b)) / 15 for a, b in zip(exact, approx, strict=True)])
    assert recall >= 0.9
    assert (np.diff(approx_dist, axis=1) >= -1e-6).all()
    with pytest.raises(ValueError, match="method must be"):
        st.pp.knn_query(reference, query, 5, method="annoy")
    with pytest.raises(ValueError, match="exact search supports metric"):
        st.pp.knn_query(reference, query, 5, metric="manhattan", method="exact")
