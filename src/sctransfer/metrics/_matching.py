"""Cross-modal matching metrics: FOSCTTM, matching score, top-1 accuracy, cell-type silhouette, batch mixing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.metrics import silhouette_score

from sctransfer._knn import block_rows, exact_knn, similarity_blocks, unit_rows

_METRICS = ("cosine", "euclidean")


class PairedScore(NamedTuple):
    """A paired-cell metric in both directions and their mean.

    Returned by :func:`~sctransfer.metrics.foscttm` and :func:`~sctransfer.metrics.top1_accuracy`; a named
    tuple, so ``score.mean`` or ``rna_to_atac, atac_to_rna, mean, *_ = score``.
    """

    #: Mean over RNA cells, each queried against all ATAC cells.
    rna_to_atac: float
    #: Mean over ATAC cells, each queried against all RNA cells.
    atac_to_rna: float
    #: Mean of the two directions.
    mean: float
    #: Per RNA cell values (only with ``return_per_cell=True``).
    rna_to_atac_per_cell: np.ndarray | None = None
    #: Per ATAC cell values (only with ``return_per_cell=True``).
    atac_to_rna_per_cell: np.ndarray | None = None
    #: Standard error of ``mean`` when it is estimated on a sample of cells (``n_samples``); None when exact.
    standard_error: float | None = None


def _embedding(values: Any, name: str) -> np.ndarray:
    """Return a finite 2-D float array (float32 stays float32, anything else becomes float64)."""
    if sparse.issparse(values):
        raise ValueError(f"{name} is a sparse matrix; pass a dense embedding (e.g. `{name}.toarray()`).")
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (cells x dimensions), got shape {array.shape}.")
    array = array.astype(np.result_type(array.dtype, np.float32), copy=False)
    n_bad = int((~np.isfinite(array)).any(axis=1).sum())
    if n_bad:
        raise ValueError(f"{name} has {n_bad} row(s) with NaN or infinite values; drop or fix those cells first.")
    return array


def _check_metric(metric: str) -> None:
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}.")


def _paired(rna_embedding: Any, atac_embedding: Any, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate two paired embeddings; for cosine, return them L2-normalised in a common dtype."""
    _check_metric(metric)
    rna = _embedding(rna_embedding, "rna_embedding")
    atac = _embedding(atac_embedding, "atac_embedding")
    if rna.shape != atac.shape:
        raise ValueError(
            f"rna_embedding has shape {rna.shape} but atac_embedding {atac.shape}: row i of both must be the "
            "same cell (its two modalities) and both must have the same number of dimensions."
        )
    if rna.shape[0] < 2:
        raise ValueError(f"Need at least 2 paired cells, got {rna.shape[0]}.")
    dtype = np.result_type(rna.dtype, atac.dtype)
    rna, atac = rna.astype(dtype, copy=False), atac.astype(dtype, copy=False)
    if metric == "cosine":
        for name, array in (("rna_embedding", rna), ("atac_embedding", atac)):
            n_zero = int((~array.any(axis=1)).sum())
            if n_zero:
                raise ValueError(
                    f"{name} has {n_zero} all-zero row(s): cosine distance is undefined; use metric='euclidean'."
                )
        rna, atac = unit_rows(rna), unit_rows(atac)
    return rna, atac


def _partner_counts(
    x: np.ndarray, y: np.ndarray, metric: str, chunk_size: int | None, *, strict: bool, cells: np.ndarray | None = None
) -> np.ndarray:
    """For each row ``i`` of `x`, count the rows ``j != i`` of `y` closer to ``x[i]`` than ``y[i]`` is.

    With `cells` (row indices), only those rows of `x` are counted, in that order. ``strict=True``
    counts strictly closer rows, ``strict=False`` rows at most as far. Rows of `x` are
    processed `chunk_size` at a time (``None``: as many as keep a block near 16 million values): memory is
    ``chunk_size * len(y)`` values. Every distance of a row, the partner's included, comes from the same
    matrix product, so the comparison is exact.
    """
    # Closeness of y[j] to x[i], up to a per-row constant: x.y for unit rows (cosine), 2 x.y - |y|^2 otherwise.
    y_sq = np.einsum("ij,ij->i", y, y) if metric == "euclidean" else None
    queries = x if cells is None else x[cells]
    counts = np.empty(queries.shape[0], dtype=np.int64)
    for rows, closeness in similarity_blocks(queries, y, block_rows(len(y)) if chunk_size is None else chunk_size):
        if y_sq is not None:
            closeness *= 2
            closeness -= y_sq
        own = np.arange(rows.start, rows.stop) if cells is None else cells[rows]
        partner = closeness[np.arange(len(own)), own][:, None]
        if strict:
            counts[rows] = np.count_nonzero(closeness > partner, axis=1)
        else:
            counts[rows] = np.count_nonzero(closeness >= partner, axis=1) - 1
    return counts


