"""TF-IDF + LSI of a peak matrix and the kNN graph of cells in raw peak space."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from sctransfer._constants import ATAC, LSI_KEY, NEIGHBORS_KEY
from sctransfer._knn import knn_graph, resolve_knn_method
from sctransfer._matrix import layer_matrix
from sctransfer._profiling import stage
from sctransfer._validation import check_numeric, get_modality

from ._lsi import LSI

logger = logging.getLogger(__name__)


def tfidf_lsi(
    data: AnnData | sp.spmatrix | np.ndarray,
    *,
    n_components: int = 30,
    drop_first: bool = True,
    layer: str | None = None,
    random_state: int = 0,
) -> np.ndarray:
    """Latent semantic indexing of a peak matrix: TF-IDF, then a truncated SVD.

    Parameters
    ----------
    data
        Cells x peaks counts: an AnnData (``.X`` or ``layer``) or a matrix.
    n_components
        Number of SVD components computed (including the first one).
    drop_first
        Drop the first component, which mostly tracks sequencing depth.
    layer
        Layer holding counts when ``data`` is an AnnData.
    random_state
        Seed of the randomised SVD.

    Returns
    -------
    Cells x components float32 array: the left singular vectors times the singular values
    (components keep their weights; :func:`peak_neighbors` searches cosine neighbours in this
    space, see :doc:`/benchmarks` for the comparison with standardised components).

    Notes
    -----
    The matrix is read in blocks of cells, so it can be the ``.X`` of a backed AnnData. Above
    100,000 cells the SVD is fitted on 100,000 randomly chosen cells and every cell is projected
    on its components (time and memory of the fit stay those of 100,000 cells).
    """
    if isinstance(data, AnnData):
        x = layer_matrix(data, layer)
    else:
        x = data
    check_numeric(x, what="the peak matrix")
    n_cells, n_peaks = x.shape
    if n_components < 2 or n_components >= min(n_cells, n_peaks):
        raise ValueError(
            f"n_components must be between 2 and min(cells, peaks) - 1 = {min(n_cells, n_peaks) - 1}; "
            f"got {n_components}."
        )
    _, embedding = LSI.fit_transform(x, n_components, random_state=random_state)
    if drop_first:
        embedding = embedding[:, 1:]
    return np.ascontiguousarray(embedding, dtype=np.float32)


def peak_neighbors(
    data: MuData | AnnData,
    *,
    atac_key: str = ATAC,
    n_neighbors: int = 10,
    n_components: int = 30,
    drop_first: bool = True,
    metric: str = "cosine",
    method: str = "auto",
    layer: str | None = None,
    use_rep: str | None = None,
    key_added: str = NEIGHBORS_KEY,
    random_state: int = 0,
) -> None:
    """KNN graph of the ATAC cells in raw peak space (TF-IDF + LSI, then a neighbour search).

    Parameters
    ----------
    data
        MuData holding the peak matrix as modality ``atac_key``, or the peak AnnData.
    atac_key
        Modality holding peak counts (MuData input).
    n_neighbors
        Neighbours per cell, the cell itself excluded.
    n_components, drop_first, layer
        Passed to :func:`~sctransfer.pp.tfidf_lsi`.
    metric
        Distance in the LSI space: ``"cosine"`` (default) or ``"euclidean"``, or any pynndescent metric
        with ``method="pynndescent"``.
    method
        Neighbour search, see :func:`~sctransfer.pp.knn_graph`.
    use_rep
        Use this existing ``.obsm`` embedding instead of computing the LSI.
    key_added
        Prefix of the fields written.
    random_state
        Seed of the SVD and of the neighbour search.

    Returns
    -------
    None. Writes into the peak AnnData (``mdata[atac_key]``):

    - ``.obsm["X_lsi"]``: the LSI embedding (unless ``use_rep`` is given);
    - ``.obsp[f"{key_added}_distances"]``: cells x cells CSR, ``n_neighbors`` distances a row;
    - ``.obsp[f"{key_added}_connectivities"]``: the same graph with weight 1;
    - ``.uns[key_added]``: the parameters and the names of the two ``obsp`` keys (scanpy's layout).
    """
    atac = get_modality(data, atac_key, role="ATAC peaks") if isinstance(data, MuData) else data
    if use_rep is not None:
        if use_rep not in atac.obsm:
            raise KeyError(f"use_rep={use_rep!r} is not in .obsm (has {list(atac.obsm)}).")
        embedding = np.asarray(atac.obsm[use_rep], dtype=np.float32)
    else:
        with stage("TF-IDF / LSI"):
            embedding = tfidf_lsi(
                atac, n_components=n_components, drop_first=drop_first, layer=layer, random_state=random_state
            )
    with stage("kNN graph"):
        indices, distances = knn_graph(
            embedding, n_neighbors=n_neighbors, metric=metric, method=method, random_state=random_state
        )
    n = atac.n_obs
    indptr = np.arange(0, n * n_neighbors + 1, n_neighbors, dtype=np.int64)
    dist = sp.csr_matrix((distances.ravel(), indices.ravel(), indptr), shape=(n, n), dtype=np.float32)
    conn = sp.csr_matrix((np.ones(n * n_neighbors, dtype=np.float32), indices.ravel(), indptr), shape=(n, n))
    if use_rep is None:
        atac.obsm[LSI_KEY] = embedding
    atac.obsp[f"{key_added}_distances"] = dist
    atac.obsp[f"{key_added}_connectivities"] = conn
    atac.uns[key_added] = {
        "distances_key": f"{key_added}_distances",
        "connectivities_key": f"{key_added}_connectivities",
        "params": {
            "n_neighbors": int(n_neighbors),
            "n_components": int(n_components),
            "drop_first": bool(drop_first),
            "metric": metric,
            "use_rep": use_rep or LSI_KEY,
            "random_state": int(random_state),
            "method": resolve_knn_method(n * n, metric, method),
        },
    }
    logger.info(
        "Peak-space kNN graph: %d cells, k = %d, stored in .obsp[%r].", n, n_neighbors, f"{key_added}_distances"
    )


def neighbor_indices(atac: AnnData, key: str = NEIGHBORS_KEY) -> np.ndarray:
    """The ``(n_cells, k)`` neighbour index array of a graph written by :func:`peak_neighbors`."""
    if key not in atac.uns or f"{key}_distances" not in atac.obsp:
        raise KeyError(f"No peak-space neighbour graph {key!r}; run sctransfer.pp.peak_neighbors first.")
    graph = sp.csr_matrix(atac.obsp[f"{key}_distances"])
    counts = np.diff(graph.indptr)
    k = int(counts.max())
    if (counts != k).any():
        raise ValueError(f"The neighbour graph {key!r} has rows with different numbers of neighbours.")
    return graph.indices.reshape(-1, k).astype(np.int64)
