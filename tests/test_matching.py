import logging

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from scipy.spatial.distance import cdist

import sctransfer as st
from sctransfer.tl import _matching

# --- FOSCTTM and top-1 accuracy -----------------------------------------------------------------------------------


def _at_angles(degrees, scale=1.0):
    radians = np.deg2rad(degrees)
    return np.c_[np.cos(radians), np.sin(radians)] * np.asarray(scale, dtype=float).reshape(-1, 1)


# Four cells on the unit circle (cosine distance grows with the angle):
#   RNA   0 deg   90 deg  180 deg  270 deg   (scaled by 1..4: cosine ignores the norm)
#   ATAC 10 deg  200 deg  170 deg  280 deg
# RNA 1 (90): partner at 200 (110 deg away); ATAC 0 (80) and ATAC 2 (80) are closer, ATAC 3 (170) is not -> 2/3.
# ATAC 1 (200): partner at 90 (110); RNA 2 (20) and RNA 3 (70) are closer, RNA 0 (160) is not -> 2/3.
# Every other cell's partner is 10 deg away and nearest -> 0.
RNA_ANGLES = _at_angles([0, 90, 180, 270], scale=[1, 2, 3, 4])
ATAC_ANGLES = _at_angles([10, 200, 170, 280])


def test_foscttm_hand_computed_cosine():
    result = st.metrics.foscttm(RNA_ANGLES, ATAC_ANGLES, return_per_cell=True)
    np.testing.assert_allclose(result.rna_to_atac_per_cell, [0, 2 / 3, 0, 0])
    np.testing.assert_allclose(result.atac_to_rna_per_cell, [0, 2 / 3, 0, 0])
    assert result.rna_to_atac == pytest.approx(1 / 6)
    assert result.atac_to_rna == pytest.approx(1 / 6)
    assert result.mean == pytest.approx(1 / 6)


def test_foscttm_hand_computed_euclidean_ties_favour_the_partner():
    # RNA at 0, 1, 2; ATAC at 0, 2, 1.  RNA 1: partner at distance 1, ATAC 2 closer (0), ATAC 0 tied (1) -> 1/2.
    # RNA 2: ATAC 1 closer -> 1/2.  ATAC 1 (at 2): RNA 2 closer -> 1/2.  ATAC 2 (at 1): RNA 1 closer, RNA 0 tied -> 1/2.
    result = st.metrics.foscttm([[0.0], [1.0], [2.0]], [[0.0], [2.0], [1.0]], metric="euclidean", return_per_cell=True)
    np.testing.assert_allclose(result.rna_to_atac_per_cell, [0, 1 / 2, 1 / 2])
    np.testing.assert_allclose(result.atac_to_rna_per_cell, [0, 1 / 2, 1 / 2])
    assert result.mean == pytest.approx(1 / 3)
    assert result.rna_to_atac_per_cell.dtype == np.float64  # integer input is computed in float64


def test_foscttm_reversed_order():
    # 5 cells at 0..4, ATAC in reverse order: RNA i's partner is at 4 - i.
    # RNA 0: partner 4 away, ATAC at 0..3 closer -> 4/4; RNA 1: partner 2 away, 0, 1, 2 closer -> 3/4; RNA 2: 0.
    positions = np.arange(5.0)[:, None]
    result = st.metrics.foscttm(positions, positions[::-1], metric="euclidean", return_per_cell=True)
    np.testing.assert_allclose(result.rna_to_atac_per_cell, [1, 3 / 4, 0, 3 / 4, 1])
    assert result.mean == pytest.approx(0.7)
    accuracy = st.metrics.top1_accuracy(positions, positions[::-1], metric="euclidean", return_per_cell=True)
    assert accuracy.rna_to_atac_per_cell.tolist() == [False, False, True, False, False]
    assert accuracy.mean == pytest.approx(0.2)


