"""SCNCL's model contract on a small MOp split: one-pass results, latent subsets, data checks, partial labels."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from mudata import MuData

import sctransfer as st
from sctransfer.model import SCNCL, TransferResult
from sctransfer.model._unpaired_data import UnpairedDataModule


@pytest.fixture(scope="module")
def prepared() -> MuData:
    """One RNA library (09A) and one ATAC library (09G), with gene activity and the peak-space graph."""
    mdata = st.datasets.mop_label_transfer(rna_libraries=("09A",), atac_libraries=("09G",))
    mdata["atac"].obs.pop("cell_type")
    mdata.update()
    st.pp.gene_activity(mdata, "mm10", genes=mdata["rna"].var_names)
    st.pp.peak_neighbors(mdata)
    return mdata


@pytest.fixture(scope="module")
def trained(prepared) -> tuple[MuData, SCNCL]:
    mdata = prepared.copy()
    SCNCL.setup_mudata(mdata, labels_key="cell_type")
    model = SCNCL(mdata, n_peak_components=20)
    model.train(max_steps=60, steps_per_epoch=20)
    return mdata, model


def _query(mdata: MuData) -> MuData:
    """The same ATAC cells in a MuData of their own (new data for the model)."""
    return MuData({"gene_activity": mdata["gene_activity"].copy(), "atac": mdata["atac"].copy()})


def test_transfer_is_predict_novelty_and_latent_in_one_pass(trained):
    mdata, model = trained
    result = model.transfer()
    assert isinstance(result, TransferResult)
    names = mdata["atac"].obs_names
    proba = model.predict(soft=True)
    assert result.probabilities.index.equals(names) and list(result.probabilities.columns) == list(
        model.label_categories_
    )
    assert result.probabilities.to_numpy().dtype == np.float32
    np.testing.assert_array_equal(result.probabilities.to_numpy(), proba.to_numpy())
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(result.labels, model.predict())
    np.testing.assert_array_equal(result.confidence.to_numpy(), proba.max(axis=1).to_numpy())
    embedding = model.get_latent_representation(modality="atac")
    assert result.embedding.dtype == np.float32 and result.embedding.shape == (len(names), 64)
    np.testing.assert_array_equal(result.embedding, embedding)
    novelty = model.novelty_score()
    assert result.novelty.dtype == np.float32 and result.novelty.index.equals(names)
    np.testing.assert_array_equal(result.novelty.to_numpy(), novelty.to_numpy())
    # the options reach the right parts: the vote size and the correction change the probabilities only
    other = model.transfer(reference_neighbors=0, prior_correction=0.0, smoothing_rounds=0)
    np.testing.assert_array_equal(
        other.probabilities, model.predict(soft=True, reference_neighbors=0, prior_correction=0)
    )
    np.testing.assert_array_equal(other.novelty, model.novelty_score(smoothing_rounds=0))
    np.testing.assert_array_equal(other.embedding, result.embedding)


def test_new_data_give_the_training_results(trained):
    mdata, model = trained
    query = _query(mdata)
    np.testing.assert_allclose(model.transfer(query).probabilities, model.transfer().probabilities, atol=1e-5)
    np.testing.assert_allclose(
        model.get_latent_representation(query, modality="atac", batch_size=97),
        model.get_latent_representation(modality="atac"),
        atol=1e-5,
    )
    # the modality's AnnData alone is accepted too
    np.testing.assert_allclose(
        model.get_latent_representation(mdata["rna"].copy(), modality="rna"),
        model.get_latent_representation(modality="rna"),
        atol=1e-5,
    )


@pytest.mark.parametrize("modality", ["rna", "atac"])
def test_indices_give_rows_of_the_full_result(trained, modality):
    mdata, model = trained
    full = model.get_latent_representation(modality=modality)
    picked = [7, 0, 7, len(full) - 1]
    np.testing.assert_array_equal(model.get_latent_representation(modality=modality, indices=picked), full[picked])
    # on new data the input statistics are those of all cells, whatever the subset
    query = _query(mdata) if modality == "atac" else MuData({"rna": mdata["rna"].copy()})
    new_full = model.get_latent_representation(query, modality=modality)
    np.testing.assert_allclose(
        model.get_latent_representation(query, modality=modality, indices=np.array(picked)), new_full[picked], atol=1e-6
    )
    assert model.get_latent_representation(modality=modality, indices=[]).shape == (0, full.shape[1])
    with pytest.raises(IndexError, match=r"\[0, "):
        model.get_latent_representation(modality=modality, indices=[len(full)])
    with pytest.raises(TypeError, match="flatnonzero"):
        model.get_latent_representation(modality=modality, indices=np.ones(len(full), dtype=bool))


def test_old_mdata_keyword_warns(trained):
    mdata, model = trained
    with pytest.warns(DeprecationWarning, match="adata="):
        z = model.get_latent_representation(mdata=mdata, modality="atac")
    np.testing.assert_array_equal(z, model.get_latent_representation(mdata, modality="atac"))
    with pytest.warns(DeprecationWarning):
        np.testing.assert_array_equal(model.predict(mdata=mdata), model.predict(mdata))
    with pytest.raises(TypeError, match="both mdata= and adata="):
        model.novelty_score(mdata=mdata, adata=mdata)
    with pytest.raises(TypeError, match="modality"):
        model.get_latent_representation()  # the modality has no default, as in SCCLIP


def test_gene_mismatch_is_reported(trained):
    mdata, model = trained
    genes = model.gene_names_
    activity = mdata["gene_activity"]
    dropped = MuData({"gene_activity": activity[:, ~activity.var_names.isin(genes[:12])].copy()})
    with pytest.warns(UserWarning, match=rf"12 of the model's {len(genes)} genes are missing .*{genes[0]}"):
        z = model.get_latent_representation(dropped, modality="atac")
    assert z.shape == (activity.n_obs, 64) and np.isfinite(z).all()
    renamed = activity.copy()
    renamed.var_names = "ENSMUSG" + renamed.var_names.astype(str)
    with pytest.raises(ValueError, match=r"None of the model's \d+ genes .*symbols vs Ensembl"):
        model.get_latent_representation(MuData({"gene_activity": renamed}), modality="atac")
    doubled = activity.copy()
    names = doubled.var_names.to_numpy().copy()
    names[1] = names[0]
    doubled.var_names = names
    with pytest.raises(
        ValueError, match=rf"'gene_activity' has 1 repeated feature names.*{names[0]}.*var_names_make_unique"
    ):
        model.predict(MuData({"gene_activity": doubled}))
    with pytest.raises(ValueError, match=rf"1 gene names more than once .*{names[0]}.*var_names_make_unique"):
        model.get_latent_representation(doubled, modality="atac")  # the modality's AnnData itself
    with pytest.raises(KeyError, match="gene_activity"):
        model.transfer(MuData({"atac": mdata["atac"].copy()}))


def test_model_sets_its_gene_coordinates(trained, prepared):
    mdata, model = trained
    coords = model.gene_coordinates_
    assert list(coords.columns) == ["chrom", "start", "end", "strand", "gene_name"]
    assert list(coords["gene_name"]) == list(model.gene_names_)
    var = mdata["gene_activity"].var.loc[model.gene_names_]
    np.testing.assert_array_equal(coords["start"], var["start"].to_numpy() + 1)  # 1-based, as a GTF
    np.testing.assert_array_equal(coords["end"], var["end"])
    # a table that reads back as an annotation gives the same gene activity
    again = st.pp.gene_activity(mdata["atac"], coords, genes=model.gene_names_)
    np.testing.assert_allclose(again.X.toarray(), mdata["gene_activity"][:, model.gene_names_].X.toarray())
    # without coordinates in .var there are none
    bare = prepared.copy()
    bare.mod["gene_activity"].var = pd.DataFrame(index=bare["gene_activity"].var_names)
    SCNCL.setup_mudata(bare, labels_key="cell_type")
    assert SCNCL(bare, n_pcs=5, n_peak_components=None).gene_coordinates_ is None


def test_data_module_reads_the_registry(trained):
    mdata, model = trained
    assert model._data_splitter_cls is UnpairedDataModule
    module = UnpairedDataModule(model.adata_manager, **model._training_inputs(), batch_size=64, steps_per_epoch=3)
    batches = list(module.train_dataloader())
    assert len(batches) == 3
    for batch in batches:
        assert batch["rna"]["X"].shape == (64, model.module.n_pcs)
        assert batch["atac"]["X_positive"].shape == (64, model.module.n_pcs) and batch["atac"]["X_peaks"].shape[0] == 64
        labels = batch["rna"]["labels"].numpy()
        assert labels.min() >= 0 and labels.max() < len(model.label_categories_)
    # inputs that do not match the registered cells are refused
    inputs = model._training_inputs()
    inputs["atac_inputs"] = inputs["atac_inputs"].values[:-1]
    with pytest.raises(ValueError, match="ATAC inputs hold"):
        UnpairedDataModule(model.adata_manager, **inputs)


def _partly_labelled(prepared: MuData, kind: str) -> MuData:
    mdata = prepared.copy()
    rna = mdata["rna"]
    labels = rna.obs["cell_type"].astype(str).to_numpy(dtype=object)
    rng = np.random.default_rng(0)
    unlabelled = rng.random(rna.n_obs) < 0.2
    labels[unlabelled] = np.nan
    labels[np.flatnonzero(~unlabelled)[:5]] = "nan"  # as a round trip through a text file leaves them
    if kind == "categorical":
        column = pd.Categorical(labels, categories=[*sorted(set(labels[~unlabelled]) - {"nan"}), "Unused", "nan"])
    else:
        column = labels
    rna.obs["cell_type"] = column
    return mdata


@pytest.mark.parametrize("kind", ["object", "categorical"])
def test_partly_labelled_reference_trains_on_labelled_cells(prepared, kind):
    mdata = _partly_labelled(prepared, kind)
    before = mdata["rna"].obs["cell_type"].copy()
    SCNCL.setup_mudata(mdata, labels_key="cell_type")
    column = mdata["rna"].obs["cell_type"]
    pd.testing.assert_series_equal(column, before)  # the user's column is not changed
    model = SCNCL(mdata, n_pcs=10, n_peak_components=None)
    known = before.astype(object)
    known = known[known.notna() & (known != "nan")]
    assert list(model.label_categories_) == sorted(known.unique())
    assert "Unused" not in model.label_categories_ and "nan" not in model.label_categories_
    model.train(max_steps=5, steps_per_epoch=5)
    assert len(model.reference_labels_) == len(known)
    assert list(model.predict(soft=True).columns) == list(model.label_categories_)


def test_float_labels_are_refused(prepared):
    mdata = prepared.copy()
    mdata["rna"].obs["score"] = np.random.default_rng(0).random(mdata["rna"].n_obs)
    with pytest.raises(TypeError, match="continuous numbers"):
        SCNCL.setup_mudata(mdata, labels_key="score")
    assert "_scvi_labels" not in mdata["rna"].obs


def test_scclip_latent_has_the_same_contract():
    """SCCLIP's get_latent_representation takes the same arguments, with the same defaults."""
    mdata = st.datasets.mop_snareseq(("09A",))
    st.model.SCCLIP.setup_mudata(mdata)
    model = st.model.SCCLIP(mdata, annotation="mm10", preset="tiny")
    model.train(max_steps=2, steps_per_epoch=2, enable_progress_bar=False)
    full = model.get_latent_representation(modality="atac")
    picked = [3, 0, 3]
    np.testing.assert_array_equal(model.get_latent_representation(mdata, modality="atac", indices=picked), full[picked])
    new = mdata["rna"].copy()
    np.testing.assert_allclose(
        model.get_latent_representation(new, modality="rna", indices=picked, batch_size=2),
        model.get_latent_representation(modality="rna")[picked],
        atol=1e-5,
    )
    assert model.get_latent_representation(modality="rna", indices=[]).shape == (0, full.shape[1])
    with pytest.warns(DeprecationWarning, match="adata="):
        model.get_latent_representation(data=mdata, modality="atac")
    with pytest.raises(TypeError, match="modality"):
        model.get_latent_representation(mdata)


