"""``check_labels``: reference labels that look like placeholders, and spellings that differ by spaces."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from sctransfer._validation import RareTypeWarning, ReferenceLabelWarning, check_labels


def _obs(labels) -> AnnData:
    return AnnData(
        np.ones((len(labels), 2), dtype=np.float32),
        obs=pd.DataFrame({"t": labels}, index=[f"c{i}" for i in range(len(labels))]),
    )


def _checked(labels) -> tuple[pd.Categorical, list[str]]:
    """The cleaned labels and the messages of the ReferenceLabelWarnings that are not about rare types."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        cleaned = check_labels(_obs(labels), "t", key="rna")
    return cleaned, [
        str(w.message)
        for w in record
        if issubclass(w.category, ReferenceLabelWarning) and not issubclass(w.category, RareTypeWarning)
    ]


def test_placeholder_labels_are_named_with_their_counts_and_the_fix():
    labels = ["Astro"] * 30 + ["L2/3"] * 30 + ["Unknown"] * 20 + ["UNASSIGNED"] * 16 + ["?"] * 15
    cleaned, messages = _checked(labels)
    assert len(messages) == 1
    assert (
        "look like placeholders, not cell types ('Unknown': 20 cells, 'UNASSIGNED': 16 cells, '?': 15 cells)"
        in (messages[0])
    )
    fix = "obs['t'] = obs['t'].mask(obs['t'].isin(['?', 'UNASSIGNED', 'Unknown'])), with obs = mdata['rna'].obs"
    assert fix in messages[0]
    assert "Unknown" in cleaned.categories  # a warning: still trained as a type unless the user sets them to NaN

    fixed = pd.Series(labels)
    fixed = fixed.mask(fixed.isin(["?", "UNASSIGNED", "Unknown"]))  # the fix the message gives
    cleaned, messages = _checked(fixed.tolist())
    assert messages == [] and list(cleaned.categories) == ["Astro", "L2/3"]


def test_missing_spellings_stay_missing_and_cell_types_are_not_placeholders():
    labels = ["Astro"] * 30 + ["L2/3"] * 30 + ["None"] * 5 + ["NA"] * 5 + ["Other"] * 20 + ["Unknownish"] * 20
    cleaned, messages = _checked(labels)
    assert messages == []
    assert int(pd.isna(cleaned).sum()) == 10 and list(cleaned.categories) == ["Astro", "L2/3", "Other", "Unknownish"]


def test_surrounding_spaces_warn_only_when_they_merge_two_spellings():
    _, messages = _checked(["Astro"] * 30 + [" L2/3 "] * 30)
    assert messages == []  # one spelling: read without the spaces, nothing merged
    cleaned, messages = _checked(["Astro"] * 30 + [" L2/3 "] * 10 + ["L2/3"] * 20)
    assert len(messages) == 1 and "differ only by surrounding spaces (e.g. ' L2/3 ')" in messages[0]
    assert (cleaned == "L2/3").sum() == 30


def test_reference_label_warnings_are_user_warnings():
    assert issubclass(RareTypeWarning, ReferenceLabelWarning) and issubclass(ReferenceLabelWarning, UserWarning)
    with pytest.warns(UserWarning, match="placeholders"):
        check_labels(_obs(["Astro"] * 30 + ["L2/3"] * 30 + ["unknown"] * 20), "t", key="rna")
