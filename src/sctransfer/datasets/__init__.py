"""Data sets: real multiome data (downloaded on first use, hash-checked) and a scalable simulator."""

from ._annotation import KNOWN_GENOMES, gene_annotation
from ._bmmc import bmmc_multiome_match, bmmc_multiome_starter
from ._mop import MOP_LIBRARIES, GenePeakLinks, mop_gene_peak_links, mop_label_transfer, mop_snareseq
from ._recall import recall_peaks
from ._registry import REGISTRY, DownloadError, HashMismatchError, data_dir, fetch_file
from ._simulate import simulate_multiome

__all__ = [
    "KNOWN_GENOMES",
    "MOP_LIBRARIES",
    "REGISTRY",
    "GenePeakLinks",
    "DownloadError",
    "HashMismatchError",
    "bmmc_multiome_match",
    "bmmc_multiome_starter",
    "data_dir",
    "fetch_file",
    "gene_annotation",
    "mop_gene_peak_links",
    "mop_label_transfer",
    "mop_snareseq",
    "recall_peaks",
    "simulate_multiome",
]
