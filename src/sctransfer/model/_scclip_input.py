"""scCLIP's patch-token basis: the principal axes of the scaled training input, cut into patches."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd


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
        Training cells x features, scaled (``InputTransform.sparse``), sparse.
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