def test_peak_view_reads_new_peaks_by_coordinates(trained):
    mdata, model = trained
    expected = model.predict(_query(mdata), soft=True)
    renamed = _query(mdata)
    atac = renamed["atac"]
    coordinates = zip(atac.var["chrom"], atac.var["start"], atac.var["end"], strict=True)
    atac.var_names = [f"{c}:{s}-{e}" for c, s, e in coordinates]
    atac.var = pd.DataFrame(index=atac.var_names)  # coordinates only in the names now, in another style
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the peak view is used: nothing to warn about
        np.testing.assert_allclose(model.predict(renamed, soft=True), expected, atol=1e-5)  # summed in other order
    # peaks that cannot be placed: the peak view is left out, with a warning, as without the peaks at all
    anonymous = _query(mdata)
    anonymous["atac"].var_names = [f"peak{i}" for i in range(anonymous["atac"].n_vars)]
    anonymous["atac"].var = pd.DataFrame(index=anonymous["atac"].var_names)
    with pytest.warns(UserWarning, match=r"reach only 0% of the model's [\d,]+ peaks \(matched by name .*not used"):
        without_view = model.predict(anonymous, soft=True)
    with pytest.warns(UserWarning, match=r"has no modality 'atac', so the model's peak view is not used"):
        np.testing.assert_array_equal(
            model.predict(MuData({"gene_activity": mdata["gene_activity"].copy()}), soft=True), without_view
        )
    assert not np.allclose(without_view, expected)


