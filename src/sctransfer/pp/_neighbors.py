"""TF-IDF + LSI of a peak matrix and the kNN graph of cells in raw peak space."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

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
    (components keep their weights; neighbours are then found by cosine distance, which on
    MOp SNARE-seq gave purer neighbourhoods than standardised components, see ``benchmarks/``).

    Notes
    -----
    The matrix is read in blocks of cells, so it can be the ``.X`` of a backed AnnData. Above
    100,000 cells the SVD is fitted on 100,000 randomly chosen cells and every cell is projected
    on its components (time and memory of the fit stay those of 100,000 cells).
    """
    if isinstance(data, AnnData):
        x = data.layers[layer] if layer is not None else data.X
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


EXACT_KNN_MAX_CELLS = 50_000
_EXACT_BLOCK_PAIRS = 1 << 24  # query x reference distances per block of the exact search (64 MB)
_QUERY_CHUNK = 65_536


def _exact_knn(
    query: np.ndarray, reference: np.ndarray, n_neighbors: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN of each query row among the reference rows by blocked matrix products (cosine or euclidean)."""
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"The exact search supports metric 'cosine' or 'euclidean', got {metric!r}.")

    def prepared(x):
        x = x.astype(np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) if metric == "cosine" else x

    query, reference = prepared(query), prepared(reference)
    ref_sq = (reference**2).sum(axis=1)
    n = query.shape[0]
    indices = np.empty((n, n_neighbors), dtype=np.int64)
    distances = np.empty((n, n_neighbors), dtype=np.float32)
    chunk = max(64, _EXACT_BLOCK_PAIRS // max(len(reference), 1))
    for lo in range(0, n, chunk):
        block = query[lo : lo + chunk]
        d = (block**2).sum(axis=1)[:, None] - 2.0 * block @ reference.T + ref_sq[None, :]
        np.maximum(d, 0.0, out=d)
        part = np.argpartition(d, n_neighbors - 1, axis=1)[:, :n_neighbors]
        part_d = np.take_along_axis(d, part, axis=1)
        order = np.argsort(part_d, axis=1, kind="stable")
        indices[lo : lo + len(block)] = np.take_along_axis(part, order, axis=1)
        best = np.take_along_axis(part_d, order, axis=1)
        distances[lo : lo + len(block)] = best / 2.0 if metric == "cosine" else np.sqrt(best)
    return indices, distances


def _search_method(n_pairs: int, metric: str, method: str) -> str:
    if method not in ("auto", "exact", "pynndescent"):
        raise ValueError(f"method must be 'auto', 'exact' or 'pynndescent', got {method!r}.")
    if method != "auto":
        return method
    exact = n_pairs <= EXACT_KNN_MAX_CELLS**2 and metric in ("cosine", "euclidean")
    return "exact" if exact else "pynndescent"


def resolve_knn_method(n_cells: int, metric: str, method: str) -> str:
    """The search :func:`knn_graph` runs: ``method``, or for ``"auto"`` exact up to 50,000 cells."""
    return _search_method(n_cells * n_cells, metric, method)


def knn_query(
    reference: np.ndarray,
    query: np.ndarray,
    n_neighbors: int,
    *,
    metric: str = "cosine",
    method: str = "auto",
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_neighbors`` nearest reference rows of each query row, nearest first.

    ``method="auto"`` searches exactly (blocked matrix products) while there are at most
    2.5 billion query-reference pairs (50,000 x 50,000), and with a pynndescent index of the
    reference otherwise (approximate; both CPU cores).

    Returns
    -------
    ``(indices, distances)``, each ``(n_query, n_neighbors)``; cosine distances are ``1 - cosine similarity``.
    """
    n_neighbors = min(n_neighbors, reference.shape[0])
    method = _search_method(len(query) * len(reference), metric, method)
    if method == "exact":
        return _exact_knn(query, reference, n_neighbors, metric)
    from pynndescent import NNDescent

    index = NNDescent(
        reference,
        n_neighbors=max(n_neighbors, 15),
        metric=metric,
        random_state=random_state,
        n_jobs=-1,
        low_memory=True,
    )
    indices = np.empty((len(query), n_neighbors), dtype=np.int64)
    distances = np.empty((len(query), n_neighbors), dtype=np.float32)
    for lo in range(0, len(query), _QUERY_CHUNK):
        found, dist = index.query(query[lo : lo + _QUERY_CHUNK], k=n_neighbors)
        indices[lo : lo + len(found)], distances[lo : lo + len(found)] = found, dist
    return indices, distances


def knn_graph(
    embedding: np.ndarray,
    *,
    n_neighbors: int = 10,
    metric: str = "cosine",
    method: str = "auto",
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Find the k nearest neighbours of each row, self excluded.

    Parameters
    ----------
    embedding
        Cells x dimensions.
    n_neighbors
        Neighbours per cell.
    metric
        ``"cosine"`` or ``"euclidean"`` for the exact search; any pynndescent metric otherwise.
    method
        ``"exact"`` (blocked matrix products), ``"pynndescent"`` (approximate), or ``"auto"``:
        exact up to 50,000 cells with the cosine or euclidean metric (faster there, and exact),
        pynndescent otherwise.
    random_state
        Seed of pynndescent.

    Returns
    -------
    ``(indices, distances)``, each of shape ``(n, n_neighbors)``; indices int64. Cosine distances
    are ``1 - cosine similarity``.
    """
    n = embedding.shape[0]
    if n <= n_neighbors:
        raise ValueError(f"Need more than n_neighbors={n_neighbors} cells to build a kNN graph; got {n}.")
    method = resolve_knn_method(n, metric, method)
    if method == "exact":
        indices, distances = _exact_knn(embedding, embedding, n_neighbors + 1, metric)
    else:
        from pynndescent import NNDescent

        index = NNDescent(
            embedding, n_neighbors=n_neighbors + 1, metric=metric, random_state=random_state, n_jobs=-1, low_memory=True
        )
        indices, distances = index.neighbor_graph
    indices, distances = _drop_self(indices, distances, n_neighbors)
    return indices.astype(np.int64), distances.astype(np.float32)


def _drop_self(indices: np.ndarray, distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index (wherever it sits) and keep k neighbours."""
    rows = np.arange(indices.shape[0])[:, None]
    is_self = indices == rows
    # put self entries last, keeping the order of the others
    order = np.argsort(is_self, axis=1, kind="stable")
    indices = np.take_along_axis(indices, order, axis=1)[:, :k]
    distances = np.take_along_axis(distances, order, axis=1)[:, :k]
    return indices, distances


def peak_neighbors(
    data: MuData | AnnData,
    *,
    atac_key: str = "atac",
    n_neighbors: int = 10,
    n_components: int = 30,
    drop_first: bool = True,
    metric: str = "cosine",
    method: str = "auto",
    layer: str | None = None,
    use_rep: str | None = None,
    key_added: str = "peak_neighbors",
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
        atac.obsm["X_lsi"] = embedding
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
            "use_rep": use_rep or "X_lsi",
            "random_state": int(random_state),
            "method": resolve_knn_method(n, metric, method),
        },
    }
    logger.info(
        "Peak-space kNN graph: %d cells, k = %d, stored in .obsp[%r].", n, n_neighbors, f"{key_added}_distances"
    )


def neighbor_indices(atac: AnnData, key: str = "peak_neighbors") -> np.ndarray:
    """The ``(n_cells, k)`` neighbour index array of a graph written by :func:`peak_neighbors`."""
    if key not in atac.uns or f"{key}_distances" not in atac.obsp:
        raise KeyError(f"No peak-space neighbour graph {key!r}; run sctransfer.pp.peak_neighbors first.")
    graph = sp.csr_matrix(atac.obsp[f"{key}_distances"])
    counts = np.diff(graph.indptr)
    k = int(counts.max())
    if (counts != k).any():
        raise ValueError(f"The neighbour graph {key!r} has rows with different numbers of neighbours.")
    return graph.indices.reshape(-1, k).astype(np.int64)
