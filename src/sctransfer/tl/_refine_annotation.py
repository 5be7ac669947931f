"""``tl.refine_annotation``: flag ATAC cells whose existing label disagrees with the evidence of label transfer."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from mudata import MuData

from sctransfer._constants import ATAC, KEY_ADDED, NEIGHBORS_KEY
from sctransfer._validation import MISSING_LABELS, get_modality
from sctransfer.pp._neighbors import neighbor_indices

from ._common import ResultWriter, check_free

logger = logging.getLogger(__name__)

DEFAULT_MIN_MARGIN = 0.3
"""Support margin of the proposed label over the existing one for a flag.

A lower margin flags more wrong labels and more right ones: precision and recall at several margins
are on the :doc:`/benchmarks` page.
"""


def _support(
    probabilities: np.ndarray,
    reference_types: list[str],
    existing: pd.Series,
    neighbors: np.ndarray,
    transfer_weight: float,
) -> tuple[list[str], np.ndarray]:
    """Per-cell support of every label: transfer probability and the existing labels of the peak-space neighbours.

    The neighbour part is the share of each existing label among a cell's neighbours, averaged once
    more over the neighbours (two hops), with unlabelled neighbours left out.
    """
    existing_types = [str(t) for t in existing.dropna().unique()]
    labels = list(dict.fromkeys([*reference_types, *sorted(existing_types)]))
    column = {label: j for j, label in enumerate(labels)}
    n_cells = len(existing)
    transfer = np.zeros((n_cells, len(labels)), dtype=np.float64)
    transfer[:, [column[t] for t in reference_types]] = np.nan_to_num(probabilities, nan=0.0)
    one_hot = np.zeros((n_cells, len(labels)), dtype=np.float64)
    labelled = existing.notna().to_numpy()
    one_hot[np.flatnonzero(labelled), [column[str(t)] for t in existing[labelled]]] = 1.0
    shares = one_hot[neighbors].sum(axis=1)
    shares /= np.maximum(shares.sum(axis=1, keepdims=True), 1.0)
    shares = 0.5 * shares + 0.5 * shares[neighbors].mean(axis=1)
    return labels, transfer_weight * transfer + (1.0 - transfer_weight) * shares


def refine_annotation(
    mdata: MuData,
    existing_key: str,
    *,
    key_added: str = KEY_ADDED,
    refine_key: str | None = None,
    atac_key: str = ATAC,
    neighbors_key: str = NEIGHBORS_KEY,
    transfer_weight: float = 0.5,
    min_margin: float = DEFAULT_MIN_MARGIN,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Flag ATAC cells whose existing label disagrees with confident evidence, and propose a label.

    Two kinds of evidence are combined into a support in ``[0, 1]`` for every label: the class
    probabilities of :func:`~sctransfer.tl.label_transfer` (weight `transfer_weight`), and the
    existing labels of the cell's peak-space neighbours (the share of each label among them,
    averaged over two hops; weight ``1 - transfer_weight``). The proposed label is the best
    supported one; a cell is flagged when it differs from the existing label and its support
    exceeds that of the existing label by more than `min_margin`. Existing labels that are not
    reference types (e.g. types the RNA reference lacks) are supported by the neighbours only.
    Cells without an existing label are never flagged but get a proposal.

    Parameters
    ----------
    mdata
        MuData after :func:`~sctransfer.tl.label_transfer`: the ATAC modality holds
        ``obsm[f"{key_added}_probabilities"]`` and the peak-space graph, and ``mdata.uns[key_added]``
        the reference types.
    existing_key
        Column of ``mdata[atac_key].obs`` with the labels to check (e.g. an atlas annotation).
    key_added
        The ``key_added`` of the label transfer to use.
    refine_key
        Prefix of the fields written, and key of ``mdata.uns``; ``None``: ``f"{key_added}_refine"``.
    atac_key
        ATAC modality.
    neighbors_key
        Key of the peak-space graph (see :func:`~sctransfer.pp.peak_neighbors`).
    transfer_weight
        Weight of the transferred probabilities against the neighbours' labels, in ``[0, 1]``.
    min_margin
        Support by which the proposed label must beat the existing one for a flag, in ``[0, 1]``;
        lower flags more cells (higher recall, lower precision).
    overwrite
        Replace fields written by an earlier call; otherwise existing fields are an error.

    Returns
    -------
    The summary: a :class:`~pandas.DataFrame` with one row per (existing label, proposed label) pair
    among the flagged cells, columns ``existing``, ``proposed``, ``n_cells``, sorted by decreasing
    ``n_cells``. Writes:

    - ``mdata[atac_key].obs[f"{refine_key}_flag"]``: the cell's existing label is doubtful (bool);
    - ``mdata[atac_key].obs[f"{refine_key}_label"]``: proposed label (categorical; NaN for cells label
      transfer left unlabelled);
    - ``mdata[atac_key].obs[f"{refine_key}_confidence"]``: support of the proposed label (float32, [0, 1]);
    - ``mdata.uns[refine_key]``: ``{"params": ..., "n_flagged": ..., "summary": ...}`` (the summary
      DataFrame returned).
    """
    atac, reference_types, probabilities = _check_inputs(
        mdata,
        existing_key,
        key_added=key_added,
        atac_key=atac_key,
        transfer_weight=transfer_weight,
        min_margin=min_margin,
    )
    refine_key = f"{key_added}_refine" if refine_key is None else refine_key
    names = {part: f"{refine_key}_{part}" for part in ("flag", "label", "confidence")}
    fields = [("obs", atac_key, name) for name in names.values()] + [("uns", None, refine_key)]
    check_free(mdata, fields, tool="refine_annotation", key_added=refine_key, overwrite=overwrite)
    existing = atac.obs[existing_key].astype(object)
    existing = existing.where(existing.notna() & ~existing.astype(str).str.strip().isin(MISSING_LABELS))
    neighbors = neighbor_indices(atac, neighbors_key)

    labels, support = _support(probabilities, reference_types, existing, neighbors, transfer_weight)
    rows = np.arange(atac.n_obs)
    proposed = support.argmax(axis=1)
    labelled = existing.notna().to_numpy()
    column = {label: j for j, label in enumerate(labels)}
    existing_column = np.array([column[str(t)] if ok else -1 for t, ok in zip(existing, labelled, strict=True)])
    existing_support = np.where(labelled, support[rows, np.maximum(existing_column, 0)], np.nan)
    margin = support[rows, proposed] - existing_support
    scored = np.isfinite(probabilities).all(axis=1)  # cells label transfer left unlabelled (no counts) are not
    flag = scored & labelled & (proposed != existing_column) & (np.nan_to_num(margin, nan=-1.0) > min_margin)

    proposed_names = np.where(scored, np.asarray(labels, dtype=object)[proposed], None)
    proposed_labels = pd.Categorical(proposed_names, categories=labels)
    flagged = pd.DataFrame(
        {"existing": existing[flag].astype(str).to_numpy(), "proposed": np.asarray(proposed_labels)[flag]}
    )
    summary = (
        flagged.value_counts(["existing", "proposed"])
        .rename("n_cells")
        .reset_index()
        .sort_values(["n_cells", "existing", "proposed"], ascending=[False, True, True], ignore_index=True)
    )
    writer = ResultWriter()
    writer.obs[atac_key, names["flag"]] = flag
    writer.obs[atac_key, names["label"]] = proposed_labels
    writer.obs[atac_key, names["confidence"]] = np.where(scored, support[rows, proposed], np.nan).astype(np.float32)
    params = {"existing_key": existing_key, "key_added": key_added, "neighbors_key": neighbors_key}
    params |= {"transfer_weight": float(transfer_weight), "min_margin": float(min_margin)}
    writer.uns[refine_key] = {"params": params, "n_flagged": int(flag.sum()), "summary": summary}
    writer.write(mdata)
    logger.info(
        "refine_annotation: %d of %d labelled cells flagged (%.1f%%).",
        int(flag.sum()),
        int(labelled.sum()),
        100 * flag.sum() / max(labelled.sum(), 1),
    )
    return summary


