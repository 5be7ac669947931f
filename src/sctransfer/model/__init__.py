"""scvi-tools models: data registration, training, prediction, saving."""

from ._feature_layout import FeatureLayout
from ._feature_mapping import FeatureMapping
from ._scclip import PRESETS, SCCLIP
from ._scncl import SCNCL

__all__ = ["PRESETS", "SCCLIP", "SCNCL", "FeatureLayout", "FeatureMapping"]
