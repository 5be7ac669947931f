"""Gene activity from a peak matrix: counts in each gene's body and promoter."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from sctransfer._constants import ATAC, GENE_ACTIVITY
from sctransfer._genome_check import check_genome_match
from sctransfer._intervals import (
    IntervalError,
    harmonise_chromosomes,
    overlap_pairs,
    peak_coordinates,
)
from sctransfer._matrix import layer_matrix, row_blocks, stack_rows, zero_rows
from sctransfer._validation import check_counts, counts_hint, get_modality, update_mudata, user_stacklevel

from ._annotation import read_gene_annotation

logger = logging.getLogger(__name__)


def gene_regions(
    genes: pd.DataFrame, *, upstream: int = 2000, downstream: int = 0, gene_body: bool = True
) -> pd.DataFrame:
    """Regions whose reads count towards each gene, strand-aware.

    Parameters
    ----------
    genes
        Gene table from :func:`~sctransfer.pp.read_gene_annotation` (0-based, half-open).
    upstream
        Bases added before the transcription start site (TSS): below ``start`` on the + strand,
        above ``end`` on the - strand.
    downstream
        Bases added after the gene end (``gene_body=True``) or after the TSS (``gene_body=False``).
    gene_body
        Count the whole gene body plus the flanks; if ``False`` count only the promoter window
        ``[TSS - upstream, TSS + downstream)``.

    Returns
    -------
    Data frame with ``chrom``, ``start``, ``end``, ``gene_name``.
    """
    plus = genes["strand"].to_numpy() != "-"
    start, end = genes["start"].to_numpy(np.int64), genes["end"].to_numpy(np.int64)
    if gene_body:
        new_start = np.where(plus, start - upstream, start - downstream)
        new_end = np.where(plus, end + downstream, end + upstream)
    else:
        tss = np.where(plus, start, end)
        new_start = np.where(plus, tss - upstream, tss - downstream)
        new_end = np.where(plus, tss + downstream, tss + upstream)
    return pd.DataFrame(
        {
            "chrom": genes["chrom"].to_numpy(),
            "start": np.maximum(new_start, 0),
            "end": np.maximum(new_end, 1),
            "gene_name": genes["gene_name"].to_numpy(),
        }
    )


def peak_gene_links(
    peaks: pd.DataFrame,
    genes: pd.DataFrame,
    *,
    upstream: int = 2000,
    downstream: int = 0,
    gene_body: bool = True,
) -> sp.csr_matrix:
    """Binary peaks x genes matrix: 1 where a peak overlaps the gene's counting region.

    Parameters
    ----------
    peaks
        Peak intervals (``chrom``, ``start``, ``end``), e.g. from :func:`~sctransfer.pp.peak_coordinates`.
    genes
        Gene table (see :func:`gene_regions` for the other parameters).
    """
    regions = gene_regions(genes, upstream=upstream, downstream=downstream, gene_body=gene_body)
    regions["chrom"] = harmonise_chromosomes(regions["chrom"], peaks["chrom"].to_numpy()).to_numpy()
    gene_idx, peak_idx = overlap_pairs(regions, peaks)
    data = np.ones(len(gene_idx), dtype=np.float32)
    return sp.csr_matrix((data, (peak_idx, gene_idx)), shape=(len(peaks), len(genes)), dtype=np.float32)


def _select_genes(table: pd.DataFrame, genes: Sequence[str] | None) -> tuple[pd.DataFrame, list[str]]:
    if genes is None:
        return table, []
    wanted = pd.Index(pd.unique(np.asarray(genes, dtype=str)))
    indexed = table.set_index("gene_name", drop=False)
    found = wanted[wanted.isin(indexed.index)]
    missing = wanted[~wanted.isin(indexed.index)].tolist()
    return indexed.loc[found].reset_index(drop=True), missing


def compute_gene_activity(
    atac: AnnData,
    annotation: str | os.PathLike | pd.DataFrame,
    *,
    genes: Sequence[str] | None = None,
    layer: str | None = None,
    upstream: int = 2000,
    downstream: int = 0,
    gene_body: bool = True,
    modality: str = ATAC,
    layer_argument: str = "layer",
    empty_cells_reported: bool = False,
) -> AnnData:
    """Gene activity of every cell of a peak matrix (the work behind :func:`gene_activity`).

    Returns a new cells x genes :class:`~anndata.AnnData` (float32 CSR); ``atac`` is not changed.
    See :func:`gene_activity` for the parameters, what the result holds, the errors and the
    warnings. ``layer_argument`` is the caller's name for ``layer``, used in messages (e.g.
    ``"atac_layer"`` for :func:`~sctransfer.tl.label_transfer`). ``empty_cells_reported``: the caller has
    warned about the cells without counts already (only cells with counts off genes are then reported here).
    """
    if layer is not None and layer not in atac.layers:
        raise KeyError(
            f"Layer {layer!r} is not in modality {modality!r} (layers: {list(atac.layers)}). Pass "
            f"{layer_argument}= the layer that holds the raw peak counts, or {layer_argument}=None to use .X."
        )
    x = layer_matrix(atac, layer)
    where = f"modality {modality!r} {'layer ' + repr(layer) if layer else '.X'}"
    check_counts(x, what=where, hint=counts_hint(atac, key=modality, argument=layer_argument, layer=layer))
    peaks = peak_coordinates(atac, modality=modality)
    table = read_gene_annotation(annotation)
    genome = check_genome_match(peaks, table, what=f"modality {modality!r}")
    table, missing = _select_genes(table, genes)
    if missing:
        logger.warning(
            "%d of %d requested genes have no coordinates in the annotation and are left out (e.g. %s).",
            len(missing),
            len(missing) + len(table),
            ", ".join(missing[:5]),
        )
    if len(table) == 0:
        raise IntervalError(
            "None of the requested genes has coordinates in the annotation; check that the annotation is for "
            "the same species and uses the same gene names as the RNA data."
        )
    links = peak_gene_links(peaks, table, upstream=upstream, downstream=downstream, gene_body=gene_body)
    n_linked_peaks = np.asarray(links.sum(axis=0)).ravel().astype(np.int32)
    if links.nnz == 0:
        raise IntervalError(
            f"No peak of modality {modality!r} overlaps any gene of the annotation. The peaks and the annotation "
            "are probably from different genome builds or species (e.g. peaks on hg19, genes on hg38)."
        )
    blocks, no_counts = [], np.empty(atac.n_obs, dtype=bool)
    for rows, block in row_blocks(x):
        no_counts[rows] = zero_rows(block)
        blocks.append(sp.csr_matrix(block.astype(np.float32, copy=False) @ links, dtype=np.float32))
    activity = stack_rows(blocks)
    _warn_empty_cells(no_counts, zero_rows(activity), modality, report_empty=not empty_cells_reported)
    var = table.set_index("gene_name")[["chrom", "start", "end", "strand"]].copy()
    var.index = var.index.astype(str)
    var.index.name = None
    var["n_peaks"] = n_linked_peaks
    params = {
        "upstream": int(upstream),
        "downstream": int(downstream),
        "gene_body": bool(gene_body),
        "layer": layer,
        "n_genes_without_coordinates": len(missing),
        "n_genes_without_peaks": int((n_linked_peaks == 0).sum()),
        "source_modality": modality,
    }
    logger.info(
        "Gene activity: %d cells x %d genes from %d peaks (%d genes without an overlapping peak).",
        activity.shape[0],
        activity.shape[1],
        peaks.shape[0],
        params["n_genes_without_peaks"],
    )
    return AnnData(
        X=activity,
        obs=pd.DataFrame(index=atac.obs_names.copy()),
        var=var,
        uns={
            "gene_activity": {
                "params": params,
                "genes_without_coordinates": list(missing),
                "genome_check": genome.to_dict(),
            }
        },
    )


def _warn_empty_cells(
    no_counts: np.ndarray, no_activity: np.ndarray, modality: str, *, report_empty: bool = True
) -> None:
    """Warn about cells without peak counts (unless ``report_empty``) and cells with counts only far from genes."""
    n_cells, n_empty = len(no_counts), int(no_counts.sum()) if report_empty else 0
    n_off_genes = int((no_activity & ~no_counts).sum())
    if n_empty == 0 and n_off_genes == 0:
        return
    parts = []
    if n_empty:
        parts.append(f"{n_empty:,} of {n_cells:,} cells of modality {modality!r} have no peak counts (rows of zeros)")
    if n_off_genes:
        whose = "more" if n_empty else f"of {n_cells:,} cells of modality {modality!r}"
        parts.append(f"{n_off_genes:,} {whose} have counts only in peaks that overlap no gene")
    warnings.warn(
        f"{'; '.join(parts)}: their gene activity is all zero, so nothing can be said about their type. Remove "
        f"cells without counts first (e.g. sc.pp.filter_cells(mdata[{modality!r}], min_counts=1)), and check that "
        "the annotation covers the peaks' genome.",
        UserWarning,
        stacklevel=user_stacklevel(),
    )


def gene_activity(
    data: MuData | AnnData,
    annotation: str | os.PathLike | pd.DataFrame,
    *,
    atac_key: str = ATAC,
    genes: Sequence[str] | None = None,
    layer: str | None = None,
    upstream: int = 2000,
    downstream: int = 0,
    gene_body: bool = True,
    key_added: str = GENE_ACTIVITY,
    overwrite: bool = False,
) -> AnnData | None:
    """Gene activity: peak counts summed over each gene's body and promoter.

    A peak counts towards a gene when it overlaps the gene body extended by ``upstream`` bases
    before the transcription start site (strand-aware; 2 kb by default, as Signac's
    ``GeneActivity``) and ``downstream`` bases after the gene end. The peak matrix stays sparse
    throughout: it is multiplied by a sparse peaks x genes link matrix in blocks of cells, and a backed
    peak matrix (``mudata.read_h5mu(path, backed=True)``) is read from the file one block at a time.
    Any scipy sparse format (CSR, CSC; matrices or arrays) and dense arrays are accepted.

    Before any work, the peak matrix is checked to hold counts, and the annotation to fit the
    peaks' genome: the share of peaks within 1 kb of an annotated transcription start site (TSS)
    is compared with the same share with the TSSs moved by 20-100 kb. Peaks and genes of the same
    genome give several times the background; another build or species gives about 1 and a
    :class:`~sctransfer.pp.GenomeMismatchWarning` (figures: :doc:`/benchmarks`).

    Parameters
    ----------
    data
        A :class:`~mudata.MuData` holding the peak matrix as modality ``atac_key``, or the peak
        :class:`~anndata.AnnData` itself (cells x peaks, counts).
    annotation
        GTF/GFF3 path (gzip too), BED or TSV table path, a :class:`~pandas.DataFrame`, or a genome
        name (``"mm10"``, ``"hg38"``, ``"hg19"``); see :func:`~sctransfer.pp.read_gene_annotation`.
    atac_key
        Modality holding peak counts (MuData input only).
    genes
        Genes to compute (e.g. the RNA reference's ``var_names``); ``None`` for every annotated gene.
        Requested genes without coordinates are reported in a warning and left out.
    layer
        Layer of the peak matrix holding raw counts; ``None`` uses ``.X``. Only this matrix is
        checked (e.g. NaN in ``.X`` does not matter when ``layer`` names clean counts).
    upstream, downstream, gene_body
        Counting region, see above; ``gene_body=False`` counts promoters only
        (``[TSS - upstream, TSS + downstream)``).
    key_added
        Name of the new modality (MuData input).
    overwrite
        Replace an existing modality ``key_added``; otherwise an existing one is an error.

    Returns
    -------
    For an AnnData input: a new cells x genes AnnData (float32 CSR counts; ``var`` holds ``chrom``,
    ``start``, ``end``, ``strand`` and ``n_peaks``, the number of linked peaks; ``uns["gene_activity"]``
    holds the ``"params"``, the ``"genes_without_coordinates"`` and the ``"genome_check"``: the
    share of peaks at TSSs ``at_tss``, the ``background`` share, their ratio ``enrichment``, and
    ``decided`` / ``likely_mismatch``).

    For a MuData input: None. The same AnnData is stored as the modality ``mdata.mod[key_added]``,
    whose cells (``obs_names``) are those of ``mdata.mod[atac_key]``, and ``mdata.update()`` is called.
    On an error the MuData is left as it was.

    Raises
    ------
    KeyError
        ``atac_key`` or ``layer`` does not exist.
    TypeError
        The peak matrix is not numeric.
    ValueError
        The peak matrix holds NaN/inf or negative values, or looks log-transformed (mostly
        non-whole values, none above 20): pass the raw counts layer via ``layer=``. Or
        ``key_added`` exists and ``overwrite`` is False.
    sctransfer.pp.IntervalError
        Peaks without coordinates; no peak on a chromosome of the annotation; no requested gene
        in the annotation; no peak overlapping a gene.

    Warns
    -----
    UserWarning
        Some counts are not whole numbers (used as they are); some cells have no counts, or
        counts only in peaks that overlap no gene (their gene activity is all zero).
    sctransfer.pp.GenomeMismatchWarning
        The annotation likely comes from another genome build or species than the peaks.
    """
    if isinstance(data, AnnData):
        return compute_gene_activity(
            data, annotation, genes=genes, layer=layer, upstream=upstream, downstream=downstream, gene_body=gene_body
        )
    atac = get_modality(data, atac_key, role="ATAC peaks", layer=layer)
    if key_added in data.mod and not overwrite:
        raise ValueError(
            f"The MuData already has a modality {key_added!r}. Pass overwrite=True to replace it, "
            "or key_added= to store the gene activity under another name."
        )
    activity = compute_gene_activity(
        atac,
        annotation,
        genes=genes,
        layer=layer,
        upstream=upstream,
        downstream=downstream,
        gene_body=gene_body,
        modality=atac_key,
    )
    data.mod[key_added] = activity
    update_mudata(data)
    return None
