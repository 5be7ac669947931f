"""Trust in transferred labels: calibration of the confidence and agreement of labels across runs."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from itertools import combinations
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

RELIABILITY_COLUMNS = ("bin_lower", "bin_upper", "n_cells", "accuracy", "mean_confidence")


def label_text(value: Any) -> str:
    """A label as text; a whole number reads the same whatever its type (``1``, ``1.0``, ``np.int64(1)``: ``"1"``)."""
    if isinstance(value, Real) and not isinstance(value, bool | np.bool_) and float(value).is_integer():
        return str(int(value))
    return str(value)


def label_texts(series: pd.Series) -> np.ndarray:
    """:func:`label_text` of each value of ``series``, as an object array (the labels the metrics compare)."""
    if isinstance(series.dtype, pd.CategoricalDtype):  # each category once; code -1 (missing) reads "nan"
        texts = np.array([label_text(c) for c in series.cat.categories] + ["nan"], dtype=object)
        return texts[series.cat.codes.to_numpy()]
    return np.array([label_text(value) for value in series.astype(object)], dtype=object)


def _labels_and_missing(values: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels as an object array of strings (matched by position) and a boolean mask of missing values."""
    if np.ndim(values) != 1:
        raise ValueError(f"{name} must be one-dimensional (one label per cell), got {np.ndim(values)} dimensions.")
    series = values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    return label_texts(series), series.isna().to_numpy()


def _check_n_bins(n_bins: Any) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, Integral) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer (15 is the usual choice), got {n_bins!r}.")
    return int(n_bins)


def reliability_table(truth: Any, predicted: Any, confidence: Any, *, n_bins: int = 15) -> pd.DataFrame:
    """Accuracy and mean confidence of the cells in each of `n_bins` equal-width bins of confidence.

    The table behind a reliability diagram (:func:`sctransfer.pl.reliability_diagram`) and
    :func:`expected_calibration_error`. Bin ``b`` (0-based) covers confidences in
    ``(b / n_bins, (b + 1) / n_bins]``; the first bin also holds a confidence of exactly 0. A cell is
    correct when its predicted label equals its true label (compared as strings). Cells with a missing
    true label, prediction or confidence (e.g. the cells :func:`sctransfer.tl.label_transfer` leaves
    unlabelled) are left out; how many is logged.

    Parameters
    ----------
    truth
        True labels, one per cell (array-like or :class:`pandas.Series`, matched by position).
    predicted
        Predicted labels, same length and cell order.
    confidence
        Confidence of each prediction: the probability the method gives the predicted label, in
        ``[0, 1]`` (e.g. ``obs["sctransfer_confidence"]``), same length and cell order.
    n_bins
        Number of equal-width bins of ``[0, 1]``.

    Returns
    -------
    A :class:`pandas.DataFrame` with one row per bin (all `n_bins`, in order; index name ``"bin"``)
    and columns

    ``bin_lower``, ``bin_upper``
        the bin's edges;
    ``n_cells``
        number of cells whose confidence falls in the bin (int);
    ``accuracy``
        share of those cells whose prediction is correct (NaN for an empty bin);
    ``mean_confidence``
        their mean confidence (NaN for an empty bin).

    Raises
    ------
    ValueError
        If the inputs are not one-dimensional or differ in length, a confidence lies outside ``[0, 1]``,
        no cell has all three values, or `n_bins` is not a positive integer.
    TypeError
        If `confidence` holds values that are not numbers.
    """
    n_bins = _check_n_bins(n_bins)
    true, true_missing = _labels_and_missing(truth, "truth")
    pred, pred_missing = _labels_and_missing(predicted, "predicted")
    if np.ndim(confidence) != 1:
        raise ValueError(
            f"confidence must be one-dimensional (one value per cell), got {np.ndim(confidence)} dimensions."
        )
    try:
        conf = np.asarray(confidence, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"confidence must hold numbers (probabilities in [0, 1]): {error}") from None
    lengths = {"truth": len(true), "predicted": len(pred), "confidence": len(conf)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"truth, predicted and confidence must have one value per cell each; lengths: {lengths}.")
    keep = ~(true_missing | pred_missing | np.isnan(conf))
    n_kept = int(keep.sum())
    if n_kept == 0:
        raise ValueError(
            f"None of the {len(conf)} cells has a true label, a prediction and a confidence; nothing to evaluate."
        )
    if n_kept < len(conf):
        logger.info("Leaving out %d of %d cells with a missing label or confidence.", len(conf) - n_kept, len(conf))
    true, pred, conf = true[keep], pred[keep], conf[keep]
    outside = (conf < 0) | (conf > 1)
    if outside.any():
        raise ValueError(
            f"confidence must lie in [0, 1]: {int(outside.sum())} value(s) outside, from {conf[outside].min():g} to "
            f"{conf[outside].max():g}. Pass the probability of the predicted label (e.g. obs['sctransfer_confidence'])."
        )
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.digitize(conf, edges[1:-1], right=True)
    n_cells = np.bincount(bins, minlength=n_bins)
    filled = n_cells > 0
    correct = np.bincount(bins, weights=(true == pred).astype(np.float64), minlength=n_bins)
    confidence_sum = np.bincount(bins, weights=conf, minlength=n_bins)
    table = pd.DataFrame(
        {
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "n_cells": n_cells.astype(np.int64),
            "accuracy": np.divide(correct, n_cells, out=np.full(n_bins, np.nan), where=filled),
            "mean_confidence": np.divide(confidence_sum, n_cells, out=np.full(n_bins, np.nan), where=filled),
        }
    )
    table.index.name = "bin"
    return table


