"""End-to-end label transfer on MOp SNARE-seq, model round trips and bad input."""

from __future__ import annotations

import warnings

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

import sctransfer as st
from sctransfer._intervals import IntervalError
from sctransfer._validation import MIN_CELLS_PER_TYPE, RareTypeWarning

FIELDS = ("sctransfer_label", "sctransfer_confidence", "sctransfer_novelty", "sctransfer_novel")


def _without_truth(mdata: MuData) -> pd.Series:
    truth = mdata["atac"].obs.pop("cell_type").astype(str)
    mdata.update()
    return truth


@pytest.fixture(scope="module")
def transferred():
    """The benchmark split (RNA 09A-09F -> ATAC 09G-09L), default settings, trained once."""
    mdata = st.datasets.mop_label_transfer()
    truth = _without_truth(mdata)
    model = st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", return_model=True)
    return mdata, truth, model


@pytest.fixture(scope="module")
def small_split():
    """A small MOp split (2 libraries each way) for fast reproducibility checks."""
    mdata = st.datasets.mop_label_transfer(rna_libraries=("09A", "09B"), atac_libraries=("09G", "09H"))
    _without_truth(mdata)
    return mdata


def test_fields_written(transferred):
    mdata, truth, model = transferred
    atac, rna = mdata["atac"], mdata["rna"]
    labels = atac.obs["sctransfer_label"]
    assert isinstance(labels.dtype, pd.CategoricalDtype)
    assert list(labels.cat.categories) == sorted(rna.obs["cell_type"].cat.categories)
    conf = atac.obs["sctransfer_confidence"].to_numpy()
    assert conf.min() >= 0 and conf.max() <= 1
    novelty = atac.obs["sctransfer_novelty"].to_numpy()
    assert novelty.dtype == np.float32 and np.isfinite(novelty).all()
    assert abs(np.median(novelty)) < 0.05  # a robust z-score over the ATAC cells
    novel = atac.obs["sctransfer_novel"]
    assert novel.dtype == bool
    assert (novel.to_numpy() == (novelty > mdata.uns["sctransfer"]["params"]["novelty_threshold"])).all()
    assert 0 < novel.mean() < 0.1  # with every type in the reference, few cells look novel
    proba = atac.obsm["sctransfer_probabilities"]
    assert proba.shape == (atac.n_obs, len(labels.cat.categories))
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(proba.max(axis=1), conf, atol=1e-6)
    assert list(mdata.uns["sctransfer"]["reference_types"]) == list(labels.cat.categories)
    reference_types = np.asarray(mdata.uns["sctransfer"]["reference_types"])
    assert (reference_types[proba.argmax(axis=1)] == labels.astype(str).to_numpy()).all()
    assert atac.obsm["X_scncl"].shape == (atac.n_obs, 64)
    assert rna.obsm["X_scncl"].shape == (rna.n_obs, 64)
    assert "gene_activity" in mdata.mod and mdata["gene_activity"].obs_names.equals(atac.obs_names)
    assert sp.issparse(mdata["gene_activity"].X)
    assert "peak_neighbors_distances" in atac.obsp and "X_lsi" in atac.obsm
    params = mdata.uns["sctransfer"]["params"]
    assert params["labels_key"] == "cell_type" and params["random_state"] == 0
    assert params["predict"] == {"self_training": True}  # the default is recorded
    counts = mdata.uns["sctransfer"]["label_counts"]
    assert counts["n_cells"].sum() == atac.n_obs
    assert dict(zip(counts["label"], counts["n_cells"], strict=True)) == labels.value_counts().to_dict()
    # each loss term is tracked
    for term in ("loss_ce_train", "loss_pr_train", "loss_ncl_train", "loss_fa_train", "train_loss"):
        assert term in model.history
    assert model.history["train_loss"].iloc[-1, 0] < model.history["train_loss"].iloc[0, 0]


