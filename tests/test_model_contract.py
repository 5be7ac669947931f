"""scvi-tools' train / load contract on both models (MOp SNARE-seq subsets, tiny sizes, a few steps)."""

from __future__ import annotations

import re
import signal
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from lightning.pytorch import Callback
from mudata import MuData

import sctransfer as st
from sctransfer.model import _scclip, _scncl
from sctransfer.model._base import TrainingDivergedError

MODELS = ("SCNCL", "SCCLIP")
NOISE = ("Tip", "litlogger", "litmodels", "GPU available", "TPU available", "LOCAL_RANK", "v_num", "Warning")


@pytest.fixture(scope="module")
def unpaired() -> MuData:
    """Labelled RNA cells of library 09A, ATAC cells of 09G, with gene activity and the peak-space graph."""
    mdata = st.datasets.mop_label_transfer(rna_libraries=("09A",), atac_libraries=("09G",))
    st.pp.gene_activity(mdata, "mm10", genes=mdata["rna"].var_names)
    st.pp.peak_neighbors(mdata)
    return mdata


@pytest.fixture(scope="module")
def paired() -> MuData:
    return st.datasets.mop_snareseq(("09A",))


def _model(name: str, unpaired: MuData, paired: MuData):
    if name == "SCNCL":
        st.model.SCNCL.setup_mudata(unpaired, labels_key="cell_type")
        return unpaired, st.model.SCNCL(unpaired, n_pcs=10, n_peak_components=10, n_latent=8)
    st.model.SCCLIP.setup_mudata(paired)
    return paired, st.model.SCCLIP(paired, annotation="mm10", preset="tiny")


@pytest.fixture(params=MODELS)
def model(request, unpaired, paired):
    return _model(request.param, unpaired, paired)[1]


@pytest.fixture(scope="module")
def untrained(unpaired, paired) -> dict:
    """One model of each class, never trained (for the refusals, which must leave it so)."""
    return {name: _model(name, unpaired, paired)[1] for name in MODELS}


def _peak_lr(optimizer: torch.optim.Optimizer) -> float:
    group = optimizer.param_groups[0]
    return group.get("initial_lr", group["lr"])  # a schedule moves "lr" and keeps the peak in "initial_lr"


def test_train_takes_scvi_arguments_quietly_and_writes_nothing(model, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.train(
            max_epochs=2,
            steps_per_epoch=3,
            batch_size=32,
            plan_kwargs={"lr": 3e-3, "weight_decay": 0.01},
            accelerator="cpu",
        )
    out, err = capfd.readouterr()
    assert [str(w.message) for w in caught] == []
    assert not [word for word in NOISE if word in out + err], out + err
    assert "2/2" in out and "epoch" in out  # the bar counts the epochs asked for
    assert list(tmp_path.iterdir()) == []  # no lightning_logs/, no history.pkl
    assert model.is_trained_
    assert model.trainer.global_step == 6  # 2 epochs of 3 steps
    assert len(model.history["train_loss"]) == 2
    optimizer = model.trainer.optimizers[0]
    assert _peak_lr(optimizer) == pytest.approx(3e-3)
    assert optimizer.param_groups[0]["weight_decay"] == pytest.approx(0.01)
    assert type(optimizer) is (torch.optim.SGD if type(model).__name__ == "SCNCL" else torch.optim.AdamW)
    assert model.train_params_["max_steps"] == 6 and model.train_params_["lr"] == pytest.approx(3e-3)


def test_max_steps_counts_steps(model, capfd):
    capfd.readouterr()
    model.train(max_steps=4, batch_size=16, plan_kwargs={"optimizer": "adam"}, accelerator="cpu")
    out, _ = capfd.readouterr()
    assert "4/4" in out and "step" in out and "epoch" not in out
    assert model.trainer.global_step == 4
    assert type(model.trainer.optimizers[0]) is torch.optim.Adam
    assert model.train_params_["steps_per_epoch"] == 50


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"max_steps": 0}, ValueError, "max_steps must be an integer >= 1, got 0"),
        ({"max_epochs": 0}, ValueError, "max_epochs must be an integer >= 1, got 0"),
        ({"max_steps": -5}, ValueError, "max_steps must be an integer >= 1"),
        ({"max_epochs": 1.5}, ValueError, "max_epochs must be an integer"),
        ({"max_epochs": 2, "max_steps": 100}, ValueError, "not both"),
        ({"max_steps": 10, "steps_per_epoch": 0}, ValueError, "steps_per_epoch must be"),
        ({"max_steps": 10, "batch_size": 0}, ValueError, "batch_size must be"),
        (
            {"max_steps": 10, "plan_kwargs": {"learning_rate": 1e-3}},
            ValueError,
            r"Unknown plan_kwargs \['learning_rate'\]",
        ),
        ({"max_steps": 10, "plan_kwargs": {"optimizer": "rmsprop"}}, ValueError, "optimizer'] must be one of"),
        ({"max_steps": 10, "plan_kwargs": {"lr": -1.0}}, ValueError, r"plan_kwargs\['lr'\] must be a finite number"),
        (
            {"max_steps": 10, "datasplitter_kwargs": {"shuffle": True}},
            ValueError,
            r"Unknown datasplitter_kwargs \['shuffle'\]",
        ),
        ({"max_steps": 10, "datasplitter_kwargs": {"seed": 1}}, ValueError, r"Pass random_state to train\(\) itself"),
        ({"max_epoch": 2}, TypeError, r"'max_epoch' is not an option\. Did you mean 'max_epochs'\?"),
        ({"max_steps": 10, "early_stopping": True}, TypeError, r"'early_stopping' needs a validation loop"),
        (
            {"max_steps": 10, "check_val_every_n_epoch": 1},
            TypeError,
            r"'check_val_every_n_epoch' needs a validation loop",
        ),
    ],
)
@pytest.mark.parametrize("name", MODELS)
def test_bad_training_arguments_refused_before_any_work(untrained, monkeypatch, name, arguments, error, message):
    """Bad values, and keywords model.train forwards to trainers that cannot take them, fail before any work."""
    model = untrained[name]

    def no_work():
        raise AssertionError("the training inputs were built")

    monkeypatch.setattr(model, "_training_inputs", no_work)
    with pytest.raises(error, match=message):
        model.train(accelerator="cpu", **arguments)
    assert not model.is_trained_ and model.history_ is None


