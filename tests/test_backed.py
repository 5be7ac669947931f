"""Atlas-scale plumbing: matrices read in row blocks (in memory or backed), the sampled LSI fit,
and label transfer on an .h5mu whose ATAC matrix stays on disk."""

from __future__ import annotations

import anndata
import mudata
import numpy as np
import pytest
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

import sctransfer as st
from sctransfer._matrix import (
    all_finite,
    column_selection,
    column_sums,
    empty_rows,
    row_blocks,
    stack_rows,
    value_summary,
)
from sctransfer._profiling import record_stages
from sctransfer.pp._lsi import LSI, check_peak_matrix


@pytest.fixture(scope="module")
def counts():
    """3,000 cells of 4 groups, each group opening its own 100 of 500 peaks more often."""
    rng = np.random.default_rng(0)
    group = rng.integers(0, 4, 3000)
    rate = np.full((4, 500), 0.01)
    for g in range(4):
        rate[g, g * 100 : (g + 1) * 100] = 0.1
    detected = rng.random((3000, 500)) < rate[group]
    return sp.csr_matrix(detected * rng.integers(1, 4, (3000, 500)), dtype=np.float32)


@pytest.fixture(scope="module")
def backed(counts, tmp_path_factory):
    path = tmp_path_factory.mktemp("backed") / "peaks.h5ad"
    AnnData(counts).write_h5ad(path)
    return anndata.read_h5ad(path, backed="r")


def test_row_blocks_of_a_backed_matrix_equal_the_matrix(counts, backed):
    blocks = list(row_blocks(backed.X, block_rows=700))
    assert [b.shape[0] for _, b in blocks] == [700, 700, 700, 700, 200]
    assert all(isinstance(b, sp.csr_matrix) for _, b in blocks)
    assert (stack_rows([b for _, b in blocks]) != counts).nnz == 0
    np.testing.assert_allclose(column_sums(backed.X), np.asarray(counts.sum(axis=0)).ravel())
    assert all_finite(backed.X)


def test_stack_rows_equals_vstack(counts):
    pieces = [counts[lo : lo + 1000] for lo in range(0, 3000, 1000)]
    stacked = stack_rows(list(pieces))
    assert stacked.indices.dtype == np.int32 and (stacked != sp.vstack(pieces)).nnz == 0


def test_column_selection_orders_and_zero_fills():
    x = sp.csr_matrix(np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32))
    selection, found = column_selection(["a", "b", "c"], ["c", "z", "a"])
    np.testing.assert_array_equal(found, [True, False, True])
    np.testing.assert_array_equal((x @ selection).toarray(), [[3, 0, 1], [6, 0, 4]])


def test_non_finite_values_found_in_a_backed_matrix(counts, tmp_path):
    bad = counts.copy()
    bad.data[-1] = np.nan
    AnnData(bad).write_h5ad(tmp_path / "bad.h5ad")
    assert not all_finite(anndata.read_h5ad(tmp_path / "bad.h5ad", backed="r").X)


def test_lsi_fitted_on_a_sample_spans_the_same_space(counts, backed):
    full, full_scores = LSI.fit_transform(counts, 10)
    sampled, sampled_scores = LSI.fit_transform(backed.X, 10, max_fit_cells=1500)
    assert sampled_scores.shape == (3000, 10) and sampled_scores.dtype == np.float32
    np.testing.assert_allclose(sampled.transform(counts), sampled_scores, atol=1e-5)  # backed == in memory
    # principal angles between the two fitted subspaces of the leading components are small
    q_full, _ = np.linalg.qr(full.components[:, :4])  # depth and the three group contrasts
    q_sampled, _ = np.linalg.qr(sampled.components[:, :4])
    cosines = np.linalg.svd(q_full.T @ q_sampled, compute_uv=False)
    assert cosines.min() > 0.9
    # for the leading components, the SVD's scores are the projection of the cells
    projected = full.transform(counts)
    for c in range(4):
        assert np.corrcoef(projected[:, c], full_scores[:, c])[0, 1] > 0.999


@pytest.fixture(scope="module")
def mop_h5mu(tmp_path_factory):
    mdata = st.datasets.mop_label_transfer(rna_libraries=("09A", "09B"), atac_libraries=("09G", "09H"))
    mdata["atac"].obs.pop("cell_type")
    mdata.update()
    path = tmp_path_factory.mktemp("mop") / "mop.h5mu"
    mdata.write_h5mu(path)
    return path


