"""What every plotting function does last: scanpy's ``show`` / ``return_fig`` conventions."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

SHOW_PARAMETERS = """ax
        Axes to draw on; a new figure is created when ``None``.
    show
        Show the plot; ``None`` follows :attr:`scanpy.settings.autoshow`.
    return_fig
        Return the :class:`~matplotlib.figure.Figure` instead of the Axes (and do not show).

    Returns
    -------
    The :class:`~matplotlib.figure.Figure` if `return_fig`, else the :class:`~matplotlib.axes.Axes` if
    the plot is not shown, else ``None``."""


def with_show_parameters(function):
    """Fill the shared ``ax`` / ``show`` / ``return_fig`` descriptions into ``function``'s docstring."""
    function.__doc__ = function.__doc__.replace("{show_parameters}", SHOW_PARAMETERS)
    return function


def finish(fig: Figure, ax: Axes, *, show: bool | None, return_fig: bool) -> Axes | Figure | None:
    """The figure if ``return_fig``; else show the plot (``show=None``: scanpy's autoshow), or return the Axes."""
    if return_fig:
        return fig
    if show is None:
        from scanpy import settings

        show = settings.autoshow
    if show:
        plt.show()
        return None
    return ax
