"""Torch modules (the maths and the losses) behind the models in :mod:`sctransfer.model`."""

from ._scncl import SCNCLModule

__all__ = ["SCNCLModule"]
