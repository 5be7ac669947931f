"""scvi-tools models: data registration, training, prediction, saving.

The models' torch modules are in :mod:`sctransfer.module`, their building blocks in :mod:`sctransfer.nn`.
"""

from ._feature_mapping import FeatureMapping
from ._scclip import SCCLIP
from ._scncl import SCNCL

__all__ = ["SCCLIP", "SCNCL", "FeatureMapping"]
