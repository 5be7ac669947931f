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


# held-out FOSCTTM of each embedding the model can give, keyed by (aligned, weight of the linear member)
_OWN, _NO_ALIGNMENT, _NO_MEMBER, _NETWORK = (True, 0.3), (False, 0.3), (True, 0.0), (False, 0.0)


@pytest.mark.parametrize(
    ("held_out", "network_train", "fix", "hint"),
    [
        # another embedding ranks held-out pairs better: its setting is named, with its score
        (
            {_OWN: 0.40, _NO_ALIGNMENT: 0.35, _NO_MEMBER: 0.42, _NETWORK: 0.45},
            0.05,
            "for fewer steps (max_steps)",
            "without the alignment ranks better (FOSCTTM 0.350): model_kwargs={'align_modalities': False}.",
        ),
        (
            {_OWN: 0.40, _NO_ALIGNMENT: 0.41, _NO_MEMBER: 0.42, _NETWORK: 0.30},
            0.25,
            "Train on more cells (the alignment and the linear member are fitted",  # the network's own gap is small
            "without the alignment and the linear member ranks better (FOSCTTM 0.300): model_kwargs={"
            "'align_modalities': False, 'linear_weight': 0.0}.",
        ),
        # leaving a part out does not rank held-out pairs better (by more than HELD_OUT_BETTER): no setting named
        ({_OWN: 0.40, _NO_ALIGNMENT: 0.395, _NO_MEMBER: 0.43, _NETWORK: 0.45}, 0.05, "fewer steps", None),
    ],
)
def test_the_warning_names_a_setting_only_where_it_ranks_held_out_pairs_better(
    paired, monkeypatch, held_out, network_train, fix, hint
):
    """The warning suggests leaving out the alignment or the member only where that ranks held-out pairs better.

    Each embedding the model can give is scored, and the network's own gap tells whether fewer steps can help.
    """
    model = _model(paired, linear_weight=0.3)
    composed, calls = [], []
    compose = st.model.SCCLIP._compose

    def tracked(self, raw, linear, modality, *, align, weight):
        composed.append((align, weight))
        return compose(self, raw, linear, modality, align=align, weight=weight)

    def score(*args):  # the held-out pairs' embeddings come first, each variant once
        calls.append(composed[-1])
        training = len(calls) > len(held_out)
        value = (network_train if composed[-1] == _NETWORK else 0.05) if training else held_out[composed[-1]]
        return type("Score", (), {"mean": value})()

    monkeypatch.setattr(st.model.SCCLIP, "_compose", tracked)
    monkeypatch.setattr(_scclip, "foscttm", score)
    messages = _train(model, max_steps=5, train_size=0.8)
    assert sorted(set(calls)) == sorted(held_out)  # the four embeddings, on held-out and training pairs
    assert len(messages) == 1 and messages[0].startswith("The embedding memorises its training pairs: FOSCTTM 0.400")
    assert fix in messages[0]
    assert (hint in messages[0]) if hint else ("ranks better" not in messages[0])
    assert model.history["foscttm_validation"].iloc[0, 0] == 0.40  # the embedding users get


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
