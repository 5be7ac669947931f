"""A linear member of scCLIP's joint embedding: regularised CCA of the RNA's principal components and the peaks' LSI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

from sctransfer._constants import ATAC, RNA
from sctransfer._knn import unit_rows
from sctransfer.pp._lsi import LSI, tfidf

from ._modality_alignment import DEFAULT_RIDGE, CanonicalAlignment
from ._scncl_inputs import ModalityData, joint_pca
from ._transform import InputTransform

#: LSI components of the peaks fitted (the first, which tracks sequencing depth, is dropped), and principal
#: components of the genes kept: one fewer, so that both modalities enter the CCA with the same width.
LINEAR_COMPONENTS = 50
#: Fewest peaks (and cells) the member is fitted on: its LSI drops the first of at least two components.
MIN_LINEAR_PEAKS = 3
#: The genes' normalisation: log1p of counts scaled to 10,000 per cell (no fitted statistics).
_LOG = InputTransform(name="log")


@dataclass
class LinearMember:
    """Regularised CCA of the genes' principal components and the peaks' LSI, for new cells of either modality.

    Fitted on paired counts (in the model's feature order): the genes are log-normalised
    (``log1p(counts / total * 10,000)``) and reduced to their ``LINEAR_COMPONENTS - 1`` (49) leading
    principal components; the peaks to their TF-IDF LSI components 2 to ``LINEAR_COMPONENTS`` (as
    :func:`sctransfer.pp.tfidf_lsi` computes them; the first tracks depth);
    a :class:`~sctransfer.model.CanonicalAlignment` of the two (ridge 0.3, axes weighted by their
    canonical correlation) maps both onto their shared axes. The three linear steps are stored composed,
    one projection per modality, so that a cell's embedding is
    ``unit(normalised_counts @ projection - offset)``.

    Parameters
    ----------
    rna_projection
        Log-normalised genes to the canonical axes, ``(n_genes, n_axes)``.
    rna_offset
        What the centring of both steps subtracts, ``(n_axes,)``.
    atac_idf
        Inverse document frequency of the peaks over the fitted cells, ``(n_peaks,)``.
    atac_projection
        TF-IDF of the peaks to the canonical axes, ``(n_peaks, n_axes)``.
    atac_offset
        ``(n_axes,)``, as ``rna_offset``.
    correlations
        Canonical correlations of the fitted pairs, ``(n_axes,)``, descending.
    """

    rna_projection: np.ndarray
    rna_offset: np.ndarray
    atac_idf: np.ndarray
    atac_projection: np.ndarray
    atac_offset: np.ndarray
    correlations: np.ndarray

    @property
    def n_axes(self) -> int:
        """Width of the member's embedding."""
        return len(self.correlations)

    @classmethod
    def fit(
        cls, rna: sp.csr_matrix, atac: sp.csr_matrix, *, ridge: float = DEFAULT_RIDGE, random_state: int = 0
    ) -> LinearMember:
        """Fit on paired counts: row ``i`` of ``rna`` (cells x model genes) and of ``atac`` (x model peaks) is one cell.

        Parameters
        ----------
        rna, atac
            In-memory CSR counts of the same cells, in the model's feature order.
        ridge
            Covariance regularisation of the CCA (:meth:`CanonicalAlignment.fit`).
        random_state
            Seed of the randomised SVDs of the PCA and the LSI.

        Raises
        ------
        ValueError
            Fewer than 3 cells or peaks, or a different number of cells in the two matrices.
        """
        n_cells = rna.shape[0]
        if atac.shape[0] != n_cells:
            raise ValueError(f"rna and atac must hold the same cells, got {n_cells} and {atac.shape[0]} rows.")
        n_lsi = min(LINEAR_COMPONENTS, n_cells - 1, atac.shape[1] - 1, rna.shape[1] + 1)
        if n_lsi < 2:
            raise ValueError(
                f"The linear member needs at least {MIN_LINEAR_PEAKS} cells and {MIN_LINEAR_PEAKS} peaks, got "
                f"{n_cells} cells and {atac.shape[1]} peaks."
            )
        genes = ModalityData(counts=rna, selection=sp.identity(rna.shape[1], format="csr"), transform=_LOG)
        gene_mean, gene_components = joint_pca([genes], n_lsi - 1, max_cells=n_cells, random_state=random_state)
        gene_scores = _LOG.sparse(rna) @ gene_components - gene_mean @ gene_components
        lsi, peak_scores = LSI.fit(atac, n_lsi, max_fit_cells=n_cells, random_state=random_state)
        alignment = CanonicalAlignment.fit(gene_scores, peak_scores[:, 1:], ridge=ridge)
        n_axes = len(alignment.correlations)
        rna_cca = alignment.rna_projection[:, :n_axes].astype(np.float64)
        atac_cca = alignment.atac_projection[:, :n_axes].astype(np.float64)
        peak_components = lsi.components[:, 1:].astype(np.float64)
        return cls(
            rna_projection=(gene_components.astype(np.float64) @ rna_cca).astype(np.float32),
            rna_offset=((gene_mean @ gene_components + alignment.rna_mean) @ rna_cca).astype(np.float32),
            atac_idf=lsi.idf,
            atac_projection=(peak_components @ atac_cca).astype(np.float32),
            atac_offset=(alignment.atac_mean @ atac_cca).astype(np.float32),
            correlations=alignment.correlations,
        )

    def transform(self, counts: sp.csr_matrix, modality: Literal["rna", "atac"]) -> np.ndarray:
        """The L2-normalised embedding, ``(n_cells, n_axes)`` float32, of counts in the model's feature order.

        Raises
        ------
        ValueError
            An unknown ``modality``, or counts of another number of features than the model's.
        """
        if modality not in (RNA, ATAC):
            raise ValueError(f"modality must be 'rna' or 'atac', got {modality!r}.")
        projection, offset = (
            (self.rna_projection, self.rna_offset) if modality == RNA else (self.atac_projection, self.atac_offset)
        )
        if counts.shape[1] != len(projection):
            raise ValueError(
                f"The linear member reads the model's {len(projection)} {modality} features, got {counts.shape[1]}."
            )
        values = _LOG.sparse(counts) if modality == RNA else tfidf(counts, idf=self.atac_idf)
        return unit_rows(np.asarray(values @ projection, dtype=np.float32) - offset)


def fuse(network: np.ndarray, linear: np.ndarray, weight: float) -> np.ndarray:
    """The joint embedding with a linear member: ``[sqrt(1 - weight) * unit(network), sqrt(weight) * unit(linear)]``.

    Rows stay L2-normalised, and the cosine similarity of two cells is the weighted mean of their two
    members' cosine similarities (weights ``1 - weight`` and ``weight``).
    """
    width = network.shape[1]
    out = np.empty((len(network), width + linear.shape[1]), dtype=np.float32)
    out[:, :width], out[:, width:] = network, linear
    for part, share in ((out[:, :width], 1.0 - weight), (out[:, width:], weight)):
        unit_rows(part, out=part)  # in place: the output is the only array of its size
        part *= np.float32(np.sqrt(share))
    return out
