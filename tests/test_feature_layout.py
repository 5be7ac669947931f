"""Genomic tokenisation (FeatureLayout) and zero-shot feature mapping (map_genes, map_peaks) of scCLIP."""

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import sctransfer as st
from sctransfer._intervals import IntervalError, genomic_order
from sctransfer._matrix import column_selection
from sctransfer.model._feature_mapping import FeatureMapping, map_genes, map_peaks
from sctransfer.nn import FeatureLayout
from sctransfer.pp import gene_coordinates


# --------------------------------------------------------------------------------------------
# hand-made layout
# --------------------------------------------------------------------------------------------
def _toy():
    """Features a, b, c on chr1; d, e on chr2; f on chr10; u1, u2 without coordinates; shuffled."""
    names = ["e", "u2", "c", "f", "a", "u1", "d", "b"]
    coords = pd.DataFrame(
        {
            "chrom": ["chr2", None, "chr1", "chr10", "chr1", None, "chr2", "chr1"],
            "start": [90, np.nan, 500, 1000, 100, np.nan, 50, 300],
            "end": [120, np.nan, 600, 1100, 200, np.nan, 80, 400],
        },
        index=names,
    )
    return names, coords


def _col(names, *features):
    return [names.index(f) if f is not None else -1 for f in features]


def test_layout_orders_features_along_the_genome_and_never_crosses_a_chromosome(caplog):
    names, coords = _toy()
    with caplog.at_level(logging.WARNING, logger="sctransfer"):
        layout = FeatureLayout.from_coordinates(names, coords, n_patches=3, modality="rna")
    # 6 placed features, target 3 patches -> P = 2; chr1 gets 2 patches, chr2 1, chr10 1, unplaced 1
    assert layout.patch_size == 2 and layout.n_patches == 5 and layout.n_features == 8
    expected = [_col(names, "a", "b"), _col(names, "c", None), _col(names, "d", "e"), _col(names, "f", None)]
    expected.append(_col(names, "u1", "u2"))  # unplaced last, ordered by name
    np.testing.assert_array_equal(layout.patch_index, expected)
    assert layout.patch_index.dtype == np.int64
    assert layout.chromosomes.tolist() == ["chr1", "chr2", "chr10", "unplaced"]
    assert layout.patch_chromosome.tolist() == [0, 0, 1, 2, 3]
    assert layout.patch_chromosome.dtype == np.int64
    assert layout.feature_names.tolist() == names
    # midpoints relative to the chromosome's largest end: chr1 600, chr2 120, chr10 1100
    np.testing.assert_allclose(layout.patch_position, [250 / 600, 550 / 600, 85 / 120, 1050 / 1100, 0.5], rtol=1e-6)
    assert layout.patch_position.dtype == np.float32
    assert ((layout.patch_position >= 0) & (layout.patch_position <= 1)).all()
    assert "2 of 8 features of modality 'rna' have no genomic coordinate (e.g. u1, u2)" in caplog.text
    assert "'unplaced'" in caplog.text


def test_given_patch_size_and_coordinates_matched_by_name():
    names, coords = _toy()
    # rows in another order and without "f": matched by name, "f" becomes unplaced
    layout = FeatureLayout.from_coordinates(names, coords.drop(index="f").iloc[::-1], patch_size=3)
    expected = [_col(names, "a", "b", "c"), _col(names, "d", "e", None), _col(names, "f", "u1", "u2")]
    np.testing.assert_array_equal(layout.patch_index, expected)
    assert layout.chromosomes.tolist() == ["chr1", "chr2", "unplaced"]


def test_without_unplaced_features_there_is_no_unplaced_chromosome(caplog):
    names, coords = _toy()
    placed = [n for n in names if not n.startswith("u")]
    with caplog.at_level(logging.WARNING, logger="sctransfer"):
        layout = FeatureLayout.from_coordinates(placed, coords.loc[placed], n_patches=128)
    assert caplog.text == ""
    assert layout.patch_size == 1 and layout.n_patches == 6
    assert layout.chromosomes.tolist() == ["chr1", "chr2", "chr10"]
    assert (layout.patch_index >= 0).all()


def test_gather_gives_patches_with_zeros_at_padding():
    names, coords = _toy()
    layout = FeatureLayout.from_coordinates(names, coords, n_patches=3)
    x = torch.arange(1, 17, dtype=torch.float32).reshape(2, 8)
    patches = layout.gather(x)
    assert patches.shape == (2, 5, 2) and patches.dtype == torch.float32
    index = torch.tensor(layout.patch_index)
    expected = torch.where(index >= 0, x[:, index.clamp(min=0)], torch.zeros(()))
    torch.testing.assert_close(patches, expected)
    assert patches[0, 1].tolist() == [x[0, names.index("c")].item(), 0.0]
    columns = layout.padded_columns()
    assert columns.dtype == np.int64 and columns.shape == (10,)
    assert (columns == 8).sum() == 2  # the padding slots point to the appended zero column
    torch.testing.assert_close(layout.gather(x, torch.as_tensor(columns)), patches)
    with pytest.raises(ValueError, match=r"gather expects a \(batch, 8\) tensor"):
        layout.gather(x[:, :7])


