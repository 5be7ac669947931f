"""Matching primitives on two L2-normalised embeddings: nearest partner, one-to-one assignment, top-k pairing.

Rows are cells; cosine similarity is the dot product of the (already unit-length) rows. Inputs are used as
given (no normalisation, no check that rows have unit length): callers validate and normalise.

Partners and candidates are found exactly (blocked matrix products) or, for large data sets, through an
approximate pynndescent index (:mod:`sctransfer._knn`): ``method="auto"`` searches exactly up to
:data:`~sctransfer._knn.EXACT_KNN_MAX_CELLS` squared query x target pairs (50,000 x 50,000), as every
neighbour search of the package does.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from sctransfer._knn import knn_query, resolve_knn_method, similarity_blocks, top_columns

logger = logging.getLogger(__name__)

MatchMethod = Literal["auto", "exact", "pynndescent"]

#: Above this many query x target pairs, :func:`one_to_one_partners` matches on a sparse candidate graph.
DENSE_ASSIGNMENT_LIMIT = 25_000_000
#: The approximate search for a nearest partner asks the index for this many neighbours and keeps the nearest
#: (a wider search: higher recall of the best partner than asking for one).
APPROXIMATE_SEARCH_WIDTH = 10
#: How often :func:`one_to_one_partners` doubles the candidates before assigning the rest greedily.
_MAX_DOUBLINGS = 3


def _check_pair(query: np.ndarray, target: np.ndarray) -> None:
    if query.ndim != 2 or target.ndim != 2 or query.shape[1] != target.shape[1]:
        raise ValueError(
            f"query and target must be 2-D with the same number of dimensions, got shapes {query.shape} and "
            f"{target.shape}."
        )
    if query.shape[0] == 0 or target.shape[0] == 0:
        raise ValueError(f"query and target need at least one cell each, got {query.shape[0]} and {target.shape[0]}.")


def match_method(n_query: int, n_target: int, method: str, *, one_to_one: bool = False) -> str:
    """The search :func:`nearest_partners` (or, ``one_to_one=True``, :func:`one_to_one_partners`) runs.

    ``"exact"`` or ``"pynndescent"``: ``method="auto"`` is exact up to ``EXACT_KNN_MAX_CELLS ** 2`` query x
    target pairs (see :func:`sctransfer._knn.resolve_knn_method`); a one-to-one assignment of at most
    ``DENSE_ASSIGNMENT_LIMIT`` pairs is solved exactly on the full similarity matrix whatever ``method`` says.

    Raises
    ------
    ValueError
        If ``method`` is not ``"auto"``, ``"exact"`` or ``"pynndescent"``.
    """
    search = resolve_knn_method(n_query * n_target, "cosine", method)
    return "exact" if one_to_one and n_query * n_target <= DENSE_ASSIGNMENT_LIMIT else search


def nearest_partners(
    query: np.ndarray,
    target: np.ndarray,
    *,
    chunk_size: int = 4096,
    method: MatchMethod = "auto",
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Most similar target row of each query row.

    Parameters
    ----------
    query
        Query cells x dimensions, rows L2-normalised.
    target
        Target cells x dimensions, rows L2-normalised.
    chunk_size
        Query rows compared at once by the exact search (memory: ``chunk_size * n_target`` similarities).
    method
        ``"exact"`` (every pair compared, blocked), ``"pynndescent"`` (an approximate index of the target
        rows: time about linear in the number of cells, but a query may get a near-best partner instead of
        the best) or ``"auto"``: exact up to 2.5 billion query x target pairs (50,000 x 50,000 cells),
        pynndescent above.
    random_state
        Seed of the approximate index.

    Returns
    -------
    ``(partner, similarity)``: for each query row the index of its most cosine-similar target row (int64;
    the first one on ties for the exact search) and that similarity. Several query rows may share a partner.

    Raises
    ------
    ValueError
        For an unknown ``method``.
    """
    _check_pair(query, target)
    if match_method(query.shape[0], target.shape[0], method) == "pynndescent":
        width = APPROXIMATE_SEARCH_WIDTH
        found = knn_query(target, query, width, metric="cosine", method="pynndescent", random_state=random_state)[0]
        partner = found[:, 0]  # nearest first
        return partner, np.einsum("ij,ij->i", query, target[partner])
    partner = np.empty(query.shape[0], dtype=np.int64)
    similarity = np.empty(query.shape[0], dtype=np.result_type(query, target))
    for rows, block in similarity_blocks(query, target, chunk_size):
        partner[rows] = block.argmax(axis=1)
        similarity[rows] = block[np.arange(block.shape[0]), partner[rows]]
    return partner, similarity


