"""scCLIP end to end on MOp SNARE-seq: training, fields written, zero-shot, round trips and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

import sctransfer as st
from sctransfer._intervals import IntervalError

TRAIN_LIBRARIES = ("09D", "09E", "09F", "09G", "09H", "09I", "09J", "09K", "09L")
TEST_LIBRARIES = ("09A", "09B", "09C")
STEPS = 200


def _snapshot(mdata: MuData) -> dict:
    return {
        key: (
            list(adata.obs.columns),
            list(adata.obsm.keys()),
            list(adata.var.columns),
            adata.var_names.copy(),
            adata.X.copy(),
        )
        for key, adata in mdata.mod.items()
    } | {"uns": list(mdata.uns.keys()), "mod": list(mdata.mod)}


def _assert_unchanged(mdata: MuData, snapshot: dict) -> None:
    assert list(mdata.uns.keys()) == snapshot["uns"] and list(mdata.mod) == snapshot["mod"]
    for key, adata in mdata.mod.items():
        obs, obsm, var, var_names, x = snapshot[key]
        assert list(adata.obs.columns) == obs and list(adata.obsm.keys()) == obsm
        assert list(adata.var.columns) == var and adata.var_names.equals(var_names)
        assert (adata.X != x).nnz == 0


@pytest.fixture(scope="module")
def trained():
    """The tiny preset trained on MOp libraries 09D-09L (the benchmark's training split)."""
    mdata = st.datasets.mop_snareseq(TRAIN_LIBRARIES)
    model = st.tl.cross_modal_match(
        mdata,
        annotation="mm10",
        preset="tiny",
        max_steps=STEPS,
        return_model=True,
        train_kwargs={"enable_progress_bar": False},
    )
    return mdata, model


@pytest.fixture(scope="module")
def held_out():
    return st.datasets.mop_snareseq(TEST_LIBRARIES)


def _foscttm(mdata: MuData, key: str = "X_scclip") -> float:
    return st.metrics.foscttm(mdata["rna"].obsm[key], mdata["atac"].obsm[key]).mean


def test_training_lowers_the_loss_and_writes_fields(trained):
    mdata, model = trained
    loss = model.history["train_loss"]["train_loss"].to_numpy()
    assert len(loss) == STEPS // 50
    assert loss[-1] < loss[0] - 0.2
    assert "temperature_train" in model.history and "loss_clip_train" in model.history
    rna, atac = mdata["rna"], mdata["atac"]
    for adata, other in ((rna, atac), (atac, rna)):
        z = adata.obsm["X_scclip"]
        # the network's 128 columns, then the linear member's (the default linear_weight)
        assert z.shape == (adata.n_obs, 128 + model.linear_member_.n_axes) and z.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
        match = adata.obs["sctransfer_match"]
        assert match.isin(other.obs_names).all()
        # the similarity written is the cosine of the cell and its match, and the best one
        partner = other.obs_names.get_indexer(match)
        sims = np.einsum("ij,ij->i", z, other.obsm["X_scclip"][partner])
        np.testing.assert_allclose(adata.obs["sctransfer_match_similarity"], sims, rtol=1e-4, atol=1e-5)
        assert np.all(sims >= (z[:50] @ other.obsm["X_scclip"].T).max(axis=1)[:50].min() - 1) and np.allclose(
            sims[:50], (z[:50] @ other.obsm["X_scclip"].T).max(axis=1), atol=1e-5
        )
    info = mdata.uns["sctransfer_match"]
    assert info["params"]["trained_here"] and info["params"]["model"]["preset"] == "tiny"
    assert info["n_cells"] == {"rna": rna.n_obs, "atac": atac.n_obs}
    assert 0 < info["temperature"] < 1


def test_zero_shot_beats_chance_on_new_cells(trained, held_out):
    _, model = trained
    mdata = held_out.copy()
    st.tl.cross_modal_match(mdata, model=model, annotation="mm10")
    score = _foscttm(mdata)
    print(f"tiny preset, {STEPS} steps, zero-shot FOSCTTM on 09A-09C: {score:.3f}")
    assert score < 0.33  # random: 0.5; the tiny preset after 200 steps reaches about 0.28
    assert mdata.uns["sctransfer_match"]["coverage"] == {"rna": 1.0, "atac": 1.0}
    assert not mdata.uns["sctransfer_match"]["params"]["trained_here"]


def test_zero_shot_with_recalled_peaks_matches_original(trained, held_out):
    _, model = trained
    original = held_out.copy()
    st.tl.cross_modal_match(original, model=model)
    recalled_atac = st.datasets.recall_peaks(held_out["atac"], drop_fraction=0.1, shift=(10, 50))
    recalled = MuData({"rna": held_out["rna"].copy(), "atac": recalled_atac})
    st.tl.cross_modal_match(recalled, model=model)
    assert recalled.uns["sctransfer_match"]["coverage"]["atac"] == pytest.approx(0.9, abs=0.01)
    assert abs(_foscttm(recalled) - _foscttm(original)) < 0.02


def test_unpaired_cells_one_to_one_and_pairing_matrix(trained, held_out):
    _, model = trained
    # real use: different cells in the two modalities (shuffled order, other names)
    rna = held_out["rna"].copy()
    atac = held_out["atac"][np.random.default_rng(0).permutation(held_out.n_obs)].copy()
    atac.obs_names = "atac:" + atac.obs_names
    mdata = MuData({"rna": rna, "atac": atac})
    st.tl.cross_modal_match(mdata, model=model, one_to_one=True, pairing_top_k=20)
    match = mdata["rna"].obs["sctransfer_match"]
    assert match.is_unique and match.isin(atac.obs_names).all()  # a permutation
    back = mdata["atac"].obs["sctransfer_match"]
    assert back.is_unique
    pairing = mdata["rna"].obsm["sctransfer_pairing"]
    assert sp.issparse(pairing) and pairing.shape == (rna.n_obs, atac.n_obs)
    assert (np.diff(pairing.indptr) == 20).all()
    np.testing.assert_allclose(np.asarray(pairing.sum(axis=1)).ravel(), 1.0, rtol=1e-5)
    truth = atac.obs_names.get_indexer("atac:" + rna.obs_names)
    score = st.metrics.matching_score(pairing, truth)
    assert score > 2 / atac.n_obs  # random pairing weights score 1 / n
    assert "paired_top1_accuracy" not in mdata.uns["sctransfer_match"]


def test_save_load_identical_embeddings(trained, held_out, tmp_path):
    mdata, model = trained
    model.save(tmp_path / "scclip")
    alone = st.model.SCCLIP.load(tmp_path / "scclip")
    for modality in ("rna", "atac"):
        np.testing.assert_array_equal(
            alone.get_latent_representation(held_out, modality=modality),
            model.get_latent_representation(held_out, modality=modality),
        )
    # a modality on its own (an AnnData) is embedded the same way
    np.testing.assert_array_equal(
        alone.get_latent_representation(held_out["atac"], modality="atac"),
        model.get_latent_representation(held_out, modality="atac"),
    )
    st.model.SCCLIP.setup_mudata(mdata)
    with_data = st.model.SCCLIP.load(tmp_path / "scclip", adata=mdata)
    np.testing.assert_array_equal(with_data.get_latent_representation(modality="rna"), mdata["rna"].obsm["X_scclip"])


def test_ensemble_trains_saves_and_loads(held_out, tmp_path):
    train = st.datasets.mop_snareseq(TRAIN_LIBRARIES)
    st.model.SCCLIP.setup_mudata(train)
    model = st.model.SCCLIP(train, annotation="mm10", preset="tiny", n_members=2, n_output=16)
    model.train(max_steps=20, steps_per_epoch=10, enable_progress_bar=False)
    z = model.get_latent_representation(held_out, modality="atac")
    assert z.shape == (held_out.n_obs, 32 + model.linear_member_.n_axes)  # two members of 16, the linear member
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "ensemble")
    alone = st.model.SCCLIP.load(tmp_path / "ensemble")
    assert alone.module.n_members == 2
    np.testing.assert_array_equal(alone.get_latent_representation(held_out, modality="atac"), z)