def test_half_precision_counts_are_read_as_float32(trained):
    """Dense float16 counts (which scipy.sparse refuses) give what float32 counts give, in pp and in the model."""
    mdata, model = trained
    atac = mdata["atac"][:50].copy()
    half = atac.copy()
    half.X = atac.X.toarray().astype(np.float16)
    np.testing.assert_array_equal(
        st.pp.gene_activity(half, "mm10", genes=model.gene_names_).X.toarray(),
        st.pp.gene_activity(atac, "mm10", genes=model.gene_names_).X.toarray(),
    )
    activity = mdata["gene_activity"].copy()
    activity.X = activity.X.toarray()
    expected = model.get_latent_representation(activity, modality="atac")
    activity.X = activity.X.astype(np.float16)
    np.testing.assert_array_equal(model.get_latent_representation(activity, modality="atac"), expected)


def test_self_training_refines_the_atac_probabilities(trained):
    """predict/transfer pool the ensemble with the cross-fitted peak-view classifier, which cells scored novel do
    not teach; False gives the ensemble."""
    from sctransfer.model._novelty import DEFAULT_NOVELTY_THRESHOLD
    from sctransfer.model._prediction import self_trained_probabilities

    mdata, model = trained
    ensemble = model.predict(soft=True, self_training=False)
    refined = model.predict(soft=True)
    peak_inputs = model._peak_inputs(mdata, mdata["atac"].obs_names)
    novel = model.novelty_score().to_numpy() > DEFAULT_NOVELTY_THRESHOLD
    expected = self_trained_probabilities(
        ensemble.to_numpy(), peak_inputs, novel=novel, cell_names=mdata["atac"].obs_names
    )
    np.testing.assert_array_equal(refined.to_numpy(), expected)
    assert refined.index.equals(ensemble.index) and not np.allclose(refined, ensemble)
    np.testing.assert_array_equal(model.transfer(self_training=False).probabilities, ensemble)
    np.testing.assert_array_equal(model.transfer().probabilities, refined)  # deterministic: the same twice
    # RNA cells have no peak view: the option changes nothing there
    np.testing.assert_array_equal(
        model.predict(modality="rna", soft=True), model.predict(modality="rna", soft=True, self_training=False)
    )
    for method in (model.predict, model.transfer):
        with pytest.raises(TypeError, match="self_training must be True or False, got 'no'"):
            method(self_training="no")


def test_model_inputs_do_not_depend_on_the_seed(prepared):
    """The joint PCA, the peak view and the linear encoder's start are the same for every random_state."""
    models = []
    for seed in (0, 3):
        mdata = prepared.copy()
        SCNCL.setup_mudata(mdata, labels_key="cell_type")
        models.append(SCNCL(mdata, n_peak_components=20, random_state=seed))
    first, second = models
    for name, value in first.module.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), second.module.state_dict()[name].numpy(), err_msg=name)
    np.testing.assert_array_equal(first.peak_view_.lsi.components, second.peak_view_.lsi.components)