def _both_directions(
    rna: np.ndarray, atac: np.ndarray, per_cell: Callable[[np.ndarray, np.ndarray], np.ndarray], return_per_cell: bool
) -> PairedScore:
    """Apply `per_cell` (query, other modality) both ways and average."""
    rna_values, atac_values = per_cell(rna, atac), per_cell(atac, rna)
    rna_mean, atac_mean = float(rna_values.mean()), float(atac_values.mean())
    extra = (rna_values, atac_values) if return_per_cell else (None, None)
    return PairedScore(rna_mean, atac_mean, (rna_mean + atac_mean) / 2, *extra)


def foscttm(
    rna_embedding: Any,
    atac_embedding: Any,
    *,
    metric: Literal["cosine", "euclidean"] = "cosine",
    chunk_size: int | None = None,
    return_per_cell: bool = False,
    n_samples: int | None = None,
    random_state: int = 0,
) -> PairedScore:
    """FOSCTTM: fraction of samples closer than the true match, in both directions.

    Row ``i`` of both embeddings is the same cell. For RNA cell ``i``, the score is the number of ATAC
    cells ``j != i`` strictly closer to it than its partner (ATAC cell ``i``), divided by ``N - 1``
    (the number of other cells, so the score lies in ``[0, 1]``); likewise for ATAC cells. 0 is a
    perfect alignment, about 0.5 a random one. Ties count in the partner's favour, so a collapsed
    embedding (all cells at one point) scores 0: read it together with :func:`top1_accuracy`, which
    counts ties as misses. Some implementations (e.g. ``scglue.metrics.foscttm``) divide by ``N``
    instead; their value is this one times ``(N - 1) / N``.

    The computation is exact and chunked: `chunk_size` cells at a time against all cells of the other
    modality, so memory is about ``chunk_size * N`` floats (by default about 16 million: 64 MB of float32
    at any ``N``) and the ``N x N`` distance matrix is never built. Embeddings of dtype float32 are
    computed in float32, anything else in float64.

    Its time grows with ``N ** 2`` (4 minutes for 100,000 cells on one busy CPU core,
    ``benchmarks/scaling.py``). For larger data sets, ``n_samples`` estimates it: the exact score of
    ``n_samples`` cells drawn at random without replacement (the same cells in both directions), each
    against all ``N`` cells of the other modality, in ``n_samples * N`` time (10,000 cells: a tenth of
    the exact computation at 100,000 cells, a hundredth at 1,000,000). ``standard_error`` is then the
    standard error of ``mean`` over the drawn cells (each cell's two directions averaged, with the
    finite-population correction ``sqrt(1 - n_samples / N)``); it falls as ``1 / sqrt(n_samples)``.

    Parameters
    ----------
    rna_embedding
        RNA cells x dimensions (dense array).
    atac_embedding
        ATAC cells x dimensions, same shape, row ``i`` the partner of RNA row ``i``.
    metric
        ``"cosine"`` (rows are L2-normalised; no row may be all zero) or ``"euclidean"``.
    chunk_size
        Number of cells compared at once; ``None``: as many as keep a block near 16 million
        similarities (64 MB of float32), e.g. 1,677 at 10,000 cells, 16 at 1,000,000.
    return_per_cell
        Also return each cell's score (NaN for the cells not drawn when ``n_samples`` is given).
    n_samples
        Estimate the score on this many randomly drawn cells (see above); ``None``, or at least ``N``,
        computes it exactly on all cells.
    random_state
        Seed of the draw with ``n_samples``.

    Returns
    -------
    A :class:`PairedScore`: ``rna_to_atac`` (mean over RNA cells), ``atac_to_rna`` (mean over ATAC cells),
    ``mean`` (their mean, the usual single number), with `return_per_cell` per-cell float arrays
    ``rna_to_atac_per_cell`` and ``atac_to_rna_per_cell``, and with ``n_samples`` the
    ``standard_error`` of ``mean``.

    Raises
    ------
    ValueError
        For embeddings that are not paired 2-D arrays of at least 2 cells with finite values, an unknown
        ``metric``, or ``n_samples`` below 2.

    Examples
    --------
    >>> foscttm([[0.0], [1.0], [2.0]], [[0.0], [2.0], [1.0]], metric="euclidean").mean
    0.3333333333333333
    """
    if n_samples is not None and (isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer)):
        raise ValueError(f"n_samples must be an integer number of cells (or None: all cells), got {n_samples!r}.")
    if n_samples is not None and n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 cells (or None: all cells), got {n_samples}.")
    rna, atac = _paired(rna_embedding, atac_embedding, metric)
    n_cells = rna.shape[0]
    if n_samples is None or n_samples >= n_cells:
        return _both_directions(
            rna,
            atac,
            lambda x, y: _partner_counts(x, y, metric, chunk_size, strict=True) / (n_cells - 1),
            return_per_cell,
        )
    cells = np.sort(np.random.default_rng(random_state).choice(n_cells, n_samples, replace=False))
    rna_values = _partner_counts(rna, atac, metric, chunk_size, strict=True, cells=cells) / (n_cells - 1)
    atac_values = _partner_counts(atac, rna, metric, chunk_size, strict=True, cells=cells) / (n_cells - 1)
    per_cell = (rna_values + atac_values) / 2
    correction = np.sqrt(1 - n_samples / n_cells)
    standard_error = float(per_cell.std(ddof=1) / np.sqrt(n_samples) * correction)
    extra = (None, None)
    if return_per_cell:
        extra = tuple(np.full(n_cells, np.nan) for _ in range(2))
        extra[0][cells], extra[1][cells] = rna_values, atac_values
    rna_mean, atac_mean = float(rna_values.mean()), float(atac_values.mean())
    return PairedScore(rna_mean, atac_mean, (rna_mean + atac_mean) / 2, *extra, standard_error=standard_error)


