"""Input checks shared by the public functions: clear errors before anything is modified."""

from __future__ import annotations

import warnings

import mudata
import numpy as np
from anndata import AnnData
from mudata import MuData

from sctransfer._matrix import ValueSummary, all_finite, value_summary


def get_modality(mdata: MuData, key: str, *, role: str) -> AnnData:
    """Return ``mdata.mod[key]`` after checking that it exists, is not empty and holds numbers.

    Parameters
    ----------
    mdata
        The multimodal container.
    key
        Modality name.
    role
        What the modality is used for, for error messages (``"RNA reference"``, ``"ATAC query"``).
    """
    if not isinstance(mdata, MuData):
        raise TypeError(f"Expected a MuData object, got {type(mdata).__name__}. Wrap modalities: md.MuData({{...}}).")
    if mdata.is_view:
        raise ValueError(
            "The MuData is a view (a subset of another object); results cannot be written into it. "
            "Call `.copy()` on the subset first."
        )
    if key not in mdata.mod:
        raise KeyError(
            f"Modality {key!r} ({role}) is not in the MuData; it has {list(mdata.mod)}. "
            f"Pass the right name (e.g. rna_key=/atac_key=)."
        )
    adata = mdata.mod[key]
    if adata.is_view:
        raise ValueError(f"Modality {key!r} is a view; call `.copy()` on it before passing it in.")
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise ValueError(f"Modality {key!r} ({role}) is empty: {adata.n_obs} cells x {adata.n_vars} features.")
    check_numeric(adata.X, what=f"modality {key!r} .X")
    return adata


def check_numeric(x, *, what: str) -> None:
    """Raise a clear error when ``x`` is not a numeric matrix or holds NaN/inf."""
    check_numeric_dtype(x, what=what)
    if not all_finite(x):
        raise ValueError(f"{what} holds NaN or infinite values; replace or drop them first.")


#: A matrix whose stored values are mostly not whole numbers and at most this large is taken as
#: normalised or log-transformed (``log1p`` of depth-normalised counts stays below about 14).
LOG_DATA_MAX = 20.0


def check_counts(x, *, what: str, argument: str) -> ValueSummary:
    """Raise a clear error unless ``x`` holds count-like values; warn when some are not whole numbers.

    One streamed pass over the stored values (sparse matrices are never densified; backed ones
    are read block by block, see :func:`sctransfer._matrix.value_summary`).

    Parameters
    ----------
    x
        Cells x features matrix: any scipy sparse format, a numpy array or a backed matrix.
    what
        The matrix, for messages (``"layer 'counts' of modality 'atac'"``).
    argument
        The argument that selects the matrix (``"rna_layer"``, ``"atac_layer"``), named in the hint.

    Returns
    -------
    The :class:`~sctransfer._matrix.ValueSummary` of the values.

    Raises
    ------
    TypeError
        The values are not numbers.
    ValueError
        Some values are NaN or infinite; some are negative (scaled data); or most are not whole
        numbers and none exceeds :data:`LOG_DATA_MAX` (normalised or log-transformed data).

    Warns
    -----
    UserWarning
        Some values are not whole numbers but the matrix does not look log-transformed (e.g.
        ambient-corrected counts): they are used as they are.
    """
    check_numeric_dtype(x, what=what)
    summary = value_summary(x)
    hint = f"pass the raw counts layer via {argument}= (e.g. {argument}='counts')"
    if summary.n_nonfinite:
        raise ValueError(
            f"{what} holds {summary.n_nonfinite:,} NaN or infinite values; replace or drop them, or {hint}."
        )
    if summary.n_negative:
        raise ValueError(
            f"{what} holds {summary.n_negative:,} negative values (smallest {summary.min_value:.4g}), so it is not "
            f"counts: it looks scaled/log-transformed, {hint}."
        )
    if summary.n_fractional > summary.n_values / 2 and summary.max_value <= LOG_DATA_MAX:
        raise ValueError(
            f"{what} holds {summary.n_fractional:,} of {summary.n_values:,} values that are not whole numbers, all "
            f"at most {summary.max_value:.4g}, so it is not counts: it looks scaled/log-transformed "
            f"(normalised), {hint}."
        )
    if summary.n_fractional:
        warnings.warn(
            f"{what} holds {summary.n_fractional:,} of {summary.n_values:,} values that are not whole numbers "
            f"(largest {summary.max_value:.4g}); sctransfer expects raw counts and uses them as they are. If a "
            f"layer holds the raw counts, {hint}.",
            UserWarning,
            stacklevel=3,
        )
    return summary


def check_numeric_dtype(x, *, what: str) -> None:
    """Raise a clear error when ``x`` is missing or its dtype is not numeric (bool counts as numeric)."""
    if x is None:
        raise ValueError(f"{what} is empty (None).")
    dtype = x.dtype
    if not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)):
        raise TypeError(f"{what} holds non-numeric values (dtype {dtype}); it must hold counts or numbers.")


def check_layer(adata: AnnData, layer: str | None, *, key: str) -> None:
    """Raise a clear error when ``layer`` is given but is not a numeric layer of modality ``key``."""
    if layer is None:
        return
    if layer not in adata.layers:
        raise KeyError(f"Layer {layer!r} is not in modality {key!r} (layers: {list(adata.layers)}).")
    check_numeric(adata.layers[layer], what=f"layer {layer!r} of modality {key!r}")


def check_unpaired(rna: AnnData, atac: AnnData, *, rna_key: str, atac_key: str) -> None:
    """Unpaired modalities must not share cell names (MuData takes equal names as the same cell)."""
    shared = rna.obs_names.intersection(atac.obs_names)
    if len(shared):
        raise ValueError(
            f"Modalities {rna_key!r} and {atac_key!r} share {len(shared)} obs names (e.g. {shared[0]!r}), but label "
            "transfer expects different cells. MuData treats equal names as the same cell; give each modality "
            f"distinct names, e.g. `{atac_key}.obs_names = '{atac_key}:' + {atac_key}.obs_names`."
        )


def update_mudata(mdata: MuData) -> None:
    """``mdata.update()`` without mudata's legacy pull of modality columns into the global tables.

    RNA and gene activity share gene names by design; mudata's warning about non-unique global
    ``var_names`` is silenced (making them unique would rename the genes).
    """
    with mudata.set_options(pull_on_update=False), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="var_names are not unique")
        mdata.update()


def working_mudata(modalities: dict) -> MuData:
    """A MuData over the given modalities, built with the same settings as :func:`update_mudata`."""
    with mudata.set_options(pull_on_update=False), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="var_names are not unique")
        return MuData(modalities)
