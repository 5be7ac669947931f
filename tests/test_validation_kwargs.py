"""``check_kwargs``: keyword dicts checked against the functions they are passed to, before any work."""

from __future__ import annotations

import pytest

from sctransfer._validation import TRAINER_RESERVED, check_kwargs, trainer_targets
from sctransfer.model import SCNCL


def _outer(a, *, bee=1, **rest):
    return _inner(**rest)


def _inner(*, gamma=2, delta=3):
    return gamma + delta


def _open(**anything):
    return anything


def test_chain_accepts_what_any_target_takes():
    assert check_kwargs({"bee": 2, "delta": 4}, (_outer, _inner), argument="kw") == {"bee": 2, "delta": 4}
    assert check_kwargs(None, _inner, argument="kw") == {}
    assert check_kwargs({"zeta": 1}, (_inner, _open), argument="kw") == {"zeta": 1}  # the last one takes **kwargs
    assert check_kwargs({"lr": 1}, _inner, argument="kw", extra=("lr",)) == {"lr": 1}


def test_unknown_key_names_the_closest_and_the_valid_ones():
    with pytest.raises(
        TypeError, match=r"kw has 1 key\(s\) .*\['gamm'\].*Did you mean 'gamma'\? Valid keys: a, bee, delta, gamma\."
    ):
        check_kwargs({"gamm": 1}, (_outer, _inner), argument="kw")
    with pytest.raises(TypeError, match=r"'xyz' is not an option\. Valid keys"):  # nothing close: no guess
        check_kwargs({"xyz": 1}, _inner, argument="kw")


def test_reserved_and_malformed_are_refused():
    with pytest.raises(TypeError, match="'gamma' is set by sctransfer itself"):
        check_kwargs({"gamma": 1}, _inner, argument="kw", reserved=("gamma",))
    with pytest.raises(TypeError, match="kw must be a dict"):
        check_kwargs(["gamma"], _inner, argument="kw")
    with pytest.raises(TypeError, match="kw must be a dict"):
        check_kwargs({1: 2}, _inner, argument="kw")


def test_scncl_train_accepts_scvi_and_lightning_trainer_options():
    """What SCNCL.train forwards to scvi-tools' and Lightning's trainers is read from their signatures."""
    targets = (SCNCL.train, *trainer_targets())
    given = {"max_epochs": 2, "accelerator": "cpu", "batch_size": 64, "early_stopping": False, "gradient_clip_val": 1}
    assert check_kwargs(given, targets, argument="train_kwargs", reserved=TRAINER_RESERVED) == given
    with pytest.raises(TypeError, match="Did you mean 'max_epochs'"):
        check_kwargs({"max_epoch": 2}, targets, argument="train_kwargs", reserved=TRAINER_RESERVED)
