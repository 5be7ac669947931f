"""Model files that cannot run code: weights-only files, refused crafted files, bit-identical round trips."""

from __future__ import annotations

import functools
import json
import pickle
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mudata import MuData
from scvi.model.base import BaseModelClass

import sctransfer as st
from sctransfer.model._model_files import ModelFileError, read_model_files, write_model_files
from sctransfer.model._peak_view import PeakView
from sctransfer.pp._lsi import LSI

MODELS = ("SCNCL", "SCCLIP")


class _Payload:
    """Unpickling this object creates the file ``marker``: what a crafted model file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """Both models trained a few steps on MOp subsets, with their data and a query."""
    unpaired = st.datasets.mop_label_transfer(rna_libraries=("09A",), atac_libraries=("09G",))
    st.pp.gene_activity(unpaired, "mm10", genes=unpaired["rna"].var_names)
    st.pp.peak_neighbors(unpaired)
    st.model.SCNCL.setup_mudata(unpaired, labels_key="cell_type")
    scncl = st.model.SCNCL(unpaired, n_pcs=10, n_peak_components=10, n_latent=8)
    scncl.train(max_steps=6, batch_size=32, accelerator="cpu", enable_progress_bar=False)

    paired = st.datasets.mop_snareseq(("09A",))
    st.model.SCCLIP.setup_mudata(paired)
    scclip = st.model.SCCLIP(paired, annotation="mm10", preset="tiny")
    scclip.train(max_steps=6, batch_size=32, accelerator="cpu", enable_progress_bar=False)
    return {"SCNCL": (unpaired, scncl), "SCCLIP": (paired, scclip)}


def _outputs(name: str, model, data: MuData | None) -> dict[str, np.ndarray]:
    """Everything the model computes for ``data`` (None: its own data)."""
    out = {m: model.get_latent_representation(data, modality=m) for m in ("rna", "atac")}
    if name == "SCNCL":
        out["probabilities"] = model.predict(data, soft=True).to_numpy()
        out["labels"] = model.predict(data)
    return out


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _query(name: str, mdata: MuData) -> MuData:
    """The cells as new data (copies, not the registered MuData)."""
    return MuData({key: mdata[key].copy() for key in mdata.mod})


@pytest.mark.parametrize("name", MODELS)
def test_saved_files_are_weights_only_and_json(trained, tmp_path, name):
    _, model = trained[name]
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["arrays.npz", "model.json", "weights.pt"]
    weights = torch.load(tmp_path / "m" / "weights.pt", weights_only=True)
    assert weights.keys() == model.module.state_dict().keys()
    assert json.loads((tmp_path / "m" / "model.json").read_text())["model"] == name
    with np.load(tmp_path / "m" / "arrays.npz", allow_pickle=False) as arrays:
        assert len(arrays.files) > 0
    with pytest.raises(ValueError, match="already exists"):
        model.save(tmp_path / "m")


@pytest.mark.parametrize("name", MODELS)
def test_save_load_gives_bit_identical_results(trained, tmp_path, name):
    mdata, model = trained[name]
    cls = getattr(st.model, name)
    model.save(tmp_path / "m")
    query = _query(name, mdata)
    expected = _outputs(name, model, query)
    alone = cls.load(tmp_path / "m")
    assert alone.adata is None and alone.is_trained_
    _assert_identical(_outputs(name, alone, query), expected)
    with_data = cls.load(tmp_path / "m", adata=mdata)
    _assert_identical(_outputs(name, with_data, None), _outputs(name, model, None))
    assert with_data.train_params_ == model.train_params_
    pd.testing.assert_frame_equal(with_data.history["train_loss"], model.history["train_loss"])
    # a loaded model (without or with data) saves the same files, and they load again the same: nothing added
    # (a loaded model once wrote "mdata": null into its init_params) and nothing lost
    for again, loaded in (("alone", alone), ("with_data", with_data)):
        loaded.save(tmp_path / again)
        saved = {p: json.loads((tmp_path / p / "model.json").read_text()) for p in ("m", again)}
        assert saved[again] == saved["m"], again
        with np.load(tmp_path / "m" / "arrays.npz") as a, np.load(tmp_path / again / "arrays.npz") as b:
            assert a.files == b.files
            _assert_identical(dict(a), dict(b))
        _assert_identical(_outputs(name, cls.load(tmp_path / again), query), expected)


@pytest.mark.parametrize("name", MODELS)
def test_save_anndata_then_load_uses_the_saved_data(trained, tmp_path, name):
    mdata, model = trained[name]
    model.save(tmp_path / "m", save_anndata=True)
    assert (tmp_path / "m" / "mdata.h5mu").exists()
    loaded = getattr(st.model, name).load(tmp_path / "m")
    assert isinstance(loaded.adata, MuData) and loaded.adata is not mdata
    assert list(loaded.adata.mod) == list(mdata.mod)
    _assert_identical(_outputs(name, loaded, None), _outputs(name, model, None))


def test_scclip_load_with_other_genes_says_what_differs(trained, tmp_path):
    mdata, model = trained["SCCLIP"]
    model.save(tmp_path / "m")
    rna = mdata["rna"]
    other = MuData({"rna": rna[:, 5:].copy(), "atac": mdata["atac"].copy()})
    other["rna"].var_names = [f"{g}-new" if i < 2 else g for i, g in enumerate(other["rna"].var_names)]
    message = (
        rf"modality 'rna' lacks 7 of the model's {rna.n_vars} features \(e\.g\. {rna.var_names[0]}.*\) and has 2 "
        r"features the model does not know \(e\.g\. .*-new.*SCCLIP\.load\(dir_path\)"
    )
    with pytest.raises(ValueError, match=message) as error:
        st.model.SCCLIP.load(tmp_path / "m", adata=other)
    assert "'atac'" not in str(error.value)  # the peaks are the same
    reordered = MuData({"rna": rna[:, ::-1].copy(), "atac": mdata["atac"].copy()})
    with pytest.raises(ValueError, match="'rna' has the model's .* features in another order"):
        st.model.SCCLIP.load(tmp_path / "m", adata=reordered)
    with pytest.raises(ValueError, match=r"modality 'atac' is missing \(the data have \['rna'\]\)"):
        st.model.SCCLIP.load(tmp_path / "m", adata=MuData({"rna": rna.copy()}))


@pytest.mark.parametrize("name", MODELS)
def test_repeated_gene_names_of_new_data_are_refused_alike(trained, name):
    """Both models refuse new data with a repeated gene name, naming it and the fix, before any work."""
    mdata, model = trained[name]
    rna = mdata["rna"].copy()
    names = rna.var_names.to_numpy().copy()
    names[1] = names[0]
    rna.var_names = names
    # the modality's AnnData itself: the gene matcher of both models
    with pytest.raises(
        ValueError, match=rf"1 gene names more than once \(e\.g\. \['{names[0]}'\].*var_names_make_unique"
    ):
        model.get_latent_representation(rna, modality="rna")
    # in a MuData: the check of every modality the package reads
    with pytest.raises(ValueError, match=rf"'rna' has 1 repeated feature names.*'{names[0]}'.*var_names_make_unique"):
        model.get_latent_representation(MuData({"rna": rna}), modality="rna")


def _live(payload: bytes, marker: Path, load) -> None:
    """Check that the crafted bytes do run code when unpickled without protection (so the test can fail)."""
    assert not marker.exists()
    load(payload)
    assert marker.exists()
    marker.unlink()


def test_crafted_files_are_refused_without_running_them(trained, tmp_path):
    _, model = trained["SCNCL"]
    marker = tmp_path / "executed"
    crafted = pickle.dumps({"model_state_dict": _Payload(marker)})
    _live(crafted, marker, pickle.loads)

    # the former format: a pickled model.pt, never opened
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "model.pt").write_bytes(crafted)
    with pytest.raises(ModelFileError, match="earlier version of sctransfer.*not opened.*format has changed"):
        st.model.SCNCL.load(legacy)
    assert not marker.exists()

    # a weights file that is a pickle with code inside
    model.save(tmp_path / "m")
    torch.save({"weight": _Payload(marker)}, tmp_path / "m" / "weights.pt")
    weights = tmp_path / "m" / "weights.pt"
    _live(weights.read_bytes(), marker, lambda b: torch.load(weights, weights_only=False))
    with pytest.raises(ModelFileError, match="not a weights-only file.*without executing anything"):
        st.model.SCNCL.load(tmp_path / "m")
    assert not marker.exists()

    # a weights file cut short (an incomplete copy): damaged, not a refusal of code
    model.save(tmp_path / "cut")
    cut = tmp_path / "cut" / "weights.pt"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    with pytest.raises(ModelFileError, match=r"weights.pt could not be read .*damaged .*Copy the model folder again"):
        st.model.SCNCL.load(tmp_path / "cut")

    # an array file with a pickled object array
    model.save(tmp_path / "n")
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload(marker)
    np.savez(tmp_path / "n" / "arrays.npz", a0=payload)
    with pytest.raises(ModelFileError, match="could not be read as plain arrays.*Nothing in it was executed"):
        st.model.SCNCL.load(tmp_path / "n")
    assert not marker.exists()

    # metadata naming a class the model does not use
    model.save(tmp_path / "o")
    text = (tmp_path / "o" / "model.json").read_text().replace('"PeakView"', '"Popen"')
    (tmp_path / "o" / "model.json").write_text(text)
    with pytest.raises(ModelFileError, match="class 'Popen' this model does not use"):
        st.model.SCNCL.load(tmp_path / "o")


@pytest.mark.parametrize("name", MODELS)
def test_files_of_the_former_format_are_refused(trained, tmp_path, name):
    _, model = trained[name]
    BaseModelClass.save(model, str(tmp_path / "old"))  # what save() wrote before: a pickled model.pt
    assert (tmp_path / "old" / "model.pt").exists()
    with pytest.raises(ModelFileError, match="earlier version of sctransfer.*CHANGELOG"):
        getattr(st.model, name).load(tmp_path / "old")
    with pytest.raises(ModelFileError, match="No saved model"):
        getattr(st.model, name).load(tmp_path)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_missing_files_come_from_backup_url(trained, tmp_path):
    paired, model = trained["SCCLIP"]
    model.save(tmp_path / "remote")
    handler = functools.partial(_QuietHandler, directory=str(tmp_path / "remote"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        loaded = st.model.SCCLIP.load(tmp_path / "local", backup_url=f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
    assert sorted(p.name for p in (tmp_path / "local").iterdir()) == ["arrays.npz", "model.json", "weights.pt"]
    _assert_identical(_outputs("SCCLIP", loaded, paired), _outputs("SCCLIP", model, paired))


def test_a_model_of_the_other_class_is_refused(trained, tmp_path):
    trained["SCCLIP"][1].save(tmp_path / "clip")
    with pytest.raises(ModelFileError, match=r"holds a 'SCCLIP' model; load it with sctransfer\.model\.SCCLIP\.load"):
        st.model.SCNCL.load(tmp_path / "clip")


def test_metadata_round_trip_of_every_allowed_kind(tmp_path):
    frame = pd.DataFrame(
        {
            "chrom": pd.Categorical(["chr1", "chr2", "chr1"], categories=["chr1", "chr2", "chrX"]),
            "start": np.array([1, 5, 9], dtype=np.int64),
            "score": np.array([0.5, np.nan, 2.0], dtype=np.float32),
            "name": np.array(["a", "b", "c"], dtype=object),
            "flag": pd.array(["x", None, "z"], dtype="string"),
        },
        index=pd.Index(["g1", "g2", "g3"], name="gene"),
    )
    lsi = LSI(idf=np.arange(3, dtype=np.float32), components=np.eye(3), singular_values=np.ones(3))
    metadata = {
        "frame": frame,
        "series": pd.Series([1.0, 2.0], index=["a", "b"], name="s"),
        "strings": np.array(["L2/3", "L5 IT"], dtype=object),
        "mixed": np.array([1, "a", None], dtype=object),
        "matrix": np.arange(6, dtype=np.int16).reshape(2, 3),
        "plain": {"a": [1, 2.5, None, True, "x"], "$type": "not a marker", "t": (1, "b")},
        "view": PeakView(peak_names=np.array(["p1", "p2"]), lsi=lsi, mean=np.zeros(2), std=np.ones(2)),
    }
    write_model_files(tmp_path / "m", metadata=metadata, state_dict={"w": torch.ones(2)}, allowed=(PeakView, LSI))
    back, weights, data = read_model_files(tmp_path / "m", model=None, allowed=(PeakView, LSI))
    assert data is None and torch.equal(weights["w"], torch.ones(2))
    pd.testing.assert_frame_equal(back["frame"], frame)
    pd.testing.assert_series_equal(back["series"], metadata["series"])
    assert back["strings"].dtype == object and list(back["strings"]) == ["L2/3", "L5 IT"]
    assert list(back["mixed"]) == [1, "a", None]
    np.testing.assert_array_equal(back["matrix"], metadata["matrix"])
    assert back["matrix"].dtype == np.int16
    assert back["plain"] == metadata["plain"]
    assert isinstance(back["view"], PeakView) and isinstance(back["view"].lsi, LSI)
    np.testing.assert_array_equal(back["view"].lsi.components, lsi.components)
    with pytest.raises(ModelFileError, match="class 'PeakView' this model does not use"):
        read_model_files(tmp_path / "m", model=None, allowed=())
    with pytest.raises(TypeError, match=r"model\['bad'\]: a builtins.set cannot be saved"):
        write_model_files(tmp_path / "bad", metadata={"bad": {1, 2}}, state_dict={}, allowed=())
    assert not (tmp_path / "bad").exists()  # refused before anything is written


def test_load_with_other_cells_gives_their_transfer(trained, tmp_path):
    """load(adata=other cells) fits nothing on them: the saved joint PCA and peak view serve, as for model.transfer."""
    mdata, model = trained["SCNCL"]
    model.save(tmp_path / "m")
    other = MuData({key: mdata[key][300:].copy() for key in mdata.mod})  # other cells, the same features
    st.pp.peak_neighbors(other)
    expected = model.transfer(other)
    loaded = st.model.SCNCL.load(tmp_path / "m", adata=other)
    assert loaded.adata is other
    result = loaded.transfer()
    np.testing.assert_array_equal(result.probabilities.to_numpy(), expected.probabilities.to_numpy())
    np.testing.assert_array_equal(result.embedding, expected.embedding)
    np.testing.assert_array_equal(result.novelty.to_numpy(), expected.novelty.to_numpy())
    np.testing.assert_array_equal(loaded.peak_view_.lsi.components, model.peak_view_.lsi.components)


@pytest.mark.parametrize("name", MODELS)
def test_weights_that_do_not_fit_the_description_are_refused(trained, tmp_path, name):
    _, model = trained[name]
    cls = getattr(st.model, name)
    model.save(tmp_path / "m")
    weights_file = tmp_path / "m" / "weights.pt"
    weights = torch.load(weights_file, weights_only=True)
    key = next(k for k, v in weights.items() if v.ndim)
    torch.save({**weights, key: weights[key][:1]}, weights_file)
    with pytest.raises(
        ModelFileError,
        match=rf"model description \(model\.json\) and the weights \(weights\.pt\) in .* disagree "
        rf"\(size mismatch for {key}.*damaged or one of its files was edited",
    ):
        cls.load(tmp_path / "m")
    torch.save({k: v for k, v in weights.items() if k != key}, weights_file)
    with pytest.raises(ModelFileError, match=rf"disagree \(Missing key\(s\) in state_dict: \"{key}\""):
        cls.load(tmp_path / "m")


def test_an_edited_description_is_refused(trained, tmp_path):
    _, model = trained["SCNCL"]
    model.save(tmp_path / "m")
    description = json.loads((tmp_path / "m" / "model.json").read_text())
    description["init_params"]["non_kwargs"]["n_latent"] = 16
    (tmp_path / "m" / "model.json").write_text(json.dumps(description))
    with pytest.raises(ModelFileError, match=r"disagree \(size mismatch for encoder\.weight"):
        st.model.SCNCL.load(tmp_path / "m")


def test_scclip_files_saved_before_sizes_were_recorded_load_with_their_presets(tmp_path):
    # Before sizes were recorded, a file held only preset="small", which then meant an ensemble of two
    # encoder pairs without alignment, embedding each cell's full profile once: such a file must still load
    # as that model, with identical output.
    paired = st.datasets.mop_snareseq(("09A",))
    st.model.SCCLIP.setup_mudata(paired)
    old = st.model.SCCLIP(
        paired, annotation="mm10", preset="small", n_layers=2, n_members=2, align_modalities=False, linear_weight=0.0
    )
    old.train(max_steps=2, batch_size=32, accelerator="cpu", enable_progress_bar=False)
    old.save(tmp_path / "old")
    description = json.loads((tmp_path / "old" / "model.json").read_text())
    assert description["init_params"]["kwargs"]["module_kwargs"]["n_members"] == 2  # sizes are recorded now
    description["init_params"]["kwargs"]["module_kwargs"] = {}  # as in the former files: the preset only
    del description["init_params"]["non_kwargs"]["align_modalities"]
    del description["init_params"]["non_kwargs"]["embedding_samples"]
    del description["init_params"]["non_kwargs"]["linear_weight"]
    del description["attributes"]["linear_member_"]
    (tmp_path / "old" / "model.json").write_text(json.dumps(description))
    loaded = st.model.SCCLIP.load(tmp_path / "old")
    assert loaded.module.n_members == 2 and loaded.alignment_ is None and loaded.embedding_samples == 1
    assert loaded.linear_weight == 0.0 and loaded.linear_member_ is None  # no linear member then
    query = _query("SCCLIP", paired)
    _assert_identical(_outputs("SCCLIP", loaded, query), _outputs("SCCLIP", old, query))


def test_loading_with_data_not_laid_out_as_set_up_names_the_set_up_and_the_tool(tmp_path):
    """A model a tool trained on counts in a layer describes the tool's working copy (counts in .X): load(adata=)
    with the user's MuData says so, and points at the tool's model= argument, which reads the data as they are."""
    import warnings

    import scipy.sparse as sp

    paired = st.datasets.simulate_multiome(
        n_rna=300, n_atac=300, n_genes=200, n_peaks=1000, genes_per_cell=60, peaks_per_cell=100, paired=True
    )
    for modality in ("rna", "atac"):
        adata = paired[modality]
        adata.layers["counts"] = adata.X.copy()
        adata.X = sp.csr_matrix(adata.X, dtype=np.float32).log1p() * 0.5  # log-normalised-like, not counts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = st.tl.cross_modal_match(
            paired,
            annotation=paired["rna"].var,
            rna_layer="counts",
            atac_layer="counts",
            preset="tiny",
            max_steps=3,
            return_model=True,
        )
    model.save(tmp_path / "m")
    with pytest.raises(ValueError, match=r"reads data as the model was set up: counts of the modalities 'rna' \(\.X\)"):
        st.model.SCCLIP.load(tmp_path / "m", adata=paired)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st.tl.cross_modal_match(
            paired, model=st.model.SCCLIP.load(tmp_path / "m"), rna_layer="counts", atac_layer="counts", overwrite=True
        )
    assert paired["rna"].obsm["X_scclip"].shape[0] == 300 and paired["rna"].obs["sctransfer_match"].notna().all()
