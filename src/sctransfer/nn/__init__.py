"""Building blocks of the torch modules in :mod:`sctransfer.module` (as :mod:`scvi.nn` is for scvi-tools).

:class:`FeatureLayout` cuts genes or peaks into genomic patches (the tokens); :class:`GenomicPatchEncoder`
embeds a cell from its patches with :class:`TransformerBlock` layers.
"""

from ._feature_layout import FeatureLayout
from ._patch_encoder import GenomicPatchEncoder, TransformerBlock

__all__ = ["FeatureLayout", "GenomicPatchEncoder", "TransformerBlock"]
