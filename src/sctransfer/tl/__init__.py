"""Tools: label transfer into a MuData."""

from ._label_transfer import label_transfer

__all__ = ["label_transfer"]