def test_a_held_out_share_is_refused_by_the_model_that_has_none(untrained):
    with pytest.raises(TypeError, match=r"'train_size' is not an option: SCNCL trains on all its cells"):
        untrained["SCNCL"].train(max_steps=10, accelerator="cpu", train_size=0.9)
    assert not untrained["SCNCL"].is_trained_


def test_former_keywords_still_work_with_a_warning(unpaired, paired, tmp_path):
    _, model = _model("SCNCL", unpaired, paired)
    with pytest.warns(DeprecationWarning, match=r"plan_kwargs=\{'lr'"):
        model.train(max_steps=2, lr=2e-3, accelerator="cpu", enable_progress_bar=False)
    assert _peak_lr(model.trainer.optimizers[0]) == pytest.approx(2e-3)
    with pytest.raises(ValueError, match="given twice"):
        model.train(max_steps=2, lr=2e-3, plan_kwargs={"lr": 1e-3}, accelerator="cpu")
    model.save(tmp_path / "m")
    with pytest.warns(DeprecationWarning, match="mdata"):
        loaded = st.model.SCNCL.load(tmp_path / "m", mdata=unpaired)
    assert loaded.adata is unpaired


@pytest.mark.parametrize("name", MODELS)
def test_load_with_adata_is_the_trained_model(name, unpaired, paired, tmp_path):
    mdata, model = _model(name, unpaired, paired)
    model.train(max_steps=3, batch_size=32, accelerator="cpu", enable_progress_bar=False)
    model.save(tmp_path / "model")
    loaded = getattr(st.model, name).load(tmp_path / "model", adata=mdata, accelerator="cpu")
    assert loaded.adata is mdata and loaded.is_trained_
    assert loaded.train_params_ == model.train_params_
    for modality in ("rna", "atac"):
        np.testing.assert_array_equal(
            loaded.get_latent_representation(modality=modality), model.get_latent_representation(modality=modality)
        )