def test_perfect_and_collapsed_alignment():
    embedding = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    assert st.metrics.foscttm(embedding, embedding).mean == 0.0
    assert st.metrics.top1_accuracy(embedding, embedding).mean == 1.0
    # all cells at one point: nothing is strictly closer (FOSCTTM 0), but no partner is the unique nearest
    collapsed = np.ones((6, 3))
    assert st.metrics.foscttm(collapsed, collapsed).mean == 0.0
    assert st.metrics.top1_accuracy(collapsed, collapsed).mean == 0.0


def test_top1_accuracy_hand_computed():
    result = st.metrics.top1_accuracy(RNA_ANGLES, ATAC_ANGLES, return_per_cell=True)
    assert result.rna_to_atac_per_cell.tolist() == [True, False, True, True]
    assert result.atac_to_rna_per_cell.tolist() == [True, False, True, True]
    assert result.mean == pytest.approx(0.75)
    assert result[:3] == (0.75, 0.75, 0.75)
    assert result.rna_to_atac_per_cell is not None
    assert st.metrics.top1_accuracy(RNA_ANGLES, ATAC_ANGLES).rna_to_atac_per_cell is None


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_foscttm_chunked_equals_brute_force(metric):
    rng = np.random.default_rng(1)
    rna = rng.normal(size=(37, 4))
    atac = rna + rng.normal(size=rna.shape)
    distances = cdist(rna, atac, metric=metric)
    partner = np.diag(distances)
    expected_rna = (distances < partner[:, None]).sum(axis=1) / 36
    expected_atac = (distances < partner[None, :]).sum(axis=0) / 36
    for chunk_size in (1, 5, 2048):
        result = st.metrics.foscttm(rna, atac, metric=metric, chunk_size=chunk_size, return_per_cell=True)
        np.testing.assert_allclose(result.rna_to_atac_per_cell, expected_rna)
        np.testing.assert_allclose(result.atac_to_rna_per_cell, expected_atac)
        accuracy = st.metrics.top1_accuracy(rna, atac, metric=metric, chunk_size=chunk_size, return_per_cell=True)
        np.testing.assert_array_equal(accuracy.rna_to_atac_per_cell, distances.argmin(axis=1) == np.arange(37))
        np.testing.assert_array_equal(accuracy.atac_to_rna_per_cell, distances.argmin(axis=0) == np.arange(37))


@pytest.mark.parametrize("function", [st.metrics.foscttm, st.metrics.top1_accuracy])
@pytest.mark.parametrize(
    ("rna", "atac", "kwargs", "message"),
    [
        (np.ones((3, 2)), np.ones((4, 2)), {}, r"shape \(3, 2\) but atac_embedding \(4, 2\)"),
        (np.ones((1, 2)), np.ones((1, 2)), {}, "at least 2 paired cells"),
        (np.array([[1.0, np.nan], [1.0, 2.0]]), np.ones((2, 2)), {}, "rna_embedding has 1 row"),
        (np.ones((2, 2)), np.array([[1.0, 1.0], [0.0, 0.0]]), {}, "atac_embedding has 1 all-zero row"),
        (np.ones(3), np.ones(3), {}, "must be a 2-D array"),
        (sparse.csr_matrix(np.ones((2, 2))), np.ones((2, 2)), {}, r"sparse matrix; pass a dense embedding"),
        (np.ones((2, 2)), np.ones((2, 2)), {"metric": "manhattan"}, "metric must be one of"),
        (np.ones((2, 2)), np.ones((2, 2)), {"chunk_size": 0}, "chunk_size must be a positive integer"),
    ],
)
def test_paired_metric_errors(function, rna, atac, kwargs, message):
    with pytest.raises(ValueError, match=message):
        function(rna, atac, **kwargs)


def test_zero_rows_are_fine_for_euclidean():
    assert st.metrics.foscttm(np.zeros((2, 2)), np.eye(2), metric="euclidean").mean == 0.0


# --- matching score -----------------------------------------------------------------------------------------------


