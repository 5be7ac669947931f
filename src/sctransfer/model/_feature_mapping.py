"""Zero-shot use of a trained model on another data set: map the new data's features onto the model's.

Genes are matched by name. Peaks are matched by name when both data sets have the same peak set,
otherwise by genomic overlap, so that a data set whose peaks were called separately (shifted
bounds, other peaks, another naming style or ``1`` vs ``chr1``) can still be embedded.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sctransfer._intervals import INTERVAL_COLUMNS, IntervalError, harmonise_chromosomes, overlap_pairs
from sctransfer._matrix import column_selection
from sctransfer._validation import user_stacklevel

logger = logging.getLogger(__name__)

#: Below this share of the model's peaks reached, a new peak set is reported with a warning.
MIN_COVERAGE = 0.5
#: Names shown in messages about missing or repeated features.
N_EXAMPLES = 5
MappingMethod = Literal["identical", "name", "overlap"]


@dataclass(frozen=True, eq=False)
class FeatureMapping:
    """How the features of a new data set feed the features of a trained model.

    Fields:

    matrix
        float32 CSR, ``n_new_features x n_model_features``; ``new_counts @ matrix`` gives counts in
        the model's feature order (model features that no new feature reaches stay zero).
    coverage
        Share of the model's features reached by at least one new feature.
    n_new_used
        Number of new features that feed at least one model feature.
    method
        ``"identical"`` (same features in the same order), ``"name"`` (matched by name) or
        ``"overlap"`` (peaks matched by genomic overlap).
    new_features
        The new data set's feature names, in its order, when known (set by
        :meth:`~sctransfer.model.SCCLIP.feature_mapping`): a mapping is used only for data with these features.
    """

    matrix: sp.csr_matrix
    coverage: float
    n_new_used: int
    method: MappingMethod
    new_features: pd.Index | None = None

    def apply(self, counts: sp.spmatrix | np.ndarray) -> sp.csr_matrix:
        """Counts of the new data in the model's feature order.

        Parameters
        ----------
        counts
            Cells x new features (any scipy sparse format, or a numpy array); never densified.

        Returns
        -------
        Cells x model features, float32 CSR (a new matrix; ``counts`` is not changed).
        """
        if counts.ndim != 2 or counts.shape[1] != self.matrix.shape[0]:
            raise ValueError(
                f"The mapping expects cells x {self.matrix.shape[0]} new features, got shape {counts.shape}; "
                "pass the counts of the data set the mapping was built for, columns in the same order."
            )
        x = sp.csr_matrix(counts, dtype=np.float32, copy=True)  # dtype first: scipy refuses float16 arrays
        if self.method == "identical":
            return x
        return sp.csr_matrix(x @ self.matrix, dtype=np.float32)


def _report(mapping: FeatureMapping, what: str) -> FeatureMapping:
    """Log how many new features reach how much of the model's."""
    n_new, n_model = mapping.matrix.shape
    logger.info(
        "Feature mapping by %s: %d of %d new %s reach %.1f%% of the model's %d %s.",
        mapping.method,
        mapping.n_new_used,
        n_new,
        what,
        100 * mapping.coverage,
        n_model,
        what,
    )
    return mapping


def _mapping(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], method: MappingMethod) -> FeatureMapping:
    matrix = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape, dtype=np.float32)
    return FeatureMapping(
        matrix=matrix,
        coverage=float(np.unique(cols).size / max(shape[1], 1)),
        n_new_used=int(np.unique(rows).size),
        method=method,
    )


def _by_name(new: np.ndarray, model: np.ndarray, what: str) -> FeatureMapping | None:
    """Mapping by name (``None`` when no name is shared); a feature of the model appears once."""
    model_index = pd.Index(model)
    if not model_index.is_unique:
        duplicated = model_index[model_index.duplicated()].unique()[:3].tolist()
        raise ValueError(f"The model's {what} have duplicate names (e.g. {duplicated}); names must be unique.")
    shape = (len(new), len(model))
    if np.array_equal(new, model):
        return _report(_mapping(np.arange(len(new)), np.arange(len(new)), shape, "identical"), what)
    selection, found = column_selection(new, model)
    if not found.any():
        return None
    return _report(_mapping(*selection.nonzero(), shape, "name"), what)


