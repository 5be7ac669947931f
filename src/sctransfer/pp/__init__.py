"""Preprocessing: gene activity, peak coordinates and the peak-space neighbour graph."""

from sctransfer._genome_check import GenomeMismatchWarning
from sctransfer._intervals import IntervalError, peak_coordinates
from sctransfer._knn import knn_graph, knn_query

from ._annotation import gene_coordinates, read_gene_annotation
from ._gene_activity import gene_activity
from ._neighbors import peak_neighbors, tfidf_lsi

__all__ = [
    "GenomeMismatchWarning",
    "IntervalError",
    "gene_activity",
    "gene_coordinates",
    "knn_graph",
    "knn_query",
    "peak_coordinates",
    "peak_neighbors",
    "read_gene_annotation",
    "tfidf_lsi",
]
