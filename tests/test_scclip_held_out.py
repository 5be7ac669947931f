"""SCCLIP's held-out check (scvi-tools' ``train_size`` / ``validation_size``): split, scores, warnings, refusals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import sctransfer as st
from sctransfer.model import _scclip


@pytest.fixture(scope="module")
def paired():
    return st.datasets.mop_snareseq(("09A",))  # 813 paired cells


def _model(paired, **kwargs):
    mdata = paired.copy()
    st.model.SCCLIP.setup_mudata(mdata)
    return st.model.SCCLIP(mdata, annotation="mm10", preset="tiny", **kwargs)


def _train(model, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.train(batch_size=128, enable_progress_bar=False, **kwargs)
    return [str(w.message) for w in caught if "memoris" in str(w.message)]


def test_held_out_pairs_are_scored_recorded_and_memorisation_warned(paired, monkeypatch):
    model = _model(paired)
    monkeypatch.setattr(_scclip, "MEMORISATION_GAP", -1.0)  # any gap warns: the message and its fixes
    messages = _train(model, max_steps=60, train_size=0.8)
    train, held_out = model.train_indices, model.validation_indices
    assert (len(train), len(held_out)) == (651, 162)  # scvi-tools' sizes: ceil(0.8 * 813) and the rest
    assert np.intersect1d(train, held_out).size == 0 and np.union1d(train, held_out).size == 813
    # the recorded scores are the FOSCTTM of the held-out pairs and of as many training pairs, in the final space
    z = {m: model.get_latent_representation(modality=m, indices=held_out) for m in ("rna", "atac")}
    recorded = model.history["foscttm_validation"]["foscttm_validation"]
    assert recorded.index.tolist() == [1]  # the last epoch (60 steps of 50 per epoch)
    assert recorded.iloc[0] == pytest.approx(st.metrics.foscttm(z["rna"], z["atac"]).mean)
    assert 0 <= model.history["foscttm_train"]["foscttm_train"].iloc[0] < recorded.iloc[0]
    assert model.train_params_["train_size"] == 0.8
    assert len(messages) == 1 and "memorises its training pairs" in messages[0]
    assert all(fix in messages[0] for fix in ("more cells", "fewer steps"))
    assert "smaller preset" not in messages[0]  # the model is on the smallest one already
    # trained again without holding out: the earlier check is not this model's any more
    model.train(max_steps=5, enable_progress_bar=False)
    assert "foscttm_validation" not in model.history and "foscttm_train" not in model.history
    # a check on a model trained before cannot show memorisation: said so
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.train(max_steps=5, enable_progress_bar=False, train_size=0.8)
    said = [str(w.message) for w in caught]
    assert any("trained before: the pairs held out now were among its training pairs" in m for m in said)
    assert not any("memorises" in m for m in said)  # no verdict on top of it, although any gap would warn
    monkeypatch.setattr(_scclip, "MEMORISATION_GAP", 1.0)  # no gap that large: no warning
    assert _train(_model(paired), max_steps=10, train_size=0.8) == []


@pytest.mark.parametrize(
    ("linear_weight", "cause", "fix"),
    [
        (0.0, "The alignment of the modalities, fitted", "{'align_modalities': False}"),
        (0.3, "The alignment of the modalities or the linear member, fitted", "'linear_weight': 0.0}"),
    ],
)
def test_a_gap_from_the_alignment_alone_names_the_alignment(paired, monkeypatch, linear_weight, cause, fix):
    """When the network ranks held-out and training pairs alike, what is fitted on the latter is the cause."""
    model = _model(paired, linear_weight=linear_weight)
    scores = iter([0.40, 0.30, 0.40, 0.10])  # held out: raw, final; training: raw, final
    monkeypatch.setattr(_scclip, "foscttm", lambda *args: type("Score", (), {"mean": next(scores)})())
    messages = _train(model, max_steps=5, train_size=0.8)
    assert len(messages) == 1 and messages[0].startswith(f"{cause} on too few pairs, memorises")
    assert fix in messages[0]
    assert model.history["foscttm_validation"].iloc[0, 0] == 0.30  # the embedding users get


def test_without_held_out_pairs_a_small_long_training_suggests_the_check(paired):
    model = _model(paired)
    messages = _train(model, max_steps=70)  # 813 pairs, each seen about 11 times
    assert len(model.train_indices) == 813 and len(model.validation_indices) == 0
    assert "foscttm_validation" not in model.history
    assert len(messages) == 1 and "train_size=0.9" in messages[0] and "813 pairs" in messages[0]
    assert "smaller preset" not in messages[0]  # the model is on the smallest one
    assert _train(_model(paired), max_steps=5) == []  # seen about once: nothing to memorise


def test_split_sizes_are_checked_before_any_work(paired, tmp_path):
    model = _model(paired)
    model.save(tmp_path / "untrained")
    with pytest.raises(ValueError, match="loaded without data, so it has no pairs to train on"):
        st.model.SCCLIP.load(tmp_path / "untrained").train(max_steps=5)
    for sizes, message in (
        ({"train_size": 1.5}, "Invalid train_size"),
        ({"train_size": 0.9, "validation_size": 0.2}, "train_size \\+ validation_size"),
        ({"train_size": 0.99}, "leave 805 to train on and 8 held out; each needs at least 32"),
    ):
        with pytest.raises(ValueError, match=message):
            model.train(max_steps=5, enable_progress_bar=False, **sizes)
    assert not model.is_trained_
