"""sctransfer.pl."""

from ._confusion_matrix import confusion_matrix
from ._novelty_kde import novelty_kde
from ._reliability_diagram import reliability_diagram

__all__ = ["confusion_matrix", "novelty_kde", "reliability_diagram"]
