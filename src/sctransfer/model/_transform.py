"""Per-data-set input transformation of count matrices, applied batch by batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

from sctransfer._matrix import row_blocks

InputTransformName = Literal["standardized_log", "log", "binary"]
_TRANSFORMS = ("standardized_log", "log", "binary")


def _log_normalised(block: sp.csr_matrix, scale: float) -> sp.csr_matrix:
    """``log1p(x / total * scale)`` of a CSR block, row by row (totals over the block's columns)."""
    totals = np.asarray(block.sum(axis=1), dtype=np.float64).ravel()
    factor = np.divide(scale, totals, out=np.zeros_like(totals), where=totals > 0)
    out = block.astype(np.float32, copy=True)
    out.data = np.log1p(out.data * np.repeat(factor, np.diff(out.indptr)).astype(np.float32))
    return out


@dataclass
class InputTransform:
    """How counts become network input, with the statistics of one data set.

    ``"standardized_log"``: ``log1p`` of counts normalised to ``scale`` per cell, then each gene
    centred and scaled to unit variance *within its own data set* (clipped to +-``clip``), which
    removes gene-level differences between RNA and gene activity; ``"log"``: the log-normalised
    values only; ``"binary"``: ``x > 0`` (the official scNCL default).
    """

    name: InputTransformName = "standardized_log"
    scale: float = 1e4
    clip: float = 10.0
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.name not in _TRANSFORMS:
            raise ValueError(f"input_transform must be one of {_TRANSFORMS}, got {self.name!r}.")

    @classmethod
    def fit(
        cls, x, selection: sp.spmatrix | None = None, name: InputTransformName = "standardized_log", **kwargs
    ) -> InputTransform:
        """Compute the per-gene statistics of cells x features ``x`` (any matrix, backed too), streamed.

        ``selection`` (features x genes, see :func:`sctransfer._matrix.column_selection`) picks and
        orders the genes; ``None`` takes the columns as they are.
        """
        transform = cls(name=name, **kwargs)
        if name != "standardized_log":
            return transform
        n_genes = x.shape[1] if selection is None else selection.shape[1]
        total, total_sq = np.zeros(n_genes), np.zeros(n_genes)
        for _, block in row_blocks(x):
            block = _log_normalised(block if selection is None else block @ selection, transform.scale)
            total += np.bincount(block.indices, weights=block.data, minlength=n_genes)
            total_sq += np.bincount(block.indices, weights=block.data.astype(np.float64) ** 2, minlength=n_genes)
        n = max(x.shape[0], 1)
        mean = total / n
        std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
        transform.mean = mean.astype(np.float32)
        transform.std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        return transform

    def decomposed(self, rows: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
        """The transformed rows as ``offset + sparse`` without densifying: ``self(rows) == offset + sparse.toarray()``.

        ``offset`` (one value per gene) is what a zero count becomes; ``sparse`` holds, at the
        non-zero counts, the difference to it. Linear maps of the input (the joint PCA) can then be
        applied to the sparse part and to the offset separately.
        """
        if self.name == "binary":
            values = sp.csr_matrix(rows, dtype=np.float32, copy=True)
            values.data = (values.data > 0).astype(np.float32)
            return values, np.zeros(rows.shape[1], dtype=np.float32)
        values = _log_normalised(rows, self.scale)
        if self.name == "log":
            return values, np.zeros(rows.shape[1], dtype=np.float32)
        offset = np.clip(-self.mean / self.std, -self.clip, self.clip)
        genes = values.indices
        values.data = np.clip((values.data - self.mean[genes]) / self.std[genes], -self.clip, self.clip) - offset[genes]
        return values, offset.astype(np.float32)

    def __call__(self, rows: sp.csr_matrix) -> np.ndarray:
        """Dense float32 network input for a few rows (the only place a batch is densified)."""
        if self.name == "binary":
            return (rows.toarray() > 0).astype(np.float32)
        dense = _log_normalised(rows, self.scale).toarray()
        if self.name == "log":
            return dense
        dense -= self.mean
        dense /= self.std
        np.clip(dense, -self.clip, self.clip, out=dense)
        return dense


def joint_pca(
    datasets: list,
    n_pcs: int,
    *,
    max_cells: int = 20_000,
    n_oversamples: int = 10,
    n_power_iterations: int = 4,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """PCA of several data sets' transformed inputs together (same genes, same order).

    Each data set contributes at most ``max_cells`` randomly chosen cells (so a large query does
    not drown a small reference). The decomposition is a randomised SVD (Halko et al. 2011) of
    the centred inputs, kept sparse: each data set's transformed rows are ``offset + sparse``
    (:meth:`InputTransform.decomposed`), so every product with the centred matrix is a sparse
    product plus a rank-one correction, and memory stays at the sampled non-zeros plus
    cells x ``n_pcs`` and genes x ``n_pcs`` arrays, whatever the number of genes.

    Parameters
    ----------
    datasets
        Objects with ``n_cells`` and ``decomposed(rows)`` (the ``(sparse, offset)`` of the
        transformed rows), such as the model's per-modality data.
    n_pcs
        Number of components.
    max_cells
        Cells sampled per data set.
    n_oversamples, n_power_iterations
        Accuracy settings of the randomised SVD.
    random_state
        Seed of the sampling and the SVD.

    Returns
    -------
    ``(mean, components)``: the genes' mean (float32) and a genes x ``n_pcs`` projection, scaled
    so that the first component's scores have unit standard deviation.
    """
    rng = np.random.default_rng(random_state)
    parts = []
    for data in datasets:
        rows = np.sort(rng.choice(data.n_cells, size=min(data.n_cells, max_cells), replace=False))
        sparse, offset = data.decomposed(rows)
        parts.append((sp.csr_matrix(sparse, dtype=np.float64), offset.astype(np.float64)))
    n_rows = sum(sparse.shape[0] for sparse, _ in parts)
    mean = sum(np.asarray(sparse.sum(axis=0)).ravel() + sparse.shape[0] * offset for sparse, offset in parts) / n_rows
    n_genes = mean.shape[0]
    size = min(n_pcs + n_oversamples, n_genes, n_rows)

    def times(right: np.ndarray) -> np.ndarray:  # (Z - mean) @ right, cells x size
        return np.concatenate([sparse @ right + (offset - mean) @ right for sparse, offset in parts])

    def transposed_times(left: np.ndarray) -> np.ndarray:  # (Z - mean).T @ left, genes x size
        out, start = np.zeros((n_genes, left.shape[1])), 0
        for sparse, offset in parts:
            block = left[start : start + sparse.shape[0]]
            out += sparse.T @ block + np.outer(offset - mean, block.sum(axis=0))
            start += sparse.shape[0]
        return out

    basis = times(rng.standard_normal((n_genes, size)))
    for _ in range(n_power_iterations):
        basis, _ = np.linalg.qr(basis)
        gene_basis, _ = np.linalg.qr(transposed_times(basis))
        basis = times(gene_basis)
    basis, _ = np.linalg.qr(basis)
    small = transposed_times(basis).T  # size x genes
    left, singular, vt = np.linalg.svd(small, full_matrices=False)
    n_pcs = min(n_pcs, size)
    scores = (basis @ left[:, :n_pcs]) * singular[:n_pcs]
    # deterministic signs: each component's largest-magnitude cell score is positive (as sklearn's svd_flip)
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(n_pcs)])
    signs[signs == 0] = 1.0
    components = vt[:n_pcs].T * signs
    first_scores = scores[:, 0] * signs[0]
    scale = float(first_scores.std())
    components = components / (scale if scale > 0 else 1.0)
    return mean.astype(np.float32), components.astype(np.float32)
