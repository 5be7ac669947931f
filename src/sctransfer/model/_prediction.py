"""SCNCL's prediction ensemble: classifier, peak view and reference vote, each corrected for the reference's priors.

Two (with the peak view, three) estimates of each cell's type probabilities are combined: the
classifier's softmax of the shared embedding (averaged with the classifier of the peak-view
encoder when the model and the data have one), and the share of each type among the cell's most
similar labelled RNA cells in the embedding (the reference vote). Before averaging, each
estimate is divided by the reference frequency of the type to the power ``prior_correction`` and
renormalised, so that abundant reference types do not absorb the rare ones (what each part adds:
:doc:`/benchmarks`).

For ATAC cells with a peak view, a self-training step then lets the query's own peak-space
structure refine these probabilities (:func:`self_trained_probabilities`): a logistic regression
on the peak view learns the ensemble's labels of the *other* ATAC cells (cross-fitted; cells that
look novel do not teach), and its probabilities, divided by the frequencies of those labels (a
likelihood ratio), are pooled with the ensemble's. The
result is what :meth:`~sctransfer.model.SCNCL.predict` and :meth:`~sctransfer.model.SCNCL.transfer`
return; its highest value is the confidence, a probability of the label being right (calibration
measured on MOp SNARE-seq: :doc:`/benchmarks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from sctransfer._knn import unit_rows

#: Reference RNA cells in the neighbour vote of :meth:`~sctransfer.model.SCNCL.predict` and in the
#: novelty score's distance to the reference.
DEFAULT_REFERENCE_NEIGHBORS = 30
#: Exponent of the reference-frequency correction of :meth:`~sctransfer.model.SCNCL.predict`.
DEFAULT_PRIOR_CORRECTION = 0.5
#: Folds of the cross-fitted self-training: each cell's peak-view probabilities come from a classifier
#: trained on the other folds' cells.
SELF_TRAINING_FOLDS = 5
#: Inverse L2 regularisation strength of the self-training logistic regression.
SELF_TRAINING_C = 10.0
#: Weight (exponent) of the self-trained likelihood ratios when pooled with the ensemble's probabilities (weight 1).
SELF_TRAINING_WEIGHT = 0.5
#: Fewest pseudo-labelled cells of a type for the self-training to learn it (rarer types keep the ensemble's evidence).
SELF_TRAINING_MIN_CELLS = 5


@dataclass
class TransferResult:
    """What :meth:`~sctransfer.model.SCNCL.transfer` gives for the ATAC cells, from one forward pass.

    Parameters
    ----------
    probabilities
        Cells (ATAC ``obs_names``) x reference types, float32; rows sum to one (as
        :meth:`~sctransfer.model.SCNCL.predict` with ``soft=True``).
    embedding
        Cells x ``n_latent`` float32 shared embedding, rows in the order of ``probabilities.index``
        (as :meth:`~sctransfer.model.SCNCL.get_latent_representation` with ``modality="atac"``).
    novelty
        float32 novelty score per cell, indexed by the ATAC ``obs_names`` (as
        :meth:`~sctransfer.model.SCNCL.novelty_score`; higher = more likely of a type missing from
        the reference).
    """

    probabilities: pd.DataFrame
    embedding: np.ndarray
    novelty: pd.Series

    @property
    def labels(self) -> np.ndarray:
        """The most probable type of each cell (type names, as :meth:`~sctransfer.model.SCNCL.predict`)."""
        return most_probable(self.probabilities)

    @property
    def confidence(self) -> pd.Series:
        """The highest probability of each cell, in [0, 1] (float32)."""
        return self.probabilities.max(axis=1).astype(np.float32).rename("confidence")


@dataclass
class ForwardPass:
    """One modality's cells through a trained model (rows in the order of ``names``)."""

    names: pd.Index
    embedding: np.ndarray
    #: classifier softmax of the embedding, cells x types
    classified: np.ndarray
    #: indices of each cell's nearest labelled reference RNA cells (cosine), most similar first
    nearest: np.ndarray
    #: their cosine similarities
    similarity: np.ndarray


def most_probable(probabilities: pd.DataFrame) -> np.ndarray:
    """Column name of each row's largest probability (first one on ties)."""
    return probabilities.columns.to_numpy()[probabilities.to_numpy().argmax(axis=1)]