def test_existing_fields_are_not_overwritten(trained, held_out):
    _, model = trained
    mdata = held_out.copy()
    mdata["rna"].obs["sctransfer_match"] = "mine"
    snapshot = _snapshot(mdata)
    with pytest.raises(ValueError, match="overwrite=True"):
        st.tl.cross_modal_match(mdata, model=model)
    _assert_unchanged(mdata, snapshot)
    st.tl.cross_modal_match(mdata, model=model, key_added="run2")
    assert (mdata["rna"].obs["sctransfer_match"] == "mine").all()
    assert "X_scclip_run2" in mdata["rna"].obsm and "run2_match" in mdata["atac"].obs


# --------------------------------------------------------------------------------------------
# bad input: a clear error, the MuData untouched
# --------------------------------------------------------------------------------------------
def test_unpaired_cells_cannot_train():
    mdata = st.datasets.bmmc_multiome_match("train")
    snapshot = _snapshot(mdata)
    with pytest.raises(ValueError, match="paired cells"):
        st.tl.cross_modal_match(mdata, annotation="hg38", preset="tiny", max_steps=2)
    _assert_unchanged(mdata, snapshot)


def test_genes_without_coordinates_cannot_train():
    mdata = st.datasets.bmmc_multiome_starter()
    snapshot = _snapshot(mdata)
    with pytest.raises(IntervalError, match="annotation="):
        st.tl.cross_modal_match(mdata, preset="tiny", max_steps=2)  # no annotation, no var columns
    _assert_unchanged(mdata, snapshot)
    # Ensembl IDs against a table of gene symbols: no gene is placed
    ids = mdata.copy()
    ids["rna"].var_names = ids["rna"].var["gene_ids"].astype(str).to_numpy()
    ids.update()
    snapshot = _snapshot(ids)
    with pytest.raises(IntervalError) as error:
        st.tl.cross_modal_match(ids, annotation="hg38", preset="tiny", max_steps=2)
    assert "ENSG" in str(error.value)
    _assert_unchanged(ids, snapshot)