def test_label_transfer_on_a_backed_atac_matrix_matches_in_memory(mop_h5mu):
    in_memory = mudata.read_h5mu(mop_h5mu)
    st.tl.label_transfer(in_memory, labels_key="cell_type", annotation="mm10", max_steps=100)
    with mudata.set_options(pull_on_update=False):
        on_disk = MuData(
            {"rna": mudata.read_h5ad(mop_h5mu, "rna"), "atac": mudata.read_h5ad(mop_h5mu, "atac", backed=True)}
        )
    assert on_disk["atac"].isbacked
    with record_stages() as stages:
        st.tl.label_transfer(on_disk, labels_key="cell_type", annotation="mm10", max_steps=100)
    names = [s.name for s in stages]
    for name in ("gene activity", "TF-IDF / LSI", "kNN graph", "model set-up", "training", "prediction"):
        assert name in names
    assert all(s.seconds >= 0 for s in stages)
    assert on_disk["atac"].isbacked  # the peak matrix was never loaded into the AnnData
    same = on_disk["atac"].obs["sctransfer_label"].astype(str) == in_memory["atac"].obs["sctransfer_label"].astype(str)
    assert same.mean() == 1.0
    np.testing.assert_allclose(on_disk["atac"].obsm["X_scncl"], in_memory["atac"].obsm["X_scncl"], atol=1e-4)


# --------------------------------------------------------------------------------------------
# input checks: streamed, sparse-aware, any format
# --------------------------------------------------------------------------------------------
def test_value_summary_and_empty_rows_are_the_same_in_memory_backed_and_in_any_format(counts, tmp_path):
    x = counts.tolil()
    x[5] = 0  # a cell without counts
    x = x.tocsr()
    x.data[:3] = [-1.0, 0.5, np.nan]
    x.data[x.indptr[7] : x.indptr[8]] = 0.0  # a cell whose stored values are all explicit zeros: empty too
    x.data[x.indptr[9]] = 0.0  # one stored zero among counts: not empty
    assert x.indptr[8] > x.indptr[7] and x.indptr[10] - x.indptr[9] > 1
    AnnData(x).write_h5ad(tmp_path / "x.h5ad")
    backed = anndata.read_h5ad(tmp_path / "x.h5ad", backed="r").X
    expected = value_summary(x)
    assert (expected.n_values, expected.n_nonfinite, expected.n_negative, expected.n_fractional) == (x.nnz, 1, 1, 1)
    assert (expected.min_value, expected.max_value) == (-1.0, 3.0)
    for variant in (backed, x.tocsc(), x.tocoo(), sp.csr_array(x)):
        assert value_summary(variant) == expected
    empty = np.zeros(x.shape[0], dtype=bool)
    empty[[5, 7]] = True
    for variant in (x, backed, x.tocsc(), x.tocoo(), sp.coo_array(x), x.toarray()):
        np.testing.assert_array_equal(empty_rows(variant), empty)
        # the counts check finds them in its own pass over the values
        np.testing.assert_array_equal(value_summary(variant, empty_rows=True).empty_rows, empty)
    assert value_summary(x).empty_rows is None
    assert not all_finite(x.tocoo())


def test_peak_matrix_check_in_the_users_terms(counts):
    with pytest.raises(
        ValueError,
        match=r"has 20 cells, too few for the TF-IDF / LSI of the peaks: its 30 components need "
        r"at least 31 cells",
    ):
        check_peak_matrix(counts[:20], 30, what="modality 'atac' .X")
    with pytest.raises(ValueError, match=r"has 25 peaks, too few"):
        check_peak_matrix(counts[:, :25], 30)
    scaled = counts.copy()
    scaled.data -= 2
    with pytest.raises(ValueError, match="looks scaled/log-transformed, pass the raw counts layer via atac_layer="):
        check_peak_matrix(scaled, 30, argument="atac_layer")
    with_empty = counts.tolil()
    with_empty[[3, 7]] = 0
    with pytest.warns(UserWarning, match=r"2 of 3,000 cells of the peak matrix have no counts"):
        empty = check_peak_matrix(with_empty.tocoo(), 30)
    assert np.flatnonzero(empty).tolist() == [3, 7]