def test_matching_score_identity_uniform_and_zero_rows():
    assert st.metrics.matching_score(np.eye(4)) == 1.0
    assert st.metrics.matching_score(np.full((4, 4), 7.0)) == pytest.approx(1 / 4)
    # row 0 sums to 0 -> 0; row 1: 1 / (1 + 1); row 2: negative weight set to 0 -> 2 / 2
    pairing = [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, -5.0, 2.0]]
    assert st.metrics.matching_score(pairing) == pytest.approx((0 + 1 / 2 + 1) / 3)
    assert st.metrics.matching_score(sparse.csr_matrix(pairing)) == pytest.approx(1 / 2)
    assert st.metrics.matching_score(sparse.coo_matrix(np.eye(4)[::-1])) == 0.0


def test_matching_score_true_partner_and_rectangular():
    # 2 RNA cells x 3 ATAC cells; row 0's partner is column 2 (weight 3 of 4), row 1's is column 0 (1 of 2)
    pairing = np.array([[1.0, 0.0, 3.0], [1.0, 1.0, 0.0]])
    assert st.metrics.matching_score(pairing, true_partner=[2, 0]) == pytest.approx((3 / 4 + 1 / 2) / 2)
    permutation = np.array([2, 0, 3, 1])
    assert st.metrics.matching_score(np.eye(4)[:, permutation], true_partner=np.argsort(permutation)) == 1.0


def test_matching_score_row_limit():
    pairing = sparse.random(3, 1500, density=0.9, random_state=0, format="csr")
    with pytest.raises(ValueError, match=r"3 row\(s\) of pairing have more than 1000 positive weights"):
        st.metrics.matching_score(pairing, true_partner=[0, 1, 2])
    assert 0 < st.metrics.matching_score(pairing, true_partner=[0, 1, 2], max_nonzeros_per_row=None) < 0.01
    # negative weights do not count towards the limit
    assert st.metrics.matching_score(np.eye(3) - 2 * (1 - np.eye(3)), max_nonzeros_per_row=1) == 1.0


@pytest.mark.parametrize(
    ("pairing", "true_partner", "message"),
    [
        (np.ones((2, 3)), None, r"shape \(2, 3\): the default true_partner"),
        (np.ones((2, 3)), [0], r"2 integer column indices .* got shape \(1,\)"),
        (np.ones((2, 3)), [0.0, 1.0], "integer column indices"),
        (np.ones((2, 3)), [0, 3], r"outside \[0, 2\]"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), None, "NaN or infinite"),
        (np.ones((0, 0)), None, "empty"),
    ],
)
def test_matching_score_errors(pairing, true_partner, message):
    with pytest.raises(ValueError, match=message):
        st.metrics.matching_score(pairing, true_partner)


# --- silhouette ---------------------------------------------------------------------------------------------------


def test_silhouette_hand_computed():
    # A at 0, 1 and B at 10, 11: for the cell at 0, a = 1 and b = (10 + 11) / 2; at 1, a = 1 and b = (9 + 10) / 2
    embedding = np.array([[0.0], [1.0], [10.0], [11.0]])
    s = (2 * (1 - 1 / 10.5) + 2 * (1 - 1 / 9.5)) / 4
    labels = pd.Series(["A", "A", "B", "B"], index=list("wxyz"))
    score = st.metrics.silhouette_cell_type(embedding, labels, metric="euclidean")
    assert score == pytest.approx((s + 1) / 2)
    # each type at a single direction: perfectly separated -> 1; types swapped across the clusters -> low
    directions = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    assert st.metrics.silhouette_cell_type(directions, ["A", "A", "B", "B"]) == pytest.approx(1.0)
    assert st.metrics.silhouette_cell_type(directions, ["A", "B", "A", "B"]) < 0.5