def test_peaks_without_coordinates_cannot_train():
    mdata = st.datasets.bmmc_multiome_starter()
    mdata["atac"].var = pd.DataFrame(index=[f"peak{i}" for i in range(mdata["atac"].n_vars)])
    mdata.update()
    snapshot = _snapshot(mdata)
    with pytest.raises(IntervalError, match="no genomic coordinate"):
        st.tl.cross_modal_match(mdata, annotation="hg38", preset="tiny", max_steps=2)
    _assert_unchanged(mdata, snapshot)


def test_peaks_of_another_build_are_refused(trained, held_out):
    _, model = trained
    # the same peaks 3 Mb away, as coordinates of another assembly would be
    moved = held_out["atac"].copy()
    coords = st.pp.peak_coordinates(moved)
    moved.var = pd.DataFrame(
        {"chrom": coords["chrom"], "start": coords["start"] + 3_000_000, "end": coords["end"] + 3_000_000}
    )
    moved.var_names = [f"{c}:{s}-{e}" for c, s, e in moved.var[["chrom", "start", "end"]].itertuples(index=False)]
    mdata = MuData({"rna": held_out["rna"].copy(), "atac": moved})
    snapshot = _snapshot(mdata)
    with pytest.raises(ValueError, match="genome build"):
        st.tl.cross_modal_match(mdata, model=model)
    _assert_unchanged(mdata, snapshot)
    # human peaks for a mouse model: nothing (or next to nothing) overlaps
    human = st.datasets.bmmc_multiome_starter()
    human_mdata = MuData({"rna": held_out["rna"].copy(), "atac": human["atac"].copy()})
    human_mdata.mod["atac"].obs_names = "h:" + human_mdata.mod["atac"].obs_names
    human_mdata.update()
    with pytest.raises(ValueError, match="genome build"):
        st.tl.cross_modal_match(human_mdata, model=model)


