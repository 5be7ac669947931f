"""Access to cells x features matrices in row blocks: in memory (sparse or dense) or backed on disk.

Every stage that reads a whole count matrix (gene activity, TF-IDF / LSI, input statistics,
projections) goes through :func:`row_blocks`, so that it works the same on a scipy matrix and on
the matrix of an AnnData opened with ``backed="r"`` (``mudata.read_h5mu(path, backed=True)``),
whose rows are read from the file block by block and never all at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

#: Non-zeros per row block (the rows of a block are chosen to hold about this many).
BLOCK_NONZEROS = 1 << 24
_VALUES_BLOCK = 1 << 26


def layer_matrix(adata, layer: str | None):
    """The cells x features matrix a ``layer`` argument selects: ``adata.layers[layer]``, or ``adata.X`` for ``None``.

    Not copied (an AnnData view gives its usual slice). A missing layer raises ``KeyError``; the tools check the
    name first and say which layers there are (:func:`~sctransfer._validation.get_modality`).
    """
    return adata.X if layer is None else adata.layers[layer]


def is_backed(x) -> bool:
    """Whether ``x`` is a matrix of a backed AnnData (an on-disk sparse or HDF5 dataset)."""
    from anndata.abc import CSCDataset, CSRDataset

    if isinstance(x, CSRDataset | CSCDataset):
        return True
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py comes with anndata
        return False
    return isinstance(x, h5py.Dataset)


#: The dtypes scipy.sparse stores; other numeric dtypes (float16) are widened to float32 by :func:`as_csr`.
SPARSE_DTYPES = frozenset(
    np.dtype(t)
    for t in (
        np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
        np.longlong, np.ulonglong, np.float32, np.float64, np.longdouble, np.complex64, np.complex128, np.clongdouble,
    )
)  # fmt: skip


def as_csr(block) -> sp.csr_matrix:
    """``block`` (a numpy array or any scipy sparse matrix) as CSR, not copied when it already is one.

    scipy.sparse refuses some numeric dtypes (``float16``, as dense data written at half
    precision have); these are widened to float32.
    """
    if isinstance(block, sp.csr_matrix):
        return block
    if np.dtype(block.dtype) not in SPARSE_DTYPES and np.issubdtype(block.dtype, np.number):
        return sp.csr_matrix(block, dtype=np.float32)
    return sp.csr_matrix(block)


def row_block(x, rows: slice | np.ndarray) -> sp.csr_matrix:
    """Rows of ``x`` (any supported matrix) as CSR (see :func:`as_csr`); ``rows`` a slice or sorted indices."""
    return as_csr(x[rows])


def _row_sliceable(x):
    """``x``, or a CSR copy of a sparse matrix whose format cannot be sliced by rows (COO, DIA, ...)."""
    if sp.issparse(x) and x.format not in ("csr", "csc"):
        return sp.csr_matrix(x)
    return x


def stored_values(x) -> int:
    """Number of stored values of a matrix (non-zeros of a sparse one, every entry of a dense one)."""
    from anndata.abc import CSCDataset, CSRDataset

    if isinstance(x, CSRDataset | CSCDataset):
        return int(x.group["data"].shape[0])
    if sp.issparse(x):
        return int(x.nnz)
    return int(np.prod(x.shape))


def row_blocks(x, block_rows: int | None = None) -> Iterator[tuple[slice, sp.csr_matrix]]:
    """``(rows, block)`` for consecutive blocks of rows, each block CSR.

    ``block_rows=None`` sizes the blocks to about 16 million stored values each (at least 1,024
    rows), so that the temporaries of a block stay near 100 MB whatever the density. In-memory
    blocks share nothing with ``x`` that could be modified (slicing copies), and a backed matrix
    is read one block at a time.
    """
    x = _row_sliceable(x)
    if block_rows is None:
        per_row = stored_values(x) / max(x.shape[0], 1)
        block_rows = max(1024, int(BLOCK_NONZEROS / max(per_row, 1.0)))
    for lo in range(0, x.shape[0], block_rows):
        rows = slice(lo, min(lo + block_rows, x.shape[0]))
        yield rows, row_block(x, rows)


def column_sums(x) -> np.ndarray:
    """Column totals (float64), streamed over row blocks."""
    totals = np.zeros(x.shape[1])
    for _, block in row_blocks(x):
        totals += np.bincount(block.indices, weights=block.data, minlength=x.shape[1])
    return totals


def stack_rows(blocks: list[sp.csr_matrix]) -> sp.csr_matrix:
    """Row blocks stacked into one CSR matrix, freeing each block once copied.

    Peak memory is the result plus one block (``scipy.sparse.vstack`` holds every block and the
    result together, twice the size).
    """
    if len(blocks) == 1:
        return blocks.pop()
    n_cols = blocks[0].shape[1]
    nnz = sum(block.nnz for block in blocks)
    n_rows = sum(block.shape[0] for block in blocks)
    index_dtype = np.int32 if max(nnz, n_cols) < np.iinfo(np.int32).max else np.int64
    data = np.empty(nnz, dtype=blocks[0].dtype)
    indices = np.empty(nnz, dtype=index_dtype)
    indptr = np.empty(n_rows + 1, dtype=np.int64)
    indptr[0] = 0
    row, start = 0, 0
    while blocks:
        block = blocks.pop(0)
        end = start + block.nnz
        data[start:end] = block.data
        indices[start:end] = block.indices
        indptr[row + 1 : row + 1 + block.shape[0]] = block.indptr[1:] + start
        row, start = row + block.shape[0], end
        del block
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))


def column_selection(names, wanted) -> tuple[sp.csr_matrix, np.ndarray]:
    """Match features by name (the package's one name matcher): a features x wanted 0/1 selection matrix.

    ``block @ selection`` is the block with its columns in the order of ``wanted`` (absent names
    give zero columns), without copying or changing the matrix the block comes from. A name that
    ``names`` holds twice feeds its ``wanted`` column from both features (their sum).

    Parameters
    ----------
    names
        The ``n_features`` names of the matrix's columns (e.g. ``var_names``).
    wanted
        The ``n_wanted`` names to pick, in the order wanted; unique.

    Returns
    -------
    ``(selection, found)``: float32 CSR ``n_features x n_wanted`` with a 1 where the names match, and
    a boolean array of length ``n_wanted``, True for the wanted names present in ``names``.

    Raises
    ------
    ValueError
        If ``wanted`` holds a name twice.
    """
    names = np.asarray(names, dtype=str)
    wanted = pd.Index(np.asarray(wanted, dtype=str))
    if not wanted.is_unique:
        repeated = wanted[wanted.duplicated()].unique()[:3].tolist()
        raise ValueError(f"The names to select must be unique; {repeated} appear more than once.")
    positions = wanted.get_indexer(names)
    rows = np.flatnonzero(positions >= 0)
    found = np.zeros(len(wanted), dtype=bool)
    found[positions[rows]] = True
    selection = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, positions[rows])), shape=(len(names), len(wanted))
    )
    return selection, found


def value_blocks(x) -> Iterator[np.ndarray]:
    """The stored values of ``x`` (1-D arrays), block by block, never the whole matrix at once.

    The values of a sparse matrix (any scipy format, matrix or array) are its ``.data``; those of
    a backed sparse matrix are read from the file in blocks of 64 million; a dense or backed dense
    matrix is read in row blocks. Zeros a sparse matrix does not store are not visited.
    """
    from anndata.abc import CSCDataset, CSRDataset

    if isinstance(x, CSRDataset | CSCDataset):
        values = x.group["data"]
        for lo in range(0, values.shape[0], _VALUES_BLOCK):
            yield np.asarray(values[lo : lo + _VALUES_BLOCK])
    elif sp.issparse(x):
        yield (x if x.format in ("csr", "csc", "coo") else sp.csr_matrix(x)).data
    elif is_backed(x):
        for _, block in row_blocks(x):
            yield block.data
    else:
        dense = np.asarray(x)
        if dense.ndim != 2:
            yield dense.ravel()
            return
        rows = max(1, _VALUES_BLOCK // max(dense.shape[1], 1))
        for lo in range(0, dense.shape[0], rows):
            yield dense[lo : lo + rows].ravel()


def all_finite(x) -> bool:
    """Whether every stored value of ``x`` is finite (streamed for backed matrices)."""
    if not np.issubdtype(x.dtype, np.floating):
        return True
    return all(np.isfinite(values).all() for values in value_blocks(x))


@dataclass(frozen=True)
class ValueSummary:
    """What the stored values of a matrix hold, from one streamed pass (see :func:`value_summary`).

    Attributes
    ----------
    n_values
        Values visited: the stored values of a sparse matrix, every entry of a dense one.
    n_nonfinite
        NaN or infinite values.
    n_negative
        Values below zero.
    n_fractional
        Finite values that are not whole numbers.
    min_value, max_value
        Smallest and largest finite value (0.0 when there is none).
    empty_rows
        With ``value_summary(x, empty_rows=True)``: the ``(n_rows,)`` mask of :func:`empty_rows`; else ``None``.
    """

    n_values: int
    n_nonfinite: int
    n_negative: int
    n_fractional: int
    min_value: float
    max_value: float
    empty_rows: np.ndarray | None = None


def value_summary(x, *, empty_rows: bool = False) -> ValueSummary:
    """Count the NaN/inf, negative and non-whole values of a numeric matrix, streamed (see :func:`value_blocks`).

    Works on any scipy sparse format, numpy arrays and backed matrices without densifying a
    sparse matrix. With ``empty_rows=True`` the summary also holds the mask of the rows without any
    non-zero value, from the same pass over the values for a CSR matrix in memory or backed (its row
    pointers are read too), from a second pass over row blocks for other layouts.
    """
    dtype = np.dtype(x.dtype)
    floating = np.issubdtype(dtype, np.floating)
    n_values = n_nonfinite = n_negative = n_fractional = 0
    low, high = np.inf, -np.inf
    rows = _CSRZeroRows(x) if empty_rows and _CSRZeroRows.fits(x) else None
    for values in value_blocks(x):
        if rows is not None:
            rows.add(values)
        n_values += values.size
        if floating:
            finite = np.isfinite(values)
            n_bad = int(values.size - np.count_nonzero(finite))
            n_nonfinite += n_bad
            values = values[finite] if n_bad else values
            n_fractional += int(np.count_nonzero(values != np.floor(values)))
        if values.size:
            n_negative += int(np.count_nonzero(values < 0))
            low, high = min(low, float(values.min())), max(high, float(values.max()))
    if low > high:
        low = high = 0.0
    mask = None if not empty_rows else (rows.mask() if rows is not None else _empty_rows_by_blocks(x))
    return ValueSummary(n_values, n_nonfinite, n_negative, n_fractional, low, high, mask)


def empty_rows(x) -> np.ndarray:
    """Boolean mask of the rows (cells) of ``x`` whose values are all zero, streamed.

    Parameters
    ----------
    x
        A cells x features matrix: any scipy sparse format, a numpy array or a backed matrix.

    Returns
    -------
    ``(n_rows,)`` bool array, ``True`` for a row without any non-zero value (a cell with no counts).
    A CSR matrix (in memory or backed) is read through its row pointers and its values only (not its
    column indices); other layouts in row blocks. :func:`value_summary` gives the same mask from its own pass.
    """
    if not _CSRZeroRows.fits(x):
        return _empty_rows_by_blocks(x)
    rows = _CSRZeroRows(x)
    for values in value_blocks(x):
        rows.add(values)
    return rows.mask()


def _empty_rows_by_blocks(x) -> np.ndarray:
    mask = np.empty(x.shape[0], dtype=bool)
    for rows, block in row_blocks(x):
        mask[rows] = zero_rows(block)
    return mask


class _CSRZeroRows:
    """The rows of a CSR matrix (scipy or backed) without non-zeros, from its row pointers and its values in order.

    A row is empty when every value it stores is zero: the stored zeros are counted per row as the values
    stream past (:meth:`add`, blocks in storage order, as :func:`value_blocks` yields them).
    """

    @staticmethod
    def fits(x) -> bool:
        from anndata.abc import CSRDataset

        return isinstance(x, CSRDataset) or (sp.issparse(x) and x.format == "csr")

    def __init__(self, x):
        indptr = x.group["indptr"] if not sp.issparse(x) else x.indptr
        self.row_starts = np.asarray(indptr[:], dtype=np.int64)
        self.stored_zeros = np.zeros(x.shape[0], dtype=np.int64)
        self.offset = 0

    def add(self, values: np.ndarray) -> None:
        at = np.flatnonzero(values == 0) + self.offset
        at = at[at < self.row_starts[-1]]  # values past the last row pointer belong to no row
        if at.size:
            rows = np.searchsorted(self.row_starts, at, side="right") - 1
            self.stored_zeros += np.bincount(rows, minlength=len(self.stored_zeros))
        self.offset += values.size

    def mask(self) -> np.ndarray:
        return np.diff(self.row_starts) == self.stored_zeros


def zero_rows(block: sp.csr_matrix) -> np.ndarray:
    """Boolean mask of the rows of a CSR matrix without any non-zero value (stored zeros count as zero)."""
    row_of_value = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
    return np.bincount(row_of_value[block.data != 0], minlength=block.shape[0]) == 0