def test_silhouette_sample_size_is_seeded():
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(200, 3))
    labels = rng.choice(["a", "b", "c"], size=200)
    first = st.metrics.silhouette_cell_type(embedding, labels, sample_size=50, random_state=1)
    assert first == st.metrics.silhouette_cell_type(embedding, labels, sample_size=50, random_state=1)
    assert 0 <= first <= 1


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["a", "a", "a", "a"], "between 2 and n_cells - 1 = 3 cell types, got 1"),
        (["a", "b", "c", "d"], "got 4"),
        (["a", "b", None, "b"], "1 missing value"),
        (["a", "b"], "labels has 2 entries but the embedding has 4 cells"),
    ],
)
def test_silhouette_errors(labels, message):
    with pytest.raises(ValueError, match=message):
        st.metrics.silhouette_cell_type(np.arange(8.0).reshape(4, 2), labels)


# --- batch-entropy mixing -----------------------------------------------------------------------------------------


def _circle(n):
    return _at_angles(np.arange(n) * 360 / n)


def test_mixing_perfect_on_a_circle():
    # pattern A B B A around a circle: each cell's two nearest neighbours are one A and one B
    batches = list("ABBA") * 2
    assert st.metrics.batch_entropy_mixing(_circle(8), batches, n_neighbors=2) == pytest.approx(1.0)


def test_mixing_reweights_by_batch_size():
    # pattern A A B (A twice as common); each cell's 6 nearest neighbours are 4 A and 2 B, the overall shares,
    # so the reweighted shares are 1/2, 1/2 -> perfect mixing (unweighted entropy would give 0.918)
    batches = list("AAB") * 4
    assert st.metrics.batch_entropy_mixing(_circle(12), batches, n_neighbors=6, metric="cosine") == pytest.approx(1.0)


def test_mixing_hand_computed_and_separated():
    # 2 cells of each batch, k = 3 (all others): every cell sees 1 of its batch and 2 of the other
    score = st.metrics.batch_entropy_mixing(np.arange(4.0)[:, None], ["x", "y", "x", "y"], n_neighbors=100)
    entropy = -(1 / 3 * np.log(1 / 3) + 2 / 3 * np.log(2 / 3))
    assert score == pytest.approx(entropy / np.log(2))
    # two distant clusters, one per batch: neighbourhoods hold a single batch -> 0
    rng = np.random.default_rng(0)
    separated = np.vstack([rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 100])
    assert st.metrics.batch_entropy_mixing(separated, ["rna"] * 30 + ["atac"] * 30, n_neighbors=10) == 0.0


def test_mixing_random_draws_are_seeded():
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(300, 4))
    batches = pd.Categorical(rng.choice(["rna", "atac", "other"], size=300))
    kwargs = {"n_neighbors": 15, "n_pools": 5, "n_samples_per_pool": 20}
    first = st.metrics.batch_entropy_mixing(embedding, batches, random_state=3, **kwargs)
    assert first == st.metrics.batch_entropy_mixing(embedding, batches, random_state=3, **kwargs)
    assert 0.8 < first <= 1  # random batches are well mixed


@pytest.mark.parametrize(
    ("batches", "kwargs", "message"),
    [
        (["a"] * 4, {}, "single value .'a'.; mixing needs at least two batches"),
        (["a", "b"], {}, "batches has 2 entries but the embedding has 4 cells"),
        (["a", "b", "a", np.nan], {}, "1 missing value"),
        (["a", "b", "a", "b"], {"n_pools": 0}, "n_pools must be a positive integer"),
        (["a", "b", "a", "b"], {"metric": "l1"}, "metric must be one of"),
    ],
)
def test_mixing_errors(batches, kwargs, message):
    with pytest.raises(ValueError, match=message):
        st.metrics.batch_entropy_mixing(np.arange(8.0).reshape(4, 2), batches, **kwargs)


# --- matching primitives (sctransfer.tl._matching) ----------------------------------------------------------------


