"""TF-IDF and latent semantic indexing (LSI) of peak matrices, streamed over blocks of cells."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from sctransfer._matrix import column_sums, row_blocks, stack_rows

#: Above this many cells, the LSI components are fitted on this many randomly chosen cells and
#: every cell is projected on them.
LSI_MAX_FIT_CELLS = 100_000


def inverse_document_frequency(x) -> np.ndarray:
    """Number of cells divided by each peak's total counts (0 for peaks without counts); streamed."""
    peak_totals = column_sums(x)
    return np.divide(x.shape[0], peak_totals, out=np.zeros_like(peak_totals), where=peak_totals > 0)


def tfidf(x: sp.spmatrix | np.ndarray, *, scale_factor: float = 1e4, idf: np.ndarray | None = None) -> sp.csr_matrix:
    """TF-IDF of an in-memory cells x peaks count matrix, ``log1p(tf * idf * scale_factor)``, sparse float32.

    ``tf`` is each cell's counts divided by its total; ``idf`` is the number of cells divided by
    each peak's total counts (Signac's default, method 1), or the given ``idf`` (to place new
    cells in the space of a fitted LSI). Peaks with no counts stay zero.
    """
    x = sp.csr_matrix(x, dtype=np.float32)
    cell_totals = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
    idf = inverse_document_frequency(x) if idf is None else np.asarray(idf, dtype=np.float64)
    inv_depth = np.divide(1.0, cell_totals, out=np.zeros_like(cell_totals), where=cell_totals > 0)
    values = x.data.astype(np.float64) * np.repeat(inv_depth, np.diff(x.indptr)) * idf[x.indices] * scale_factor
    return sp.csr_matrix((np.log1p(values).astype(np.float32), x.indices.copy(), x.indptr.copy()), shape=x.shape)


@dataclass
class LSI:
    """A fitted TF-IDF + truncated SVD of a peak matrix, which projects any cells with the same peaks.

    ``components`` (peaks x ``n_components``) are the right singular vectors of the TF-IDF
    matrix; a cell's scores are its TF-IDF row times ``components`` (the left singular vector
    times the singular value for a cell of the fit).
    """

    idf: np.ndarray
    components: np.ndarray
    singular_values: np.ndarray

    @classmethod
    def fit(
        cls, x, n_components: int, *, max_fit_cells: int = LSI_MAX_FIT_CELLS, random_state: int = 0
    ) -> tuple[LSI, np.ndarray | None]:
        """Fit on cells x peaks counts (in memory or backed).

        The IDF uses every cell. Up to ``max_fit_cells`` cells the SVD is that of the whole
        TF-IDF matrix; above, it is fitted on ``max_fit_cells`` randomly chosen cells (read block
        by block), so that time and memory of the fit do not grow with the number of cells.

        Returns
        -------
        ``(lsi, scores)``: ``scores`` are the left singular vectors times the singular values when
        every cell was in the fit, else None.
        """
        idf = inverse_document_frequency(x)
        n_cells = x.shape[0]
        if n_cells <= max_fit_cells:
            sampled = False
            matrix = stack_rows([tfidf(block, idf=idf) for _, block in row_blocks(x)])
        else:
            sampled = True
            fit_rows = np.sort(np.random.default_rng(random_state).choice(n_cells, max_fit_cells, replace=False))
            blocks = []
            for rows, block in row_blocks(x):
                chosen = fit_rows[(fit_rows >= rows.start) & (fit_rows < rows.stop)] - rows.start
                blocks.append(tfidf(block[chosen], idf=idf))
            matrix = stack_rows(blocks)
        u, s, vt = randomized_svd(matrix, n_components=n_components, n_iter=4, random_state=random_state)
        lsi = cls(
            idf=idf.astype(np.float32),
            components=np.ascontiguousarray(vt.T, dtype=np.float32),
            singular_values=s.astype(np.float32),
        )
        return lsi, None if sampled else (u * s).astype(np.float32)

    @classmethod
    def fit_transform(
        cls, x, n_components: int, *, max_fit_cells: int = LSI_MAX_FIT_CELLS, random_state: int = 0
    ) -> tuple[LSI, np.ndarray]:
        """:meth:`fit`, and every cell's scores (from the SVD, or projected when the fit was on a sample)."""
        lsi, scores = cls.fit(x, n_components, max_fit_cells=max_fit_cells, random_state=random_state)
        return lsi, lsi.transform(x) if scores is None else scores

    def transform(self, x, selection: sp.spmatrix | None = None) -> np.ndarray:
        """Scores (cells x components, float32) of cells x peaks counts, in memory or backed, block by block.

        ``selection`` (the matrix's peaks x the LSI's peaks, see
        :func:`sctransfer._matrix.column_selection`) maps other peak sets onto the LSI's.
        """
        blocks = [
            np.asarray(tfidf(block if selection is None else block @ selection, idf=self.idf) @ self.components)
            for _, block in row_blocks(x)
        ]
        return np.concatenate(blocks).astype(np.float32, copy=False)
