"""scCLIP network input: counts -> scaled features (kept with the model) and the patch-token basis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from sctransfer._matrix import row_blocks
from sctransfer.pp._lsi import inverse_document_frequency, tfidf

from ._transform import _log_normalised

ScalingKind = Literal["log", "tfidf"]


@dataclass
class FeatureScaling:
    """How one modality's counts (in the model's feature order) become network input.

    ``"log"`` (RNA): ``log1p`` of counts normalised to 10,000 per cell. ``"tfidf"`` (ATAC):
    ``log1p(10,000 * tf * idf)`` with the training cells' inverse document frequency. Both are
    then divided by each feature's largest value on the training cells, so inputs lie in
    about ``[0, 1]`` (as scCLIP scales genes by their maximum). Zeros stay zero: the result is
    sparse. The statistics are fitted once on the training cells and kept with the model, so a
    new data set is scaled exactly as the training data (zero-shot use).
    """

    kind: ScalingKind
    idf: np.ndarray | None
    feature_max: np.ndarray

    @classmethod
    def fit(cls, counts: sp.csr_matrix, kind: ScalingKind) -> FeatureScaling:
        """Fit on cells x features counts (the training cells)."""
        if kind not in ("log", "tfidf"):
            raise ValueError(f"Scaling must be 'log' or 'tfidf', got {kind!r}.")
        idf = inverse_document_frequency(counts).astype(np.float32) if kind == "tfidf" else None
        scaling = cls(kind=kind, idf=idf, feature_max=np.ones(counts.shape[1], dtype=np.float32))
        feature_max = np.zeros(counts.shape[1], dtype=np.float32)
        for _, block in row_blocks(counts):
            block = scaling(block)
            feature_max = np.maximum(feature_max, block.max(axis=0).toarray().ravel())
        scaling.feature_max = np.where(feature_max > 0, feature_max, 1.0).astype(np.float32)
        return scaling

    def __call__(self, counts: sp.spmatrix) -> sp.csr_matrix:
        """Scaled input of cells x features counts, sparse float32."""
        counts = sp.csr_matrix(counts, dtype=np.float32)
        scaled = _log_normalised(counts, 1e4) if self.kind == "log" else tfidf(counts, idf=self.idf)
        scaled = sp.csr_matrix(scaled, dtype=np.float32)
        scaled.data /= self.feature_max[scaled.indices]
        return scaled


def patch_basis(
    scaled: sp.csr_matrix,
    padded_columns: np.ndarray,
    n_patches: int,
    n_components: int,
    *,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixed part of the patch-token projection: the data's principal axes, cut into patches.

    A truncated SVD of the scaled training input gives ``n_components`` axes over all features;
    each patch keeps its own features' rows of those axes. A cell's token ``c`` then holds patch
    ``c``'s contribution to the cell's principal-component scores (centred by the training mean,
    ``offset``), and the tokens of a cell sum to its scores. Scores are divided by each
    component's standard deviation over ``sqrt(n_patches)`` so that tokens have about unit scale.

    Parameters
    ----------
    scaled
        Training cells x features, scaled (:class:`FeatureScaling`), sparse.
    padded_columns
        ``FeatureLayout.padded_columns()``: feature of every patch slot, ``n_features`` for padding.
    n_patches
        Number of patches of the layout.
    n_components
        Number of axes (bounded by the data's size).
    random_state
        Seed of the randomised SVD.

    Returns
    -------
    ``(basis, offset, scale)``: float32 arrays of shapes ``(n_patches, patch_size, n_components)``,
    ``(n_patches, n_components)`` and ``(n_components,)``. Components beyond the data's rank are zero.
    """
    n_cells, n_features = scaled.shape
    rank = max(1, min(n_components, n_cells - 1, n_features - 1))
    _, _, vt = randomized_svd(scaled, rank, n_iter=4, random_state=random_state)
    axes = np.zeros((n_features + 1, n_components), dtype=np.float64)
    axes[:n_features, :rank] = vt.T
    mean = np.asarray(scaled.mean(axis=0), dtype=np.float64).ravel()
    scores = np.asarray(scaled @ axes[:n_features]) - mean @ axes[:n_features]
    std = scores.std(axis=0)
    patch_size = len(padded_columns) // n_patches
    basis = axes[padded_columns].reshape(n_patches, patch_size, n_components)
    padded_mean = np.append(mean, 0.0)[padded_columns].reshape(n_patches, patch_size)
    offset = np.einsum("cp,cpk->ck", padded_mean, basis)
    scale = np.where(std > 0, std, 1.0) / np.sqrt(n_patches)
    return basis.astype(np.float32), offset.astype(np.float32), scale.astype(np.float32)