def _unit(values):
    values = np.asarray(values, dtype=np.float32)
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def test_permuted_identity_is_recovered():
    permutation = np.array([3, 0, 4, 1, 2])
    query, target = np.eye(5, dtype=np.float32), np.eye(5, dtype=np.float32)[permutation]
    expected = np.argsort(permutation)  # target row j is query row permutation[j]
    for partner, similarity in (
        _matching.nearest_partners(query, target),
        _matching.nearest_partners(query, target, chunk_size=2),
        _matching.one_to_one_partners(query, target),
        _matching.one_to_one_partners(query, target, dense_limit=0, n_candidates=1),
    ):
        np.testing.assert_array_equal(partner, expected)
        np.testing.assert_allclose(similarity, 1.0)


def test_one_to_one_differs_from_nearest_when_partners_are_shared():
    # targets at 0 and 90 deg, queries at 10 and 40 deg: both are nearest to target 0, but the best one-to-one
    # assignment (cos 10 + cos 50 = 1.63 > cos 80 + cos 40 = 0.94) sends query 1 to target 1
    query, target = _at_angles([10, 40]).astype(np.float32), _at_angles([0, 90]).astype(np.float32)
    partner, similarity = _matching.nearest_partners(query, target)
    assert partner.tolist() == [0, 0]
    np.testing.assert_allclose(similarity, np.cos(np.deg2rad([10, 40])), rtol=1e-6)
    for dense_limit in (_matching.DENSE_ASSIGNMENT_LIMIT, 0):
        partner, similarity = _matching.one_to_one_partners(query, target, dense_limit=dense_limit)
        assert partner.tolist() == [0, 1]
        np.testing.assert_allclose(similarity, np.cos(np.deg2rad([10, 50])), rtol=1e-6)


@pytest.mark.parametrize("dense_limit", [_matching.DENSE_ASSIGNMENT_LIMIT, 0])
def test_one_to_one_unequal_sizes(dense_limit):
    query, target = _unit(np.random.default_rng(0).normal(size=(5, 3))), _unit(np.eye(3))
    partner, similarity = _matching.one_to_one_partners(query, target, dense_limit=dense_limit)
    assert (partner == -1).sum() == 2
    assert np.isnan(similarity[partner == -1]).all()
    assert sorted(partner[partner >= 0].tolist()) == [0, 1, 2]
    partner, similarity = _matching.one_to_one_partners(target, query, dense_limit=dense_limit)
    assert len(set(partner.tolist())) == 3 and partner.min() >= 0
    np.testing.assert_allclose(similarity, np.einsum("ij,ij->i", target, query[partner]), rtol=1e-6)


def test_sparse_assignment_equals_exact_assignment():
    rng = np.random.default_rng(0)
    # random case with every pair a candidate: the sparse solver must find the same optimum
    query, target = _unit(rng.normal(size=(40, 6))), _unit(rng.normal(size=(45, 6)))
    exact = _matching.one_to_one_partners(query, target)
    sparse_path = _matching.one_to_one_partners(query, target, dense_limit=0, n_candidates=45)
    np.testing.assert_array_equal(sparse_path[0], exact[0])
    np.testing.assert_allclose(sparse_path[1], exact[1], rtol=1e-6)
    # noisy shuffled copies: the optimum lies among a few candidates
    permutation = rng.permutation(200)
    base = rng.normal(size=(200, 16))
    query, target = _unit(base), _unit(base[permutation] + 0.3 * rng.normal(size=(200, 16)))
    exact = _matching.one_to_one_partners(query, target)
    sparse_path = _matching.one_to_one_partners(query, target, dense_limit=0, n_candidates=3)
    np.testing.assert_array_equal(sparse_path[0], exact[0])
    np.testing.assert_array_equal(exact[0], np.argsort(permutation))


def _crowded():
    # every query is nearest to target 0 and every target nearest to query 0, so with one candidate each way
    # the candidate graph (edges q0-t0, q1-t0, q2-t0, q0-t1, q0-t2) has no full matching
    query = _unit([[1, 0, 0], [1, 0.3, 0], [1, -0.3, 0]])
    target = _unit([[1, 0, 0], [1, 0, 0.3], [1, 0, -0.3]])
    return query, target


