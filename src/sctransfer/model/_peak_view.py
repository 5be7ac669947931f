"""The peak view of ATAC cells: an LSI fitted on the training cells that new cells fold into."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from sctransfer.pp._neighbors import inverse_document_frequency, tfidf

from ._transform import align_columns

logger = logging.getLogger(__name__)

MIN_PEAK_COVERAGE = 0.5
_CHUNK_CELLS = 65_536


@dataclass
class PeakView:
    """TF-IDF + LSI of a peak matrix, kept so that other cells with the same peaks can be projected.

    Components 2..``n_components`` of the SVD (the first tracks depth) are kept; cell scores are
    standardised per component with the training cells' mean and standard deviation.
    """

    peak_names: np.ndarray
    idf: np.ndarray
    components: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, counts: sp.spmatrix, peak_names, *, n_components: int = 50, random_state: int = 0) -> PeakView:
        """Fit on cells x peaks counts; returns the view (see :meth:`transform` for the scores)."""
        counts = sp.csr_matrix(counts)
        n_components = min(n_components, min(counts.shape) - 1)
        idf = inverse_document_frequency(counts)
        _, _, vt = randomized_svd(tfidf(counts, idf=idf), n_components, n_iter=4, random_state=random_state)
        view = cls(
            peak_names=np.asarray(peak_names, dtype=str),
            idf=idf.astype(np.float32),
            components=np.ascontiguousarray(vt[1:].T, dtype=np.float32),
            mean=np.zeros(n_components - 1, dtype=np.float32),
            std=np.ones(n_components - 1, dtype=np.float32),
        )
        scores = view._project(counts)
        view.mean = scores.mean(axis=0).astype(np.float32)
        std = scores.std(axis=0)
        view.std = np.where(std > 0, std, 1.0).astype(np.float32)
        return view

    @property
    def n_inputs(self) -> int:
        return self.components.shape[1]

    def _project(self, counts: sp.csr_matrix) -> np.ndarray:
        blocks = [
            np.asarray(tfidf(counts[lo : lo + _CHUNK_CELLS], idf=self.idf) @ self.components)
            for lo in range(0, counts.shape[0], _CHUNK_CELLS)
        ]
        return np.concatenate(blocks).astype(np.float32)

    def transform(self, counts: sp.spmatrix, peak_names) -> np.ndarray | None:
        """Standardised LSI scores of cells x peaks ``counts``, peaks matched to the view's by name.

        Returns None (and logs why) when fewer than half of the view's peaks are present: the
        peak view is then not used for these cells.
        """
        counts, positions, found = align_columns(counts, peak_names, self.peak_names)
        coverage = float(found.mean())
        if coverage < MIN_PEAK_COVERAGE:
            logger.info(
                "Only %.0f%% of the model's peaks are in this data set; its peak view is not used.", 100 * coverage
            )
            return None
        return (self._project(counts[:, positions]) - self.mean) / self.std