def top1_accuracy(
    rna_embedding: Any,
    atac_embedding: Any,
    *,
    metric: Literal["cosine", "euclidean"] = "cosine",
    chunk_size: int | None = None,
    return_per_cell: bool = False,
) -> PairedScore:
    """Top-1 matching accuracy: share of cells whose nearest cell of the other modality is their partner.

    Row ``i`` of both embeddings is the same cell. RNA cell ``i`` is correct when ATAC cell ``i`` is
    strictly closer to it than every other ATAC cell; a tie for nearest counts as a miss (so a collapsed
    embedding scores 0, not 1). Likewise for ATAC cells. Random embeddings score about ``1 / N``.
    Chunked like :func:`foscttm`.

    Parameters
    ----------
    rna_embedding
        RNA cells x dimensions (dense array).
    atac_embedding
        ATAC cells x dimensions, same shape, row ``i`` the partner of RNA row ``i``.
    metric
        ``"cosine"`` (rows are L2-normalised; no row may be all zero) or ``"euclidean"``.
    chunk_size
        Number of cells compared at once; ``None``: as many as keep a block near 16 million
        similarities (64 MB of float32), e.g. 1,677 at 10,000 cells, 16 at 1,000,000.
    return_per_cell
        Also return each cell's result.

    Returns
    -------
    A :class:`PairedScore` with the accuracy of each direction (``rna_to_atac``: RNA cells queried against
    ATAC cells; ``atac_to_rna``) and their ``mean``, in ``[0, 1]``; with `return_per_cell`, boolean arrays
    ``rna_to_atac_per_cell`` and ``atac_to_rna_per_cell`` (``True`` where the cell is matched correctly).
    """
    rna, atac = _paired(rna_embedding, atac_embedding, metric)
    return _both_directions(
        rna,
        atac,
        lambda x, y: _partner_counts(x, y, metric, chunk_size, strict=False) == 0,
        return_per_cell,
    )