def test_one_to_one_doubles_candidates(caplog):
    query, target = _crowded()
    _, exact = _matching.one_to_one_partners(query, target)
    with caplog.at_level(logging.INFO, logger=_matching.__name__):
        partner, similarity = _matching.one_to_one_partners(query, target, dense_limit=0, n_candidates=1)
    assert "1 of 3 cells have no partner among 1 candidates each" in caplog.text
    assert "greedily" not in caplog.text
    assert sorted(partner.tolist()) == [0, 1, 2]
    assert similarity.sum() == pytest.approx(exact.sum())  # an optimum (query 1 and 2 tie on targets 1 and 2)


def test_one_to_one_greedy_fallback(monkeypatch, caplog):
    monkeypatch.setattr(_matching, "_MAX_DOUBLINGS", 0)
    query, target = _crowded()
    with caplog.at_level(logging.WARNING, logger=_matching.__name__):
        partner, similarity = _matching.one_to_one_partners(query, target, dense_limit=0, n_candidates=1)
    assert "Assigning 1 of 3 cells greedily" in caplog.text
    assert sorted(partner.tolist()) == [0, 1, 2]
    np.testing.assert_allclose(similarity, np.einsum("ij,ij->i", query, target[partner]), rtol=1e-6)


def test_topk_pairing_hand_computed():
    # similarities of the query to the targets: 1, 0, -1, 0.6 -> top 2 are targets 0 and 3
    query = np.array([[1.0, 0.0]], dtype=np.float32)
    target = _unit([[1, 0], [0, 1], [-1, 0], [0.6, 0.8]])
    pairing = _matching.topk_pairing(query, target, k=2, temperature=0.5)
    assert pairing.indices.tolist() == [0, 3]
    expected = np.exp(np.array([1, 0.6]) / 0.5)
    np.testing.assert_allclose(pairing.data, expected / expected.sum(), rtol=1e-6)


def test_topk_pairing_format_and_clipping():
    rng = np.random.default_rng(0)
    query, target = _unit(rng.normal(size=(30, 5))), _unit(rng.normal(size=(25, 5)))
    pairing = _matching.topk_pairing(query, target, k=4, chunk_size=7)
    assert isinstance(pairing, sparse.csr_matrix) and pairing.shape == (30, 25)
    assert pairing.indices.dtype == np.int32 and pairing.data.dtype == np.float32
    assert pairing.has_sorted_indices
    np.testing.assert_array_equal(np.diff(pairing.indptr), 4)
    np.testing.assert_allclose(pairing.sum(axis=1), 1, rtol=1e-6)
    # the kept columns are each row's 4 most similar targets
    top = np.sort(np.argsort(-(query @ target.T), axis=1)[:, :4], axis=1)
    np.testing.assert_array_equal(pairing.indices.reshape(30, 4), top)
    clipped = _matching.topk_pairing(query, target, k=1000)
    np.testing.assert_array_equal(np.diff(clipped.indptr), 25)
    np.testing.assert_allclose(clipped.sum(axis=1), 1, rtol=1e-6)


def test_topk_pairing_scores_with_matching_score():
    embedding = _unit(np.random.default_rng(0).normal(size=(50, 8)))
    sharp = _matching.topk_pairing(embedding, embedding, k=10, temperature=0.01)
    assert st.metrics.matching_score(sharp) == pytest.approx(1.0)
    flat = _matching.topk_pairing(embedding, embedding, k=50, temperature=1e6)
    assert st.metrics.matching_score(flat) == pytest.approx(1 / 50)


@pytest.mark.parametrize(
    ("function", "kwargs", "message"),
    [
        (_matching.nearest_partners, {"chunk_size": 0}, "chunk_size must be a positive integer"),
        (_matching.one_to_one_partners, {"n_candidates": 0}, "n_candidates must be a positive integer"),
        (_matching.topk_pairing, {"k": 0}, "k must be a positive integer"),
        (_matching.topk_pairing, {"temperature": 0.0}, "temperature must be positive"),
    ],
)
def test_primitive_errors(function, kwargs, message):
    with pytest.raises(ValueError, match=message):
        function(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), **kwargs)
    with pytest.raises(ValueError, match=r"same number of dimensions, got shapes \(3, 3\) and \(3, 2\)"):
        function(np.eye(3, dtype=np.float32), np.ones((3, 2), dtype=np.float32))


