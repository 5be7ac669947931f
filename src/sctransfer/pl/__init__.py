"""sctransfer.pl."""

from ._confusion_matrix import confusion_matrix
from ._novelty_kde import novelty_kde

__all__ = ["confusion_matrix", "novelty_kde"]