def map_genes(new_names: Sequence[str], model_names: Sequence[str], *, what: str = "the new data") -> FeatureMapping:
    """Map the genes of a data set onto a model's genes by exact name: both models' one gene matcher.

    Model genes absent from the data are read as zero counts (with a warning); genes of the data
    unknown to the model are dropped. The share of the model's genes reached is logged.

    Parameters
    ----------
    new_names
        Gene names of the data (``var_names``), in column order.
    model_names
        The model's gene names, in its input order.
    what
        The data, for messages (``"modality 'rna'"``).

    Returns
    -------
    The mapping (``method`` ``"identical"`` when the names and their order are the same, else ``"name"``).

    Raises
    ------
    ValueError
        When the data repeat a gene name (which column would be meant is ambiguous; the message
        names them and the fix, ``var_names_make_unique()``), share no gene name with the model,
        or the model's names are not unique.

    Warns
    -----
    UserWarning
        When some of the model's genes are missing from the data: how many, and which.
    """
    new, model = np.asarray(new_names, dtype=str), np.asarray(model_names, dtype=str)
    new_index = pd.Index(new)
    if not new_index.is_unique:
        repeated = new_index[new_index.duplicated()].unique()
        raise ValueError(
            f"{what} has {len(repeated)} gene names more than once (e.g. {repeated[:N_EXAMPLES].tolist()}; 10x "
            "readers give repeated gene symbols), so which column is meant is ambiguous. Make the names unique "
            "first, e.g. `adata.var_names_make_unique()`."
        )
    mapping = _by_name(new, model, "genes")
    if mapping is None:
        raise ValueError(
            f"None of the model's {len(model)} genes is in {what} (data: {len(new)} genes, e.g. {new[:3].tolist()}; "
            f"model genes e.g. {model[:3].tolist()}). Use the same gene identifiers as the model's training data "
            "(symbols vs Ensembl IDs) and the same species (e.g. human SOX2 vs mouse Sox2)."
        )
    missing = model[~pd.Index(model).isin(new_index)]
    if len(missing):
        warnings.warn(
            f"{len(missing)} of the model's {len(model)} genes are missing from {what} (e.g. "
            f"{missing[:N_EXAMPLES].tolist()}); they are read as zero counts.",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    return mapping


def _intervals(coords: pd.DataFrame, names: Sequence[str] | None, which: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Validated interval table (chrom str, start/end int64, positional index) and feature names."""
    missing = [c for c in INTERVAL_COLUMNS if c not in coords.columns]
    if missing:
        raise IntervalError(
            f"The {which} peak coordinates have no column {', '.join(map(repr, missing))}; pass "
            "sctransfer.pp.peak_coordinates(adata)."
        )
    names = np.asarray(coords.index if names is None else names, dtype=str)
    if len(names) != len(coords):
        raise ValueError(f"{len(names)} {which} peak names were given for {len(coords)} {which} peak coordinates.")
    bad = coords[INTERVAL_COLUMNS].isna().any(axis=1).to_numpy()
    if bad.any():
        raise IntervalError(
            f"{int(bad.sum())} {which} peaks have no coordinate (e.g. {names[bad][:3].tolist()}); pass "
            "sctransfer.pp.peak_coordinates(adata), which reads them from var columns or peak names."
        )
    table = pd.DataFrame(
        {
            "chrom": coords["chrom"].astype(str).to_numpy(),
            "start": coords["start"].to_numpy(np.int64),
            "end": coords["end"].to_numpy(np.int64),
        }
    )
    return table, names


def _examples(table: pd.DataFrame) -> str:
    return ", ".join(f"{c}:{s}-{e}" for c, s, e in table.head(3).itertuples(index=False, name=None))


def map_peaks(
    new_coords: pd.DataFrame,
    model_coords: pd.DataFrame,
    *,
    new_names: Sequence[str] | None = None,
    model_names: Sequence[str] | None = None,
) -> FeatureMapping:
    """Map peaks of a new data set onto a model's peaks.

    When both have the same set of peak names, the mapping is a permutation (by name).
    Otherwise peaks are matched by genomic overlap (at least one shared base, after harmonising
    chromosome names so that ``1`` matches ``chr1``): the counts of every new peak that overlaps a
    model peak are added to that model peak. A new peak overlapping two model peaks contributes
    its full counts to both; a model peak overlapped by several new peaks receives their sum;
    model peaks overlapped by none stay zero. Coverage is logged, with a warning below 50%.

    Parameters
    ----------
    new_coords, model_coords
        Peak coordinates (``chrom``, ``start``, ``end``, BED style), one row per peak in column
        order, as returned by :func:`sctransfer.pp.peak_coordinates`.
    new_names, model_names
        Peak names; default: the coordinates' index.

    Returns
    -------
    The mapping (``method`` ``"identical"``, ``"name"`` or ``"overlap"``).

    Raises
    ------
    sctransfer.pp.IntervalError
        When no new peak overlaps any model peak (the message shows examples of both; usually the
        two are on different genome builds or species), or coordinates are missing.
    """
    new_table, new = _intervals(new_coords, new_names, "new")
    model_table, model = _intervals(model_coords, model_names, "model")
    if pd.Index(new).is_unique and len(new) == len(model) and pd.Index(new).isin(model).all():
        return _by_name(new, model, "peaks")
    new_table["chrom"] = harmonise_chromosomes(new_table["chrom"], model_table["chrom"].to_numpy()).to_numpy()
    new_idx, model_idx = overlap_pairs(new_table, model_table)
    if len(new_idx) == 0:
        shared = len(set(new_table["chrom"]) & set(model_table["chrom"]))
        raise IntervalError(
            f"No peak of the new data overlaps a peak of the model (new: {len(new)} peaks, e.g. "
            f"{_examples(new_table)}; model: {len(model)} peaks, e.g. {_examples(model_table)}; {shared} chromosome "
            "names in common). The two are probably on different genome builds (hg19 vs hg38, mm9 vs mm10) or "
            "from different species: lift the new peaks over to the model's build, or re-call them on it."
        )
    mapping = _report(_mapping(new_idx, model_idx, (len(new), len(model)), "overlap"), "peaks")
    if mapping.coverage < MIN_COVERAGE:
        logger.warning(
            "Only %.1f%% of the model's peaks are reached by the new data (mapping by overlap); the rest are zero, "
            "so the embedding of the new cells may be poor. Check that both data sets use the same genome build.",
            100 * mapping.coverage,
        )
    return mapping
