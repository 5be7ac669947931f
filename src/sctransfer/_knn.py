"""Nearest-neighbour search: the one home of the blocked similarity products, exact and approximate kNN.

Every neighbour or partner search of the package goes through here: :func:`similarity_blocks` (query rows
against all target rows, a block of query rows at a time, so the full query x target matrix is never held),
:func:`top_columns` on such a block, :func:`exact_knn` built on both, and pynndescent for large searches
(:func:`knn_query`, :func:`knn_graph`). Imports only numpy (pynndescent when an approximate search runs).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: ``method="auto"`` searches exactly up to this many cells a side (2.5 billion query x reference pairs).
EXACT_KNN_MAX_CELLS = 50_000
_EXACT_BLOCK_PAIRS = 1 << 24  # query x reference distances per block of the exact search (64 MB of float32)
_QUERY_CHUNK = 65_536  # query rows per call of a pynndescent index
_EXACT_METRICS = ("cosine", "euclidean")


def unit_rows(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 length, for cosine similarity by dot product.

    Parameters
    ----------
    x
        ``(n, d)`` float array.
    out
        Where to write the result (may be ``x`` itself); ``None``: a new array.

    Returns
    -------
    ``(n, d)`` array of the dtype of ``x``; all-zero rows stay zero (callers that cannot use them check first).
    """
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]  # no (n, d) temporary
    return np.divide(x, np.where(norms > 0, norms, 1).astype(x.dtype, copy=False), out=out)


def block_rows(n_target: int) -> int:
    """Query rows per block so that a block of query x target values stays near 16 million (64 MB of float32)."""
    return max(1, _EXACT_BLOCK_PAIRS // max(n_target, 1))


def similarity_blocks(query: np.ndarray, target: np.ndarray, chunk_size: int) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(rows, query[rows] @ target.T)`` for consecutive blocks of ``chunk_size`` query rows.

    Memory is ``chunk_size * n_target`` values a block; each block is a new array the caller may modify.

    Raises
    ------
    ValueError
        If ``chunk_size`` is not a positive integer.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}.")
    for start in range(0, query.shape[0], chunk_size):
        rows = slice(start, min(start + chunk_size, query.shape[0]))
        yield rows, query[rows] @ target.T


def top_columns(block: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest entries of each row of ``block`` (in no particular order)."""
    if k >= block.shape[1]:
        return np.broadcast_to(np.arange(block.shape[1]), block.shape)
    return np.argpartition(block, block.shape[1] - k, axis=1)[:, block.shape[1] - k :]


def exact_knn(query: np.ndarray, reference: np.ndarray, n_neighbors: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``n_neighbors`` nearest reference rows of each query row, nearest first, by blocked matrix products.

    Parameters
    ----------
    query, reference
        ``(n_query, d)`` and ``(n_reference, d)`` arrays, computed in float32.
    n_neighbors
        Neighbours per query row, at most ``n_reference``.
    metric
        ``"cosine"`` (distance ``1 - cosine similarity``) or ``"euclidean"``.

    Returns
    -------
    ``(indices, distances)``: ``(n_query, n_neighbors)`` int64 and float32.

    Raises
    ------
    ValueError
        For another metric.
    """
    if metric not in _EXACT_METRICS:
        raise ValueError(f"The exact search supports metric 'cosine' or 'euclidean', got {metric!r}.")
    query, reference = query.astype(np.float32), reference.astype(np.float32)
    if metric == "cosine":
        query, reference = unit_rows(query), unit_rows(reference)
    query_sq, reference_sq = (query**2).sum(axis=1), (reference**2).sum(axis=1)
    n = query.shape[0]
    indices = np.empty((n, n_neighbors), dtype=np.int64)
    distances = np.empty((n, n_neighbors), dtype=np.float32)
    chunk = max(64, block_rows(len(reference)))
    for rows, product in similarity_blocks(query, reference, chunk):
        d = query_sq[rows, None] - 2.0 * product + reference_sq[None, :]
        np.maximum(d, 0.0, out=d)
        part = np.argpartition(d, n_neighbors - 1, axis=1)[:, :n_neighbors]
        part_d = np.take_along_axis(d, part, axis=1)
        order = np.argsort(part_d, axis=1, kind="stable")
        indices[rows] = np.take_along_axis(part, order, axis=1)
        best = np.take_along_axis(part_d, order, axis=1)
        distances[rows] = best / 2.0 if metric == "cosine" else np.sqrt(best)
    return indices, distances


def resolve_knn_method(n_pairs: int, metric: str, method: str) -> str:
    """The search run for ``n_pairs`` query x reference pairs: ``method``, or for ``"auto"`` exact up to 50,000².

    Raises
    ------
    ValueError
        If ``method`` is not ``"auto"``, ``"exact"`` or ``"pynndescent"``.
    """
    if method not in ("auto", "exact", "pynndescent"):
        raise ValueError(f"method must be 'auto', 'exact' or 'pynndescent', got {method!r}.")
    if method != "auto":
        return method
    exact = n_pairs <= EXACT_KNN_MAX_CELLS**2 and metric in _EXACT_METRICS
    return "exact" if exact else "pynndescent"


def _nndescent(data: np.ndarray, n_neighbors: int, metric: str, random_state: int):
    from pynndescent import NNDescent

    return NNDescent(
        data, n_neighbors=n_neighbors, metric=metric, random_state=random_state, n_jobs=-1, low_memory=True
    )


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

    Parameters
    ----------
    reference
        ``(n_reference, d)`` array searched.
    query
        ``(n_query, d)`` array of the rows whose neighbours are sought.
    n_neighbors
        Neighbours per query row; clipped to ``n_reference``.
    metric
        ``"cosine"`` or ``"euclidean"`` for the exact search; any pynndescent metric otherwise.
    method
        ``"exact"`` (blocked matrix products), ``"pynndescent"`` (an approximate index of the reference,
        all CPU cores), or ``"auto"``: exact while there are at most 2.5 billion query-reference pairs
        (50,000 x 50,000) and the metric is cosine or euclidean, pynndescent otherwise.
    random_state
        Seed of pynndescent.

    Returns
    -------
    ``(indices, distances)``, each ``(n_query, n_neighbors)``, int64 and float32; cosine distances are
    ``1 - cosine similarity``.

    Raises
    ------
    ValueError
        For an unknown ``method``, or an exact search with a metric other than cosine or euclidean.
    """
    n_neighbors = min(n_neighbors, reference.shape[0])
    method = resolve_knn_method(len(query) * len(reference), metric, method)
    if method == "exact":
        return exact_knn(query, reference, n_neighbors, metric)
    index = _nndescent(reference, max(n_neighbors, 15), metric, random_state)
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
    metric, method, random_state
        As in :func:`knn_query`; ``method="auto"`` is exact up to 50,000 cells with the cosine or euclidean
        metric (faster there, and exact), pynndescent otherwise.

    Returns
    -------
    ``(indices, distances)``, each of shape ``(n, n_neighbors)``; indices int64, distances float32. Cosine
    distances are ``1 - cosine similarity``.

    Raises
    ------
    ValueError
        With ``n_neighbors`` or fewer cells, an unknown ``method``, or an exact search with another metric.
    """
    n = embedding.shape[0]
    if n <= n_neighbors:
        raise ValueError(f"Need more than n_neighbors={n_neighbors} cells to build a kNN graph; got {n}.")
    if resolve_knn_method(n * n, metric, method) == "exact":
        indices, distances = exact_knn(embedding, embedding, n_neighbors + 1, metric)
    else:
        indices, distances = _nndescent(embedding, n_neighbors + 1, metric, random_state).neighbor_graph
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
