"""Reliability diagram of transferred labels: accuracy against confidence, per bin of confidence."""

from __future__ import annotations

import matplotlib.pyplot as plt
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from mpl_toolkits.axes_grid1 import make_axes_locatable
from mudata import MuData

from sctransfer._constants import ATAC, KEY_ADDED
from sctransfer.metrics._calibration import _ece_of_table, reliability_table
from sctransfer.metrics._classification import _obs_of

from ._utils import finish, with_show_parameters

DIAGONAL_LABEL = "perfect calibration"


@with_show_parameters
def reliability_diagram(
    data: MuData | AnnData,
    truth_key: str,
    *,
    key_added: str = KEY_ADDED,
    atac_key: str = ATAC,
    n_bins: int = 15,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
) -> Axes | Figure | None:
    """Plot the accuracy of transferred labels against their confidence (a reliability diagram).

    The query cells are binned by confidence into `n_bins` equal-width bins, as in
    :func:`sctransfer.metrics.reliability_table`. Each non-empty bin is drawn as a bar spanning the bin
    whose height is the accuracy of its cells (label ``"accuracy"``), with a point at the cells' mean
    confidence and that accuracy (label ``"mean confidence"``). For a calibrated confidence the points
    lie on the dashed diagonal (label ``"perfect calibration"``). Below, a second Axes sharing the
    confidence axis shows the number of cells in each bin as bars. The title gives the expected
    calibration error (:func:`sctransfer.metrics.expected_calibration_error`) and the number of cells.

    Reads ``obs[truth_key]``, ``obs[f"{key_added}_label"]`` and ``obs[f"{key_added}_confidence"]`` of
    ``mdata[atac_key]`` (or of the :class:`~anndata.AnnData`); cells with a missing true label, label
    or confidence are left out. Writes nothing.

    Parameters
    ----------
    data
        A :class:`~mudata.MuData` after :func:`sctransfer.tl.label_transfer` (the query cells are its
        `atac_key` modality), or an :class:`~anndata.AnnData` of the query cells.
    truth_key
        Column of ``obs`` with the true labels.
    key_added
        The ``key_added`` of :func:`~sctransfer.tl.label_transfer`.
    atac_key
        Modality of the query cells (ignored for an :class:`~anndata.AnnData`).
    n_bins
        Number of equal-width bins of confidence.
    title
        Axes title; ``None``: the ECE and the number of cells.
    figsize
        Size of a new figure in inches; ignored when `ax` is given.
    {show_parameters}

    The cell counts are on the figure's Axes below the returned one (``ax.figure.axes``), made by
    dividing the space of the given or new Axes.
    """
    obs, where = _obs_of(data, atac_key)
    columns = {"truth_key": truth_key, "label": f"{key_added}_label", "confidence": f"{key_added}_confidence"}
    for name, column in columns.items():
        if column not in obs.columns:
            hint = "" if name == "truth_key" else " Run sctransfer.tl.label_transfer first (or pass its key_added)."
            raise KeyError(f"Column {column!r} not found in {where}; available columns: {list(obs.columns)}.{hint}")
    table = reliability_table(obs[truth_key], obs[columns["label"]], obs[columns["confidence"]], n_bins=n_bins)
    filled = table[table["n_cells"] > 0]
    width = 1.0 / n_bins

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize or (4.5, 5.0))
    else:
        fig = ax.get_figure()
    counts_ax = make_axes_locatable(ax).append_axes("bottom", size="30%", pad=0.15, sharex=ax)

    ax.bar(
        filled["bin_lower"],
        filled["accuracy"],
        width=width,
        align="edge",
        color="tab:blue",
        alpha=0.7,
        edgecolor="white",
        label="accuracy",
    )
    ax.plot(
        filled["mean_confidence"], filled["accuracy"], "o", color="tab:orange", markersize=4, label="mean confidence"
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.3", linewidth=1, label=DIAGONAL_LABEL)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.tick_params(labelbottom=False)
    ax.legend(loc="upper left", fontsize="small", frameon=False)

    counts_ax.bar(filled["bin_lower"], filled["n_cells"], width=width, align="edge", color="0.5", edgecolor="white")
    counts_ax.set_ylabel("cells")
    counts_ax.set_xlabel(f"confidence ({columns['confidence']})")

    n_cells = int(table["n_cells"].sum())
    ax.set_title(title if title is not None else f"ECE {_ece_of_table(table):.3f} ({n_cells:,} cells)")

    return finish(fig, ax, show=show, return_fig=return_fig)