def test_accuracy_floor(transferred):
    mdata, truth, _ = transferred
    pred = mdata["atac"].obs["sctransfer_label"].astype(str)
    acc = st.metrics.accuracy(truth, pred)
    f1 = st.metrics.macro_f1(truth, pred)
    print(f"MOp 09A-F -> 09G-L: accuracy {acc:.3f}, macro-F1 {f1:.3f}")
    # always predicting the largest type (L2/3) scores 0.42; the simple baselines 0.51-0.65
    assert acc >= 0.60
    assert f1 >= 0.35


def test_embedding_mixes_modalities(transferred):
    mdata, truth, _ = transferred
    rna_types = mdata["rna"].obs["cell_type"].astype(str).to_numpy()
    z_rna, z_atac = mdata["rna"].obsm["X_scncl"], mdata["atac"].obsm["X_scncl"]
    # nearest RNA neighbour of each ATAC cell shares its true type far above chance (L2/3 share 0.42)
    a = z_atac / np.linalg.norm(z_atac, axis=1, keepdims=True)
    b = z_rna / np.linalg.norm(z_rna, axis=1, keepdims=True)
    nearest = (a @ b.T).argmax(axis=1)
    assert (rna_types[nearest] == truth.to_numpy()).mean() > 0.5


def test_save_load_identical(transferred, tmp_path):
    mdata, _, model = transferred
    model.save(tmp_path / "scncl", overwrite=True)
    loaded = st.model.SCNCL.load(tmp_path / "scncl")
    query = MuData({"gene_activity": mdata["gene_activity"].copy(), "atac": mdata["atac"].copy()})
    assert model._peak_inputs(query, query["gene_activity"].obs_names) is not None  # the peak view is used
    np.testing.assert_array_equal(loaded.predict(query), model.predict(query))
    np.testing.assert_allclose(
        loaded.predict(query, soft=True).to_numpy(), model.predict(query, soft=True).to_numpy(), rtol=0, atol=1e-6
    )
    assert list(loaded.gene_names_) == list(model.gene_names_)


def test_reuse_model_on_new_atac(transferred):
    mdata, truth, model = transferred
    held_out = st.datasets.mop_label_transfer(rna_libraries=("09G",), atac_libraries=("09A", "09B", "09C"))
    held_truth = _without_truth(held_out)
    new = MuData({"atac": held_out["atac"].copy()})
    out = st.tl.label_transfer(new, model=model)
    assert out is None
    assert set(FIELDS) <= set(new["atac"].obs.columns)
    assert "X_scncl" in new["atac"].obsm and "gene_activity" in new.mod
    assert "peak_neighbors_distances" in new["atac"].obsp  # computed for the novelty score
    acc = st.metrics.accuracy(held_truth, new["atac"].obs["sctransfer_label"].astype(str))
    assert acc >= 0.55
    assert new.uns["sctransfer"]["params"]["trained_here"] is False


@pytest.mark.parametrize(
    ("kept_types", "floor"), [(("Astro",), 0.6), (("L2/3", "Sst", "Oligo"), 0.7)], ids=["one-type", "three-types"]
)
def test_model_labels_a_query_of_few_types(transferred, tmp_path, kept_types, floor):
    """New ATAC cells of one or a few types keep their types' signal with model= (the training cells' statistics).

    Standardised with their own statistics, these queries (09A-C) reached an accuracy of 0.02 and 0.60; with the
    training cells' statistics 0.70 and 0.77.
    """
    _, _, model = transferred
    held_out = st.datasets.mop_label_transfer(rna_libraries=("09G",), atac_libraries=("09A", "09B", "09C"))
    truth = _without_truth(held_out).to_numpy()
    kept = np.isin(truth, kept_types)
    query = MuData({"atac": held_out["atac"][kept].copy()})
    st.tl.label_transfer(query, model=model)
    labels = query["atac"].obs["sctransfer_label"].astype(str).to_numpy()
    assert st.metrics.accuracy(truth[kept], labels) >= floor
    confidence = query["atac"].obs["sctransfer_confidence"].to_numpy()
    assert st.metrics.expected_calibration_error(truth[kept], labels, confidence) <= 0.2
    # the statistics travel with the saved model
    model.save(tmp_path / "scncl", overwrite=True)
    loaded = st.model.SCNCL.load(tmp_path / "scncl")
    np.testing.assert_allclose(loaded.query_statistics_.mean, model.query_statistics_.mean)
    np.testing.assert_array_equal(loaded.predict(query), labels)


