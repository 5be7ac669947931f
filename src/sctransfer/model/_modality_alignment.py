"""Canonical alignment: one linear map per modality that brings a contrastive embedding's two modalities together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from sctransfer._constants import ATAC, RNA
from sctransfer._knn import unit_rows

#: Ridge added to each modality's covariance before whitening, as a share of its mean variance.
DEFAULT_RIDGE = 0.3


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
    centres each modality's embedding, whitens it (covariance plus ``ridge`` times its mean
    variance), rotates it onto the canonical axes (the pairs of directions along which RNA and
    ATAC embeddings of the same cells correlate most) and weights each axis by its canonical
    correlation: shared axes keep their weight, axes that only one modality varies along fade out.
    The result is L2-normalised. Ranking partners across modalities is essentially unchanged, while
    cells of both modalities mix (measurements on the :doc:`/benchmarks` page).

    Attributes
    ----------
    rna_mean, atac_mean
        Mean training embedding of each modality, ``(n_dims,)``.
    rna_projection, atac_projection
        Whitening times canonical directions times correlations, ``(n_dims, n_axes)``.
    correlations
        Canonical correlations of the training pairs, ``(n_axes,)``, descending, in ``[0, 1]``.
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
            Shapes that differ, fewer than two cells, or ``ridge <= 0``.
        """
        rna, atac = np.asarray(rna, dtype=np.float64), np.asarray(atac, dtype=np.float64)
        if rna.ndim != 2 or rna.shape != atac.shape:
            raise ValueError(
                f"rna and atac must be paired 2-D embeddings of one shape, got {rna.shape} and {atac.shape}."
            )
        if rna.shape[0] < 2:
            raise ValueError(f"The alignment is fitted on at least 2 paired cells, got {rna.shape[0]}.")
        if not ridge > 0:
            raise ValueError(f"ridge must be positive, got {ridge}.")
        rna_mean, atac_mean = rna.mean(axis=0), atac.mean(axis=0)
        rna_white, atac_white = _whitening(rna - rna_mean, ridge), _whitening(atac - atac_mean, ridge)
        cross = ((rna - rna_mean) @ rna_white).T @ ((atac - atac_mean) @ atac_white) / (rna.shape[0] - 1)
        rna_axes, correlations, atac_axes = np.linalg.svd(cross)
        correlations = np.clip(correlations, 0.0, 1.0)
        return cls(
            rna_mean=rna_mean.astype(np.float32),
            atac_mean=atac_mean.astype(np.float32),
            rna_projection=(rna_white @ rna_axes * correlations).astype(np.float32),
            atac_projection=(atac_white @ atac_axes.T * correlations).astype(np.float32),
            correlations=correlations.astype(np.float32),
        )

    def transform(self, embedding: np.ndarray, modality: Literal["rna", "atac"]) -> np.ndarray:
        """The aligned, L2-normalised embedding of cells of one modality, ``(n_cells, n_axes)`` float32."""
        if modality not in (RNA, ATAC):
            raise ValueError(f"modality must be 'rna' or 'atac', got {modality!r}.")
        mean, projection = (
            (self.rna_mean, self.rna_projection) if modality == RNA else (self.atac_mean, self.atac_projection)
        )
        return unit_rows((np.asarray(embedding, dtype=np.float32) - mean) @ projection)