def matching_score(
    pairing: Any,
    true_partner: Any = None,
    *,
    max_nonzeros_per_row: int | None = 1000,
) -> float:
    """Matching score of the NeurIPS 2021 "match modality" task.

    `pairing` holds a non-negative weight for each (RNA cell, ATAC cell) pair. Negative weights are set
    to 0. Each row is divided by its sum, and the score is the mean over RNA cells of the normalised
    weight on the true partner; a row that sums to 0 scores 0. 1 is perfect; spreading each row
    uniformly over all ``N`` ATAC cells scores ``1 / N``.

    Parameters
    ----------
    pairing
        RNA cells x ATAC cells weights, a dense array or a :mod:`scipy.sparse` matrix.
    true_partner
        For each RNA cell (row), the column of its true partner (integers). ``None``: row ``i``'s partner is
        column ``i`` (paired data in the same order; `pairing` must then be square).
    max_nonzeros_per_row
        The competition allowed at most 1,000 positive weights a row: a row with more raises a
        :class:`ValueError`. ``None`` lifts the limit (a dense all-positive matrix is then fine).

    Returns
    -------
    The matching score in ``[0, 1]``.

    Examples
    --------
    >>> matching_score([[3.0, 1.0], [-1.0, 2.0]])
    0.875
    """
    weights = sparse.csr_matrix(pairing, dtype=np.float64)
    n_rows, n_cols = weights.shape
    if n_rows == 0 or n_cols == 0:
        raise ValueError(f"pairing is empty (shape {weights.shape}).")
    if not np.isfinite(weights.data).all():
        raise ValueError("pairing contains NaN or infinite weights; replace them (e.g. by 0) first.")
    weights.data = np.clip(weights.data, 0, None)
    weights.eliminate_zeros()
    if max_nonzeros_per_row is not None:
        n_nonzero = np.diff(weights.indptr)
        n_over = int((n_nonzero > max_nonzeros_per_row).sum())
        if n_over:
            raise ValueError(
                f"{n_over} row(s) of pairing have more than {max_nonzeros_per_row} positive weights (up to "
                f"{n_nonzero.max()}); keep each row's largest weights, or pass max_nonzeros_per_row=None."
            )
    if true_partner is None:
        if n_rows != n_cols:
            raise ValueError(
                f"pairing has shape {weights.shape}: the default true_partner (row i pairs with column i) needs a "
                "square matrix; pass true_partner, the column of each row's partner."
            )
        partner = np.arange(n_rows)
    else:
        partner = np.asarray(true_partner)
        if partner.shape != (n_rows,) or not np.issubdtype(partner.dtype, np.integer):
            raise ValueError(
                f"true_partner must be {n_rows} integer column indices (one per row of pairing), got "
                f"shape {partner.shape} and dtype {partner.dtype}."
            )
        if partner.min() < 0 or partner.max() >= n_cols:
            raise ValueError(f"true_partner has column indices outside [0, {n_cols - 1}].")
    row_sums = np.asarray(weights.sum(axis=1)).ravel()
    on_partner = np.asarray(weights[np.arange(n_rows), partner]).ravel()
    return float(np.mean(np.divide(on_partner, row_sums, out=np.zeros(n_rows), where=row_sums > 0)))


def _labels(values: Any, name: str, n_cells: int) -> np.ndarray:
    """Return labels as strings, checking length and missing values."""
    series = values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(values)
    if len(series) != n_cells:
        raise ValueError(f"{name} has {len(series)} entries but the embedding has {n_cells} cells.")
    n_missing = int(series.isna().sum())
    if n_missing:
        raise ValueError(f"{name} contains {n_missing} missing value(s); drop those cells first.")
    return series.astype(str).to_numpy()