def test_few_cells_with_a_model_need_their_own_graph(transferred):
    """Fewer ATAC cells than the graph's 30 components: the error says how to build a smaller graph; that works."""
    _, _, model = transferred
    few = MuData({"atac": st.datasets.mop_label_transfer(atac_libraries=("09H",))["atac"][:20].copy()})
    with pytest.raises(ValueError, match=r"has 20 ATAC cells.*peak_neighbors\(mdata, n_components=10, n_neighbors=6\)"):
        st.tl.label_transfer(few, model=model)
    assert "sctransfer_label" not in few["atac"].obs
    st.pp.peak_neighbors(few, n_components=10, n_neighbors=6)
    st.tl.label_transfer(few, model=model)
    confidence = few["atac"].obs["sctransfer_confidence"]
    assert confidence.notna().all() and ((confidence > 0) & (confidence <= 1)).all()


def test_same_random_state_same_result(small_split):
    a = small_split.copy()
    b = small_split.copy()
    st.tl.label_transfer(a, labels_key="cell_type", annotation="mm10", max_steps=100, random_state=3)
    st.tl.label_transfer(b, labels_key="cell_type", annotation="mm10", max_steps=100, random_state=3)
    np.testing.assert_array_equal(a["atac"].obsm["X_scncl"], b["atac"].obsm["X_scncl"])
    assert a["atac"].obs["sctransfer_label"].equals(b["atac"].obs["sctransfer_label"])
    c = small_split.copy()
    st.tl.label_transfer(c, labels_key="cell_type", annotation="mm10", max_steps=100, random_state=4)
    assert not np.allclose(a["atac"].obsm["X_scncl"], c["atac"].obsm["X_scncl"])
    # the peak-space graph (training positives, novelty) does not change with the seed
    graph = "peak_neighbors_distances"
    assert (a["atac"].obsp[graph] != c["atac"].obsp[graph]).nnz == 0
    np.testing.assert_array_equal(a["atac"].obsm["X_lsi"], c["atac"].obsm["X_lsi"])


def test_rare_reference_types_warned_once_and_recorded(small_split, tmp_path):
    """Types too rare to be predicted are named once, before training, and kept in uns through a file round trip."""
    mdata = small_split.copy()
    sizes = mdata["rna"].obs["cell_type"].value_counts()
    expected = sizes[sizes < MIN_CELLS_PER_TYPE].sort_values(kind="stable")
    assert 0 < len(expected) < len(sizes)  # 09A+09B: Endo, Peri, MGC and Npy are rare
    with pytest.warns(RareTypeWarning) as record:
        model = st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=20, return_model=True)
    rare_warnings = [w for w in record if issubclass(w.category, RareTypeWarning)]
    assert len(rare_warnings) == 1
    assert rare_warnings[0].filename == __file__  # reported at the user's line, not inside sctransfer
    assert all(w.filename == __file__ for w in record if issubclass(w.category, UserWarning))
    message = str(rare_warnings[0].message)
    assert all(f"{t!r}: {n}" in message for t, n in expected.items())
    assert "merge them into coarser labels" in message
    recorded = mdata.uns["sctransfer"]["rare_types"]
    assert list(recorded["label"]) == list(expected.index) and list(recorded["n_cells"]) == list(expected)
    mdata.write(tmp_path / "lt.h5mu")
    back = md.read_h5mu(tmp_path / "lt.h5mu").uns["sctransfer"]["rare_types"]
    assert list(back["label"]) == list(expected.index) and list(back["n_cells"]) == list(expected)
    # applying the model warns about its reference too, in the same words
    query = MuData({"atac": small_split["atac"].copy()})
    with pytest.warns(RareTypeWarning, match=r"of the model's reference .*'Endo': 3"):
        st.tl.label_transfer(query, model=model)
    assert list(query.uns["sctransfer"]["rare_types"]["label"]) == list(expected.index)


