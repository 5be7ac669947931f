"""Inputs real users bring, one test per kind: it works and is right, or a clear error leaves the MuData as it was.

MOp SNARE-seq, small: RNA cells of library 09A (labelled), ATAC cells of 09G.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

import sctransfer as st
from sctransfer.tl import _common

STEPS = 30


@pytest.fixture(scope="module")
def split() -> MuData:
    mdata = st.datasets.mop_label_transfer(rna_libraries=("09A",), atac_libraries=("09G",))
    del mdata["atac"].obs["cell_type"]
    mdata.update()
    return mdata


def _refused(mdata: MuData, error, match: str, assert_same_data, tool=st.tl.label_transfer, **kwargs) -> None:
    """``tool`` raises ``error`` matching ``match`` and leaves ``mdata`` equal to a deep copy taken before."""
    before = mdata.copy()
    args = {"labels_key": "cell_type", "annotation": "mm10", "max_steps": STEPS} if tool is st.tl.label_transfer else {}
    with pytest.raises(error, match=match):
        tool(mdata, **{**args, **kwargs})
    assert_same_data(before, mdata)


# ---- 1. partly labelled references ----------------------------------------------------------
@pytest.mark.parametrize("as_categorical", [True, False], ids=["categorical", "object"])
def test_partly_labelled_reference_trains_on_the_labelled_cells(split, as_categorical):
    mdata = split.copy()
    rng = np.random.default_rng(0)
    labels = mdata["rna"].obs["cell_type"].astype(object).to_numpy()
    labels[rng.random(len(labels)) < 0.2] = np.nan
    labels[:5] = "nan"  # what a round trip through a text file leaves
    column = pd.Series(labels, index=mdata["rna"].obs_names)
    categories = [*sorted(set(split["rna"].obs["cell_type"].astype(str))), "Unused type"]
    mdata["rna"].obs["cell_type"] = pd.Categorical(column, categories=categories) if as_categorical else column
    user_column = mdata["rna"].obs["cell_type"].copy()
    st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=STEPS)
    reference = list(mdata.uns["sctransfer"]["reference_types"])
    assert "nan" not in reference and "Unused type" not in reference
    assert set(reference) == set(pd.Series(labels).dropna()) - {"nan"}
    assert mdata["atac"].obsm["sctransfer_probabilities"].shape[1] == len(reference)
    pd.testing.assert_series_equal(mdata["rna"].obs["cell_type"], user_column)  # the user's column is not cleaned


def test_continuous_label_column_is_refused(split, assert_same_data):
    mdata = split.copy()
    mdata["rna"].obs["score"] = np.random.default_rng(0).random(mdata["rna"].n_obs)
    _refused(mdata, TypeError, "continuous numbers", assert_same_data, labels_key="score")


# ---- 2. duplicate names ---------------------------------------------------------------------
def _duplicate_atac_cells(m):
    names = m["atac"].obs_names.to_numpy(dtype=object).copy()
    names[10:20] = names[:10]
    m["atac"].obs_names = names


def _duplicate_gene_symbols(m):
    names = m["rna"].var_names.to_numpy(dtype=object).copy()
    names[1] = names[0]
    m["rna"].var_names = names


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (_duplicate_atac_cells, r"atac.*repeated cell names.*obs_names_make_unique"),
        (_duplicate_gene_symbols, r"rna.*repeated feature names.*var_names_make_unique"),
    ],
    ids=["atac-obs-names", "rna-gene-symbols"],
)
def test_duplicate_names_are_refused_before_any_work(split, mutate, match, assert_same_data):
    mdata = split.copy()
    mutate(mdata)
    _refused(mdata, ValueError, match, assert_same_data)


# ---- 3. not counts --------------------------------------------------------------------------
def test_scaled_rna_is_refused(split, assert_same_data):
    mdata = split.copy()
    x = mdata["rna"].X.toarray().astype(np.float32)
    mdata.mod["rna"].X = (x - x.mean(axis=0)) / (x.std(axis=0) + 1)
    _refused(mdata, ValueError, "negative", assert_same_data)


def test_negative_atac_is_refused_also_by_gene_activity(split, assert_same_data):
    mdata = split.copy()
    x = sp.csr_matrix(mdata["atac"].X, dtype=np.float32, copy=True)
    x.data[:5] = -1
    mdata.mod["atac"].X = x
    _refused(mdata, ValueError, "negative", assert_same_data)
    _refused(mdata, ValueError, "negative", assert_same_data, tool=st.pp.gene_activity, annotation="mm10")


def test_the_layer_used_is_checked_not_x(split):
    mdata = split.copy()
    atac = mdata["atac"]
    atac.layers["clean"] = atac.X.copy()
    x = sp.csr_matrix(atac.X, dtype=np.float32, copy=True)
    x.data[:3] = np.nan
    atac.X = x
    st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", atac_layer="clean", max_steps=STEPS)
    assert mdata["atac"].obs["sctransfer_label"].notna().all()


def test_missing_layer_names_the_layers_there(split, assert_same_data):
    _refused(
        split.copy(), KeyError, r"Layer 'raw' is not in modality 'atac'.*counts", assert_same_data, atac_layer="raw"
    )


def _log_normalised_with_raw(mdata: MuData, n_genes: int | None = None) -> MuData:
    """scanpy's layout: log-normalised .X (of the first `n_genes` genes, as an HVG subset), the counts in .raw."""
    rna = mdata["rna"].copy()
    for name in list(rna.layers):  # the loader's counts layer
        del rna.layers[name]
    rna.raw = rna
    x = sp.csr_matrix(rna.X, dtype=np.float32, copy=True)
    x = sp.csr_matrix(sp.diags(1e4 / np.maximum(x.sum(axis=1).A1, 1)) @ x)
    x.data = np.log1p(x.data)
    rna.X = x
    mdata.mod["rna"] = rna if n_genes is None else rna[:, :n_genes].copy()
    mdata.update()
    return mdata


