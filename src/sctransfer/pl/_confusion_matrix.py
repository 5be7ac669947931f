"""Heatmap of the confusion matrix of transferred labels."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from mudata import MuData

from sctransfer._constants import ATAC, KEY_ADDED
from sctransfer.metrics._classification import _known_set, _truth_and_prediction, accuracy
from sctransfer.metrics._classification import confusion_matrix as _confusion_table

from ._utils import finish, with_show_parameters

_AUTO_ANNOTATE_MAX_TYPES = 25
_COLORBAR_LABELS = {
    None: "cells",
    "true": "fraction of true type",
    "pred": "fraction of predicted label",
    "all": "fraction of cells",
}


@with_show_parameters
def confusion_matrix(
    data: MuData | AnnData,
    truth_key: str,
    *,
    pred_key: str = f"{KEY_ADDED}_label",
    atac_key: str = ATAC,
    normalize: Literal["true", "pred", "all"] | None = "true",
    reference_types: Iterable[Any] | None = None,
    annotate: bool | None = None,
    cmap: str | Colormap = "Blues",
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
) -> Axes | Figure | None:
    """Plot the confusion matrix of transferred labels as a heatmap.

    True types are rows, predicted labels are columns, laid out as in
    :func:`sctransfer.metrics.confusion_matrix`: the true types in the same order on both axes (correct
    calls on the diagonal), then labels that are only predicted (e.g. ``"Unknown"``). Cells with a
    missing true label are left out, and so are cells with a true label but no prediction (e.g. the ATAC
    cells without counts, which :func:`sctransfer.tl.label_transfer` leaves unlabelled; the default title
    says how many), as in :func:`sctransfer.metrics.label_transfer_report`. Reads ``mdata[atac_key].obs[truth_key]`` and
    ``mdata[atac_key].obs[pred_key]`` (or the columns of ``adata.obs`` for an :class:`~anndata.AnnData`);
    writes nothing.

    Parameters
    ----------
    data
        A :class:`~mudata.MuData` (the query cells are its `atac_key` modality) or an
        :class:`~anndata.AnnData` of the query cells.
    truth_key
        Column of ``obs`` with the true labels.
    pred_key
        Column of ``obs`` with the predicted labels, as written by :func:`sctransfer.tl.label_transfer`.
    atac_key
        Modality of the query cells (ignored for an :class:`~anndata.AnnData`).
    normalize
        How to normalise the counts, see :func:`sctransfer.metrics.confusion_matrix`. The default
        ``"true"`` makes each row sum to 1, so the diagonal shows each type's recall.
    reference_types
        Cell types of the labelled reference. If given, the title shows the closed-set accuracy (cells
        whose true type is in the reference) and the row labels of types absent from the reference are
        drawn in grey. All true types stay in the matrix, showing where unseen types were assigned.
    annotate
        Write each value in its cell (fractions with two decimals, counts as integers), leaving out
        values that show as zero. ``None`` annotates when neither axis has more than 25 labels.
    cmap
        Colormap of the heatmap.
    title
        Axes title. ``None``: the (closed-set) accuracy, the number of cells it counts and, when there are
        any, the number of cells left out for lack of a prediction.
    figsize
        Size of a new figure, in inches; ``None`` sizes it to the number of labels. Ignored when `ax`
        is given.
    {show_parameters}
    """
    known = None if reference_types is None else sorted(_known_set(reference_types))
    truth, pred, _, n_unlabelled = _truth_and_prediction(data, truth_key, pred_key, atac_key)
    table = _confusion_table(truth, pred, normalize=normalize)
    values = table.to_numpy()
    n_rows, n_cols = values.shape

    if ax is None:
        if figsize is None:
            figsize = (2.5 + 0.35 * n_cols, 1.5 + 0.35 * n_rows)
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.get_figure()

    vmax = 1.0 if normalize is not None else max(int(values.max()), 1)
    image = ax.imshow(values, cmap=cmap, vmin=0, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.grid(False)  # a style grid (e.g. scanpy's figure params) would cross the cells
    fig.colorbar(image, ax=ax, label=_COLORBAR_LABELS[normalize])

    ax.set_xticks(np.arange(n_cols), labels=list(table.columns), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(np.arange(n_rows), labels=list(table.index))
    if known is not None:
        for tick_label in ax.get_yticklabels():
            if tick_label.get_text() not in known:
                tick_label.set_color("0.5")
    ax.set_xlabel(f"predicted label ({pred_key})")
    ax.set_ylabel(f"true label ({truth_key})")

    if annotate is None:
        annotate = max(n_rows, n_cols) <= _AUTO_ANNOTATE_MAX_TYPES
    if annotate:
        fontsize = "small" if max(n_rows, n_cols) <= 12 else "x-small"
        for (i, j), value in np.ndenumerate(values):
            text = f"{value:d}" if normalize is None else f"{value:.2f}"
            if float(text) == 0:
                continue
            color = "white" if value > 0.5 * vmax else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=fontsize)

    if title is None:
        score = accuracy(truth, pred, known_types=known)
        n_counted = len(truth) if known is None else int(truth.astype(str).isin(known).sum())
        name = "accuracy" if known is None else "closed-set accuracy"
        left_out = f"; {n_unlabelled:,} without a prediction left out" if n_unlabelled else ""
        title = f"{name} {score:.3f} ({n_counted:,} cells{left_out})"
    ax.set_title(title)

    return finish(fig, ax, show=show, return_fig=return_fig)
