"""Classification metrics for label transfer: accuracy, macro-F1, per-type recall, confusion matrix."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from sctransfer._constants import ATAC

from ._calibration import expected_calibration_error, label_text, label_texts

logger = logging.getLogger(__name__)

_NORMALIZE_OPTIONS = (None, "true", "pred", "all")


def _as_labels(values: Any, name: str) -> tuple[np.ndarray, list[str] | None]:
    """Return labels as an object array of strings, plus the category order of a categorical input."""
    series = values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(values)
    n_missing = int(series.isna().sum())
    if n_missing:
        raise ValueError(
            f"{name} contains {n_missing} missing value(s); drop those cells first "
            "(`label_transfer_report` excludes cells without a true label or without a prediction and reports "
            "how many)."
        )
    categorical = isinstance(series.dtype, pd.CategoricalDtype)
    categories = [label_text(c) for c in series.cat.categories] if categorical else None
    return label_texts(series), categories


def _observed_order(labels: np.ndarray, categories: list[str] | None) -> list[str]:
    """Labels that occur, in category order for categoricals and sorted otherwise."""
    present = set(labels.tolist())
    if categories is not None:
        return [c for c in categories if c in present]
    return sorted(present)


def _prepare(
    y_true: Any, y_pred: Any, known_types: Iterable[Any] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str] | None, list[str] | None]:
    """Validate two label vectors, optionally keep cells whose true label is in `known_types`."""
    true, true_categories = _as_labels(y_true, "y_true")
    pred, pred_categories = _as_labels(y_pred, "y_pred")
    if true.shape[0] != pred.shape[0]:
        raise ValueError(f"y_true and y_pred differ in length: {true.shape[0]} vs {pred.shape[0]}.")
    if true.shape[0] == 0:
        raise ValueError("y_true and y_pred are empty.")
    if known_types is not None:
        known = _known_set(known_types)
        keep = np.isin(true, list(known))
        if not keep.any():
            raise ValueError(
                f"None of the {true.shape[0]} cells has a true label among known_types "
                f"({sorted(known)}); true labels present: {sorted(set(true.tolist()))}."
            )
        true, pred = true[keep], pred[keep]
    return true, pred, true_categories, pred_categories


def _known_set(known_types: Iterable[Any]) -> set[str]:
    if isinstance(known_types, str):
        raise TypeError("known_types must be a collection of labels, not a single string.")
    return {label_text(k) for k in known_types}


def accuracy(y_true: Any, y_pred: Any, *, known_types: Iterable[Any] | None = None) -> float:
    """Fraction of cells whose predicted label equals the true label.

    Parameters
    ----------
    y_true
        True labels (array-like, :class:`pandas.Series` or categorical). Labels are compared as strings;
        missing values raise a :class:`ValueError`.
    y_pred
        Predicted labels, same length and cell order as `y_true` (matched by position, not by index).
    known_types
        If given, only cells whose true label is in `known_types` count: the closed-set accuracy of
        scNCL, computed on query cells whose type exists in the reference. Predictions are not
        restricted: a known cell predicted as, e.g., ``"Unknown"`` counts as an error.

    Returns
    -------
    The accuracy in ``[0, 1]``.

    Examples
    --------
    >>> accuracy(["T", "T", "B", "NK"], ["T", "B", "B", "T"], known_types=["T", "B"])
    0.6666666666666666
    """
    true, pred, _, _ = _prepare(y_true, y_pred, known_types)
    return float(np.mean(true == pred))


def macro_f1(y_true: Any, y_pred: Any, *, known_types: Iterable[Any] | None = None) -> float:
    """Macro-averaged F1 score over the true types present.

    For each type ``c`` that occurs among the true labels of the counted cells, with
    ``TP`` = cells of type ``c`` predicted ``c``, ``FN`` = cells of type ``c`` predicted anything else,
    and ``FP`` = cells of another true type predicted ``c``, ``F1_c = 2 TP / (2 TP + FP + FN)``.
    The score is the unweighted mean of ``F1_c`` over those true types.

    Predicted labels that are not among the true labels of the counted cells (e.g. ``"Unknown"``,
    or a reference type absent from the query) count as errors: they add to ``FN`` of the cell's
    true type, but their own class is not averaged in (it has no true cells, so no recall).
    Equivalent to :func:`sklearn.metrics.f1_score` with ``average="macro"`` and
    ``labels`` set to the true types present.

    Parameters
    ----------
    y_true
        True labels (array-like, :class:`pandas.Series` or categorical); missing values raise a
        :class:`ValueError`.
    y_pred
        Predicted labels, same length and cell order as `y_true`.
    known_types
        If given, only cells whose true label is in `known_types` count (closed-set), so only known
        types are averaged, and predictions on cells of other true types add no false positives.

    Returns
    -------
    The macro-F1 in ``[0, 1]``.
    """
    true, pred, _, _ = _prepare(y_true, y_pred, known_types)
    scores = []
    for label in np.unique(true):
        is_true = true == label
        is_pred = pred == label
        tp = np.sum(is_true & is_pred)
        fn = np.sum(is_true & ~is_pred)
        fp = np.sum(~is_true & is_pred)
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def per_type_recall(y_true: Any, y_pred: Any) -> pd.DataFrame:
    """Recall (fraction correctly labelled) of each true type.

    Parameters
    ----------
    y_true
        True labels (array-like, :class:`pandas.Series` or categorical); missing values raise a
        :class:`ValueError`.
    y_pred
        Predicted labels, same length and cell order as `y_true`.

    Returns
    -------
    A :class:`pandas.DataFrame` indexed by true type (index name ``"true_label"``; category order for
    a categorical `y_true`, sorted otherwise; only types that occur) with columns

    ``n_cells``
        number of cells of that true type;
    ``n_correct``
        how many of them were predicted as that type;
    ``recall``
        ``n_correct / n_cells``.
    """
    true, pred, true_categories, _ = _prepare(y_true, y_pred)
    order = _observed_order(true, true_categories)
    frame = pd.DataFrame({"true": true, "correct": true == pred})
    grouped = frame.groupby("true", sort=False)["correct"]
    n_cells = grouped.size().reindex(order).astype(np.int64)
    n_correct = grouped.sum().reindex(order).astype(np.int64)
    table = pd.DataFrame({"n_cells": n_cells, "n_correct": n_correct, "recall": n_correct / n_cells})
    table.index.name = "true_label"
    return table


def confusion_matrix(
    y_true: Any, y_pred: Any, *, normalize: Literal["true", "pred", "all"] | None = None
) -> pd.DataFrame:
    """Confusion matrix of true against predicted labels.

    Parameters
    ----------
    y_true
        True labels (array-like, :class:`pandas.Series` or categorical); missing values raise a
        :class:`ValueError`.
    y_pred
        Predicted labels, same length and cell order as `y_true`.
    normalize
        ``None``: cell counts. ``"true"``: each row divided by its sum (a row's diagonal entry is
        that type's recall). ``"pred"``: each column divided by its sum (columns of labels never
        predicted stay 0). ``"all"``: divided by the number of cells.

    Returns
    -------
    A :class:`pandas.DataFrame` with one row per true type (index name ``"true"``) and one column per
    label (columns name ``"predicted"``). Rows are the true types that occur, in category order for a
    categorical `y_true` and sorted otherwise. Columns are the same types in the same order (so
    correct calls lie on the diagonal, including types never predicted, as zeros), followed by
    labels that are only predicted (e.g. ``"Unknown"``), in category order for a categorical `y_pred`
    and sorted otherwise. Integer counts when `normalize` is ``None``, floats otherwise.
    """
    if normalize not in _NORMALIZE_OPTIONS:
        raise ValueError(f"normalize must be one of {_NORMALIZE_OPTIONS}, got {normalize!r}.")
    true, pred, true_categories, pred_categories = _prepare(y_true, y_pred)
    rows = _observed_order(true, true_categories)
    row_set = set(rows)
    columns = rows + [label for label in _observed_order(pred, pred_categories) if label not in row_set]
    row_index = {label: i for i, label in enumerate(rows)}
    column_index = {label: j for j, label in enumerate(columns)}
    counts = np.zeros((len(rows), len(columns)), dtype=np.int64)
    np.add.at(
        counts,
        (np.array([row_index[t] for t in true]), np.array([column_index[p] for p in pred])),
        1,
    )
    if normalize is None:
        values: np.ndarray = counts
    elif normalize == "true":
        values = counts / counts.sum(axis=1, keepdims=True)
    elif normalize == "pred":
        column_sums = counts.sum(axis=0, keepdims=True)
        values = np.divide(counts, column_sums, out=np.zeros(counts.shape), where=column_sums > 0)
    else:
        values = counts / counts.sum()
    return pd.DataFrame(
        values,
        index=pd.Index(rows, name="true"),
        columns=pd.Index(columns, name="predicted"),
    )


def _obs_of(data: MuData | AnnData, atac_key: str) -> tuple[pd.DataFrame, str]:
    """Return the obs table holding the query cells and a name for it in messages."""
    if isinstance(data, MuData):
        if atac_key not in data.mod:
            raise KeyError(f"Modality {atac_key!r} not found; the MuData has modalities {list(data.mod)}.")
        return data.mod[atac_key].obs, f"mdata[{atac_key!r}].obs"
    if isinstance(data, AnnData):
        return data.obs, "adata.obs"
    raise TypeError(f"Expected a MuData or an AnnData, got {type(data).__name__}.")


def _truth_and_prediction(
    data: MuData | AnnData, truth_key: str, pred_key: str, atac_key: str
) -> tuple[pd.Series, pd.Series, int, int]:
    """Read truth and prediction columns, drop cells with a missing truth or a missing prediction.

    Returns the truth, the predictions, the number of cells dropped for a missing true label and the
    number of cells with a true label dropped for a missing prediction (e.g. the ATAC cells without
    counts, which :func:`sctransfer.tl.label_transfer` leaves unlabelled).
    """
    obs, where = _obs_of(data, atac_key)
    for key in (truth_key, pred_key):
        if key not in obs.columns:
            raise KeyError(f"Column {key!r} not found in {where}; available columns: {list(obs.columns)}.")
    missing = obs[truth_key].isna().to_numpy()
    n_missing = int(missing.sum())
    if n_missing == len(obs):
        raise ValueError(f"No cell in {where} has a true label in column {truth_key!r} ({len(obs)} cells).")
    unlabelled = ~missing & obs[pred_key].isna().to_numpy()
    n_unlabelled = int(unlabelled.sum())
    if n_unlabelled == len(obs) - n_missing:
        raise ValueError(
            f"None of the {n_unlabelled} cells with a true label in {where}[{truth_key!r}] has a prediction in "
            f"{where}[{pred_key!r}]; run sctransfer.tl.label_transfer first, or pass the pred_key it wrote."
        )
    if n_missing or n_unlabelled:
        logger.info(
            "Excluding from evaluation %d of %d cells with a missing %r and %d cells without a prediction in %r.",
            n_missing,
            len(obs),
            truth_key,
            n_unlabelled,
            pred_key,
        )
    keep = ~(missing | unlabelled)
    return obs[truth_key][keep], obs[pred_key][keep], n_missing, n_unlabelled


def _confidence(
    data: MuData | AnnData, confidence_key: str | None, pred_key: str, atac_key: str, cells: pd.Index
) -> pd.Series | None:
    """The confidence of the given cells: the named column, or the one beside `pred_key` if there is one."""
    obs, where = _obs_of(data, atac_key)
    if confidence_key is None:
        if not pred_key.endswith("_label"):
            return None
        confidence_key = f"{pred_key.removesuffix('_label')}_confidence"
        if confidence_key not in obs.columns:
            return None
    elif confidence_key not in obs.columns:
        raise KeyError(f"Column {confidence_key!r} not found in {where}; available columns: {list(obs.columns)}.")
    return obs.loc[cells, confidence_key]


def label_transfer_report(
    data: MuData | AnnData,
    truth_key: str,
    *,
    pred_key: str = "sctransfer_label",
    atac_key: str = ATAC,
    reference_types: Iterable[Any] | None = None,
    confidence_key: str | None = None,
) -> dict[str, Any]:
    """Evaluate transferred labels against known true labels.

    Reads ``mdata[atac_key].obs[truth_key]``, ``mdata[atac_key].obs[pred_key]`` and, when present, the
    confidence column (or the columns of ``adata.obs`` for an :class:`~anndata.AnnData`). Cells with a
    missing true label are excluded and counted (``n_missing_truth``), and so are cells with a true label
    but no prediction (``n_unlabelled``; e.g. the ATAC cells without counts, which
    :func:`sctransfer.tl.label_transfer` leaves unlabelled), as :func:`sctransfer.pl.reliability_diagram`
    and :func:`sctransfer.pl.novelty_kde` skip them.

    Parameters
    ----------
    data
        A :class:`~mudata.MuData` (the query cells are its `atac_key` modality) or an
        :class:`~anndata.AnnData` of the query cells.
    truth_key
        Column of ``obs`` with the true labels.
    pred_key
        Column of ``obs`` with the predicted labels, as written by :func:`sctransfer.tl.label_transfer`.
    atac_key
        Modality of the query cells (ignored for an :class:`~anndata.AnnData`).
    reference_types
        Cell types of the labelled reference, e.g. ``mdata["rna"].obs["cell_type"].unique()``. If given,
        accuracy and macro-F1 are closed-set (see :func:`accuracy`): only cells whose true type is in
        the reference count. If ``None``: for a MuData, the ``reference_types`` that
        :func:`sctransfer.tl.label_transfer` recorded in ``mdata.uns`` (under `pred_key` without its
        ``_label`` suffix) when present; otherwise all cells with a true label count.
    confidence_key
        Column of ``obs`` with the confidence of each prediction, for the ECE. ``None``: the column
        :func:`sctransfer.tl.label_transfer` writes beside `pred_key` (``"sctransfer_confidence"`` for
        ``"sctransfer_label"``, i.e. ``pred_key`` with ``_label`` replaced by ``_confidence``), and no
        ECE when that column is absent. A column given here must exist.

    Returns
    -------
    A dict with

    ``accuracy``
        (closed-set) accuracy, see :func:`accuracy`;
    ``macro_f1``
        (closed-set) macro-F1, see :func:`macro_f1`;
    ``ece``
        expected calibration error of the confidence over the cells counted in ``accuracy`` (those
        with a confidence), see :func:`expected_calibration_error`; ``None`` without a confidence
        column;
    ``n_cells``
        number of cells counted in ``accuracy``, ``macro_f1`` and ``ece``;
    ``n_missing_truth``
        number of cells excluded because their true label is missing;
    ``n_unlabelled``
        number of cells with a true label excluded because their prediction is missing;
    ``n_not_in_reference``
        number of cells excluded because their true type is not in `reference_types` (0 when
        `reference_types` is ``None``);
    ``per_type_recall``
        :func:`per_type_recall` over all cells with a true label and a prediction, plus a boolean column
        ``in_reference`` (all ``True`` when `reference_types` is ``None``).
    """
    if reference_types is None and isinstance(data, MuData):  # the reference's types, as label_transfer recorded them
        record = data.uns.get(pred_key.removesuffix("_label"))
        reference_types = record.get("reference_types") if isinstance(record, Mapping) else None
    known = None if reference_types is None else sorted(_known_set(reference_types))
    truth, pred, n_missing, n_unlabelled = _truth_and_prediction(data, truth_key, pred_key, atac_key)
    confidence = _confidence(data, confidence_key, pred_key, atac_key, truth.index)
    table = per_type_recall(truth, pred)
    if known is None:
        table["in_reference"] = True
        n_not_in_reference = 0
    else:
        table["in_reference"] = table.index.isin(known)
        n_not_in_reference = int(table.loc[~table["in_reference"], "n_cells"].sum())
    ece = None
    if confidence is not None:
        counted = np.ones(len(truth), dtype=bool) if known is None else np.isin(label_texts(truth), known)
        ece = expected_calibration_error(truth[counted], pred[counted], confidence[counted])
    return {
        "accuracy": accuracy(truth, pred, known_types=known),
        "macro_f1": macro_f1(truth, pred, known_types=known),
        "ece": ece,
        "n_cells": len(truth) - n_not_in_reference,
        "n_missing_truth": n_missing,
        "n_unlabelled": n_unlabelled,
        "n_not_in_reference": n_not_in_reference,
        "per_type_recall": table,
    }