def silhouette_cell_type(
    embedding: Any,
    labels: Any,
    *,
    metric: Literal["cosine", "euclidean"] = "cosine",
    sample_size: int | None = None,
    random_state: int = 0,
) -> float:
    """Silhouette width of cell types in an embedding, rescaled to ``[0, 1]``.

    The mean silhouette width ``s`` of :func:`sklearn.metrics.silhouette_score` with the cell types as
    clusters, reported as ``(s + 1) / 2`` like scIB's ``silhouette`` (``scale=True``): 1 means compact,
    well separated types, 0.5 overlapping ones. For a joint embedding, stack both modalities' cells,
    e.g. ``np.vstack([rna_emb, atac_emb])`` with their labels concatenated.

    Parameters
    ----------
    embedding
        Cells x dimensions (dense array).
    labels
        Cell type of each cell (array-like or :class:`pandas.Series`, matched by position); compared as
        strings; missing values raise a :class:`ValueError`.
    metric
        Distance between cells, ``"cosine"`` or ``"euclidean"``.
    sample_size
        Compute on a random subset of this many cells (the full computation is quadratic in the number of
        cells; tens of thousands of cells are practical). ``None``: all cells.
    random_state
        Seed of the subset drawn with `sample_size`.

    Returns
    -------
    The rescaled silhouette width in ``[0, 1]``.
    """
    _check_metric(metric)
    data = _embedding(embedding, "embedding")
    types = _labels(labels, "labels", data.shape[0])
    n_types = len(np.unique(types))
    if not 2 <= n_types <= data.shape[0] - 1:
        raise ValueError(
            f"The silhouette needs between 2 and n_cells - 1 = {data.shape[0] - 1} cell types, got {n_types}."
        )
    score = silhouette_score(data, types, metric=metric, sample_size=sample_size, random_state=random_state)
    return float((score + 1) / 2)


