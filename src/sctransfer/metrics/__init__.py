"""sctransfer.metrics."""

from ._classification import accuracy, confusion_matrix, label_transfer_report, macro_f1, per_type_recall

__all__ = ["accuracy", "confusion_matrix", "label_transfer_report", "macro_f1", "per_type_recall"]
