"""The counts check names the fix that fits what the modality holds: its other layers, its ``.raw``, or neither."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from mudata import MuData

from sctransfer._validation import get_modality


def _mdata(*, layers: tuple[str, ...] = (), raw_genes: int | None = None) -> MuData:
    """RNA whose .X is log-normalised (not counts), with the given layers and a .raw of `raw_genes` genes."""
    rng = np.random.default_rng(0)
    n_genes = 6 if raw_genes is None else raw_genes
    counts = rng.poisson(2.0, size=(10, n_genes)).astype(np.float32)
    rna = AnnData(counts, var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))
    if raw_genes is not None:
        rna.raw = rna
        rna = rna[:, :4].copy()  # .X keeps 4 genes, as after selecting highly variable genes
    rna.X = np.log1p(rna.X / 3)
    for name in layers:
        rna.layers[name] = rna.X.copy()
    return MuData({"rna": rna})


def _message(mdata: MuData, layer: str | None = None) -> str:
    with pytest.raises(ValueError, match="not counts") as error:
        get_modality(mdata, "rna", role="RNA", layer=layer, counts_argument="rna_layer")
    return str(error.value)


def test_no_layers_no_raw_says_where_to_put_the_counts():
    message = _message(_mdata())
    assert "modality 'rna' has no layers: put the raw counts in a layer (mdata['rna'].layers['counts'] = " in message
    assert "e.g. rna_layer='counts'" not in message  # no layer of that name to pass


def test_raw_with_the_same_genes_is_copied_into_a_layer():
    mdata = _mdata(raw_genes=4)
    mdata.mod["rna"].raw = mdata["rna"].copy()  # a .raw of the same 4 genes
    fix = "has no layers but a .raw; if it holds the raw counts, copy them into a layer, "
    fix += "mdata['rna'].layers['counts'] = mdata['rna'].raw.X, and pass rna_layer='counts'"
    assert fix in _message(mdata)


def test_raw_with_more_genes_becomes_the_modality():
    fix = "has no layers but a .raw with other features (6; .X has 4); if it holds the raw counts, make it the "
    fix += "modality: mdata.mod['rna'] = mdata['rna'].raw.to_adata(), then mdata.update()"
    assert fix in _message(_mdata(raw_genes=6))


def test_layers_are_listed_and_the_one_used_is_not():
    message = _message(_mdata(layers=("lognorm", "counts"), raw_genes=6))
    assert "via rna_layer= (e.g. rna_layer='counts'; layers of modality 'rna': ['lognorm', 'counts'])" in message
    message = _message(_mdata(layers=("lognorm", "scaled")), layer="lognorm")
    assert re.search(r"rna_layer='scaled'; layers of modality 'rna': \['scaled'\]\)", message)
    message = _message(_mdata(layers=("lognorm",), raw_genes=6), layer="lognorm")
    assert "modality 'rna' has no other layers but a .raw with other features" in message
