"""Per-data-set input transformation of count matrices, applied batch by batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

InputTransformName = Literal["standardized_log", "log", "binary"]
_TRANSFORMS = ("standardized_log", "log", "binary")
_CHUNK_ROWS = 65_536


def _log_normalised(block: sp.csr_matrix, scale: float) -> sp.csr_matrix:
    """``log1p(x / total * scale)`` of a CSR block, row by row (totals over the block's columns)."""
    totals = np.asarray(block.sum(axis=1), dtype=np.float64).ravel()
    factor = np.divide(scale, totals, out=np.zeros_like(totals), where=totals > 0)
    out = block.astype(np.float32, copy=True)
    out.data = np.log1p(out.data * np.repeat(factor, np.diff(out.indptr)).astype(np.float32))
    return out


def align_columns(counts: sp.spmatrix, names, wanted: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Match a matrix's columns to ``wanted`` names; absent names point to an appended zero column.

    Returns
    -------
    ``(counts, positions, found)``: the CSR matrix (one zero column appended when some names are
    absent), the column of each wanted name in it, and which wanted names were present.
    """
    positions = pd.Index(np.asarray(names, dtype=str)).get_indexer(np.asarray(wanted, dtype=str))
    found = positions >= 0
    counts = sp.csr_matrix(counts)
    if not found.all():
        counts = sp.hstack([counts, sp.csr_matrix((counts.shape[0], 1), dtype=counts.dtype)], format="csr")
        positions = np.where(found, positions, counts.shape[1] - 1)
    return counts, positions, found


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
        cls, x: sp.csr_matrix, columns: np.ndarray, name: InputTransformName = "standardized_log", **kwargs
    ) -> InputTransform:
        """Compute the per-gene statistics of ``x[:, columns]`` (cells x genes CSR) in chunks of cells."""
        transform = cls(name=name, **kwargs)
        if name != "standardized_log":
            return transform
        n_genes = len(columns)
        total, total_sq = np.zeros(n_genes), np.zeros(n_genes)
        for lo in range(0, x.shape[0], _CHUNK_ROWS):
            block = _log_normalised(sp.csr_matrix(x[lo : lo + _CHUNK_ROWS][:, columns]), transform.scale)
            total += np.bincount(block.indices, weights=block.data, minlength=n_genes)
            total_sq += np.bincount(block.indices, weights=block.data.astype(np.float64) ** 2, minlength=n_genes)
        n = max(x.shape[0], 1)
        mean = total / n
        std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
        transform.mean = mean.astype(np.float32)
        transform.std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        return transform

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
    not drown a small reference). The decomposition is a randomised SVD (Halko et al. 2011) that
    streams the cells in dense blocks of 4,096, so memory stays at a few blocks plus
    cells x ``n_pcs`` and genes x ``n_pcs`` arrays, whatever the number of genes.

    Parameters
    ----------
    datasets
        Objects with ``n_cells`` and ``batch(rows)`` (dense transformed rows as a tensor), such as
        the model's per-modality data.
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
    chunks = []
    for data in datasets:
        rows = np.sort(rng.choice(data.n_cells, size=min(data.n_cells, max_cells), replace=False))
        chunks += [(data, rows[lo : lo + 4096]) for lo in range(0, len(rows), 4096)]
    n_rows = sum(len(rows) for _, rows in chunks)

    def blocks():
        for data, rows in chunks:
            yield data.batch(rows).numpy().astype(np.float64)

    mean = sum(block.sum(axis=0) for block in blocks()) / n_rows
    n_genes = mean.shape[0]
    size = min(n_pcs + n_oversamples, n_genes, n_rows)

    def times(right: np.ndarray) -> np.ndarray:  # (Z - mean) @ right, cells x size
        return np.concatenate([(block - mean) @ right for block in blocks()])

    def transposed_times(left: np.ndarray) -> np.ndarray:  # (Z - mean).T @ left, genes x size
        out, start = np.zeros((n_genes, left.shape[1])), 0
        for block in blocks():
            out += (block - mean).T @ left[start : start + len(block)]
            start += len(block)
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
