"""Torch modules (the maths and the losses) behind the models in :mod:`sctransfer.model`."""

from ._scclip import GenomicPatchEncoder, SCCLIPModule, TransformerBlock
from ._scncl import SCNCLModule

__all__ = ["GenomicPatchEncoder", "SCCLIPModule", "SCNCLModule", "TransformerBlock"]
