"""Data sets: real multiome data (downloaded on first use, hash-checked) and a scalable simulator.

Files are read from :func:`data_dir` (``SCTRANSFER_DATA_DIR`` or a user cache folder). A missing
file is downloaded from its public source; a failed download raises an :class:`OSError` and a file
whose content differs from the expected one a :class:`ValueError`, each naming the file and the fix.
"""

from ._annotation import KNOWN_GENOMES, gene_annotation
from ._bmmc import bmmc_multiome_match, bmmc_multiome_starter
from ._mop import MOP_LIBRARIES, GenePeakLinks, mop_gene_peak_links, mop_label_transfer, mop_snareseq
from ._recall import recall_peaks
from ._registry import data_dir
from ._simulate import simulate_multiome

__all__ = [
    "KNOWN_GENOMES",
    "MOP_LIBRARIES",
    "GenePeakLinks",
    "bmmc_multiome_match",
    "bmmc_multiome_starter",
    "data_dir",
    "gene_annotation",
    "mop_gene_peak_links",
    "mop_label_transfer",
    "mop_snareseq",
    "recall_peaks",
    "simulate_multiome",
]
