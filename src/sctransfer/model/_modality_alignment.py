"""Canonical alignment: one linear map per modality that brings a contrastive embedding's two modalities together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from sctransfer._constants import ATAC, RNA
from sctransfer._knn import unit_rows

#: Ridge added to each modality's covariance before whitening, as a share of its mean variance.
DEFAULT_RIDGE = 0.3
#: Training pairs per canonical axis: with fewer, canonical correlations of noise approach 1 and the
#: alignment memorises the training pairs, so each modality is first reduced to its principal axes.
CELLS_PER_AXIS = 10


def _principal_axes(centred: np.ndarray, n_axes: int) -> np.ndarray:
    """The ``n_axes`` leading principal axes of centred rows, ``(d, n_axes)`` orthonormal columns."""
    return np.linalg.svd(centred, full_matrices=False)[2][:n_axes].T


def _whitening(centred: np.ndarray, ridge: float) -> np.ndarray:
    """Symmetric inverse square root of the ridge-regularised covariance of centred rows, ``(d, d)``."""
    covariance = centred.T @ centred / max(len(centred) - 1, 1)
    covariance += (
        ridge * max(np.trace(covariance) / len(covariance), np.finfo(np.float64).tiny) * np.eye(len(covariance))
    )
    values, vectors = np.linalg.eigh(covariance)
    return (vectors / np.sqrt(np.maximum(values, np.finfo(np.float64).tiny))) @ vectors.T


@dataclass
class CanonicalAlignment:
    """Maps each modality's embedding onto the axes the two modalities share (regularised CCA).

    A contrastive (CLIP) loss only asks that a cell's RNA and ATAC embeddings be more similar to
    each other than to other cells'; it leaves each modality free to keep its own directions, so
    the modalities form two separate clouds (the "modality gap"; Liang et al. 2022), and a joint
    UMAP or clustering splits them by modality. Fitted on the paired training cells, this map
    centres each modality's embedding, keeps its principal axes (at most one per ``CELLS_PER_AXIS``
    (10) training pairs, so that a small training set is not memorised), whitens it (covariance plus
    ``ridge`` times its mean variance), rotates it onto the canonical axes (the pairs of directions along which RNA and
    ATAC embeddings of the same cells correlate most) and weights each axis by its canonical
    correlation: shared axes keep their weight, axes that only one modality varies along fade out.
    The result is L2-normalised. Ranking partners across modalities is essentially unchanged, while
    cells of both modalities mix (measurements on the :doc:`/benchmarks` page).

    Parameters
    ----------
    rna_mean, atac_mean
        Mean training embedding of each modality, ``(n_dims,)``.
    rna_projection, atac_projection
        Principal axes times whitening times canonical directions times correlations,
        ``(n_dims, n_dims)``; columns past the ``n_axes`` canonical axes are zero, so the aligned
        embedding keeps the width of the input.
    correlations
        Canonical correlations of the training pairs, ``(n_axes,)``, descending, in ``[0, 1]``;
        ``n_axes = min(n_dims, n_cells // CELLS_PER_AXIS)`` (at least 1).
    """

    rna_mean: np.ndarray
    atac_mean: np.ndarray
    rna_projection: np.ndarray
    atac_projection: np.ndarray
    correlations: np.ndarray

    @classmethod
    def fit(cls, rna: np.ndarray, atac: np.ndarray, *, ridge: float = DEFAULT_RIDGE) -> CanonicalAlignment:
        """Fit on paired embeddings: row ``i`` of ``rna`` and of ``atac`` is the same cell.

        Parameters
        ----------
        rna, atac
            Cells x dimensions, the same shape.
        ridge
            Covariance regularisation, as a share of the mean variance (> 0).

        Raises
        ------
        ValueError
            Shapes that differ, fewer than two cells, values that are not finite, or ``ridge <= 0``.
        """
        rna, atac = np.asarray(rna, dtype=np.float64), np.asarray(atac, dtype=np.float64)
        if rna.ndim != 2 or rna.shape != atac.shape:
            raise ValueError(
                f"rna and atac must be paired 2-D embeddings of one shape, got {rna.shape} and {atac.shape}."
            )
        n_cells, n_dims = rna.shape
        if n_cells < 2:
            raise ValueError(f"The alignment is fitted on at least 2 paired cells, got {n_cells}.")
        if not (np.isfinite(rna).all() and np.isfinite(atac).all()):
            raise ValueError("The embeddings to align contain NaN or infinite values (a diverged model?).")
        if not ridge > 0:
            raise ValueError(f"ridge must be positive, got {ridge}.")
        n_axes = max(1, min(n_dims, n_cells // CELLS_PER_AXIS))
        means, whitened, maps = [], [], []
        for embedding in (rna, atac):
            mean = embedding.mean(axis=0)
            centred = embedding - mean
            axes = _principal_axes(centred, n_axes)
            to_white = axes @ _whitening(centred @ axes, ridge)
            means.append(mean.astype(np.float32))
            whitened.append(centred @ to_white)
            maps.append(to_white)
        rna_axes, correlations, atac_axes = np.linalg.svd(whitened[0].T @ whitened[1] / (n_cells - 1))
        correlations = np.clip(correlations, 0.0, 1.0)
        projections = []
        for to_white, canonical in ((maps[0], rna_axes), (maps[1], atac_axes.T)):
            projection = np.zeros((n_dims, n_dims), dtype=np.float32)
            projection[:, :n_axes] = to_white @ canonical * correlations
            projections.append(projection)
        return cls(
            rna_mean=means[0],
            atac_mean=means[1],
            rna_projection=projections[0],
            atac_projection=projections[1],
            correlations=correlations.astype(np.float32),
        )

    def transform(self, embedding: np.ndarray, modality: Literal["rna", "atac"]) -> np.ndarray:
        """The aligned, L2-normalised embedding of cells of one modality, ``(n_cells, n_dims)`` float32.

        Raises
        ------
        ValueError
            An unknown ``modality``, or an embedding of another width than the one fitted.
        """
        if modality not in (RNA, ATAC):
            raise ValueError(f"modality must be 'rna' or 'atac', got {modality!r}.")
        mean, projection = (
            (self.rna_mean, self.rna_projection) if modality == RNA else (self.atac_mean, self.atac_projection)
        )
        embedding = np.asarray(embedding, dtype=np.float32)
        if embedding.ndim != 2 or embedding.shape[1] != len(mean):
            raise ValueError(
                f"The alignment maps embeddings of {len(mean)} dimensions (cells x dimensions), got shape "
                f"{embedding.shape}."
            )
        return unit_rows((embedding - mean) @ projection)
