"""Gene annotations as users name them: a file, a data frame, or a genome sctransfer ships a table for.

Genome names are resolved here, where annotations are read (:mod:`sctransfer.datasets` holds the
tables); the parsing itself lives in :mod:`sctransfer._intervals`, which imports no data set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from sctransfer._intervals import IntervalError, locate_genes, read_annotation
from sctransfer.datasets._annotation import KNOWN_GENOMES, gene_annotation


def read_gene_annotation(
    annotation: str | os.PathLike | pd.DataFrame, *, one_based: bool | None = None
) -> pd.DataFrame:
    """Read a gene annotation into the standard gene table.

    Parameters
    ----------
    annotation
        One of: a GTF / GFF3 path (optionally gzipped); a BED path (chrom, start, end, name,
        score, strand); a TSV/CSV table path with chrom, start, end, strand and a gene-name column
        (``gene_name``, ``symbol`` or ``gene``); a :class:`pandas.DataFrame` with such columns;
        or a genome name of :data:`sctransfer.datasets.KNOWN_GENOMES` (``"mm10"``, ``"hg38"``, ...),
        read with :func:`sctransfer.datasets.gene_annotation`.
    one_based
        Whether table starts are 1-based. ``None``: BED files 0-based, all other tables 1-based.

    Returns
    -------
    Data frame with ``chrom``, ``start``, ``end`` (0-based, half-open), ``strand``, ``gene_name``,
    one row per gene name.

    Raises
    ------
    sctransfer.pp.IntervalError
        When ``annotation`` is neither an existing file nor a known genome name, or when the file
        or data frame lacks the needed columns or gene records.
    """
    if isinstance(annotation, str) and not os.path.exists(annotation):
        if annotation in KNOWN_GENOMES:
            return gene_annotation(annotation)
        raise IntervalError(
            f"Annotation {annotation!r} is neither an existing file nor a known genome name "
            f"({', '.join(KNOWN_GENOMES)}). Pass a GTF/GFF3/BED/TSV path, a DataFrame or a genome name."
        )
    return read_annotation(annotation, one_based=one_based)


def gene_coordinates(
    gene_names: Sequence[str], annotation: str | os.PathLike | pd.DataFrame, *, one_based: bool | None = None
) -> pd.DataFrame:
    """Coordinates of named genes (e.g. an RNA matrix's ``var_names``) in a gene annotation.

    Genes are matched by exact name; names without an exact match are then matched
    case-insensitively (``SOX2`` finds ``Sox2``; the annotation's first such gene is taken).

    Parameters
    ----------
    gene_names
        Gene names, in the order wanted.
    annotation
        Anything :func:`read_gene_annotation` accepts: a GTF/GFF3/BED/TSV path, a
        :class:`~pandas.DataFrame` or a genome name (``"mm10"``, ``"hg38"``, ...).
    one_based
        Passed to :func:`read_gene_annotation`.

    Returns
    -------
    Data frame indexed by ``gene_names`` (same order, duplicates kept) with ``chrom`` (object,
    ``None`` when the gene is not found), ``start`` and ``end`` (float64, 0-based half-open,
    ``NaN`` when the gene is not found).

    Raises
    ------
    sctransfer.pp.IntervalError
        As :func:`read_gene_annotation`, or when the annotation holds no gene.
    """
    return locate_genes(gene_names, read_gene_annotation(annotation, one_based=one_based))
