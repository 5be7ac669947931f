"""sctransfer.pl."""

from ._confusion_matrix import confusion_matrix

__all__ = ["confusion_matrix"]
