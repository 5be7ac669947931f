"""Density of the novelty score (or the confidence) of transferred labels, one curve per group of cells."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from mudata import MuData
from scipy.stats import gaussian_kde

from sctransfer._constants import ATAC, KEY_ADDED, RNA
from sctransfer.metrics._classification import _known_set, _obs_of

from ._utils import finish, with_show_parameters

logger = logging.getLogger(__name__)

_GRID_POINTS = 256
KNOWN_GROUP = "reference type"
NOVEL_GROUP = "not in reference"
TRUTH_COLORS = {KNOWN_GROUP: "tab:blue", NOVEL_GROUP: "tab:red"}


def _reference_types(
    data: MuData | AnnData,
    reference_types: Iterable[Any] | None,
    reference_key: str | None,
    rna_key: str,
    key_added: str,
) -> set[str]:
    """The reference's cell types: given, read from the RNA labels, or recorded by ``label_transfer``."""
    if reference_types is not None:
        return _known_set(reference_types)
    if reference_key is not None:
        if not isinstance(data, MuData) or rna_key not in data.mod:
            raise KeyError(
                f"reference_key={reference_key!r} names a column of the RNA modality {rna_key!r}, which "
                "this data does not have; pass reference_types=[...] instead."
            )
        obs = data[rna_key].obs
        if reference_key not in obs.columns:
            raise KeyError(
                f"Column {reference_key!r} not found in mdata[{rna_key!r}].obs; available columns: {list(obs.columns)}."
            )
        return {str(t) for t in obs[reference_key].dropna().unique()}
    recorded = data.uns.get(key_added, {}).get("reference_types")
    if recorded is None:
        raise ValueError(
            f"Cannot tell known from novel cells: no reference types recorded in uns[{key_added!r}] (run "
            "sctransfer.tl.label_transfer first), and neither reference_key= nor reference_types= was given."
        )
    return {str(t) for t in recorded}


def _threshold(data: MuData | AnnData, score_key: str, key_added: str, threshold: float | bool | None) -> float | None:
    """The threshold line to draw: given, or the one ``label_transfer`` used when plotting its novelty score."""
    if threshold is False:
        return None
    if threshold is not None and threshold is not True:
        return float(threshold)
    if score_key != f"{key_added}_novelty":
        return None
    return data.uns.get(key_added, {}).get("params", {}).get("novelty_threshold")