def _top_candidates(
    query: np.ndarray, target: np.ndarray, n_candidates: int, chunk_size: int, method: str, random_state: int
) -> sparse.csr_matrix:
    """Query x target matrix holding ``2 - similarity`` for each query row's `n_candidates` most similar targets.

    ``method`` is ``"exact"`` or ``"pynndescent"`` (then the candidates are the index's, near the most similar).
    """
    k = min(n_candidates, target.shape[0])
    if method == "pynndescent":
        columns, distances = knn_query(target, query, k, metric="cosine", method=method, random_state=random_state)
        costs = 1.0 + distances.astype(np.float64)  # cosine distance is 1 - similarity
    else:
        columns = np.empty((query.shape[0], k), dtype=np.int64)
        costs = np.empty((query.shape[0], k), dtype=np.float64)
        for rows, block in similarity_blocks(query, target, chunk_size):
            top = top_columns(block, k)
            columns[rows] = top
            costs[rows] = 2 - np.take_along_axis(block, top, axis=1)
    indptr = np.arange(0, columns.size + 1, k)
    return sparse.csr_matrix((costs.ravel(), columns.ravel(), indptr), shape=(query.shape[0], target.shape[0]))


def _sparse_assignment(
    small: np.ndarray, large: np.ndarray, n_candidates: int, chunk_size: int, method: str, random_state: int
) -> tuple[np.ndarray, np.ndarray]:
    """Give every row of `small` a distinct row of `large` (``len(small) <= len(large)``); return both indices.

    Each row of `small` is linked to its `n_candidates` most similar rows of `large` and vice versa, with cost
    ``2 - similarity`` (in ``[1, 3]``, positive as the solver needs). Every row of `small` also gets a private
    dummy partner of cost ``3 * len(small) + 1``, more than any matching of real edges, so the solver uses the
    fewest dummies possible and, among those, the least total cost: when the candidate graph holds a full
    matching, the result is the one of maximal total similarity. Rows left on a dummy retry with twice the
    candidates (up to ``_MAX_DOUBLINGS`` times); rows still left then take, in order of their best
    similarity, the most similar row of `large` nobody has taken. Candidates come from the search
    ``method`` (``"exact"`` or ``"pynndescent"``).
    """
    n_small, n_large = small.shape[0], large.shape[0]
    dummies = sparse.diags(np.full(n_small, 3.0 * n_small + 1))
    for attempt in range(_MAX_DOUBLINGS + 1):
        k = n_candidates * 2**attempt
        costs = _top_candidates(small, large, k, chunk_size, method, random_state).maximum(
            _top_candidates(large, small, k, chunk_size, method, random_state).T
        )
        small_ind, large_ind = min_weight_full_bipartite_matching(sparse.hstack([costs, dummies], format="csr"))
        partner = np.full(n_small, -1, dtype=np.int64)
        real = large_ind < n_large
        partner[small_ind[real]] = large_ind[real]
        left = np.flatnonzero(partner < 0)
        if not left.size:
            return np.arange(n_small), partner
        logger.info("%d of %d cells have no partner among %d candidates each.", left.size, n_small, k)
    logger.warning("Assigning %d of %d cells greedily: the candidate graph has no full matching.", left.size, n_small)
    free = np.setdiff1d(np.arange(n_large), partner[partner >= 0])
    similarity = small[left] @ large[free].T
    taken = np.zeros(free.shape[0], dtype=bool)
    for i in np.argsort(-similarity.max(axis=1), kind="stable"):
        choice = int(np.argmax(np.where(taken, -np.inf, similarity[i])))
        partner[left[i]] = free[choice]
        taken[choice] = True
    return np.arange(n_small), partner


