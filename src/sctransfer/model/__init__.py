"""scvi-tools models: data registration, training, prediction, saving.

The models' torch modules are in :mod:`sctransfer.module`, their building blocks in :mod:`sctransfer.nn`.
"""

# scvi-tools 1.4 prints setup arguments with `rich.pretty` without importing it: without this import,
# `model.view_anndata_setup()` raises AttributeError.
import rich.pretty  # noqa: F401

from ._base import TrainingDivergedError
from ._feature_mapping import FeatureMapping
from ._linear_member import LinearMember
from ._modality_alignment import CanonicalAlignment
from ._model_files import ModelFileError
from ._novelty import DEFAULT_NOVELTY_THRESHOLD
from ._prediction import TransferResult
from ._scclip import SCCLIP
from ._scncl import DECOMPOSITION_SEED, SCNCL

__all__ = [
    "DECOMPOSITION_SEED",
    "DEFAULT_NOVELTY_THRESHOLD",
    "SCCLIP",
    "SCNCL",
    "CanonicalAlignment",
    "FeatureMapping",
    "LinearMember",
    "ModelFileError",
    "TrainingDivergedError",
    "TransferResult",
]
