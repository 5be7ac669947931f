"""Building blocks of the torch modules in :mod:`sctransfer.module` (as :mod:`scvi.nn` is for scvi-tools)."""

from ._patch_encoder import GenomicPatchEncoder, TransformerBlock

__all__ = ["GenomicPatchEncoder", "TransformerBlock"]