def test_other_bad_arguments(trained, held_out):
    _, model = trained
    mdata = held_out.copy()
    snapshot = _snapshot(mdata)
    with pytest.raises(KeyError, match="'peaks'"):
        st.tl.cross_modal_match(mdata, model=model, atac_key="peaks")
    with pytest.raises(ValueError, match="pairing_top_k"):
        st.tl.cross_modal_match(mdata, model=model, pairing_top_k=5000)
    with pytest.raises(KeyError, match="Layer 'raw'"):
        st.tl.cross_modal_match(mdata, model=model, rna_layer="raw")
    with pytest.raises(ValueError, match="view"):
        st.tl.cross_modal_match(mdata[:100], model=model)
    with pytest.raises(ValueError, match="preset"):
        st.tl.cross_modal_match(mdata, preset="huge")
    with pytest.raises(ValueError, match="modality must be"):
        model.get_latent_representation(mdata, modality="protein")
    empty = MuData({"rna": mdata["rna"][:, :0].copy(), "atac": mdata["atac"].copy()})
    with pytest.raises(ValueError, match="empty"):
        st.tl.cross_modal_match(empty, model=model)
    _assert_unchanged(mdata, snapshot)


def test_setup_anndata_points_to_setup_mudata():
    with pytest.raises(TypeError, match="setup_mudata"):
        st.model.SCCLIP.setup_anndata(AnnData(np.zeros((2, 2))))


# --- atlas scale: backed matrices, approximate matching ------------------------------------------------------------


def test_backed_mudata_gives_the_same_fields_as_in_memory(tmp_path):
    """Both matrices backed (read block by block from the .h5mu): the same fields and values as in memory."""
    import mudata

    from sctransfer._profiling import record_stages

    path = tmp_path / "mop.h5mu"
    st.datasets.mop_snareseq(("09A",)).write_h5mu(path)
    kwargs = {"annotation": "mm10", "preset": "tiny", "max_steps": 20, "train_kwargs": {"enable_progress_bar": False}}
    in_memory = mudata.read_h5mu(path)
    st.tl.cross_modal_match(in_memory, **kwargs)
    backed = mudata.read_h5mu(path, backed=True)
    assert backed["rna"].isbacked and backed["atac"].isbacked
    with record_stages() as stages:
        st.tl.cross_modal_match(backed, **kwargs)
    assert [s.name for s in stages] == ["model set-up", "training", "embedding", "matching", "writing results"]
    assert backed["rna"].isbacked and backed["atac"].isbacked  # never loaded into the AnnData
    for key in ("rna", "atac"):
        assert list(backed[key].obs.columns) == list(in_memory[key].obs.columns)
        assert list(backed[key].obsm.keys()) == list(in_memory[key].obsm.keys())
        np.testing.assert_allclose(backed[key].obsm["X_scclip"], in_memory[key].obsm["X_scclip"], atol=1e-5)
        assert (backed[key].obs["sctransfer_match"] == in_memory[key].obs["sctransfer_match"]).all()
    info = backed.uns["sctransfer_match"]
    assert info["params"]["match_method"] == "exact"  # 813 x 813 cells: below the approximate search's threshold
    assert info["paired_top1_accuracy"] == in_memory.uns["sctransfer_match"]["paired_top1_accuracy"]


def test_embedding_a_backed_subset_by_indices(trained, tmp_path):
    """``indices`` on a backed modality read only those rows, in the order asked, as in memory."""
    import mudata

    _, model = trained
    path = tmp_path / "held_out.h5mu"
    st.datasets.mop_snareseq(("09B",)).write_h5mu(path)
    in_memory, backed = mudata.read_h5mu(path), mudata.read_h5mu(path, backed=True)
    indices = [7, 3, 3, 120]
    for modality in ("rna", "atac"):
        expected = model.get_latent_representation(in_memory, modality=modality)[indices]
        got = model.get_latent_representation(backed, modality=modality, indices=indices)
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_match_method_is_checked_before_any_work(trained, held_out):
    _, model = trained
    mdata = held_out.copy()
    snapshot = _snapshot(mdata)
    with pytest.raises(ValueError, match="match_method must be one of 'auto', 'exact', 'pynndescent', got 'annoy'"):
        st.tl.cross_modal_match(mdata, model=model, match_method="annoy")
    _assert_unchanged(mdata, snapshot)


