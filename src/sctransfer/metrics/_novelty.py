"""Open-set metrics of label transfer: how well a novelty score finds cells of types the reference lacks.

Every function takes the true labels of the query cells, the reference's types (``known_types``;
a cell is *novel* when its true type is not among them) and a per-cell ``novelty_score`` where
higher means "more likely novel" (for example ``1 - confidence``, or the ``*_novelty`` column
written by :func:`sctransfer.tl.label_transfer`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ._classification import _as_labels, _known_set

_OPEN_SET_PARAMETERS = """y_true
        True labels of the query cells; missing values raise a :class:`ValueError`.
    novelty_score
        One score per cell, higher = more likely novel.
    known_types
        The reference's cell types; cells with another true type are the positives (novel)."""


def _with_open_set_parameters(function):
    """Fill the shared parameter descriptions into ``function``'s docstring."""
    function.__doc__ = function.__doc__.replace("{open_set_parameters}", _OPEN_SET_PARAMETERS)
    return function


def _open_set_inputs(y_true: Any, novelty_score: Any, known_types: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """The novel flag of each cell and its score (float64), validated."""
    true, _ = _as_labels(y_true, "y_true")
    score = np.asarray(novelty_score, dtype=np.float64).reshape(-1)
    if score.shape[0] != true.shape[0]:
        raise ValueError(f"y_true and novelty_score differ in length: {true.shape[0]} vs {score.shape[0]}.")
    if not np.isfinite(score).all():
        raise ValueError(f"novelty_score has {int((~np.isfinite(score)).sum())} missing or infinite value(s).")
    novel = ~np.isin(true, list(_known_set(known_types)))
    if novel.all() or not novel.any():
        kind = "novel" if novel.all() else "known"
        raise ValueError(
            f"All {true.shape[0]} cells are {kind} (true type {'not ' if kind == 'novel' else ''}in known_types), "
            "so the metric is undefined: it needs cells of reference types and cells of other types."
        )
    return novel, score


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values``, ties sharing their mean rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


@_with_open_set_parameters
def novelty_auroc(y_true: Any, novelty_score: Any, *, known_types: Iterable[Any]) -> float:
    """Area under the ROC curve of the novelty score for telling novel cells from known ones.

    The probability that a random novel cell scores higher than a random known cell, ties
    counting one half (the Mann-Whitney statistic). 0.5 is chance, 1 a perfect separation.

    Parameters
    ----------
    {open_set_parameters}

    Returns
    -------
    The AUROC in ``[0, 1]``.

    Examples
    --------
    >>> novelty_auroc(["T", "T", "B", "NK"], [0.1, 0.4, 0.3, 0.35], known_types=["T", "B"])
    0.6666666666666666
    """
    novel, score = _open_set_inputs(y_true, novelty_score, known_types)
    ranks = _average_ranks(score)
    n_novel, n_known = int(novel.sum()), int((~novel).sum())
    return float((ranks[novel].sum() - n_novel * (n_novel + 1) / 2) / (n_novel * n_known))


@_with_open_set_parameters
def novelty_aupr(y_true: Any, novelty_score: Any, *, known_types: Iterable[Any]) -> float:
    """Area under the precision-recall curve of the novelty score, novel cells being the positives.

    Average precision: cells are ranked by decreasing score (tied cells enter together) and
    ``sum_n (R_n - R_{n-1}) P_n`` is taken over the distinct thresholds, ``P_n`` and ``R_n`` being the
    precision and recall of calling novel every cell scoring at least the n-th threshold (as
    :func:`sklearn.metrics.average_precision_score`). Chance level is the share of novel cells.

    Parameters
    ----------
    {open_set_parameters}

    Returns
    -------
    The AUPR in ``[0, 1]``.

    Examples
    --------
    >>> novelty_aupr(["T", "B", "NK", "NK"], [0.1, 0.8, 0.9, 0.3], known_types=["T", "B"])
    0.8333333333333333
    """
    novel, score = _open_set_inputs(y_true, novelty_score, known_types)
    order = np.argsort(-score, kind="mergesort")
    sorted_score, sorted_novel = score[order], novel[order]
    last_of_tie = np.r_[sorted_score[1:] != sorted_score[:-1], True]
    true_positives = np.cumsum(sorted_novel)[last_of_tie]
    called = (np.flatnonzero(last_of_tie) + 1).astype(np.float64)
    precision = true_positives / called
    recall = true_positives / novel.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def oscr(y_true: Any, y_pred: Any, novelty_score: Any, *, known_types: Iterable[Any]) -> float:
    """Open-set classification rate: area under the correct-classification rate against the false-positive rate.

    A cell is accepted as known when its novelty score is at most a threshold. Sweeping the
    threshold, the correct-classification rate is the share of known cells that are accepted *and*
    correctly labelled, and the false-positive rate the share of novel cells accepted. OSCR is the
    area under that curve (trapezoids, from ``(0, 0)`` to ``(1, closed-set accuracy)``), so it is at
    most the closed-set accuracy, reached when every novel cell scores above every correctly
    labelled known cell.

    Parameters
    ----------
    y_true
        True labels of the query cells; missing values raise a :class:`ValueError`.
    y_pred
        Predicted labels (a known cell counts as correct only if its prediction equals its label).
    novelty_score
        One score per cell, higher = more likely novel (e.g. ``1 - confidence``).
    known_types
        The reference's cell types; cells with another true type are novel.

    Returns
    -------
    The OSCR in ``[0, 1]``.

    Examples
    --------
    >>> oscr(["T", "T", "B", "NK"], ["T", "B", "B", "T"], [0.1, 0.2, 0.3, 0.25], known_types=["T", "B"])
    0.3333333333333333
    """
    novel, score = _open_set_inputs(y_true, novelty_score, known_types)
    true, _ = _as_labels(y_true, "y_true")
    pred, _ = _as_labels(y_pred, "y_pred")
    if pred.shape[0] != true.shape[0]:
        raise ValueError(f"y_true and y_pred differ in length: {true.shape[0]} vs {pred.shape[0]}.")
    correct = ~novel & (true == pred)
    order = np.argsort(score, kind="mergesort")
    sorted_score = score[order]
    last_of_tie = np.r_[sorted_score[1:] != sorted_score[:-1], True]
    ccr = np.r_[0.0, np.cumsum(correct[order])[last_of_tie] / (~novel).sum()]
    fpr = np.r_[0.0, np.cumsum(novel[order])[last_of_tie] / novel.sum()]
    return float(np.sum(np.diff(fpr) * (ccr[1:] + ccr[:-1]) / 2))