# --- real data ----------------------------------------------------------------------------------------------------


def test_metrics_on_bmmc_starter():
    """A linear shared space fitted on one donor's paired cells aligns the other donor's cells."""
    mdata = st.datasets.bmmc_multiome_starter()
    counts = mdata["rna"].X.toarray()
    rna = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    atac = (mdata["atac"].X.toarray() > 0).astype(float)
    fit = (mdata["rna"].obs["batch"] == "s1d1").to_numpy()

    def standardise(values):
        mean, sd = values[fit].mean(axis=0), values[fit].std(axis=0)
        return (values[~fit] - mean) / np.where(sd > 0, sd, 1), (values[fit] - mean) / np.where(sd > 0, sd, 1)

    (rna_test, rna_fit), (atac_test, atac_fit) = standardise(rna), standardise(atac)
    # shared directions: the leading singular vectors of the genes x peaks cross-covariance of the fitted cells
    genes, _, peaks = np.linalg.svd(rna_fit.T @ atac_fit, full_matrices=False)
    rna_emb, atac_emb = rna_test @ genes[:, :10], atac_test @ peaks[:10].T
    n = rna_emb.shape[0]

    aligned = st.metrics.foscttm(rna_emb, atac_emb)
    assert aligned.mean < 0.45
    random = st.metrics.foscttm(*np.random.default_rng(0).normal(size=(2, n, 10)))
    assert abs(random.mean - 0.5) < 0.05
    assert st.metrics.top1_accuracy(rna_emb, atac_emb).mean > 2 / n

    query, target = _unit(rna_emb), _unit(atac_emb)
    assert st.metrics.matching_score(_matching.topk_pairing(query, target, k=100, temperature=0.1)) > 2 / n
    partner, _ = _matching.one_to_one_partners(query, target)
    assert np.mean(partner == np.arange(n)) > 2 / n

    joint = np.vstack([rna_emb, atac_emb])
    cell_types = np.tile(mdata["rna"].obs["cell_type"].to_numpy()[~fit], 2)
    assert 0 < st.metrics.silhouette_cell_type(joint, cell_types) < 1
    mixing = st.metrics.batch_entropy_mixing(joint, ["rna"] * n + ["atac"] * n, n_neighbors=20, n_pools=10)
    assert 0 < mixing < 1


# --- atlas scale: approximate matching, sampled FOSCTTM ----------------------------------------------------------


def _noisy_pairs(n, d=16, noise=0.3, seed=0):
    """``n`` cells in 12 groups; the two modalities are noisy copies of the same cells (row i pairs row i)."""
    rng = np.random.default_rng(seed)
    base = 3 * rng.normal(size=(12, d))[rng.integers(0, 12, n)] + rng.normal(size=(n, d))
    return _unit(base + noise * rng.normal(size=(n, d))), _unit(base + noise * rng.normal(size=(n, d)))


def test_match_method_switches_at_the_documented_size_and_refuses_other_values():
    from sctransfer._knn import EXACT_KNN_MAX_CELLS

    assert EXACT_KNN_MAX_CELLS == 50_000
    assert _matching.match_method(50_000, 50_000, "auto") == "exact"
    assert _matching.match_method(50_001, 50_000, "auto") == "pynndescent"
    assert _matching.match_method(10, 10, "pynndescent") == "pynndescent"
    assert _matching.match_method(10**6, 10**6, "exact") == "exact"
    # a one-to-one assignment small enough for the dense solver is exact whatever the method asked
    assert _matching.match_method(10, 10, "pynndescent", one_to_one=True) == "exact"
    assert _matching.match_method(10**6, 10**6, "auto", one_to_one=True) == "pynndescent"
    with pytest.raises(ValueError, match="got 'faiss'"):
        _matching.match_method(10, 10, "faiss", one_to_one=True)
    query = np.eye(3, dtype=np.float32)
    for function in (_matching.nearest_partners, _matching.one_to_one_partners):
        with pytest.raises(ValueError, match="method must be 'auto', 'exact' or 'pynndescent', got 'faiss'"):
            function(query, query, method="faiss")