def test_copy_and_overwrite(small_split):
    mdata = small_split.copy()
    out = st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=50, copy=True)
    assert isinstance(out, MuData) and "sctransfer_label" in out["atac"].obs
    assert "sctransfer_label" not in mdata["atac"].obs
    st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=50)
    with pytest.raises(ValueError, match="overwrite=True"):
        st.tl.label_transfer(mdata, labels_key="cell_type", max_steps=50)
    # a different prefix writes beside the first result; overwrite replaces it
    st.tl.label_transfer(mdata, labels_key="cell_type", max_steps=50, key_added="run2")
    assert {"run2_label", "sctransfer_label"} <= set(mdata["atac"].obs.columns)
    assert {"X_scncl", "X_scncl_run2"} <= set(mdata["atac"].obsm.keys())
    st.tl.label_transfer(mdata, labels_key="cell_type", max_steps=50, overwrite=True)


def test_copy_with_return_model_returns_both(small_split):
    mdata = small_split.copy()
    out = st.tl.label_transfer(
        mdata, labels_key="cell_type", annotation="mm10", max_steps=20, copy=True, return_model=True
    )
    assert isinstance(out, tuple) and len(out) == 2
    copied, model = out
    assert isinstance(copied, MuData) and isinstance(model, st.model.SCNCL)
    assert "sctransfer_label" in copied["atac"].obs and "sctransfer_label" not in mdata["atac"].obs


def test_an_existing_gene_activity_is_checked_and_recomputed_with_overwrite(small_split):
    """A gene-activity modality left from other genes is reported before work, and overwrite=True computes it again."""
    mdata = small_split.copy()
    reference_genes = mdata["rna"].var_names
    st.pp.gene_activity(mdata, "mm10", genes=reference_genes[:300])
    assert mdata["gene_activity"].n_vars <= 300
    with pytest.warns(UserWarning, match=r"holds \d+% of the 1,\d{3} genes .*overwrite=True \(with annotation=\)"):
        st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=20)
    assert mdata["gene_activity"].n_vars <= 300  # used as it was (the user may have chosen it)
    st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=20, overwrite=True)
    covered = reference_genes.isin(mdata["gene_activity"].var_names).mean()
    assert covered > 0.9  # computed again from the peaks for the reference's genes
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a complete one is used without a word
        warnings.filterwarnings("ignore", category=st.tl.RareTypeWarning)
        st.tl.label_transfer(mdata, labels_key="cell_type", max_steps=20, key_added="again")


# --------------------------------------------------------------------------------------------
# bad input: a clear error, and the MuData untouched
# --------------------------------------------------------------------------------------------
def _snapshot(mdata: MuData) -> dict:
    return {
        "mods": list(mdata.mod),
        "uns": sorted(mdata.uns.keys()),
        **{
            name: (
                list(ad.obs.columns),
                sorted(ad.obsm.keys()),
                sorted(ad.obsp.keys()),
                sorted(ad.uns.keys()),
                ad.shape,
                ad.obs_names.tolist()[:5],
            )
            for name, ad in mdata.mod.items()
        },
    }


def _labels_all_nan(m):
    m["rna"].obs["cell_type"] = pd.Categorical([np.nan] * m["rna"].n_obs, categories=["a"])


def _single_type(m):
    m["rna"].obs["cell_type"] = pd.Categorical(["L2/3"] * m["rna"].n_obs)


def _rename_genes(m):
    m.mod["rna"].var_names = ["gene_" + g for g in m["rna"].var_names]


def _bad_peaks(m):
    m.mod["atac"].var = pd.DataFrame(index=[f"peak{i}" for i in range(m["atac"].n_vars)])