def test_counts_only_in_raw_name_the_fix_that_works(split, assert_same_data):
    """No layers, counts in .raw: the error names the fix for this layout, and following it works."""
    same_genes = _log_normalised_with_raw(split.copy())
    fix = "mdata['rna'].layers['counts'] = mdata['rna'].raw.X, and pass rna_layer='counts'"
    _refused(same_genes, ValueError, r"modality 'rna' has no layers but a \.raw; .*" + re.escape(fix), assert_same_data)
    same_genes["rna"].layers["counts"] = same_genes["rna"].raw.X
    st.tl.label_transfer(same_genes, labels_key="cell_type", annotation="mm10", rna_layer="counts", max_steps=STEPS)
    assert same_genes["atac"].obs["sctransfer_label"].notna().all()

    n_genes = split["rna"].n_vars // 2  # .X kept some genes, .raw has them all: a layer of .raw would not fit
    subset = _log_normalised_with_raw(split.copy(), n_genes)
    fix = f"other features ({split['rna'].n_vars:,}; .X has {n_genes:,}); if it holds the raw counts, make it the "
    fix += "modality: mdata.mod['rna'] = mdata['rna'].raw.to_adata(), then mdata.update()"
    _refused(subset, ValueError, re.escape(fix), assert_same_data)
    subset.mod["rna"] = subset["rna"].raw.to_adata()
    subset.update()
    st.tl.label_transfer(subset, labels_key="cell_type", annotation="mm10", max_steps=STEPS)
    assert subset["atac"].obs["sctransfer_label"].notna().all()

    layered = _log_normalised_with_raw(split.copy())
    layered["rna"].layers["lognorm"] = layered["rna"].X.copy()  # with layers, the message lists them
    listed = r"via rna_layer= \(e\.g\. rna_layer='lognorm'; layers of modality 'rna'"
    _refused(layered, ValueError, listed, assert_same_data)


def test_other_sparse_formats_give_the_same_labels(split):
    """CSC peaks and RNA as a scipy sparse array (the formats AnnData holds besides CSR) give CSR's result."""
    reference = split.copy()
    st.tl.label_transfer(reference, labels_key="cell_type", annotation="mm10", max_steps=STEPS)
    mdata = split.copy()
    mdata.mod["atac"].X = sp.csc_matrix(mdata["atac"].X)
    mdata.mod["rna"].X = sp.csr_array(mdata["rna"].X)
    st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=STEPS)
    for column in ("sctransfer_label", "sctransfer_confidence"):
        pd.testing.assert_series_equal(mdata["atac"].obs[column], reference["atac"].obs[column])


# ---- 4. empty and tiny ----------------------------------------------------------------------
def test_too_few_atac_cells_is_an_error_in_the_users_terms(split, assert_same_data):
    mdata = MuData({"rna": split["rna"].copy(), "atac": split["atac"][:12].copy()})
    _refused(mdata, ValueError, r"12 ATAC cells", assert_same_data)


def test_zero_training_steps_is_refused(split, assert_same_data):
    _refused(split.copy(), ValueError, "max_steps", assert_same_data, max_steps=0)


def test_cross_modal_match_refuses_to_train_on_two_cells(assert_same_data):
    mdata = st.datasets.mop_snareseq(("09A",))
    tiny = MuData({"rna": mdata["rna"][:2].copy(), "atac": mdata["atac"][:2].copy()})
    _refused(tiny, ValueError, r"2 paired cells", assert_same_data, tool=st.tl.cross_modal_match, annotation="mm10")


# ---- 5. a failure while writing leaves nothing behind ------------------------------------------
def test_failure_while_writing_restores_the_mudata(split, monkeypatch, assert_same_data):
    mdata = split.copy()
    before = mdata.copy()

    calls = []

    def failing_update(m):  # fails once, as a full disk or a broken index would, then works again
        calls.append(m)
        if len(calls) == 1:
            raise RuntimeError("disk full")

    monkeypatch.setattr(_common, "update_mudata", failing_update)
    with pytest.raises(RuntimeError, match="disk full"):
        st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=STEPS)
    monkeypatch.undo()
    assert_same_data(before, mdata)
    st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=STEPS)  # a re-run is accepted