def one_to_one_partners(
    query: np.ndarray,
    target: np.ndarray,
    *,
    n_candidates: int = 50,
    dense_limit: int = DENSE_ASSIGNMENT_LIMIT,
    chunk_size: int = 1024,
    method: MatchMethod = "auto",
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one assignment of query rows to target rows maximising the total cosine similarity.

    When ``n_query * n_target <= dense_limit`` the assignment is exact
    (:func:`scipy.optimize.linear_sum_assignment` on the full similarity matrix). Otherwise it is solved with
    :func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching` on a sparse candidate graph: each query
    row's `n_candidates` most similar targets and each target's `n_candidates` most similar queries, cost
    ``2 - similarity``. That is exact whenever the optimal assignment uses candidate pairs only. Where the
    graph holds no full matching, `n_candidates` is doubled (at most three times) and cells still left
    are assigned greedily, in order of their best similarity, to the most similar free target. The
    candidates are found exactly or, above 2.5 billion pairs by default, through an approximate index
    (``method``, as in :func:`nearest_partners`).

    With unequal sizes, ``min(n_query, n_target)`` pairs are formed: when there are more queries than targets,
    the unassigned query rows get partner ``-1`` and similarity NaN.

    Parameters
    ----------
    query
        Query cells x dimensions, rows L2-normalised.
    target
        Target cells x dimensions, rows L2-normalised.
    n_candidates
        Candidates per cell on the sparse path.
    dense_limit
        Largest ``n_query * n_target`` solved exactly on the dense matrix (25 million: 100 MB of float32).
    chunk_size
        Rows compared at once when building the candidate graph exactly (memory: a few times
        ``chunk_size * max(n_query, n_target)`` values).
    method
        How the candidates are found: ``"exact"``, ``"pynndescent"`` or ``"auto"`` (see :func:`nearest_partners`).
    random_state
        Seed of the approximate index.

    Returns
    -------
    ``(partner, similarity)``: for each query row the index of its target row (int64, ``-1`` if none) and
    their cosine similarity (NaN if none). No target row is used twice.

    Raises
    ------
    ValueError
        For ``n_candidates < 1`` or an unknown ``method``.
    """
    _check_pair(query, target)
    if n_candidates < 1:
        raise ValueError(f"n_candidates must be a positive integer, got {n_candidates}.")
    n_query, n_target = query.shape[0], target.shape[0]
    search = match_method(n_query, n_target, method)
    if n_query * n_target <= dense_limit:
        query_ind, target_ind = linear_sum_assignment(query @ target.T, maximize=True)
    elif n_query <= n_target:
        query_ind, target_ind = _sparse_assignment(query, target, n_candidates, chunk_size, search, random_state)
    else:
        target_ind, query_ind = _sparse_assignment(target, query, n_candidates, chunk_size, search, random_state)
    partner = np.full(n_query, -1, dtype=np.int64)
    partner[query_ind] = target_ind
    similarity = np.full(n_query, np.nan, dtype=np.result_type(query, target))
    similarity[query_ind] = np.einsum("ij,ij->i", query[query_ind], target[target_ind])
    return partner, similarity


def topk_pairing(
    query: np.ndarray,
    target: np.ndarray,
    *,
    k: int = 1000,
    temperature: float = 1 / np.e,
    chunk_size: int = 1024,
) -> sparse.csr_matrix:
    """Sparse pairing weights over each query row's `k` most similar target rows.

    The submission format of the NeurIPS 2021 match-modality task (at most 1,000 non-zeros a row), scored by
    :func:`sctransfer.metrics.matching_score`. Row ``i`` holds ``softmax(similarity / temperature)`` over its
    `k` most similar targets and zeros elsewhere; rows sum to 1.

    Parameters
    ----------
    query
        Query cells x dimensions, rows L2-normalised.
    target
        Target cells x dimensions, rows L2-normalised.
    k
        Targets kept per row; clipped to ``n_target``.
    temperature
        Softmax temperature. The default, ``1 / e``, is the fixed logit scale of the official scCLIP loss.
        The matching score is linear in the weights, so a lower temperature (more weight on the best
        candidates) scores higher whenever the top candidates are usually right.
    chunk_size
        Query rows processed at once (memory: a few times ``chunk_size * n_target`` values).

    Returns
    -------
    A ``n_query x n_target`` :class:`scipy.sparse.csr_matrix` with sorted int32 column indices, float32 weights
    and exactly ``min(k, n_target)`` stored entries a row.
    """
    _check_pair(query, target)
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    k = min(k, target.shape[0])
    indices = np.empty((query.shape[0], k), dtype=np.int32)
    weights = np.empty((query.shape[0], k), dtype=np.float32)
    for rows, block in similarity_blocks(query, target, chunk_size):
        top = np.sort(top_columns(block, k), axis=1)
        logits = np.take_along_axis(block, top, axis=1).astype(np.float64) / temperature
        logits = np.exp(logits - logits.max(axis=1, keepdims=True))
        indices[rows] = top
        weights[rows] = logits / logits.sum(axis=1, keepdims=True)
    indptr = np.arange(0, indices.size + 1, k)
    return sparse.csr_matrix((weights.ravel(), indices.ravel(), indptr), shape=(query.shape[0], target.shape[0]))