def _shared_names(m):
    n = min(m["rna"].n_obs, m["atac"].n_obs)
    rna, atac = m["rna"][:n].copy(), m["atac"][:n].copy()
    rna.obs_names = atac.obs_names = [f"cell{i}" for i in range(n)]
    return MuData({"rna": rna, "atac": atac})


def _non_numeric(m):
    atac = AnnData(
        X=np.full((5, 3), "x", dtype=object),
        obs=pd.DataFrame(index=[f"a{i}" for i in range(5)]),
        var=pd.DataFrame(index=["chr1:1-100", "chr1:200-300", "chr2:1-50"]),
    )
    return MuData({"rna": m["rna"], "atac": atac})


def _empty_atac(m):
    return MuData({"rna": m["rna"], "atac": m["atac"][:0].copy()})


@pytest.mark.parametrize(
    ("mutate", "kwargs", "error", "match"),
    [
        (None, {"rna_key": "RNA"}, KeyError, "Modality 'RNA'"),
        (None, {"atac_key": "peaks"}, KeyError, "Modality 'peaks'"),
        (None, {"labels_key": "celltype"}, KeyError, "celltype"),
        (_labels_all_nan, {}, ValueError, "all NaN"),
        (_single_type, {}, ValueError, "single cell type"),
        (_rename_genes, {}, IntervalError, "None of the requested genes"),
        (_bad_peaks, {}, IntervalError, "chr1:100-200"),
        (_shared_names, {}, ValueError, "share"),
        (_non_numeric, {}, TypeError, "non-numeric"),
        (_empty_atac, {}, ValueError, "empty"),
        (None, {"predict_kwargs": {"self_trainig": False}}, TypeError, r"\['self_trainig'\].*mean 'self_training'"),
        (None, {"predict_kwargs": {"self_training": "yes"}}, TypeError, "self_training must be True or False"),
        (None, {"novelty_threshold": "2"}, TypeError, "novelty_threshold must be a number"),
        (None, {"novelty_threshold": True}, TypeError, "novelty_threshold must be a number"),
        (None, {"random_state": "0"}, ValueError, "random_state must be an integer >= 0"),
        (None, {"model": "saved/model"}, TypeError, r"load a saved one first, model=sctransfer.model.SCNCL.load"),
    ],
    ids=[
        "unknown-rna",
        "unknown-atac",
        "missing-labels",
        "all-nan-labels",
        "single-type",
        "no-shared-gene",
        "unparseable-peaks",
        "shared-obs-names",
        "non-numeric",
        "empty-modality",
        "unknown-predict-option",
        "non-bool-self-training",
        "text-novelty-threshold",
        "bool-novelty-threshold",
        "text-random-state",
        "model-path",
    ],
)
def test_bad_input_clear_error_and_untouched(small_split, mutate, kwargs, error, match):
    mdata = small_split.copy()
    if mutate is not None:
        mdata = mutate(mdata) or mdata
    before = _snapshot(mdata)
    args = {"labels_key": "cell_type", "annotation": "mm10", "max_steps": 10, **kwargs}
    with pytest.raises(error, match=match):
        st.tl.label_transfer(mdata, **args)
    assert _snapshot(mdata) == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"train_kwargs": {"max_epoch": 5}}, r"train_kwargs .*'max_epoch'.*Did you mean 'max_epochs'\?"),
        ({"train_kwargs": {"enable_progres_bar": False}}, r"Did you mean 'enable_progress_bar'\?"),
        ({"train_kwargs": {"training_plan": None}}, r"'training_plan' is set by sctransfer itself"),
        (
            {"model_kwargs": {"n_hiden": 8}},
            r"model_kwargs .*'n_hiden'.*Did you mean 'n_hidden'\?.*Valid keys: .*weight_ncl",
        ),
        ({"model_kwargs": {"n_labels": 3}}, r"'n_labels' is set by sctransfer itself"),
        ({"model_kwargs": {"random_state": 3}}, r"'random_state' is set by sctransfer itself"),
        ({"train_kwargs": {"random_state": 3}}, r"'random_state' is an argument of the tool itself"),
        ({"predict_kwargs": {"refrence_neighbors": 5}}, r"Did you mean 'reference_neighbors'\?"),
        ({"train_kwargs": [("max_epochs", 5)]}, r"train_kwargs must be a dict"),
    ],
    ids=[
        "train-typo",
        "trainer-typo",
        "train-reserved",
        "model-typo",
        "module-reserved",
        "tool-argument",
        "train-tool-argument",
        "predict-typo",
        "not-dict",
    ],
)
def test_bad_kwargs_refused_before_any_work(small_split, monkeypatch, kwargs, match):
    """A mistyped keyword fails at once, not after the gene activity and the peak graph."""

    def no_work(*args, **kwargs):
        raise AssertionError("gene activity computed before the keyword check")

    monkeypatch.setattr(st.tl._label_transfer, "compute_gene_activity", no_work)
    with pytest.raises(TypeError, match=match):
        st.tl.label_transfer(small_split, labels_key="cell_type", annotation="mm10", **kwargs)


