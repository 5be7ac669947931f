"""How counts become network input: one family of per-cell normalisations and per-feature scalings for both models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import scipy.sparse as sp

from sctransfer._matrix import row_blocks
from sctransfer.pp._lsi import inverse_document_frequency, tfidf

InputTransformName = Literal["standardized_log", "log", "binary", "max_scaled_log", "max_scaled_tfidf"]
_TRANSFORMS: tuple[str, ...] = get_args(InputTransformName)
#: Transformations that keep a zero count at zero (their output is sparse).
_ZERO_PRESERVING = ("log", "binary", "max_scaled_log", "max_scaled_tfidf")


def _log_normalised(block: sp.csr_matrix, scale: float) -> sp.csr_matrix:
    """``log1p(x / total * scale)`` of a CSR block, row by row (totals over the block's columns)."""
    totals = np.asarray(block.sum(axis=1), dtype=np.float64).ravel()
    factor = np.divide(scale, totals, out=np.zeros_like(totals), where=totals > 0)
    out = block.astype(np.float32, copy=True)
    out.data = np.log1p(out.data * np.repeat(factor, np.diff(out.indptr)).astype(np.float32))
    return out


@dataclass
class InputTransform:
    """How counts become network input, with statistics fitted on one set of cells.

    A per-cell normalisation, then (for some names) a per-feature scaling whose statistics are
    fitted by :meth:`fit`:

    - ``"standardized_log"`` (SCNCL's default): ``log1p`` of counts normalised to ``scale`` per
      cell, then each feature centred and scaled to unit variance (clipped to +-``clip``). SCNCL
      fits it on each data set separately, which removes feature-level differences between RNA
      and gene activity. Zeros do not stay zero: use :meth:`decomposed` for a sparse form.
    - ``"log"``: the log-normalised values only.
    - ``"binary"``: ``x > 0`` (the official scNCL input).
    - ``"max_scaled_log"`` (scCLIP's RNA): the log-normalised values divided by each feature's
      largest value over the fitted cells, so inputs lie in about ``[0, 1]``.
    - ``"max_scaled_tfidf"`` (scCLIP's ATAC): ``log1p(scale * tf * idf)`` with the fitted cells'
      inverse document frequency, divided by each feature's largest value over the fitted cells.

    Every name but ``"standardized_log"`` keeps zeros at zero (:meth:`sparse`).

    Attributes
    ----------
    name
        One of the names above.
    scale
        Per-cell total of the normalisation (10,000).
    clip
        Bound of the standardised values (``"standardized_log"`` only).
    mean, std
        Per-feature mean and standard deviation of the log-normalised values (``"standardized_log"``).
    idf
        Per-feature inverse document frequency (``"max_scaled_tfidf"``).
    feature_max
        Per-feature largest normalised value (``"max_scaled_*"``; 1 where a feature is all zero).
    """

    name: InputTransformName = "standardized_log"
    scale: float = 1e4
    clip: float = 10.0
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    idf: np.ndarray | None = None
    feature_max: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.name not in _TRANSFORMS:
            raise ValueError(f"input_transform must be one of {_TRANSFORMS}, got {self.name!r}.")

    @classmethod
    def fit(
        cls, x, selection: sp.spmatrix | None = None, name: InputTransformName = "standardized_log", **kwargs
    ) -> InputTransform:
        """Fit the per-feature statistics on cells x features counts ``x`` (any matrix, backed too), streamed.

        Parameters
        ----------
        x
            Cells x features counts: scipy sparse, numpy, or a backed AnnData matrix.
        selection
            Features x model features 0/1 matrix (see :func:`sctransfer._matrix.column_selection`)
            that picks and orders the features; ``None`` takes the columns as they are.
        name
            Transformation (see the class docstring).
        **kwargs
            ``scale``, ``clip``.

        Raises
        ------
        ValueError
            For an unknown ``name``.
        """
        transform = cls(name=name, **kwargs)
        n_features = x.shape[1] if selection is None else selection.shape[1]
        if name == "max_scaled_tfidf":
            idf = inverse_document_frequency(x)
            transform.idf = (idf if selection is None else selection.T @ idf).astype(np.float32)
        if name == "standardized_log":
            total, total_sq = np.zeros(n_features), np.zeros(n_features)
            for _, block in row_blocks(x):
                block = transform._normalised(block if selection is None else block @ selection)
                total += np.bincount(block.indices, weights=block.data, minlength=n_features)
                total_sq += np.bincount(block.indices, weights=block.data.astype(np.float64) ** 2, minlength=n_features)
            n = max(x.shape[0], 1)
            mean = total / n
            std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
            transform.mean = mean.astype(np.float32)
            transform.std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        elif name.startswith("max_scaled"):
            feature_max = np.zeros(n_features, dtype=np.float32)
            for _, block in row_blocks(x):
                block = transform._normalised(block if selection is None else block @ selection)
                feature_max = np.maximum(feature_max, block.max(axis=0).toarray().ravel())
            transform.feature_max = np.where(feature_max > 0, feature_max, 1.0).astype(np.float32)
        return transform

    def _normalised(self, rows: sp.spmatrix) -> sp.csr_matrix:
        """The per-cell step (log-normalised, TF-IDF or binary), float32 CSR."""
        if self.name == "max_scaled_tfidf":
            return tfidf(rows, scale_factor=self.scale, idf=self.idf)
        if self.name == "binary":
            values = sp.csr_matrix(rows, dtype=np.float32, copy=True)
            values.data = (values.data > 0).astype(np.float32)
            return values
        return _log_normalised(rows if isinstance(rows, sp.csr_matrix) else sp.csr_matrix(rows), self.scale)

    def sparse(self, rows: sp.spmatrix) -> sp.csr_matrix:
        """Network input of cells x features counts as float32 CSR (zeros stay zero; never densified).

        Raises
        ------
        ValueError
            For ``"standardized_log"``, whose zeros become ``-mean / std`` (use :meth:`decomposed`).
        """
        if self.name not in _ZERO_PRESERVING:
            raise ValueError(f"The {self.name!r} input is not sparse (zeros are centred); use decomposed().")
        values = self._normalised(rows)
        if self.feature_max is not None:
            values.data /= self.feature_max[values.indices]
        return values

    def decomposed(self, rows: sp.spmatrix) -> tuple[sp.csr_matrix, np.ndarray]:
        """The transformed rows as ``offset + sparse`` without densifying: ``self(rows) == offset + sparse.toarray()``.

        ``offset`` (one value per feature, float32) is what a zero count becomes; ``sparse`` holds,
        at the non-zero counts, the difference to it. Linear maps of the input (the joint PCA) can
        then be applied to the sparse part and to the offset separately.
        """
        if self.name in _ZERO_PRESERVING:
            return self.sparse(rows), np.zeros(rows.shape[1], dtype=np.float32)
        values = self._normalised(rows)
        offset = np.clip(-self.mean / self.std, -self.clip, self.clip)
        features = values.indices
        values.data = (
            np.clip((values.data - self.mean[features]) / self.std[features], -self.clip, self.clip) - offset[features]
        )
        return values, offset.astype(np.float32)

    def __call__(self, rows: sp.spmatrix) -> np.ndarray:
        """Dense float32 network input for a few rows (cells x features)."""
        if self.name in _ZERO_PRESERVING:
            return self.sparse(rows).toarray()
        dense = self._normalised(rows).toarray()
        dense -= self.mean
        dense /= self.std
        np.clip(dense, -self.clip, self.clip, out=dense)
        return dense
