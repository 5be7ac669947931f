"""scvi-tools models: data registration, training, prediction, saving."""

from ._scncl import SCNCL

__all__ = ["SCNCL"]
