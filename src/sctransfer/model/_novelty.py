"""The novelty score of label transfer: evidence that an ATAC cell's type is missing from the reference.

Two per-cell signs that a cell belongs to no reference type, each put on a robust z scale over
the query cells (median 0, median absolute deviation x 1.4826 = 1):

- *uncertainty* of the classifier: ``1 - max softmax`` of the embedding;
- *distance to the reference*: ``1 -`` the mean cosine similarity of the cell to its most
  similar labelled RNA cells in the shared embedding.

Their sum is averaged over each cell's peak-space neighbours (a few rounds of
``s <- (s + mean of the neighbours' s) / 2``), because cells of an unseen type sit together in
peak space, while a single known cell with an unlucky embedding does not. The result is again
put on the robust z scale, so the score reads as "robust standard deviations above the typical
query cell", and the automatic threshold of :func:`sctransfer.tl.label_transfer`
(``novelty_threshold``) is a fixed number of them. How the evidence, the rounds and the threshold
were chosen: :doc:`/benchmarks`.
"""

from __future__ import annotations

import numpy as np

DEFAULT_SMOOTHING_ROUNDS = 3
"""Rounds of averaging over the peak-space neighbours (chosen on MOp SNARE-seq: :doc:`/benchmarks`)."""

DEFAULT_NOVELTY_THRESHOLD = 2.5
"""Cells whose novelty score exceeds this many robust standard deviations above the median are called novel.

:func:`sctransfer.tl.label_transfer`'s default ``novelty_threshold``; such cells also teach nothing to
the self-training step of :meth:`~sctransfer.model.SCNCL.predict`. See :doc:`/benchmarks` for how it
was chosen and what it flags on MOp SNARE-seq.
"""

_MAD_TO_SD = 1.4826


def robust_z(values: np.ndarray) -> np.ndarray:
    """``(values - median) / (1.4826 * MAD)``: a z-score that a minority of outliers does not move (float64).

    A constant vector (MAD 0) gives zeros.
    """
    values = np.asarray(values, dtype=np.float64)
    median = np.median(values)
    scale = _MAD_TO_SD * np.median(np.abs(values - median))
    if scale <= 0:
        return np.zeros_like(values)
    return (values - median) / scale


def smooth_over_neighbors(values: np.ndarray, neighbors: np.ndarray, rounds: int) -> np.ndarray:
    """Average each value with the mean of its neighbours' values, ``rounds`` times.

    Parameters
    ----------
    values
        One value per cell.
    neighbors
        ``(n_cells, k)`` neighbour indices (e.g. :func:`~sctransfer.pp.neighbor_indices`).
    rounds
        Number of rounds; 0 returns ``values`` unchanged.
    """
    if rounds < 0:
        raise ValueError(f"smoothing rounds must be >= 0, got {rounds}.")
    smoothed = np.asarray(values, dtype=np.float64)
    for _ in range(rounds):
        smoothed = 0.5 * smoothed + 0.5 * smoothed[neighbors].mean(axis=1)
    return smoothed


def combine_novelty_evidence(
    max_probability: np.ndarray,
    reference_similarity: np.ndarray,
    neighbors: np.ndarray | None,
    rounds: int = DEFAULT_SMOOTHING_ROUNDS,
) -> np.ndarray:
    """Combine the two pieces of evidence into the novelty score (see the module docstring).

    Parameters
    ----------
    max_probability
        Highest class probability of the classifier, per cell.
    reference_similarity
        Mean cosine similarity to the most similar reference cells, per cell.
    neighbors
        Peak-space neighbour indices, or ``None`` to skip the smoothing.
    rounds
        Smoothing rounds.

    Returns
    -------
    The score per cell (float32); higher = more likely of a type missing from the reference.
    """
    evidence = robust_z(1.0 - np.asarray(max_probability)) + robust_z(1.0 - np.asarray(reference_similarity))
    if neighbors is not None:
        evidence = smooth_over_neighbors(evidence, neighbors, rounds)
    return robust_z(evidence).astype(np.float32)