def test_argument_types_are_checked_before_any_work(trained, held_out, tmp_path):
    _, model = trained
    mdata = held_out.copy()
    snapshot = _snapshot(mdata)
    for name in ("one_to_one", "overwrite", "copy", "return_model"):
        with pytest.raises(TypeError, match=f"{name} must be True or False, got 'no'"):
            st.tl.cross_modal_match(mdata, model=model, **{name: "no"})
    for top_k in (True, 2.5, 0):
        with pytest.raises(ValueError, match="pairing_top_k must be an integer >= 1"):
            st.tl.cross_modal_match(mdata, model=model, pairing_top_k=top_k)
    with pytest.raises(TypeError, match=r"got PosixPath: load a saved one first, model=sctransfer.model.SCCLIP.load"):
        st.tl.cross_modal_match(mdata, model=tmp_path)
    _assert_unchanged(mdata, snapshot)


def _renamed(mdata: MuData, names: dict[str, str], layer: str) -> MuData:
    """The modalities under other names, the counts in ``layer`` and ``.X`` holding something else."""
    modalities = {}
    for key, new in names.items():
        adata = mdata[key].copy()
        adata.layers[layer] = adata.X.copy()
        adata.X = adata.X * 0 + sp.random(*adata.shape, density=0.01, format="csr", random_state=1, dtype=np.float32)
        modalities[new] = adata
    return MuData(modalities)


def test_a_model_set_up_with_other_names_and_layers_reads_what_the_caller_chose(trained, held_out):
    """Zero-shot reads the modality names and layers given to tl, whatever the model's names and layers were."""
    _, model = trained
    clean = held_out.copy()
    st.tl.cross_modal_match(clean, model=model)
    # a model set up on modalities 'gex' / 'peaks' with counts in layer 'counts'
    train = _renamed(st.datasets.mop_snareseq(("09D",)), {"rna": "gex", "atac": "peaks"}, "counts")
    st.model.SCCLIP.setup_mudata(
        train, rna_layer="counts", atac_layer="counts", modalities={"rna_layer": "gex", "atac_layer": "peaks"}
    )
    other = st.model.SCCLIP(train, annotation="mm10", preset="tiny")
    other.train(max_steps=5, enable_progress_bar=False)
    # new data under the default names, counts in .X, and a stale 'counts' layer of shuffled values
    stale = held_out.copy()
    for key in ("rna", "atac"):
        stale[key].layers["counts"] = stale[key].X[np.random.default_rng(0).permutation(stale[key].n_obs)]
    reference = held_out.copy()
    st.tl.cross_modal_match(reference, model=other)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # in particular no "has no layer 'counts'" warning: the caller chose .X
        st.tl.cross_modal_match(stale, model=other)
    for key in ("rna", "atac"):
        np.testing.assert_allclose(stale[key].obsm["X_scclip"], reference[key].obsm["X_scclip"], atol=1e-6)
    # and the model trained under the default names reads data under other names and layers
    renamed = _renamed(held_out, {"rna": "gex", "atac": "peaks"}, "raw")
    st.tl.cross_modal_match(renamed, model=model, rna_key="gex", atac_key="peaks", rna_layer="raw", atac_layer="raw")
    for key, new in (("rna", "gex"), ("atac", "peaks")):
        np.testing.assert_allclose(renamed[new].obsm["X_scclip"], clean[key].obsm["X_scclip"], atol=1e-6)