class _CtrlC(Callback):
    """Presses Ctrl-C after two training steps."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= 2:
            raise KeyboardInterrupt


def _assert_same_mudata(a: MuData, b: MuData) -> None:
    assert list(a.mod) == list(b.mod) and a.uns.keys() == b.uns.keys()
    for key in a.mod:
        x, y = a[key], b[key]
        assert x.obs.equals(y.obs) and x.var.equals(y.var)
        assert (sp.csr_matrix(x.X) != sp.csr_matrix(y.X)).nnz == 0
        assert x.layers.keys() == y.layers.keys() and x.obsm.keys() == y.obsm.keys() and x.obsp.keys() == y.obsp.keys()
        assert x.uns.keys() == y.uns.keys()
        for name in x.obsm:
            np.testing.assert_array_equal(x.obsm[name], y.obsm[name])
        for name in x.obsp:
            assert (sp.csr_matrix(x.obsp[name]) != sp.csr_matrix(y.obsp[name])).nnz == 0


@pytest.mark.parametrize("name", MODELS)
def test_ctrl_c_reaches_the_caller_and_leaves_the_data_alone(name, unpaired, paired):
    mdata, model = _model(name, unpaired, paired)
    before = mdata.copy()
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):  # not SystemExit(1), as Lightning makes of it
        model.train(max_steps=20, batch_size=16, accelerator="cpu", callbacks=[_CtrlC()])
    assert signal.getsignal(signal.SIGINT) is handler  # Lightning's SIG_IGN undone
    assert not model.is_trained_
    _assert_same_mudata(mdata, before)
    if name == "SCCLIP":  # a fresh model: the weights reached are kept, with an alignment fitted to them
        assert isinstance(model.alignment_, st.model.CanonicalAlignment)


@pytest.mark.parametrize("name", MODELS)
def test_diverged_training_is_an_error_and_leaves_the_model_as_it_was(name, unpaired, paired):
    _, model = _model(name, unpaired, paired)
    before = {key: value.clone() for key, value in model.module.state_dict().items()}
    assert issubclass(TrainingDivergedError, ValueError)  # a setting of the user's, as the CLI reports it
    with pytest.raises(
        TrainingDivergedError,
        match=r"Training diverged: the mean loss of epoch \d+ \(steps \d+-\d+\) is (nan|inf)\..* not marked as "
        r"trained\. Lower the learning rate, e\.g\. plan_kwargs=\{'lr': 1e\+07\} \(it was 1e\+08\)",
    ) as raised:
        model.train(max_steps=20, steps_per_epoch=2, batch_size=32, plan_kwargs={"lr": 1e8}, accelerator="cpu")
    epoch, last = re.search(r"epoch (\d+) \(steps \d+-(\d+)\)", str(raised.value)).groups()
    assert model.trainer.global_step == int(last) == 2 * int(epoch) < 20  # stopped at the end of that epoch
    assert not model.is_trained_
    for key, value in model.module.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="untrained model"):
        model.get_latent_representation(modality="rna")
    # a lower rate trains on from the weights as they were
    model.train(max_steps=2, batch_size=32, accelerator="cpu", enable_progress_bar=False)
    assert model.is_trained_ and np.isfinite(model.get_latent_representation(modality="rna")).all()


def _set_up(name: str, unpaired: MuData, paired: MuData, **layers) -> tuple[MuData, dict]:
    """``(mdata, model arguments)``: a set-up copy of the model's data and tiny model sizes."""
    if name == "SCNCL":
        mdata = unpaired.copy()
        st.model.SCNCL.setup_mudata(mdata, labels_key="cell_type", **layers)
        return mdata, {"n_pcs": 10, "n_peak_components": 10, "n_latent": 8}
    mdata = paired.copy()
    st.model.SCCLIP.setup_mudata(mdata, **layers)
    return mdata, {"annotation": "mm10", "preset": "tiny"}


@pytest.fixture
def no_fitting(monkeypatch):
    """Makes the first fitting step of either model fail, to show that a refusal comes before it."""

    def fitted(*args, **kwargs):
        raise AssertionError("the model began fitting")

    monkeypatch.setattr(_scncl.PeakView, "fit_transform", fitted)
    monkeypatch.setattr(_scncl, "joint_pca", fitted)
    monkeypatch.setattr(st.model.SCCLIP, "_build_layouts", fitted)


@pytest.mark.parametrize(
    ("name", "sizes", "message"),
    [
        ("SCNCL", {"n_latent": 0}, r"n_latent must be an integer >= 1, got 0\."),
        ("SCNCL", {"n_latent": 2.5}, r"n_latent must be an integer >= 1, got 2\.5"),
        ("SCNCL", {"n_pcs": 0}, r"n_pcs must be an integer >= 1 \(or None: read the genes directly\), got 0"),
        ("SCNCL", {"n_peak_components": 1}, r"n_peak_components must be an integer >= 2 \(or None: no peak view\)"),
        ("SCNCL", {"encoder": "mlp", "n_hidden": 0}, r"n_hidden must be an integer >= 1, got 0"),
        ("SCCLIP", {"n_output": 0}, r"n_output must be an integer >= 1, got 0"),
        ("SCCLIP", {"n_heads": 0}, r"n_heads must be an integer >= 1, got 0"),
        ("SCCLIP", {"n_patches": -4}, r"n_patches must be an integer >= 1, got -4"),
    ],
)
def test_nonsense_sizes_are_refused_before_any_work(unpaired, paired, no_fitting, name, sizes, message):
    mdata, arguments = _set_up(name, unpaired, paired)
    with pytest.raises(ValueError, match=message):
        getattr(st.model, name)(mdata, **{**arguments, **sizes})


