"""scvi-tools' train / load contract on both models (MOp SNARE-seq subsets, tiny sizes, a few steps)."""

from __future__ import annotations

import signal
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from lightning.pytorch import Callback
from mudata import MuData

import sctransfer as st

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
    ("arguments", "message"),
    [
        ({"max_steps": 0}, "max_steps must be an integer >= 1, got 0"),
        ({"max_epochs": 0}, "max_epochs must be an integer >= 1, got 0"),
        ({"max_steps": -5}, "max_steps must be an integer >= 1"),
        ({"max_epochs": 1.5}, "max_epochs must be an integer"),
        ({"max_epochs": 2, "max_steps": 100}, "not both"),
        ({"max_steps": 10, "steps_per_epoch": 0}, "steps_per_epoch must be"),
        ({"max_steps": 10, "batch_size": 0}, "batch_size must be"),
        ({"max_steps": 10, "plan_kwargs": {"learning_rate": 1e-3}}, r"Unknown plan_kwargs \['learning_rate'\]"),
        ({"max_steps": 10, "plan_kwargs": {"optimizer": "rmsprop"}}, "optimizer'] must be one of"),
        ({"max_steps": 10, "plan_kwargs": {"lr": -1.0}}, r"plan_kwargs\['lr'\] must be a finite number"),
        ({"max_steps": 10, "datasplitter_kwargs": {"shuffle": True}}, r"Unknown datasplitter_kwargs \['shuffle'\]"),
    ],
)
@pytest.mark.parametrize("name", MODELS)
def test_bad_training_arguments_refused_before_any_work(untrained, monkeypatch, name, arguments, message):
    model = untrained[name]

    def no_work():
        raise AssertionError("the training inputs were built")

    monkeypatch.setattr(model, "_training_inputs", no_work)
    with pytest.raises(ValueError, match=message):
        model.train(accelerator="cpu", **arguments)
    assert not model.is_trained_ and model.history_ is None


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