def test_cells_without_counts_are_left_unmatched_and_refused_for_training(trained, held_out):
    _, model = trained
    mdata = held_out.copy()
    atac = mdata["atac"].X.tolil()
    atac[[0, 1, 2]] = 0
    mdata["atac"].X = atac.tocsr()
    message = rf"3 of {mdata['atac'].n_obs:,} cells of mdata\['atac'\] have no counts: they are left unmatched"
    with pytest.warns(UserWarning, match=message):
        st.tl.cross_modal_match(mdata, model=model, pairing_top_k=5)
    pairing = mdata["rna"].obsm["sctransfer_pairing"]
    assert pairing[:, :3].nnz == 0  # an empty cell is no RNA cell's candidate either
    np.testing.assert_allclose(np.asarray(pairing.sum(axis=1)).ravel(), 1.0, rtol=1e-5)
    assert (np.diff(pairing.indptr) == 5).all()
    atac_obs, rna_obs = mdata["atac"].obs, mdata["rna"].obs
    assert atac_obs["sctransfer_match"].iloc[:3].isna().all()
    assert atac_obs["sctransfer_match_similarity"].iloc[:3].isna().all()
    assert atac_obs["sctransfer_match"].iloc[3:].notna().all()
    assert not rna_obs["sctransfer_match"].isin(atac_obs.index[:3]).any()  # no RNA cell is matched to an empty one
    assert rna_obs["sctransfer_match"].notna().all()
    snapshot = _snapshot(mdata)
    with pytest.raises(ValueError, match=r"have no counts; pairs with an empty cell teach the model nothing"):
        st.tl.cross_modal_match(mdata, annotation="mm10", preset="tiny", max_steps=5, overwrite=True)
    _assert_unchanged(mdata, snapshot)


def test_copy_of_a_backed_mudata_is_refused_before_any_work(trained, tmp_path):
    import mudata

    _, model = trained
    path = tmp_path / "cells.h5mu"
    st.datasets.mop_snareseq(("09B",)).write_h5mu(path)
    backed = mudata.read_h5mu(path, backed=True)
    with pytest.raises(ValueError, match="copy=True needs a MuData in memory"):
        st.tl.cross_modal_match(backed, model=model, copy=True)
    assert "X_scclip" not in backed["rna"].obsm


def test_same_cells_in_another_order_are_scored_as_paired(trained, held_out):
    _, model = trained
    in_order = held_out.copy()
    st.tl.cross_modal_match(in_order, model=model)
    reordered = MuData({"rna": held_out["rna"].copy(), "atac": held_out["atac"][::-1].copy()})
    st.tl.cross_modal_match(reordered, model=model)
    expected = in_order.uns["sctransfer_match"]["paired_top1_accuracy"]
    assert expected is not None
    assert reordered.uns["sctransfer_match"]["paired_top1_accuracy"] == pytest.approx(expected)
    shuffled_names = MuData({"rna": held_out["rna"].copy(), "atac": held_out["atac"].copy()})
    shuffled_names["atac"].obs_names = "atac:" + shuffled_names["atac"].obs_names
    st.tl.cross_modal_match(shuffled_names, model=model)
    assert shuffled_names.uns["sctransfer_match"].get("paired_top1_accuracy") is None  # other cells: not scored


def test_training_pairs_the_same_cells_in_another_order():
    """Training reads the ATAC cells in the RNA cells' order and writes each result back to its own cell."""
    in_order = st.datasets.mop_snareseq(("09B",))
    shuffled = MuData({"rna": in_order["rna"].copy(), "atac": in_order["atac"][::-1].copy()})
    options = {"annotation": "mm10", "preset": "tiny", "max_steps": 5, "train_kwargs": {"enable_progress_bar": False}}
    st.tl.cross_modal_match(in_order, **options)
    st.tl.cross_modal_match(shuffled, **options)
    for key in ("rna", "atac"):
        expected = in_order[key].obs.loc[shuffled[key].obs_names]
        np.testing.assert_allclose(
            shuffled[key].obsm["X_scclip"], in_order[key][shuffled[key].obs_names].obsm["X_scclip"]
        )
        assert (shuffled[key].obs["sctransfer_match"].astype(str) == expected["sctransfer_match"].astype(str)).all()
    assert (
        shuffled.uns["sctransfer_match"]["paired_top1_accuracy"]
        == in_order.uns["sctransfer_match"]["paired_top1_accuracy"]
    )