def test_too_few_cells_are_refused_before_any_work(unpaired, paired, no_fitting):
    few = MuData({key: paired[key][: _scclip.MIN_PAIRED_CELLS - 1].copy() for key in paired.mod})
    st.model.SCCLIP.setup_mudata(few)
    with pytest.raises(ValueError, match=r"SCCLIP trains on 31 paired cells; it needs at least 32"):
        st.model.SCCLIP(few, annotation="mm10", preset="tiny")
    mdata = unpaired.copy()
    labels = mdata["rna"].obs["cell_type"].astype(object)
    labels.iloc[_scncl.MIN_LABELLED_CELLS - 1 :] = np.nan  # 29 labelled cells of 2+ types
    mdata["rna"].obs["cell_type"] = labels
    st.model.SCNCL.setup_mudata(mdata, labels_key="cell_type")
    with pytest.raises(ValueError, match=r"at least 30 labelled RNA cells .*'cell_type' labels 29 RNA cells"):
        st.model.SCNCL(mdata)


@pytest.mark.parametrize("name", MODELS)
def test_setup_checks_the_layers_it_registers(name, unpaired, paired):
    mdata = (unpaired if name == "SCNCL" else paired).copy()
    second = "gene_activity" if name == "SCNCL" else "atac"
    for key in ("rna", second):
        x = sp.csr_matrix(mdata[key].X, copy=True)
        mdata[key].layers["counts"] = x.copy()
        x.data[:3] = np.nan
        mdata[key].X = x
    labels = {"labels_key": "cell_type"} if name == "SCNCL" else {}
    cls = getattr(st.model, name)
    cls.setup_mudata(mdata, rna_layer="counts", **{f"{second}_layer": "counts"}, **labels)  # the layers are counts
    with pytest.raises(ValueError, match=r"modality 'rna' \.X holds 3 NaN or infinite values.*rna_layer='counts'"):
        cls.setup_mudata(mdata, **labels)
    logged = mdata[second].layers["counts"].copy()
    logged.data = np.log1p(logged.data)
    mdata[second].layers["logged"] = logged
    with pytest.raises(ValueError, match=rf"layer 'logged' of modality '{second}' .* not counts"):
        cls.setup_mudata(mdata, rna_layer="counts", **{f"{second}_layer": "logged"}, **labels)


@pytest.mark.parametrize("name", MODELS)
def test_new_data_are_read_from_the_layer_or_x_and_must_be_counts(name, unpaired, paired):
    mdata, arguments = _set_up(name, unpaired, paired, rna_layer="counts")
    model = getattr(st.model, name)(mdata, **arguments)
    model.train(max_steps=2, batch_size=32, accelerator="cpu", enable_progress_bar=False)
    rna = mdata["rna"].copy()
    rna.X = sp.csr_matrix(rna.X.shape, dtype=np.float32)  # the model reads the layer
    expected = model.get_latent_representation(MuData({"rna": rna}), modality="rna")
    bare = rna.copy()
    bare.X = bare.layers.pop("counts")
    with pytest.warns(UserWarning, match=r"has no layer 'counts', which the model reads \(set up with rna_layer="):
        np.testing.assert_array_equal(model.get_latent_representation(MuData({"rna": bare}), modality="rna"), expected)
    logged = bare.copy()
    logged.X.data = np.log1p(logged.X.data)
    with (
        pytest.warns(UserWarning, match="has no layer 'counts'"),
        pytest.raises(ValueError, match=r"\.X holds .* not whole numbers.*not counts.*put the raw counts in \.X or in"),
    ):
        model.get_latent_representation(logged, modality="rna")
    scaled = rna.copy()
    scaled.layers["counts"] = scaled.layers["counts"].toarray() - 1.0
    with pytest.raises(
        ValueError, match=r"layer 'counts' of .* negative values .*put the raw counts in layer 'counts'"
    ):
        model.get_latent_representation(scaled, modality="rna")
