"""Tools: label transfer, annotation refinement and cross-modal matching, written into a MuData."""

from sctransfer._validation import RareTypeWarning, ReferenceLabelWarning

from ._cross_modal_match import cross_modal_match
from ._label_transfer import label_transfer
from ._refine_annotation import refine_annotation

__all__ = ["RareTypeWarning", "ReferenceLabelWarning", "cross_modal_match", "label_transfer", "refine_annotation"]