def _batch_codes(batches: Any, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct batches and each cell's batch index; at least two batches are required."""
    names, codes = np.unique(_labels(batches, "batches", n_cells), return_inverse=True)
    if len(names) < 2:
        raise ValueError(f"batches has a single value ({names[0]!r}); mixing needs at least two batches.")
    return names, codes


def _other_cells_knn(data: np.ndarray, cells: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Indices of the ``k`` nearest other cells of each of ``cells`` (the cell itself dropped), ``(len(cells), k)``.

    Where duplicates push the cell itself out of its list, the farthest neighbour is dropped instead.
    """
    neighbors = exact_knn(data[cells], data, k + 1, metric)[0]
    is_self = neighbors == cells[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    return neighbors[~is_self].reshape(len(cells), k)


def batch_entropy_mixing(
    embedding: Any,
    batches: Any,
    *,
    n_neighbors: int = 100,
    n_pools: int = 100,
    n_samples_per_pool: int = 100,
    metric: Literal["cosine", "euclidean"] = "euclidean",
    random_state: int = 0,
) -> float:
    """Batch-entropy mixing score of the batches (e.g. the two modalities) in a joint embedding.

    The score used by SCALEX, GLUE and scCLIP: ``n_pools`` times, draw ``n_samples_per_pool`` cells at
    random (with replacement); for each, take its `n_neighbors` nearest other cells and the share
    ``p_b`` of them in each batch ``b``. The shares are reweighted by the batches' overall shares
    ``P_b`` (``q_b = (p_b / P_b) / sum_c (p_c / P_c)``), so neighbourhoods that look like the whole data
    set score highest even with unbalanced batches, and the cell's entropy is ``-sum_b q_b ln q_b``.
    The score is the mean entropy over all drawn cells divided by ``ln(n_batches)``: 1 is perfect
    mixing, 0 full separation.

    The official SCALEX / scCLIP code divides the natural-log entropy by ``log2(n_batches)``, which
    caps it at ``ln 2 ~ 0.693`` for two batches: its values equal this score times
    ``ln(n_batches) / log2(n_batches)`` (e.g. scCLIP's reported 0.578 is 0.834 here). It also adds
    ``1e-8`` inside the logarithm, where this score takes ``0 ln 0 = 0``.

    Parameters
    ----------
    embedding
        Cells x dimensions (dense array), e.g. ``np.vstack([rna_emb, atac_emb])``.
    batches
        Batch of each cell (e.g. ``["rna"] * n_rna + ["atac"] * n_atac``), at least two distinct values;
        compared as strings; missing values raise a :class:`ValueError`.
    n_neighbors
        Neighbours of each drawn cell (the cell itself excluded); at most ``n_cells - 1`` are used.
    n_pools
        Number of rounds of drawn cells.
    n_samples_per_pool
        Cells drawn per round.
    metric
        Distance for the neighbour search; the official code uses ``"euclidean"``.
    random_state
        Seed of the draws.

    Returns
    -------
    The mixing score in ``[0, 1]``.
    """
    _check_metric(metric)
    data = _embedding(embedding, "embedding")
    batch_names, batch_codes = _batch_codes(batches, data.shape[0])
    n_batches = len(batch_names)
    for name, value in (("n_neighbors", n_neighbors), ("n_pools", n_pools), ("n_samples_per_pool", n_samples_per_pool)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}.")
    n_cells = data.shape[0]
    k = min(n_neighbors, n_cells - 1)
    drawn = np.random.default_rng(random_state).integers(0, n_cells, size=n_pools * n_samples_per_pool)
    cells, times_drawn = np.unique(drawn, return_counts=True)
    neighbors = _other_cells_knn(data, cells, k, metric)
    shares = (batch_codes[neighbors][:, :, None] == np.arange(n_batches)).mean(axis=1)
    overall = np.bincount(batch_codes, minlength=n_batches) / n_cells
    adapted = shares / overall
    adapted /= adapted.sum(axis=1, keepdims=True)
    entropy = -np.sum(adapted * np.log(adapted, out=np.zeros_like(adapted), where=adapted > 0), axis=1)
    return float(np.average(entropy, weights=times_drawn) / np.log(n_batches))


def neighbor_mixing(
    embedding: Any,
    batches: Any,
    *,
    n_neighbors: int = 30,
    metric: Literal["cosine", "euclidean"] = "cosine",
) -> float:
    """Share of each cell's nearest neighbours that come from another batch, relative to random mixing.

    For every cell, take its `n_neighbors` nearest other cells in the embedding and the share of them
    in another batch than its own; average over cells and divide by the same average for neighbours
    drawn at random, ``1 - sum_b P_b**2`` (``P_b``: batch ``b``'s share of the cells). With two equal
    batches (RNA and ATAC profiles of the same cells) this is twice the mean share of neighbours from
    the other modality: 1.0 is perfect mixing, 0 full separation. A plainer companion of
    :func:`batch_entropy_mixing`, over every cell rather than a random draw.

    Parameters
    ----------
    embedding
        Cells x dimensions (dense array), e.g. ``np.vstack([rna_emb, atac_emb])``.
    batches
        Batch of each cell (e.g. ``["rna"] * n_rna + ["atac"] * n_atac``), at least two distinct values;
        compared as strings; missing values raise a :class:`ValueError`.
    n_neighbors
        Neighbours of each cell (the cell itself excluded); at most ``n_cells - 1`` are used.
    metric
        Distance for the neighbour search, ``"cosine"`` (default) or ``"euclidean"``.

    Returns
    -------
    The mixing score, ``>= 0``; 1 is random mixing (it can exceed 1 when neighbourhoods favour the
    other batch).

    Raises
    ------
    ValueError
        A single batch, a batch label per cell missing, or ``n_neighbors < 1``.

    Examples
    --------
    >>> z = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.01, 1.0]])
    >>> neighbor_mixing(z, ["rna", "atac", "rna", "atac"], n_neighbors=1)
    2.0
    """
    _check_metric(metric)
    data = _embedding(embedding, "embedding")
    _, batch_codes = _batch_codes(batches, data.shape[0])
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int | np.integer) or n_neighbors < 1:
        raise ValueError(f"n_neighbors must be a positive integer, got {n_neighbors!r}.")
    n_cells = data.shape[0]
    k = min(n_neighbors, n_cells - 1)
    neighbors = _other_cells_knn(data, np.arange(n_cells), k, metric)
    other = float((batch_codes[neighbors] != batch_codes[:, None]).mean())
    overall = np.bincount(batch_codes) / n_cells
    return other / float(1.0 - np.sum(overall**2))
