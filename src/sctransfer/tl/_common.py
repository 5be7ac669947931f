"""Helpers shared by the tools: light working copies of the user's data and storable parameters."""

from __future__ import annotations

import pandas as pd
from anndata import AnnData


def working_modality(
    adata: AnnData, obs_columns: list[str], layer: str | None = None, *, keep_var: bool = False
) -> AnnData:
    """A light AnnData sharing the user's matrix (``layer`` or ``.X``; no copy) with only the columns needed.

    ``keep_var`` keeps a copy of ``.var`` (e.g. peak coordinates in columns); otherwise only its names.
    """
    return AnnData(
        X=adata.X if layer is None else adata.layers[layer],
        obs=adata.obs[obs_columns].copy() if obs_columns else pd.DataFrame(index=adata.obs_names.copy()),
        var=adata.var.copy() if keep_var else pd.DataFrame(index=adata.var_names.copy()),
        layers=dict(adata.layers),
    )


def without_none(params: dict) -> dict:
    """Parameters as stored in ``.uns`` (h5mu cannot hold None): None values are dropped."""
    return {k: (without_none(v) if isinstance(v, dict) else v) for k, v in params.items() if v is not None}
