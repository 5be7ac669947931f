"""Torch modules (the maths and the losses) behind the models in :mod:`sctransfer.model`."""

from ._scclip import SCCLIPModule
from ._scncl import SCNCLModule

__all__ = ["SCCLIPModule", "SCNCLModule"]