# ---- reference labels that are not cell types, and novel labels that read as missing ------------
def _obs(labels) -> AnnData:
    return AnnData(np.ones((len(labels), 2), dtype=np.float32), obs=pd.DataFrame({"t": labels}))


def test_cell_identifiers_are_not_cell_types():
    with pytest.raises(ValueError, match="cell identifiers"):
        st._validation.check_labels(_obs([f"AAAC-{i}" for i in range(40)]), "t", key="rna")


def test_label_spellings_and_rare_types_are_reported():
    labels = ["L2/3"] * 10 + ["L2/3 "] * 3 + ["Astro"] * 10 + ["Sst"] * 2
    with pytest.warns(UserWarning, match="surrounding spaces") as record:
        cleaned = st._validation.check_labels(_obs(labels), "t", key="rna")
    assert list(cleaned.categories) == ["Astro", "L2/3", "Sst"] and (cleaned == "L2/3").sum() == 13
    rare = [str(w.message) for w in record if issubclass(w.category, st._validation.RareTypeWarning)]
    assert len(rare) == 1 and "fewer than 15 labelled cells ('Sst': 2, 'Astro': 10, 'L2/3': 13)" in rare[0]
    whole = st._validation.check_labels(_obs([1.0, 2.0] * 10), "t", key="rna")  # cluster ids stored as floats
    assert list(whole.categories) == ["1", "2"]


def test_placeholder_reference_labels_are_warned_once_per_call(split):
    mdata = split.copy()
    labels = mdata["rna"].obs["cell_type"].astype(object).to_numpy()
    labels[:100] = "Unknown"  # cells the reference's authors could not type
    mdata["rna"].obs["cell_type"] = labels
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=STEPS)
    placeholder = [str(w.message) for w in record if "look like placeholders" in str(w.message)]
    assert len(placeholder) == 1 and "('Unknown': 100 cells)" in placeholder[0]
    assert issubclass(next(w.category for w in record if "placeholders" in str(w.message)), UserWarning)
    assert "Unknown" in mdata.uns["sctransfer"]["reference_types"]  # trained as a type: hence the warning


@pytest.mark.parametrize("novel_label", ["", "nan", " None "])
def test_novel_label_that_reads_as_missing_is_refused(split, novel_label, assert_same_data):
    _refused(split.copy(), ValueError, "reads as a missing label", assert_same_data, novel_label=novel_label)


# ---- cells without counts, and a training that diverged ---------------------------------------
def test_cells_without_counts_are_left_unlabelled_and_not_refined(split, tmp_path):
    mdata = split.copy()
    x = sp.csr_matrix(mdata["atac"].X, copy=True)
    empty = np.zeros(mdata["atac"].n_obs, dtype=bool)
    empty[::20] = True
    x = sp.csr_matrix(sp.diags((~empty).astype(np.float32)) @ x)
    mdata.mod["atac"].X = x
    mdata.mod["atac"].layers["counts"] = x
    with pytest.warns(UserWarning, match=rf"{empty.sum()} of {empty.size} cells .* no counts") as record:
        st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=STEPS)
    said = [str(w.message) for w in record if f"{empty.sum()} of {empty.size} cells" in str(w.message)]
    assert len(said) == 1  # said once (the gene activity does not repeat it)
    obs = mdata["atac"].obs
    assert obs["sctransfer_label"].isna().to_numpy().tolist() == empty.tolist()
    assert obs["sctransfer_confidence"][empty].isna().all() and obs["sctransfer_confidence"][~empty].notna().all()
    assert not obs["sctransfer_novel"][empty].any()
    assert mdata.uns["sctransfer"]["n_unlabelled"] == empty.sum()
    mdata["atac"].obs["atlas"] = mdata["atac"].obs["sctransfer_label"].astype(object).fillna("L2/3")
    st.tl.refine_annotation(mdata, "atlas")
    refined = mdata["atac"].obs
    assert refined["sctransfer_refine_label"][empty].isna().all() and not refined["sctransfer_refine_flag"][empty].any()
    assert refined["sctransfer_refine_label"][~empty].notna().all()
    mdata.write(tmp_path / "empty.h5mu")  # NaN labels and probabilities save
    # the package's own metrics and plots take its output: the unlabelled cells are left out and counted
    report = st.metrics.label_transfer_report(mdata, "atlas")
    assert report["n_unlabelled"] == empty.sum() and report["n_cells"] == (~empty).sum()
    assert report["accuracy"] == 1.0  # "atlas" is the prediction wherever there is one
    ax = st.pl.confusion_matrix(mdata, truth_key="atlas", show=False)
    assert ax.get_title() == f"accuracy 1.000 ({(~empty).sum():,} cells; {empty.sum()} without a prediction left out)"
    st.pl.reliability_diagram(mdata, "atlas", show=False)


def test_a_diverged_training_writes_nothing(split, assert_same_data):
    _refused(split.copy(), Exception, "(?i)diverged", assert_same_data, train_kwargs={"plan_kwargs": {"lr": 1e4}})