def _check_inputs(
    mdata: MuData, existing_key: str, *, key_added: str, atac_key: str, transfer_weight: float, min_margin: float
) -> tuple:
    """The ATAC modality, the reference types and the transfer probabilities, after every check."""
    atac = get_modality(mdata, atac_key, role="ATAC cells")
    probabilities_key = f"{key_added}_probabilities"
    record = mdata.uns.get(key_added)
    if probabilities_key not in atac.obsm or record is None or "reference_types" not in record:
        raise ValueError(
            f"No label-transfer result {key_added!r} in this MuData (mdata[{atac_key!r}].obsm[{probabilities_key!r}] "
            f"and mdata.uns[{key_added!r}]['reference_types']). Run sctransfer.tl.label_transfer(mdata, ...) first, "
            "or pass the key_added it used."
        )
    if existing_key not in atac.obs:
        raise KeyError(
            f"Column {existing_key!r} is not in mdata[{atac_key!r}].obs (columns: {list(atac.obs.columns)[:10]})."
        )
    if not 0.0 <= transfer_weight <= 1.0:
        raise ValueError(f"transfer_weight must be in [0, 1], got {transfer_weight}.")
    if not 0.0 <= min_margin <= 1.0:
        raise ValueError(f"min_margin must be in [0, 1], got {min_margin}.")
    if atac.obs[existing_key].notna().sum() == 0:
        raise ValueError(f"Column {existing_key!r} of mdata[{atac_key!r}].obs has no label (all missing).")
    reference_types = [str(t) for t in record["reference_types"]]
    probabilities = np.asarray(atac.obsm[probabilities_key], dtype=np.float64)
    if probabilities.shape != (atac.n_obs, len(reference_types)):
        raise ValueError(
            f"mdata[{atac_key!r}].obsm[{probabilities_key!r}] has shape {probabilities.shape}, expected "
            f"{(atac.n_obs, len(reference_types))} (cells x reference types); rerun label_transfer."
        )
    return atac, reference_types, probabilities