def test_round_trip_through_a_dict_and_npz(tmp_path):
    names, coords = _toy()
    layout = FeatureLayout.from_coordinates(names, coords, n_patches=3)
    stored = layout.to_dict()
    assert set(stored) == {"feature_names", "patch_index", "patch_chromosome", "patch_position", "chromosomes"}
    assert all(type(v) is np.ndarray for v in stored.values())
    assert FeatureLayout.from_dict(stored) == layout
    np.savez(tmp_path / "layout.npz", **stored)
    with np.load(tmp_path / "layout.npz", allow_pickle=False) as f:
        assert FeatureLayout.from_dict(dict(f)) == layout
    assert FeatureLayout.from_coordinates(names, coords, n_patches=2) != layout
    with pytest.raises(ValueError, match="read-only"):
        layout.patch_index[0, 0] = 3
    with pytest.raises(ValueError, match="lacks patch_position"):
        FeatureLayout.from_dict({k: v for k, v in stored.items() if k != "patch_position"})
    with pytest.raises(ValueError, match="Inconsistent FeatureLayout arrays"):
        FeatureLayout.from_dict({**stored, "patch_position": stored["patch_position"][:-1]})


def test_layout_errors_name_the_modality_and_the_fix():
    names, coords = _toy()
    nothing = coords.assign(chrom=None, start=np.nan, end=np.nan)
    with pytest.raises(IntervalError, match="Only 0 of the 8 features of modality 'rna' have a genomic coordinate"):
        FeatureLayout.from_coordinates(names, nothing, modality="rna")
    mostly_missing = coords.copy()
    mostly_missing.iloc[:5, 0] = None  # 2 of 8 placed: below the default half
    with pytest.raises(IntervalError, match="Only 2 of the 8 features"):
        FeatureLayout.from_coordinates(names, mostly_missing)
    assert FeatureLayout.from_coordinates(names, mostly_missing, min_placed_fraction=0.25).n_features == 8
    with pytest.raises(IntervalError, match="no column 'end'.*peak_coordinates"):
        FeatureLayout.from_coordinates(names, coords.drop(columns="end"))
    with pytest.raises(ValueError, match="n_patches must be at least 1"):
        FeatureLayout.from_coordinates(names, coords, n_patches=0)


def test_gene_layout_from_an_annotation():
    annotation = pd.DataFrame(
        {
            "chrom": ["chr2", "chr1", "chr1"],
            "start": [101, 1001, 11],
            "end": [200, 2000, 40],
            "strand": ["+", "-", "+"],
            "gene_name": ["Sox2", "Gad1", "Foo"],
        }
    )
    layout = FeatureLayout.from_genes(["SOX2", "Missing", "Gad1", "Foo"], annotation, patch_size=2)
    np.testing.assert_array_equal(layout.patch_index, [[3, 2], [0, -1], [1, -1]])
    assert layout.chromosomes.tolist() == ["chr1", "chr2", "unplaced"]


# --------------------------------------------------------------------------------------------
# hand-made feature mappings
# --------------------------------------------------------------------------------------------
def _peaks(rows):
    return pd.DataFrame(rows, columns=["chrom", "start", "end"], index=[f"{c}:{s}-{e}" for c, s, e in rows])


MODEL = _peaks([("chr1", 100, 200), ("chr1", 300, 400), ("chr2", 100, 200)])


def test_identical_features_map_to_themselves():
    counts = sp.random(4, 3, density=0.5, format="csr", random_state=0, dtype=np.float64)
    for mapping in (map_genes(["a", "b", "c"], ["a", "b", "c"]), map_peaks(MODEL, MODEL)):
        assert mapping.method == "identical" and mapping.coverage == 1.0 and mapping.n_new_used == 3
        out = mapping.apply(counts)
        assert sp.isspmatrix_csr(out) and out.dtype == np.float32
        np.testing.assert_array_equal(out.toarray(), counts.toarray().astype(np.float32))