def test_approximate_partners_agree_with_exact_above_a_recall_floor():
    query, target = _noisy_pairs(3000)
    exact, exact_similarity = _matching.nearest_partners(query, target, method="exact")
    approximate, similarity = _matching.nearest_partners(query, target, method="pynndescent", random_state=0)
    recall = np.mean(approximate == exact)
    print(f"\npynndescent top-1 recall of the exact partner (3,000 cells, 16-D): {recall:.3f}")
    assert recall >= 0.95
    np.testing.assert_allclose(similarity, np.einsum("ij,ij->i", query, target[approximate]), rtol=1e-5)
    assert np.all(similarity <= exact_similarity + 1e-6)  # never better than the best
    # "auto" is exact at this size: the same partners as method="exact"
    np.testing.assert_array_equal(_matching.nearest_partners(query, target)[0], exact)


def test_approximate_one_to_one_candidates_give_nearly_the_exact_assignment():
    query, target = _noisy_pairs(1500)
    exact, exact_similarity = _matching.one_to_one_partners(query, target, dense_limit=0, method="exact")
    approximate, similarity = _matching.one_to_one_partners(query, target, dense_limit=0, method="pynndescent")
    assert len(np.unique(approximate)) == len(approximate)  # still one to one
    assert np.mean(approximate == exact) >= 0.95
    assert similarity.sum() >= 0.99 * exact_similarity.sum()


def test_sampled_foscttm_estimates_the_exact_value_within_its_standard_error():
    rna, atac = _noisy_pairs(3000, noise=1.5)
    exact = st.metrics.foscttm(rna, atac)
    assert exact.standard_error is None and 0.01 < exact.mean < 0.3
    estimates = [st.metrics.foscttm(rna, atac, n_samples=300, random_state=seed) for seed in range(20)]
    errors = np.array([e.mean - exact.mean for e in estimates])
    standard_errors = np.array([e.standard_error for e in estimates])
    # each estimate within 3 standard errors, two thirds or so within one, and the standard error the spread's size
    assert np.all(np.abs(errors) <= 3 * standard_errors)
    assert 0.4 <= np.mean(np.abs(errors) <= standard_errors) <= 0.95
    assert 0.6 <= standard_errors.mean() / errors.std() <= 1.6
    # per-cell values are the exact ones on the drawn cells, NaN elsewhere
    full = st.metrics.foscttm(rna, atac, return_per_cell=True)
    sampled = st.metrics.foscttm(rna, atac, n_samples=300, return_per_cell=True)
    drawn = ~np.isnan(sampled.rna_to_atac_per_cell)
    assert drawn.sum() == 300 and np.array_equal(drawn, ~np.isnan(sampled.atac_to_rna_per_cell))
    np.testing.assert_array_equal(sampled.rna_to_atac_per_cell[drawn], full.rna_to_atac_per_cell[drawn])
    assert sampled.rna_to_atac == pytest.approx(full.rna_to_atac_per_cell[drawn].mean())
    # as many samples as cells: the exact value
    assert st.metrics.foscttm(rna, atac, n_samples=3000) == exact


@pytest.mark.parametrize("n_samples", [1, 0, 2.5, True])
def test_sampled_foscttm_refuses_bad_sample_sizes(n_samples):
    with pytest.raises(ValueError, match="n_samples must be"):
        st.metrics.foscttm(RNA_ANGLES, ATAC_ANGLES, n_samples=n_samples)
