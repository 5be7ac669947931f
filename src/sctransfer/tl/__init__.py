"""Tools: label transfer and cross-modal matching, written into a MuData."""

from ._cross_modal_match import cross_modal_match
from ._label_transfer import label_transfer

__all__ = ["cross_modal_match", "label_transfer"]
