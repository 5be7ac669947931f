"""SCCLIP's linear member (``linear_weight``, on by default): width, fusion, fit, save/load, zero-shot, refusals."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import sctransfer as st
from sctransfer.model._linear_member import LINEAR_COMPONENTS, LinearMember

WEIGHT = 0.3


def _setup(libraries):
    mdata = st.datasets.mop_snareseq(libraries)
    st.model.SCCLIP.setup_mudata(mdata)
    return mdata


@pytest.fixture(scope="module")
def paired():
    return _setup(("09A",))  # 813 paired cells


@pytest.fixture(scope="module")
def query():
    return st.datasets.mop_snareseq(("09B",))


@pytest.fixture(scope="module")
def trained(paired):
    model = st.model.SCCLIP(paired, annotation="mm10", preset="tiny")  # the default weight
    assert model.linear_weight == WEIGHT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a held-out check on a short training may warn
        model.train(max_steps=40, batch_size=128, train_size=0.8, enable_progress_bar=False)
    return model


def _network_part(model, adata, modality, **kwargs):
    """The embedding of the same model without its linear member (the network's, after the alignment)."""
    member, model.linear_member_ = model.linear_member_, None
    try:
        return model.get_latent_representation(adata, modality=modality, **kwargs)
    finally:
        model.linear_member_ = member


def test_the_member_widens_the_embedding_and_joins_it_with_its_weight(trained, query):
    member = trained.linear_member_
    assert isinstance(member, LinearMember)
    assert member.n_axes == LINEAR_COMPONENTS - 1  # 651 training pairs allow 49 canonical axes
    for modality in ("rna", "atac"):
        z = trained.get_latent_representation(query, modality=modality)
        network = _network_part(trained, query, modality)
        width = network.shape[1]
        assert z.shape == (query.n_obs, width + member.n_axes) and z.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
        # the network's part is the embedding without the member, scaled; the member's part its own embedding
        np.testing.assert_allclose(z[:, :width], np.sqrt(1 - WEIGHT) * network, atol=1e-6)
        linear = member.transform(sp.csr_matrix(query[modality].X), modality)
        np.testing.assert_allclose(z[:, width:], np.sqrt(WEIGHT) * linear, atol=1e-6)
        # indices: the same rows, in the order asked
        np.testing.assert_array_equal(
            trained.get_latent_representation(query, modality=modality, indices=[5, 2]), z[[5, 2]]
        )
    # the member alone, fitted on 651 pairs, ranks new partners better than chance (0.5)
    linear = {m: member.transform(sp.csr_matrix(query[m].X), m) for m in ("rna", "atac")}
    assert st.metrics.foscttm(linear["rna"], linear["atac"]).mean < 0.4


def test_the_member_is_fitted_on_the_training_pairs_and_scored_by_the_held_out_check(trained, paired):
    rows = trained.train_indices
    counts = {m: sp.csr_matrix(paired[m].X)[rows] for m in ("rna", "atac")}
    refitted = LinearMember.fit(counts["rna"], counts["atac"])
    np.testing.assert_array_equal(trained.linear_member_.atac_projection, refitted.atac_projection)
    np.testing.assert_array_equal(trained.linear_member_.rna_offset, refitted.rna_offset)
    # the recorded held-out score is the one of the embedding users get (with the member)
    held_out = trained.validation_indices
    z = {m: trained.get_latent_representation(modality=m, indices=held_out) for m in ("rna", "atac")}
    recorded = trained.history["foscttm_validation"]["foscttm_validation"].iloc[0]
    assert recorded == pytest.approx(st.metrics.foscttm(z["rna"], z["atac"]).mean)


def test_weight_zero_is_the_network_embedding_alone(paired, query):
    model = st.model.SCCLIP(paired, annotation="mm10", preset="tiny", linear_weight=0.0)
    assert model.linear_weight == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a small training suggests the held-out check
        model.train(max_steps=5, batch_size=128, enable_progress_bar=False)
    assert model.linear_member_ is None
    z = model.get_latent_representation(query, modality="atac")
    raw = model._network_embedding(model._scaled_counts(query, "atac"), "atac", 1024)
    # as before the option existed (the alignment maps each block of 1,024 cells as it maps all at once)
    np.testing.assert_allclose(z, model.alignment_.transform(raw, "atac"), rtol=0, atol=1e-6)
    assert z.shape[1] == raw.shape[1]


def test_the_weight_of_a_trained_member_can_be_changed_and_is_saved_and_recorded(trained, query, tmp_path):
    network = _network_part(trained, query, "atac")
    try:
        trained.linear_weight = 0.5
        z = trained.get_latent_representation(query, modality="atac")
        np.testing.assert_allclose(z[:, : network.shape[1]], np.sqrt(0.5) * network, atol=1e-6)
        trained.save(tmp_path / "model")
        loaded = st.model.SCCLIP.load(tmp_path / "model")
        assert loaded.linear_weight == 0.5
        np.testing.assert_array_equal(loaded.get_latent_representation(query, modality="atac"), z)
        recorded = query.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            st.tl.cross_modal_match(recorded, model=trained)
        assert recorded.uns["sctransfer_match"]["params"]["model"]["linear_weight"] == 0.5
        trained.linear_weight = 0  # the member left out: the network's columns alone
        np.testing.assert_allclose(trained.get_latent_representation(query, modality="atac"), network, atol=1e-6)
        for bad in (1.0, -0.1, float("nan"), "0.3", True):
            with pytest.raises(ValueError, match=r"linear_weight must be a number in \[0, 1\)"):
                trained.linear_weight = bad
        assert trained.linear_weight == 0.0  # unchanged by the refused values
    finally:
        trained.linear_weight = WEIGHT


def test_a_model_trained_without_a_member_refuses_a_weight(paired):
    model = st.model.SCCLIP(paired, annotation="mm10", preset="tiny", linear_weight=0.0)
    model.linear_weight = 0.3  # before training: the member is fitted when it trains
    model.linear_weight = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.train(max_steps=5, batch_size=128, enable_progress_bar=False)
    with pytest.raises(ValueError, match=r"trained without a linear member .*=\{'linear_weight': 0\.3\}"):
        model.linear_weight = 0.3
    assert model.linear_weight == 0.0 and model.init_params_["non_kwargs"]["linear_weight"] == 0.0


def test_save_load_keeps_the_member_and_the_embedding(trained, query, tmp_path):
    trained.save(tmp_path / "model")
    description = json.loads((tmp_path / "model" / "model.json").read_text())
    assert description["init_params"]["non_kwargs"]["linear_weight"] == WEIGHT
    loaded = st.model.SCCLIP.load(tmp_path / "model")
    assert loaded.linear_weight == WEIGHT
    for field in ("rna_projection", "rna_offset", "atac_idf", "atac_projection", "atac_offset", "correlations"):
        np.testing.assert_array_equal(getattr(loaded.linear_member_, field), getattr(trained.linear_member_, field))
    for modality in ("rna", "atac"):
        np.testing.assert_array_equal(
            loaded.get_latent_representation(query, modality=modality),
            trained.get_latent_representation(query, modality=modality),
        )


def test_zero_shot_maps_reordered_genes_and_recalled_peaks_onto_the_model(trained, query):
    z_rna = trained.get_latent_representation(query, modality="rna")
    width = z_rna.shape[1] - trained.linear_member_.n_axes
    # genes in another order: mapped by name, the same embedding
    genes = query["rna"][:, np.random.default_rng(0).permutation(query["rna"].n_vars)].copy()
    np.testing.assert_allclose(trained.get_latent_representation(genes, modality="rna"), z_rna, atol=1e-5)
    # peaks called again (shifted, 10% dropped, renamed): mapped by overlap; the member reads the mapped counts
    recalled = st.datasets.recall_peaks(query["atac"], drop_fraction=0.1, random_state=0)
    mapping = trained.feature_mapping(recalled, "atac")
    z_atac = trained.get_latent_representation(recalled, modality="atac", feature_mapping=mapping)
    expected = trained.linear_member_.transform(mapping.apply(sp.csr_matrix(recalled.X)), "atac")
    np.testing.assert_allclose(z_atac[:, width:], np.sqrt(WEIGHT) * expected, atol=1e-6)
    original = trained.get_latent_representation(query, modality="atac")
    # partners still ranked about as well as with the original peaks
    assert st.metrics.foscttm(z_rna, z_atac).mean < st.metrics.foscttm(z_rna, original).mean + 0.05


def test_backed_new_data_give_the_in_memory_embedding(trained, query, tmp_path):
    import anndata

    query["atac"].write_h5ad(tmp_path / "atac.h5ad")
    backed = anndata.read_h5ad(tmp_path / "atac.h5ad", backed="r")
    np.testing.assert_allclose(
        trained.get_latent_representation(backed, modality="atac", batch_size=300),
        trained.get_latent_representation(query, modality="atac"),
        atol=1e-5,
    )


@pytest.mark.parametrize("weight", [-0.1, 1.0, 1.5, float("nan"), float("inf"), "0.3", True, None])
def test_bad_weights_are_refused_before_any_work(paired, weight):
    with pytest.raises(ValueError, match=r"linear_weight must be a number in \[0, 1\)"):
        st.model.SCCLIP(paired, annotation="mm10", preset="tiny", linear_weight=weight)


def test_too_few_peaks_for_the_member_are_refused_before_training():
    """The member's LSI needs 3 peaks: refused when the model is built (not after training), naming the fix."""
    mdata = st.datasets.mop_snareseq(("09A",))
    mdata.mod["atac"] = mdata["atac"][:, :2].copy()
    mdata.update()
    st.model.SCCLIP.setup_mudata(mdata)
    with pytest.raises(ValueError, match=r"needs at least 3 peaks for its LSI, got 2\. Pass linear_weight=0\.0"):
        st.model.SCCLIP(mdata, annotation="mm10", preset="tiny", linear_weight=WEIGHT)
    model = st.model.SCCLIP(mdata, annotation="mm10", preset="tiny", linear_weight=0.0)
    with pytest.raises(ValueError, match=r"needs at least 3 peaks for its LSI, got 2"):
        model.linear_weight = WEIGHT  # nor set before training
    assert model.linear_weight == 0.0