def test_overwrite_removes_an_earlier_pairing_and_training_options_warn_with_a_model(trained, held_out):
    _, model = trained
    mdata = held_out.copy()
    st.tl.cross_modal_match(mdata, model=model, pairing_top_k=5)
    assert "sctransfer_pairing" in mdata["rna"].obsm
    with pytest.warns(UserWarning, match=r"preset, max_steps set how a model is trained and are ignored"):
        st.tl.cross_modal_match(mdata, model=model, overwrite=True, preset="base", max_steps=5)
    assert "sctransfer_pairing" not in mdata["rna"].obsm
    assert mdata.uns["sctransfer_match"]["params"].get("pairing_top_k") is None


def test_embedding_batch_size_is_checked(trained, held_out):
    _, model = trained
    z = model.get_latent_representation(held_out, modality="rna", batch_size=100)
    np.testing.assert_allclose(z, model.get_latent_representation(held_out, modality="rna"), atol=1e-5)
    for bad in (0, -5, 2.5):
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            model.get_latent_representation(held_out, modality="rna", batch_size=bad)


def test_zero_shot_maps_each_modality_once_and_reads_backed_values_once_for_its_checks(
    trained, tmp_path, caplog, monkeypatch
):
    """Zero-shot on a backed .h5mu: one feature mapping per modality (one log line), one pass over each matrix's
    values for the tool's counts and empty-cell checks (plus the model's own check of the data it is handed), and
    the same results as in memory."""
    import logging

    import mudata
    from anndata.abc import CSRDataset

    from sctransfer import _matrix

    _, model = trained
    path = tmp_path / "held_out.h5mu"
    st.datasets.mop_snareseq(("09B",)).write_h5mu(path)
    in_memory, backed = mudata.read_h5mu(path), mudata.read_h5mu(path, backed=True)
    st.tl.cross_modal_match(in_memory, model=model)
    passes: dict[int, int] = {}
    value_blocks = _matrix.value_blocks

    def counted(x):
        if isinstance(x, CSRDataset):
            passes[x.shape[1]] = passes.get(x.shape[1], 0) + 1
        return value_blocks(x)

    monkeypatch.setattr(_matrix, "value_blocks", counted)
    caplog.set_level(logging.INFO, logger="sctransfer.model._feature_mapping")
    st.tl.cross_modal_match(backed, model=model)
    mapped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Feature mapping by")]
    assert len(mapped) == 2 and sum("genes" in m for m in mapped) == 1, mapped  # was 4: twice per modality
    assert passes == {backed["rna"].n_vars: 2, backed["atac"].n_vars: 2}  # was 3 each (empty-cell check apart)
    for key in ("rna", "atac"):
        np.testing.assert_allclose(backed[key].obsm["X_scclip"], in_memory[key].obsm["X_scclip"], atol=1e-5)
        assert (backed[key].obs["sctransfer_match"] == in_memory[key].obs["sctransfer_match"]).all()
    assert backed.uns["sctransfer_match"]["coverage"] == in_memory.uns["sctransfer_match"]["coverage"]


def test_a_given_feature_mapping_is_used_and_checked(trained, held_out):
    _, model = trained
    mappings = {m: model.feature_mapping(held_out, m) for m in ("rna", "atac")}
    for m in ("rna", "atac"):
        np.testing.assert_array_equal(
            model.get_latent_representation(held_out, modality=m, feature_mapping=mappings[m]),
            model.get_latent_representation(held_out, modality=m),
        )
    with pytest.raises(ValueError, match=r"feature_mapping must map the data's \d+ atac features onto the model's"):
        model.get_latent_representation(held_out, modality="atac", feature_mapping=mappings["rna"])
    rna = held_out["rna"]
    permuted = rna[:, np.random.default_rng(0).permutation(rna.n_vars)].copy()  # same shape, genes reordered
    with pytest.raises(ValueError, match="built for rna features of other names or in another order"):
        model.get_latent_representation(permuted, modality="rna", feature_mapping=mappings["rna"])


