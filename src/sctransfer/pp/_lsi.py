"""TF-IDF and latent semantic indexing (LSI) of peak matrices, streamed over blocks of cells."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from sctransfer._matrix import column_sums, empty_rows, row_blocks, stack_rows
from sctransfer._validation import check_counts, user_stacklevel

#: Above this many cells, the LSI components are fitted on this many randomly chosen cells and
#: every cell is projected on them.
LSI_MAX_FIT_CELLS = 100_000


def check_peak_matrix(x, n_components: int, *, what: str = "the peak matrix", argument: str = "layer") -> np.ndarray:
    """Check a cells x peaks matrix before its TF-IDF / LSI, in the user's terms; warn about cells without counts.

    Parameters
    ----------
    x
        Cells x peaks matrix: any scipy sparse format, a numpy array or a backed matrix.
    n_components
        LSI components to compute (including the first).
    what
        The matrix, for messages (``"modality 'atac' .X"``).
    argument
        The caller's argument that selects the layer, named in hints (``"layer"``, ``"atac_layer"``).

    Returns
    -------
    ``(n_cells,)`` bool mask of the cells without any count.

    Raises
    ------
    TypeError, ValueError
        The values are not counts (see :func:`sctransfer._validation.check_counts`); ``n_components``
        is below 2; there are not more cells, or not more peaks, than ``n_components`` (a truncated SVD
        has fewer components than either dimension).

    Warns
    -----
    UserWarning
        Some cells have no counts: their TF-IDF row and LSI scores are all zero, so their peak-space
        neighbours are arbitrary.
    """
    check_counts(x, what=what, argument=argument)
    if n_components < 2:
        raise ValueError(
            f"The LSI needs at least 2 components (the first, which tracks depth, is dropped); got {n_components}."
        )
    n_cells, n_peaks = x.shape
    for count, unit in ((n_cells, "cells"), (n_peaks, "peaks")):
        if count <= n_components:
            raise ValueError(
                f"{what} has {count:,} {unit}, too few for the TF-IDF / LSI of the peaks: its {n_components} "
                f"components need at least {n_components + 1} {unit} (an SVD has fewer components than {unit}). "
                f"Use at least {n_components + 1} {unit}{', e.g. pool several samples' if unit == 'cells' else ''}, "
                "or ask for fewer components where the function takes n_components=."
            )
    empty = empty_rows(x)
    if empty.any():
        warnings.warn(
            f"{int(empty.sum()):,} of {n_cells:,} cells of {what} have no counts (rows of zeros): their LSI scores are "
            "all zero and their peak-space neighbours arbitrary. Remove them first, e.g. "
            "sc.pp.filter_cells(adata, min_counts=1).",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    return empty


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
