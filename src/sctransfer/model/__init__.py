"""scvi-tools models: data registration, training, prediction, saving."""

from ._scclip import PRESETS, SCCLIP
from ._scncl import SCNCL

__all__ = ["PRESETS", "SCCLIP", "SCNCL"]