def test_embedding_shows_progress_for_many_cells_or_when_asked(trained, held_out, capsys, monkeypatch):
    """A progress bar over the batches (scvi-tools' track): off below PROGRESS_MIN_CELLS unless asked for."""
    from sctransfer.model import _scclip

    _, model = trained
    quiet = model.get_latent_representation(held_out, modality="rna", batch_size=500)
    assert "Embedding" not in capsys.readouterr().out  # 2,621 cells: below the threshold
    shown = model.get_latent_representation(held_out, modality="rna", batch_size=500, progress_bar=True)
    assert "Embedding RNA cells" in capsys.readouterr().out
    np.testing.assert_array_equal(shown, quiet)
    with pytest.raises(TypeError, match="progress_bar must be True or False"):
        model.get_latent_representation(held_out, modality="rna", progress_bar="yes")
    monkeypatch.setattr(_scclip, "PROGRESS_MIN_CELLS", 1000)  # as for an atlas: the tool's embedding shows progress
    st.tl.cross_modal_match(held_out.copy(), model=model)
    out = capsys.readouterr().out
    assert "Embedding RNA cells" in out and "Embedding ATAC cells" in out


def test_mistyped_model_and_train_kwargs_fail_before_any_work(held_out, monkeypatch):
    mdata = held_out.copy()
    snapshot = _snapshot(mdata)

    def no_work(*args, **kwargs):
        raise AssertionError("the data were read before the keywords were checked")

    monkeypatch.setattr(st.tl._cross_modal_match, "get_modality", no_work)
    cases = [
        ({"train_kwargs": {"max_step": 5}}, r"train_kwargs .*\['max_step'\].* Did you mean 'max_steps'\?"),
        ({"train_kwargs": {"enable_progress": False}}, r"Did you mean 'enable_progress_bar'\?"),
        ({"model_kwargs": {"n_layer": 2}}, r"model_kwargs .*\['n_layer'\].* Did you mean 'n_layers'\?"),
        ({"model_kwargs": {"preset": "tiny"}}, r"'preset' is set by sctransfer itself"),
        ({"train_kwargs": "max_steps=5"}, r"train_kwargs must be a dict"),
        ({"train_kwargs": {"random_state": 3}}, r"'random_state' is an argument of the tool itself: pass"),
        ({"max_steps": 30, "train_kwargs": {"max_steps": 5}}, r"'max_steps' is an argument of the tool itself"),
    ]
    for kwargs, message in cases:
        with pytest.raises(TypeError, match=message):
            st.tl.cross_modal_match(mdata, annotation="mm10", **kwargs)
    with pytest.raises(ValueError, match=r"Unknown datasplitter_kwargs \['train_size'\].* Pass train_size to train"):
        st.tl.cross_modal_match(mdata, annotation="mm10", train_kwargs={"datasplitter_kwargs": {"train_size": 0.9}})
    _assert_unchanged(mdata, snapshot)


def test_a_held_out_check_too_small_to_run_is_refused_before_the_model_is_built(held_out, monkeypatch):
    mdata = held_out[:300].copy()

    def no_model(*args, **kwargs):
        raise AssertionError("the model was set up before the split sizes were checked")

    monkeypatch.setattr(st.model.SCCLIP, "setup_mudata", no_model)
    with pytest.raises(ValueError, match="of 300 pairs leave 270 to train on and 30 held out; each needs at least 32"):
        st.tl.cross_modal_match(mdata, annotation="mm10", preset="tiny", max_steps=5, train_kwargs={"train_size": 0.9})
    assert "X_scclip" not in mdata["rna"].obsm
