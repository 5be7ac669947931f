"""The peak view of ATAC cells: an LSI fitted on the training cells that new cells fold into."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sctransfer._matrix import column_selection
from sctransfer.pp._lsi import LSI

logger = logging.getLogger(__name__)

MIN_PEAK_COVERAGE = 0.5


@dataclass
class PeakView:
    """TF-IDF + LSI of a peak matrix, kept so that other cells with the same peaks can be projected.

    Components 2..``n_components`` of the LSI (the first tracks depth) are kept; cell scores are
    standardised per component with the training cells' mean and standard deviation.
    """

    peak_names: np.ndarray
    lsi: LSI
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit_transform(
        cls, counts, peak_names, *, n_components: int = 50, random_state: int = 0
    ) -> tuple[PeakView, np.ndarray]:
        """Fit on cells x peaks counts (in memory or backed).

        Returns the view and the cells' scores (as :meth:`transform` gives them).
        """
        n_components = min(n_components, min(counts.shape) - 1)
        lsi, _ = LSI.fit(counts, n_components, random_state=random_state)
        lsi.components = np.ascontiguousarray(lsi.components[:, 1:])
        lsi.singular_values = lsi.singular_values[1:]
        scores = lsi.transform(counts)
        mean = scores.mean(axis=0).astype(np.float32)
        std = scores.std(axis=0)
        std = np.where(std > 0, std, 1.0).astype(np.float32)
        view = cls(peak_names=np.asarray(peak_names, dtype=str), lsi=lsi, mean=mean, std=std)
        return view, (scores - mean) / std

    @property
    def n_inputs(self) -> int:
        return self.lsi.components.shape[1]

    def transform(self, counts, peak_names) -> np.ndarray | None:
        """Standardised LSI scores of cells x peaks ``counts`` (in memory or backed), peaks matched by name.

        Returns None (and logs why) when fewer than half of the view's peaks are present: the
        peak view is then not used for these cells.
        """
        selection, found = column_selection(peak_names, self.peak_names)
        coverage = float(found.mean())
        if coverage < MIN_PEAK_COVERAGE:
            logger.info(
                "Only %.0f%% of the model's peaks are in this data set; its peak view is not used.", 100 * coverage
            )
            return None
        return (self.lsi.transform(counts, selection) - self.mean) / self.std
