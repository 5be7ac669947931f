"""sctransfer.metrics."""

from ._calibration import expected_calibration_error, reliability_table, seed_agreement
from ._classification import accuracy, confusion_matrix, label_transfer_report, macro_f1, per_type_recall
from ._matching import (
    PairedScore,
    batch_entropy_mixing,
    foscttm,
    matching_score,
    neighbor_mixing,
    silhouette_cell_type,
    top1_accuracy,
)
from ._novelty import novelty_aupr, novelty_auroc, oscr

__all__ = [
    "PairedScore",
    "accuracy",
    "batch_entropy_mixing",
    "confusion_matrix",
    "expected_calibration_error",
    "foscttm",
    "label_transfer_report",
    "macro_f1",
    "matching_score",
    "neighbor_mixing",
    "novelty_aupr",
    "novelty_auroc",
    "oscr",
    "per_type_recall",
    "reliability_table",
    "seed_agreement",
    "silhouette_cell_type",
    "top1_accuracy",
]
