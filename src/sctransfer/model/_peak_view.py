"""The peak view of ATAC cells: an LSI fitted on the training cells that new cells fold into."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sctransfer._intervals import IntervalError
from sctransfer._matrix import column_selection
from sctransfer._validation import user_stacklevel
from sctransfer.pp._lsi import LSI

from ._feature_mapping import map_peaks

#: The peak view is used for cells whose peaks reach at least this share of the view's peaks.
MIN_PEAK_COVERAGE = 0.5


@dataclass
class PeakView:
    """TF-IDF + LSI of a peak matrix, kept so that other cells with the same peaks can be projected.

    Components 2..``n_components`` of the LSI (the first tracks depth) are kept; cell scores are
    standardised per component with the training cells' mean and standard deviation. Other peak
    sets are read through the training peaks' ``coordinates`` (by genomic overlap, as
    :meth:`SCCLIP <sctransfer.model.SCCLIP.feature_mapping>` maps peaks), or by name when either
    side has no coordinates.
    """

    peak_names: np.ndarray
    lsi: LSI
    mean: np.ndarray
    std: np.ndarray
    #: ``chrom``, ``start``, ``end`` of the training peaks (BED style), or None when they could not be read.
    coordinates: pd.DataFrame | None = None

    @classmethod
    def fit_transform(
        cls,
        counts,
        peak_names,
        *,
        coordinates: pd.DataFrame | None = None,
        n_components: int = 50,
        random_state: int = 0,
    ) -> tuple[PeakView, np.ndarray]:
        """Fit on cells x peaks counts (in memory or backed).

        Parameters
        ----------
        counts
            Cells x peaks counts.
        peak_names
            The peaks' names, in column order.
        coordinates
            The peaks' coordinates (as :func:`sctransfer.pp.peak_coordinates` gives them), kept to map
            other peak sets by overlap; None maps them by name.
        n_components
            LSI components (the first is dropped), at most ``min(counts.shape) - 1``.
        random_state
            Seed of the SVD.

        Returns
        -------
        The view and the cells' scores (as :meth:`transform` gives them).
        """
        n_components = min(n_components, min(counts.shape) - 1)
        lsi, _ = LSI.fit(counts, n_components, random_state=random_state)
        lsi.components = np.ascontiguousarray(lsi.components[:, 1:])
        lsi.singular_values = lsi.singular_values[1:]
        scores = lsi.transform(counts)
        mean = scores.mean(axis=0).astype(np.float32)
        std = scores.std(axis=0)
        std = np.where(std > 0, std, 1.0).astype(np.float32)
        view = cls(peak_names=np.asarray(peak_names, dtype=str), lsi=lsi, mean=mean, std=std, coordinates=coordinates)
        return view, (scores - mean) / std

    @property
    def n_inputs(self) -> int:
        return self.lsi.components.shape[1]

    def selection(self, peak_names, coordinates: pd.DataFrame | None = None) -> tuple[sp.csr_matrix | None, float, str]:
        """How other peaks feed the view's: by genomic overlap when both sides have coordinates, else by name.

        Returns
        -------
        ``(selection, coverage, method)``: the other peaks x the view's peaks float32 CSR (the counts
        of every other peak that overlaps a view peak are added to it; None for the view's own peaks
        in its order, read as they are), the share of the view's peaks reached, and how they were
        matched (``"identical"``, ``"name"`` or ``"overlap"``).
        """
        if np.array_equal(np.asarray(peak_names, dtype=str), self.peak_names):
            return None, 1.0, "identical"
        if coordinates is not None and self.coordinates is not None:
            try:
                mapping = map_peaks(coordinates, self.coordinates, new_names=peak_names, model_names=self.peak_names)
            except IntervalError:  # no peak overlaps one of the view
                return sp.csr_matrix((len(peak_names), len(self.peak_names)), dtype=np.float32), 0.0, "overlap"
            return mapping.matrix, mapping.coverage, mapping.method
        selection, found = column_selection(peak_names, self.peak_names)
        return selection, float(found.mean()), "name"

    def transform(self, counts, peak_names, coordinates: pd.DataFrame | None = None) -> np.ndarray | None:
        """Standardised LSI scores of cells x peaks ``counts`` (in memory or backed), peaks mapped by :meth:`selection`.

        Returns None, with a warning, when the peaks reach less than half (:data:`MIN_PEAK_COVERAGE`)
        of the view's: the peak view is then not used for these cells.
        """
        selection, coverage, method = self.selection(peak_names, coordinates)
        if coverage < MIN_PEAK_COVERAGE:
            how = "by name (no peak coordinates)" if method == "name" else "by genomic overlap"
            warnings.warn(
                f"The peaks of these cells reach only {coverage:.0%} of the model's {len(self.peak_names):,} peaks "
                f"(matched {how}; at least {MIN_PEAK_COVERAGE:.0%} are needed), so the model's peak view is not used: "
                "their types are predicted from the gene activity alone. Peaks on another genome build, or peak names "
                "without coordinates (add 'chrom', 'start', 'end' columns to .var), cause this.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
            return None
        return (self.lsi.transform(counts, selection) - self.mean) / self.std
