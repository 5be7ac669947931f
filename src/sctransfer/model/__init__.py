"""scvi-tools models: data registration, training, prediction, saving.

The models' torch modules are in :mod:`sctransfer.module`, their building blocks in :mod:`sctransfer.nn`.
"""

# scvi-tools 1.4 prints setup arguments with `rich.pretty` without importing it: without this import,
# `model.view_anndata_setup()` raises AttributeError.
import rich.pretty  # noqa: F401

from ._feature_mapping import FeatureMapping
from ._prediction import TransferResult
from ._scclip import SCCLIP
from ._scncl import SCNCL

__all__ = ["SCCLIP", "SCNCL", "FeatureMapping", "TransferResult"]