def reweighted(proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rows of ``proba * weights``, renormalised to sum to one (float32)."""
    scaled = proba * weights
    return (scaled / np.maximum(scaled.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


def reference_vote(nearest: np.ndarray, reference_labels: np.ndarray, n_types: int) -> np.ndarray:
    """Share of each type among the given reference cells of each cell.

    Parameters
    ----------
    nearest
        Cells x k indices into the reference.
    reference_labels
        Type code (0..``n_types - 1``) of each reference cell.
    n_types
        Number of types.

    Returns
    -------
    Cells x ``n_types`` float32 shares (rows sum to one when k > 0).
    """
    n_cells, k = nearest.shape
    keys = (np.arange(n_cells)[:, None] * n_types + reference_labels[nearest]).ravel()
    votes = np.bincount(keys, minlength=n_cells * n_types).reshape(n_cells, n_types)
    return (votes / max(k, 1)).astype(np.float32)


def ensemble_probabilities(
    classified: np.ndarray,
    peak_classified: np.ndarray | None,
    nearest: np.ndarray,
    reference_labels: np.ndarray,
    prior_correction: float,
) -> np.ndarray:
    """The ensemble's type probabilities (see the module docstring).

    Parameters
    ----------
    classified
        Cells x types softmax of the embedding's classifier.
    peak_classified
        Cells x types softmax of the peak view's classifier, or None (averaged with ``classified``).
    nearest
        Cells x k nearest labelled reference cells (k = 0: classifier alone).
    reference_labels
        Type code of each labelled reference cell (also the reference's type frequencies).
    prior_correction
        Exponent of the reference-frequency correction: 0 keeps the reference's type proportions
        as a prior, 1 removes them entirely.

    Returns
    -------
    Cells x types float32 probabilities, rows summing to one.
    """
    n_types = classified.shape[1]
    counts = np.bincount(reference_labels, minlength=n_types)
    weights = np.maximum(counts, 1).astype(np.float64) ** -prior_correction
    proba = classified if peak_classified is None else 0.5 * classified + 0.5 * peak_classified
    proba = reweighted(proba, weights)
    if nearest.shape[1] > 0:
        vote = reweighted(reference_vote(nearest, reference_labels, n_types), weights)
        proba = 0.5 * proba + 0.5 * vote
    return proba


def self_trained_probabilities(
    proba: np.ndarray,
    peak_inputs: np.ndarray,
    *,
    novel: np.ndarray | None = None,
    folds: int = SELF_TRAINING_FOLDS,
    cell_names: Sequence[str] | None = None,
) -> np.ndarray:
    """Refine the ensemble's probabilities of ATAC cells with their own peak-space structure.

    1. Pseudo-labels: each cell's most probable type under ``proba``, weighted by that probability.
       Cells flagged ``novel`` teach nothing (they are likely of a type the reference lacks), and
       neither do the cells of a type with fewer than ``SELF_TRAINING_MIN_CELLS`` pseudo-labels
       among the others (too few to learn).
    2. A multinomial logistic regression (L2, ``C`` = ``SELF_TRAINING_C``) on the unit-length peak
       view learns them, cross-fitted over ``folds`` fixed folds: a cell's peak-space probabilities
       ``q`` come from a classifier that never saw its own pseudo-label. Every cell, novel ones
       included, gets ``q`` of the types learned.
    3. ``q`` becomes a likelihood ratio ``q / pi``, with ``pi`` the share of each pseudo-label among
       the learning cells: how much the peak view favours a type beyond the query's own mix, so the
       query's type proportions (whatever they are) are not counted twice. A type not learned gets
       the cell's lowest ratio among the learned types (the peak view found too few cells like it to
       favour it; it is not ruled out either, as a zero would).
    4. The result is ``proba * (q / pi) ** SELF_TRAINING_WEIGHT``, renormalised: the ensemble's
       evidence with the peak-space evidence at half weight (log-linear pooling).

    Everything is deterministic given the inputs (fixed folds, no random numbers), so the step does
    not add seed dependence. With ``cell_names``, a cell's fold is fixed by its name (a stable hash),
    so the result does not depend on the order of the cells either; it still depends on which other
    cells are in the query (they are what the classifier learns from). When fewer than two types
    can be learned (e.g. a query of one type), or fewer than ``2 * folds`` cells teach, ``proba`` is
    returned unchanged.

    Parameters
    ----------
    proba
        Cells x types probabilities of the ensemble (rows sum to one).
    peak_inputs
        Cells x components peak view of the same cells (e.g. the model's standardised LSI scores).
    novel
        Boolean per cell: likely of a type missing from the reference (e.g. novelty score above
        the threshold of :func:`sctransfer.tl.label_transfer`); ``None``: no cell is.
    folds
        Folds of the cross-fitting (at least 2).
    cell_names
        Names of the cells (e.g. ``obs_names``), one per row; ``None``: folds by row position.

    Returns
    -------
    Cells x types float32 probabilities, rows summing to one.
    """
    n_cells, n_types = proba.shape
    labels = proba.argmax(axis=1)
    teaches = np.ones(n_cells, dtype=bool) if novel is None else ~np.asarray(novel, dtype=bool)
    counts = np.bincount(labels[teaches], minlength=n_types)
    teaches &= counts[labels] >= SELF_TRAINING_MIN_CELLS
    counts = np.bincount(labels[teaches], minlength=n_types)
    if (counts > 0).sum() < 2 or teaches.sum() < 2 * folds:
        return proba.astype(np.float32)
    share = counts / counts.sum()
    features = unit_rows(np.asarray(peak_inputs, dtype=np.float64))
    weights = proba.max(axis=1).astype(np.float64)
    ratio = np.ones((n_cells, n_types))
    if cell_names is None:
        splits = list(KFold(folds, shuffle=True, random_state=0).split(features))
    else:
        fold = pd.util.hash_array(np.asarray(cell_names, dtype=object)) % np.uint64(folds)
        splits = [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(folds)]
        splits = [(train, test) for train, test in splits if len(test)]
    for train, test in splits:
        train = train[teaches[train]]
        if np.unique(labels[train]).size < 2:  # nothing to learn from: neutral ratios
            continue
        classifier = LogisticRegression(C=SELF_TRAINING_C, max_iter=300)
        classifier.fit(features[train], labels[train], sample_weight=weights[train])
        learned = np.maximum(classifier.predict_proba(features[test]), 1e-12) / share[classifier.classes_]
        ratio[test] = learned.min(axis=1, keepdims=True)  # types not learned: no more than the least likely learned
        ratio[np.ix_(test, classifier.classes_)] = learned
    pooled = proba.astype(np.float64) * ratio**SELF_TRAINING_WEIGHT
    return (pooled / pooled.sum(axis=1, keepdims=True)).astype(np.float32)