def _foreign_gene_activity(m):
    other = AnnData(sp.csr_matrix((3, 2), dtype=np.float32), obs=pd.DataFrame(index=["x", "y", "z"]))
    return MuData({"rna": m["rna"], "atac": m["atac"], "gene_activity": other})


def _user_lsi(m):
    m["atac"].obsm["X_lsi"] = np.zeros((m["atac"].n_obs, 5), dtype=np.float32)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [(_foreign_gene_activity, "other cells"), (_user_lsi, "use_rep='X_lsi'")],
    ids=["foreign-gene-activity", "user-lsi"],
)
def test_user_fields_are_not_replaced_silently(small_split, mutate, match):
    mdata = small_split.copy()
    mdata = mutate(mdata) or mdata
    before = _snapshot(mdata)
    with pytest.raises(ValueError, match=match):
        st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=10)
    assert _snapshot(mdata) == before


def test_existing_graph_on_user_lsi_is_used(small_split):
    mdata = small_split.copy()
    mdata["atac"].obsm["X_lsi"] = st.pp.tfidf_lsi(mdata["atac"], n_components=20)
    st.pp.peak_neighbors(mdata, use_rep="X_lsi", n_neighbors=5)
    lsi = mdata["atac"].obsm["X_lsi"].copy()
    st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=20)
    np.testing.assert_array_equal(mdata["atac"].obsm["X_lsi"], lsi)
    assert mdata["atac"].uns["peak_neighbors"]["params"]["n_neighbors"] == 5


def test_view_is_refused(small_split):
    view = small_split[small_split.obs_names[:200]]
    assert view.is_view
    with pytest.raises(ValueError, match="view"):
        st.tl.label_transfer(view, labels_key="cell_type", annotation="mm10", max_steps=10)


def test_model_needs_mudata_setup():
    with pytest.raises(TypeError, match="setup_mudata"):
        st.model.SCNCL.setup_anndata(AnnData(np.ones((3, 3))))


def test_labels_required_for_training(small_split):
    with pytest.raises(ValueError, match="labels_key is required"):
        st.tl.label_transfer(small_split.copy(), annotation="mm10")


def test_training_inputs_are_the_encoder_inputs_of_the_cells(transferred):
    """The sampler's precomputed (sparse) rows equal the joint-PCA scores of the densely transformed genes."""
    _, _, model = transferred
    _, atac = model._modality_data(model.adata, "atac")
    inputs = model._encoder_inputs(atac)
    assert inputs.values.shape == (atac.n_cells, model.module.n_pcs) and inputs.values.dtype == np.float32
    rows = np.random.default_rng(0).integers(0, atac.n_cells, 64)
    module = model.module
    expected = (atac.batch(rows) - module.pca_mean) @ module.pca_components
    np.testing.assert_allclose(inputs.batch(rows).numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)
    module.train()
    model.get_latent_representation(modality="atac")
    assert model.module.training  # inference passes give the module back in the mode they found it
    model.module.eval()
