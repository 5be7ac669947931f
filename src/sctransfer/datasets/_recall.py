"""A re-called peak set: the same cells seen through shifted, partly missing, renamed peaks."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from sctransfer._intervals import peak_coordinates

_SEPARATORS = {"colon": (":", "-"), "dash": ("-", "-"), "underscore": ("_", "_")}


def recall_peaks(
    atac: AnnData,
    *,
    drop_fraction: float = 0.1,
    shift: tuple[int, int] = (10, 50),
    name_style: Literal["colon", "dash", "underscore"] = "colon",
    random_state: int = 0,
) -> AnnData:
    """Imitate a second peak calling on the same cells, to test zero-shot use across peak sets.

    Each kept peak moves by a random number of base pairs in ``shift`` (either direction), a
    share ``drop_fraction`` of the peaks is removed, and the peaks are renamed in another style.
    The counts of the kept peaks are unchanged, so a method's result on the re-called set can be
    compared with its result on the original one.

    Parameters
    ----------
    atac
        Cells x peaks AnnData with readable peak coordinates (names or ``var`` columns).
    drop_fraction
        Share of peaks removed, in ``[0, 1)``.
    shift
        Smallest and largest shift in base pairs.
    name_style
        ``"colon"`` (``chr1:100-200``), ``"dash"`` (``chr1-100-200``) or ``"underscore"``
        (``chr1_100_200``).
    random_state
        Seed of the choice of peaks and shifts.

    Returns
    -------
    A new AnnData: the same cells and ``.obs``, ``.X`` holding the kept peaks' counts (and
    ``.layers`` likewise), ``var_names`` in the new style, no ``var`` columns.
    """
    if not 0.0 <= drop_fraction < 1.0:
        raise ValueError(f"drop_fraction must be in [0, 1), got {drop_fraction}.")
    if name_style not in _SEPARATORS:
        raise ValueError(f"name_style must be one of {list(_SEPARATORS)}, got {name_style!r}.")
    low, high = shift
    if not 0 <= low <= high:
        raise ValueError(f"shift must be (smallest, largest) with 0 <= smallest <= largest, got {shift}.")
    coords = peak_coordinates(atac)
    rng = np.random.default_rng(random_state)
    keep = np.sort(rng.choice(atac.n_vars, size=round((1.0 - drop_fraction) * atac.n_vars), replace=False))
    moves = rng.integers(low, high + 1, size=len(keep)) * rng.choice([-1, 1], size=len(keep))
    kept = coords.iloc[keep]
    start = np.maximum(kept["start"].to_numpy() + moves, 0)
    end = np.maximum(kept["end"].to_numpy() + moves, start + 1)
    first, second = _SEPARATORS[name_style]
    names = [f"{c}{first}{s}{second}{e}" for c, s, e in zip(kept["chrom"], start, end, strict=True)]
    return AnnData(
        X=atac.X[:, keep],
        obs=atac.obs.copy(),
        var=pd.DataFrame(index=pd.Index(names)),
        layers={key: value[:, keep] for key, value in atac.layers.items()},
    )