def _ece_of_table(table: pd.DataFrame) -> float:
    """Expected calibration error from a :func:`reliability_table`: bins weighted by their share of cells."""
    filled = table[table["n_cells"] > 0]
    weights = filled["n_cells"] / filled["n_cells"].sum()
    return float((weights * (filled["accuracy"] - filled["mean_confidence"]).abs()).sum())


def expected_calibration_error(truth: Any, predicted: Any, confidence: Any, *, n_bins: int = 15) -> float:
    r"""Expected calibration error (ECE) of the confidence of predicted labels.

    With the cells binned by confidence into `n_bins` equal-width bins (see :func:`reliability_table`),

    .. math::

        \mathrm{ECE} = \sum_b \frac{n_b}{N} \left| \mathrm{acc}_b - \mathrm{conf}_b \right|,

    where :math:`n_b` is the number of cells in bin :math:`b`, :math:`N` the number of cells counted,
    :math:`\mathrm{acc}_b` the share of them labelled correctly and :math:`\mathrm{conf}_b` their mean
    confidence; empty bins add nothing. 0 means the confidence is the probability of being right
    (of the cells with confidence near 0.8, 80% are right); otherwise the ECE is the gap between
    confidence and accuracy, averaged over the cells. Cells with a missing
    true label, prediction or confidence (e.g. cells :func:`sctransfer.tl.label_transfer` leaves
    unlabelled) are left out.

    Parameters
    ----------
    truth
        True labels, one per cell (array-like or :class:`pandas.Series`, matched by position).
    predicted
        Predicted labels, same length and cell order; compared with `truth` as text, a whole number
        the same whatever its type (``1`` and ``1.0`` are one label).
    confidence
        Probability given to the predicted label, in ``[0, 1]``, same length and cell order.
    n_bins
        Number of equal-width bins of ``[0, 1]``; 15 is the usual choice (Guo et al., 2017).

    Returns
    -------
    The ECE in ``[0, 1]``.

    Raises
    ------
    ValueError
        If the inputs differ in length, a confidence lies outside ``[0, 1]``, no cell has all three
        values, or `n_bins` is not a positive integer.

    Examples
    --------
    >>> expected_calibration_error(["T", "T", "B", "B"], ["T", "B", "B", "B"], [0.9, 0.7, 0.2, 0.4], n_bins=2)
    0.5
    """
    return _ece_of_table(reliability_table(truth, predicted, confidence, n_bins=n_bins))


def seed_agreement(labels_by_seed: Iterable[Any] | pd.DataFrame) -> float:
    """Mean pairwise agreement of the labels of the same cells from several runs (e.g. random seeds).

    For each pair of runs, the share of cells given the same label (compared as strings); the
    result is the mean over all pairs. 1 means every run labels every cell alike. Cells whose label
    is missing in any run (e.g. left unlabelled) are left out of every pair.

    Parameters
    ----------
    labels_by_seed
        The labels of each run, at least two: a sequence of one-dimensional array-likes or
        :class:`pandas.Series` of the same cells in the same order, or a :class:`pandas.DataFrame`
        with one column per run. Series are matched by position, so their indexes must be equal.

    Returns
    -------
    The mean pairwise agreement in ``[0, 1]``.

    Raises
    ------
    ValueError
        If fewer than two runs are given, a run is not one-dimensional, the runs differ in length or
        index, or no cell is labelled in every run.

    Examples
    --------
    >>> seed_agreement([["T", "B", "B"], ["T", "B", "T"], ["T", "T", "T"]])  # pairs agree on 2/3, 1/3, 2/3
    0.5555555555555555
    """
    if isinstance(labels_by_seed, pd.DataFrame):
        runs = [labels_by_seed[column] for column in labels_by_seed.columns]
    elif isinstance(labels_by_seed, str) or not isinstance(labels_by_seed, Iterable):
        raise TypeError(f"labels_by_seed must be a sequence of label arrays (one per run), got {labels_by_seed!r}.")
    else:
        runs = list(labels_by_seed)
    if len(runs) < 2:
        raise ValueError(f"seed_agreement needs the labels of at least two runs, got {len(runs)}.")
    labels = [_labels_and_missing(run, f"labels_by_seed[{i}]") for i, run in enumerate(runs)]
    lengths = [len(values) for values, _ in labels]
    if len(set(lengths)) > 1:
        raise ValueError(f"Every run must label the same cells; the runs have {lengths} labels.")
    indexes = [(i, run.index) for i, run in enumerate(runs) if isinstance(run, pd.Series)]
    for i, index in indexes[1:]:
        if not index.equals(indexes[0][1]):
            raise ValueError(
                f"labels_by_seed[{i}] has another index than labels_by_seed[{indexes[0][0]}]; runs are matched by "
                "position, so put them in the same cell order first (e.g. run.reindex(first.index))."
            )
    keep = ~np.logical_or.reduce([missing for _, missing in labels])
    if not keep.any():
        raise ValueError(f"None of the {lengths[0]} cells is labelled in every run.")
    if not keep.all():
        logger.info("Leaving out %d of %d cells unlabelled in some run.", int((~keep).sum()), lengths[0])
    values = [run[keep] for run, _ in labels]
    return float(np.mean([np.mean(a == b) for a, b in combinations(values, 2)]))