@with_show_parameters
def novelty_kde(
    data: MuData | AnnData,
    *,
    score_key: str | None = None,
    groupby: str | None = None,
    truth_key: str | None = None,
    reference_key: str | None = None,
    reference_types: Iterable[Any] | None = None,
    key_added: str = KEY_ADDED,
    atac_key: str = ATAC,
    rna_key: str = RNA,
    threshold: float | bool | None = None,
    max_groups: int = 20,
    fill: bool = True,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
) -> Axes | Figure | None:
    """Plot the density of the novelty score (or the confidence) of each group of query cells.

    One Gaussian kernel density curve per group, each integrating to 1, labelled with the group
    and its number of cells. Reads ``mdata[atac_key].obs`` (or ``adata.obs``); writes nothing.

    Parameters
    ----------
    data
        A :class:`~mudata.MuData` after :func:`sctransfer.tl.label_transfer` (the query cells are its
        `atac_key` modality), or an :class:`~anndata.AnnData` of the query cells.
    score_key
        Column of ``obs`` to plot; ``None``: ``f"{key_added}_novelty"``. ``f"{key_added}_confidence"``
        gives the view of the scNCL paper (confidence near 1 for known types, low for novel ones).
    groupby
        Column of ``obs`` whose values are the groups, e.g. the predicted label (the default,
        ``f"{key_added}_label"``), the novel call ``f"{key_added}_novel"``, or a column of true types.
        Ignored when `truth_key` is given.
    truth_key
        Column of ``obs`` with true types: draws two curves, cells whose true type is a reference
        type and cells whose true type is not (the open-set view). Cells with a missing true type
        are left out.
    reference_key
        Column of ``mdata[rna_key].obs`` with the reference labels, to know the reference types
        when `truth_key` is given.
    reference_types
        The reference types, instead of `reference_key`. Without either, the types recorded by
        :func:`~sctransfer.tl.label_transfer` in ``uns[key_added]["reference_types"]`` are used.
    key_added
        The ``key_added`` of :func:`~sctransfer.tl.label_transfer`.
    atac_key, rna_key
        Modality names (ignored for an :class:`~anndata.AnnData`).
    threshold
        Draw a dashed vertical line here. ``None``: the ``novelty_threshold`` of
        :func:`~sctransfer.tl.label_transfer` when plotting its novelty score; ``False``: no line.
    max_groups
        Largest number of groups drawn (the most populous ones); the others are left out, with a
        log message.
    fill
        Shade the area under each curve.
    title
        Axes title; ``None`` names what is plotted.
    figsize
        Size of a new figure in inches; ignored when `ax` is given.
    {show_parameters}

    The density curves are the Axes' lines whose label is a group; the threshold line has the
    label ``"threshold"``.
    """
    obs, where = _obs_of(data, atac_key)
    score_key = score_key or f"{key_added}_novelty"
    if score_key not in obs.columns:
        hint = " Run sctransfer.tl.label_transfer first." if score_key.startswith(key_added) else ""
        raise KeyError(f"Column {score_key!r} not found in {where}; available columns: {list(obs.columns)}.{hint}")
    scores = pd.to_numeric(obs[score_key], errors="coerce")
    if truth_key is not None:
        if truth_key not in obs.columns:
            raise KeyError(f"Column {truth_key!r} not found in {where}; available columns: {list(obs.columns)}.")
        known = _reference_types(data, reference_types, reference_key, rna_key, key_added)
        truth = obs[truth_key]
        labelled = truth.notna().to_numpy()
        if not labelled.any():
            raise ValueError(f"No cell in {where} has a true type in column {truth_key!r}.")
        groups = pd.Series(
            np.where(truth.astype(str).isin(known), KNOWN_GROUP, NOVEL_GROUP), index=obs.index, dtype=object
        )[labelled]
        order = [g for g in (KNOWN_GROUP, NOVEL_GROUP) if (groups == g).any()]
        legend_title = f"true type ({truth_key})"
    else:
        groupby = groupby or f"{key_added}_label"
        if groupby not in obs.columns:
            raise KeyError(f"Column {groupby!r} not found in {where}; available columns: {list(obs.columns)}.")
        groups = obs[groupby].dropna().astype(str)
        order = list(groups.value_counts().index)
        if len(order) > max_groups:
            logger.info("Drawing the %d largest of %d groups of %r.", max_groups, len(order), groupby)
            order = order[:max_groups]
        legend_title = groupby
    values = scores[groups.index]
    kernels: dict[str, tuple[gaussian_kde, int]] = {}
    for group in order:
        group_values = values[(groups == group).to_numpy()].to_numpy(dtype=np.float64)
        group_values = group_values[np.isfinite(group_values)]
        if len(group_values) < 2 or np.ptp(group_values) == 0:
            logger.info("Group %r has fewer than two distinct scores; no density drawn.", group)
            continue
        kernels[group] = (gaussian_kde(group_values), len(group_values))
    if not kernels:
        raise ValueError(
            f"No group of {where} has two or more distinct finite values of {score_key!r}; nothing to draw."
        )
    # the grid reaches 3 bandwidths past the data, so every curve integrates to about 1
    reach = 3 * max(float(np.sqrt(kde.covariance[0, 0])) for kde, _ in kernels.values())
    finite = values.to_numpy(dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    grid = np.linspace(finite.min() - reach, finite.max() + reach, _GRID_POINTS)

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize or (6.0, 3.5))
    else:
        fig = ax.get_figure()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, group in enumerate(order):
        if group not in kernels:
            continue
        kde, n_cells = kernels[group]
        density = kde(grid)
        color = colors[i % len(colors)] if truth_key is None else TRUTH_COLORS[group]
        ax.plot(grid, density, color=color, label=f"{group} ({n_cells:,})")
        if fill:
            ax.fill_between(grid, density, color=color, alpha=0.15, linewidth=0)
    line = _threshold(data, score_key, key_added, threshold)
    if line is not None:
        ax.axvline(line, color="0.3", linestyle="--", linewidth=1, label="threshold")
    ax.set_xlabel(score_key)
    ax.set_ylabel("density")
    ax.set_ylim(bottom=0)
    ax.legend(title=legend_title, fontsize="small", frameon=False, loc="best")
    ax.set_title(title if title is not None else f"{score_key} by {legend_title}")

    return finish(fig, ax, show=show, return_fig=return_fig)