def test_permuted_peaks_map_by_name():
    new = MODEL.iloc[[2, 0, 1]]
    mapping = map_peaks(new, MODEL)
    assert mapping.method == "name" and mapping.coverage == 1.0
    counts = sp.csr_matrix(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(mapping.apply(counts).toarray(), [[2.0, 3.0, 1.0]])


def test_genes_map_by_name_and_missing_model_genes_warn():
    with pytest.warns(
        UserWarning, match=r"2 of the model's 4 genes are missing from the new data \(e\.g\. \['C', 'D'\]\)"
    ):
        mapping = map_genes(["B", "X", "A"], ["A", "B", "C", "D"])
    assert mapping.method == "name" and mapping.coverage == 0.5 and mapping.n_new_used == 2
    counts = sp.csc_matrix(np.array([[1.0, 5.0, 2.0], [0.0, 1.0, 0.0]]))
    out = mapping.apply(counts)
    assert sp.isspmatrix_csr(out) and out.dtype == np.float32
    np.testing.assert_array_equal(out.toarray(), [[2.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(mapping.apply(np.array([[1, 5, 2]])).toarray(), [[2, 1, 0, 0]])
    with pytest.raises(ValueError, match=r"expects cells x 3 new features, got shape \(2, 2\)"):
        mapping.apply(counts[:, :2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every model gene present: no warning
        assert map_genes(["D", "X", "C", "B", "A"], ["A", "B", "C", "D"]).coverage == 1.0


def test_repeated_gene_names_are_refused_naming_them_and_the_fix():
    # the same policy as the rest of the package (get_modality): which column is meant would be ambiguous
    with pytest.raises(
        ValueError,
        match=r"modality 'rna' has 1 gene names more than once \(e\.g\. \['B'\].*"
        r"var_names_make_unique\(\)",
    ):
        map_genes(["B", "X", "A", "B"], ["A", "B"], what="modality 'rna'")
    with pytest.raises(ValueError, match="more than once"):  # a repeated gene the model does not read is refused too
        map_genes(["X", "X", "A", "B"], ["A", "B"])


def test_name_matcher_sums_repeated_names_and_refuses_repeated_wanted_names():
    selection, found = column_selection(["B", "X", "A", "B"], ["A", "B", "C"])
    assert selection.dtype == np.float32 and selection.shape == (4, 3)
    np.testing.assert_array_equal(found, [True, True, False])
    np.testing.assert_array_equal(selection.toarray(), [[0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match=r"must be unique; \['a'\] appear more than once"):
        column_selection(["a"], ["a", "b", "a"])


def test_genes_without_a_shared_name_raise_with_examples_and_the_hint():
    with pytest.raises(ValueError, match=r"e\.g\. \['ENSMUSG01'.*e\.g\. \['Sox2'.*symbols vs Ensembl IDs"):
        map_genes(["ENSMUSG01", "ENSMUSG02"], ["Sox2", "Gad1"])
    with pytest.raises(ValueError, match="duplicate names"):
        map_genes(["a"], ["a", "a"])


def test_shifted_peaks_map_by_overlap_with_coverage(caplog):
    # shifted by 30 bp, chr2 peak missing, one extra peak elsewhere
    new = _peaks([("chr1", 330, 430), ("chr1", 130, 230), ("chr3", 0, 50)])
    with caplog.at_level(logging.INFO, logger="sctransfer"):
        mapping = map_peaks(new, MODEL)
    assert mapping.method == "overlap"
    assert mapping.coverage == pytest.approx(2 / 3) and mapping.n_new_used == 2
    np.testing.assert_array_equal(mapping.matrix.toarray(), [[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    assert "2 of 3 new peaks reach 66.7% of the model's 3 peaks" in caplog.text


def test_a_new_peak_overlapping_two_model_peaks_feeds_both():
    new = _peaks([("chr1", 150, 350), ("chr2", 150, 160), ("chr2", 190, 250)])
    mapping = map_peaks(new, MODEL)
    np.testing.assert_array_equal(mapping.matrix.toarray(), [[1, 1, 0], [0, 0, 1], [0, 0, 1]])
    counts = sp.csr_matrix(np.array([[3.0, 1.0, 2.0], [0.0, 0.0, 7.0]]))
    out = mapping.apply(counts)
    np.testing.assert_array_equal(out.toarray(), [[3.0, 3.0, 3.0], [0.0, 0.0, 7.0]])
    assert mapping.coverage == 1.0 and mapping.n_new_used == 3


def test_ensembl_style_chromosomes_match_ucsc_style():
    new = _peaks([("1", 100, 200), ("2", 120, 180)])
    mapping = map_peaks(new, MODEL)
    np.testing.assert_array_equal(mapping.matrix.toarray(), [[1, 0, 0], [0, 0, 1]])


def test_no_overlap_raises_naming_the_likely_cause_and_low_coverage_warns(caplog):
    new = _peaks([("chr1", 10_000, 10_100), ("chr5", 100, 200)])
    with pytest.raises(IntervalError, match=r"e\.g\. chr1:10000-10100, chr5:100-200.*e\.g\. chr1:100-200") as err:
        map_peaks(new, MODEL)
    assert "hg19 vs hg38, mm9 vs mm10" in str(err.value) and "1 chromosome names in common" in str(err.value)
    with caplog.at_level(logging.WARNING, logger="sctransfer"):
        mapping = map_peaks(_peaks([("chr1", 150, 160)]), MODEL)
    assert mapping.coverage == pytest.approx(1 / 3)
    assert "Only 33.3% of the model's peaks are reached" in caplog.text
    with pytest.raises(IntervalError, match="no column 'chrom'"):
        map_peaks(new.drop(columns="chrom"), MODEL)


def test_mapping_is_a_frozen_dataclass():
    mapping = map_genes(["a"], ["a"])
    assert isinstance(mapping, FeatureMapping)
    with pytest.raises(AttributeError):
        mapping.coverage = 0.0


# --------------------------------------------------------------------------------------------
# real data: MOp SNARE-seq (25,734 peaks, 1,677 genes, mm10)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mop():
    return st.datasets.mop_snareseq()


def _check_real_layout(layout: FeatureLayout, coords: pd.DataFrame) -> None:
    index = layout.patch_index
    used = index[index >= 0]
    assert np.array_equal(np.sort(used), np.arange(layout.n_features))  # every feature exactly once
    placed = coords["chrom"].notna().to_numpy()
    chrom = coords["chrom"].to_numpy()
    for k in range(layout.n_patches):
        row = index[k][index[k] >= 0]
        assert len(row) > 0
        name = layout.chromosomes[layout.patch_chromosome[k]]
        expected = np.where(placed[row], chrom[row], "unplaced")
        assert (expected == name).all()  # one chromosome per patch
    # read patch by patch, the placed features are in genomic order
    in_order = used[placed[used]]
    placed_coords = coords.iloc[np.flatnonzero(placed)]
    np.testing.assert_array_equal(in_order, np.flatnonzero(placed)[genomic_order(placed_coords)])
    assert ((layout.patch_position >= 0) & (layout.patch_position <= 1)).all()
    assert np.all(np.diff(layout.patch_chromosome) >= 0)


def test_mop_peak_layout(mop):
    atac = mop.mod["atac"]
    coords = st.pp.peak_coordinates(atac)
    layout = FeatureLayout.from_coordinates(atac.var_names, coords, n_patches=128, modality="atac")
    assert layout.patch_size == 202  # ceil(25,734 / 128)
    assert layout.n_patches == 137  # one partial patch per chromosome on top of the target
    assert layout.chromosomes.tolist() == [f"chr{i}" for i in [*range(1, 20), "X"]]
    _check_real_layout(layout, coords)


def test_mop_gene_layout(mop, caplog):
    rna = mop.mod["rna"]
    with caplog.at_level(logging.WARNING, logger="sctransfer"):
        layout = FeatureLayout.from_genes(rna.var_names, "mm10", n_patches=128)
    assert "29 of 1677 features of modality 'rna' have no genomic coordinate" in caplog.text
    assert layout.chromosomes[-1] == "unplaced"
    assert layout.patch_size == 13  # ceil(1,648 placed genes / 128)
    assert layout.n_patches == 135 and (layout.patch_chromosome == len(layout.chromosomes) - 1).sum() == 3
    _check_real_layout(layout, gene_coordinates(rna.var_names, "mm10"))


def test_mop_recalled_peaks_map_back_by_overlap(mop):
    atac = mop.mod["atac"]
    model_coords = st.pp.peak_coordinates(atac)
    new = st.datasets.recall_peaks(atac, drop_fraction=0.1, shift=(10, 50), name_style="colon")
    assert new.var_names[0].count(":") == 1
    mapping = map_peaks(st.pp.peak_coordinates(new), model_coords)
    assert mapping.method == "overlap"
    assert mapping.coverage == pytest.approx(0.9, abs=0.01)
    mapped = mapping.apply(new.X)
    assert sp.isspmatrix_csr(mapped) and mapped.shape == atac.shape
    covered = np.flatnonzero(np.asarray(mapping.matrix.sum(axis=0)).ravel() > 0)
    a, b = sp.csr_matrix(mapped[:, covered], dtype=np.float64), sp.csr_matrix(atac.X[:, covered], dtype=np.float64)
    n = a.shape[0] * a.shape[1]
    mean_a, mean_b = a.sum() / n, b.sum() / n
    cov = a.multiply(b).sum() / n - mean_a * mean_b
    corr = cov / np.sqrt((a.multiply(a).sum() / n - mean_a**2) * (b.multiply(b).sum() / n - mean_b**2))
    assert corr > 0.99
