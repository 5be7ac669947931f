"""A simulator of single-cell multiome data (RNA + ATAC) that scales to millions of cells.

Model
-----
Genes lie on mouse-like chromosomes; a share of the peaks sits at their promoters and in their
bodies, the rest in intergenic space. Every modality has one expression (accessibility) profile
per cell type plus a few shared *programmes* (continuous variation within types). A cell's
profile is a mixture: its type's profile with weight ``w`` (about 0.8) and the programmes with the
rest. Its counts are ``N`` draws from that mixture (``N`` Poisson around a type-level depth times a
log-normal size factor), so counts are Poisson given the cell's profile and over-dispersed across
cells. Peaks linked to a gene open in the types (and programmes) that express the gene; extra
intergenic peaks are type-specific. A cell's draws are made with the alias method and summed
into a CSR row, chunk by chunk, so memory grows with the non-zeros only.
"""

from __future__ import annotations

import logging

import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData
from scipy.special import erfinv

from sctransfer._constants import ATAC, CELL_TYPE_KEY, RNA

logger = logging.getLogger(__name__)

#: Chromosomes of mm10 used for the simulated genome, with their lengths in bp.
MM10_CHROMOSOMES = {
    "chr1": 195_471_971,
    "chr2": 182_113_224,
    "chr3": 160_039_680,
    "chr4": 156_508_116,
    "chr5": 151_834_684,
    "chr6": 149_736_546,
    "chr7": 145_441_459,
    "chr8": 129_401_213,
    "chr9": 124_595_110,
    "chr10": 130_694_993,
    "chr11": 122_082_543,
    "chr12": 120_129_022,
    "chr13": 120_421_639,
    "chr14": 124_902_244,
    "chr15": 104_043_685,
    "chr16": 98_207_768,
    "chr17": 94_987_271,
    "chr18": 90_702_639,
    "chr19": 61_431_566,
    "chrX": 171_031_299,
}

_N_PROGRAMMES = 3
_MARKER_FRACTION = 0.05  # share of genes that are markers of one type (or one programme)
_CHROM_MARGIN = 100_000  # no gene or peak this close to a chromosome end
_FLANK = 2_000  # intergenic peaks keep this distance from gene bodies
_DRAWS_PER_CHUNK = 4_000_000
_EXTRA_INSERTION = 0.3  # chance that a detected ATAC fragment adds a second count


def simulate_multiome(
    n_rna: int = 2000,
    n_atac: int = 2000,
    n_genes: int = 2000,
    n_peaks: int = 20000,
    n_types: int = 8,
    *,
    paired: bool = False,
    genes_per_cell: float = 1000,
    peaks_per_cell: float = 1500,
    genic_fraction: float = 0.5,
    random_state: int = 0,
    dtype: np.dtype | type = np.float32,
) -> MuData:
    """Simulate RNA and ATAC counts of cells of known types on a mouse-like genome.

    Parameters
    ----------
    n_rna
        Number of RNA cells.
    n_atac
        Number of ATAC cells. With ``paired=True`` it must equal ``n_rna``.
    n_genes
        Number of genes.
    n_peaks
        Number of peaks.
    n_types
        Number of cell types (``type0`` is the most frequent; each next type is 0.8 times as frequent).
    paired
        ``False``: the two modalities are different cells (obs_names ``rna:cell..`` and
        ``atac:cell..``). ``True``: every cell has both modalities, with shared obs_names
        ``cell..``, the same type and the same programme weights.
    genes_per_cell
        Mean number of detected genes per RNA cell (below ``n_genes``). 10x Multiome has about
        1,000-3,000; the MOp SNARE-seq data about 100.
    peaks_per_cell
        Mean number of detected peaks per ATAC cell (below ``n_peaks``). 10x Multiome has thousands;
        the MOp SNARE-seq data about 100.
    genic_fraction
        Share of the peaks placed at promoters (up to one per gene) or in gene bodies; the rest are
        intergenic, at least 2 kb from any gene.
    random_state
        Seed: the same arguments give the same data.
    dtype
        Float dtype of the count matrices.

    Returns
    -------
    A :class:`~mudata.MuData` with modalities:

    ``"rna"``
        ``n_rna`` x ``n_genes``. ``.X``: counts, CSR of ``dtype`` with int32 indices (no layers, to
        keep memory at one copy). ``.obs["cell_type"]``: categorical. ``.var`` (index
        ``gene_name``): ``chrom``, ``start``, ``end`` (**1-based inclusive**, like a GTF, so
        ``mdata["rna"].var`` can be passed as a gene annotation with the default ``one_based=True``),
        ``strand`` and ``gene_name``. Genes are 1-100 kb long and do not overlap.
    ``"atac"``
        ``n_atac`` x ``n_peaks``. ``.X``: counts (mostly 1, some 2 and more), CSR of ``dtype`` with
        int32 indices. ``.obs["cell_type"]``: the true type (for evaluation; unpaired methods must
        not read it). ``.var``: index ``chr1:1000-1500`` (0-based half-open, BED style), columns
        ``chrom``, ``start``, ``end`` (same convention), ``region`` (``promoter``, ``gene_body``,
        ``intergenic``) and ``linked_gene`` (the gene a promoter or gene-body peak belongs to, ``""``
        for intergenic peaks): the truth a gene activity can be checked against. Peaks are in
        genomic order and do not overlap.

    ``mdata.uns["simulate_multiome"]["params"]`` records the arguments.

    Raises
    ------
    ValueError
        For sizes below 1, detection targets outside ``(0, n_genes)`` / ``(0, n_peaks)``, a
        ``genic_fraction`` outside ``[0, 1]``, ``paired=True`` with ``n_atac != n_rna``, or a
        non-float ``dtype``.

    Notes
    -----
    Cells are generated in chunks (about four million draws each) straight into CSR arrays, with
    no dense cells x features array: memory is about 8 bytes per non-zero (float32 value, int32
    index) plus one chunk, so a million ATAC cells with 2,000 detected peaks each take 16 GB.
    100,000 cells x 100,000 peaks at 1,500 peaks per cell take about 12 s on one core.
    """
    _check_arguments(n_rna, n_atac, n_genes, n_peaks, n_types, paired, genes_per_cell, peaks_per_cell, genic_fraction)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a float dtype, not {dtype}.")
    layout_seed, rna_seed, atac_seed, cell_seed = np.random.SeedSequence(random_state).spawn(4)
    rng = np.random.default_rng(layout_seed)

    genes = _place_genes(n_genes, rng)
    peaks, peak_gene = _place_peaks(genes, n_peaks, genic_fraction, rng)
    rna_logits, atac_logits = _profiles(genes, peaks, peak_gene, n_types, rng)

    type_names = np.array([f"type{t:0{len(str(n_types - 1))}d}" for t in range(n_types)])
    type_freq = 0.8 ** np.arange(n_types)
    type_freq /= type_freq.sum()
    cell_rng = np.random.default_rng(cell_seed)
    rna_cells = _draw_cells(n_rna, type_freq, cell_rng)
    atac_cells = rna_cells if paired else _draw_cells(n_atac, type_freq, cell_rng)

    logger.info("Simulating RNA counts of %d cells x %d genes", n_rna, n_genes)
    rna_x = _counts(rna_logits, rna_cells, genes_per_cell, 0.4, 0.0, dtype, np.random.default_rng(rna_seed))
    logger.info("Simulating ATAC counts of %d cells x %d peaks", n_atac, n_peaks)
    atac_x = _counts(
        atac_logits, atac_cells, peaks_per_cell, 0.5, _EXTRA_INSERTION, dtype, np.random.default_rng(atac_seed)
    )

    rna_names = _cell_names("cell" if paired else "rna:cell", n_rna)
    atac_names = rna_names if paired else _cell_names("atac:cell", n_atac)
    rna = AnnData(
        X=rna_x,
        obs=pd.DataFrame({CELL_TYPE_KEY: pd.Categorical.from_codes(rna_cells[0], type_names)}, index=rna_names),
        var=genes.set_index(pd.Index(genes["gene_name"].to_numpy())),
    )
    atac = AnnData(
        X=atac_x,
        obs=pd.DataFrame({CELL_TYPE_KEY: pd.Categorical.from_codes(atac_cells[0], type_names)}, index=atac_names),
        var=peaks,
    )
    with mudata.set_options(pull_on_update=False):
        mdata = MuData({RNA: rna, ATAC: atac})
    mdata.uns["simulate_multiome"] = {
        "params": {
            "n_rna": n_rna,
            "n_atac": n_atac,
            "n_genes": n_genes,
            "n_peaks": n_peaks,
            "n_types": n_types,
            "paired": paired,
            "genes_per_cell": genes_per_cell,
            "peaks_per_cell": peaks_per_cell,
            "genic_fraction": genic_fraction,
            "random_state": random_state,
        }
    }
    return mdata


def _check_arguments(
    n_rna: int,
    n_atac: int,
    n_genes: int,
    n_peaks: int,
    n_types: int,
    paired: bool,
    genes_per_cell: float,
    peaks_per_cell: float,
    genic_fraction: float,
) -> None:
    for name, value in (("n_rna", n_rna), ("n_atac", n_atac), ("n_genes", n_genes), ("n_peaks", n_peaks)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, not {value}.")
    if n_types < 1:
        raise ValueError(f"n_types must be at least 1, not {n_types}.")
    if paired and n_atac != n_rna:
        raise ValueError(
            f"paired=True simulates both modalities of the same cells: n_atac ({n_atac}) must equal n_rna ({n_rna})."
        )
    if not 0 < genes_per_cell < n_genes:
        raise ValueError(f"genes_per_cell must be between 0 and n_genes ({n_genes}), not {genes_per_cell}.")
    if not 0 < peaks_per_cell < n_peaks:
        raise ValueError(f"peaks_per_cell must be between 0 and n_peaks ({n_peaks}), not {peaks_per_cell}.")
    if not 0 <= genic_fraction <= 1:
        raise ValueError(f"genic_fraction must be between 0 and 1, not {genic_fraction}.")


# --------------------------------------------------------------------------------------------
# genome layout
# --------------------------------------------------------------------------------------------
def _place_genes(n_genes: int, rng: np.random.Generator) -> pd.DataFrame:
    """Non-overlapping genes (1-based inclusive coordinates), in genomic order."""
    chroms = np.array(list(MM10_CHROMOSOMES))
    lengths = np.array(list(MM10_CHROMOSOMES.values()), dtype=np.int64)
    per_chrom = rng.multinomial(n_genes, lengths / lengths.sum())
    gene_len = np.clip(rng.lognormal(np.log(15_000), 0.9, n_genes), 1_000, 100_000).astype(np.int64)
    starts = np.empty(n_genes, dtype=np.int64)
    offset = 0
    for chrom_len, n in zip(lengths, per_chrom, strict=True):
        block = slice(offset, offset + n)
        usable = chrom_len - 2 * _CHROM_MARGIN
        total = gene_len[block].sum()
        if total > usable // 2:  # very dense genomes: shrink the genes to leave intergenic space
            gene_len[block] = np.maximum(gene_len[block] * (usable // 2) // max(total, 1), 1_000)
        free = usable - gene_len[block].sum()
        gaps = np.sort(rng.integers(0, free, n))
        starts[block] = _CHROM_MARGIN + 1 + gaps + np.concatenate([[0], np.cumsum(gene_len[block])[:-1]])
        offset += n
    width = len(str(n_genes))
    return pd.DataFrame(
        {
            "chrom": np.repeat(chroms, per_chrom),
            "start": starts,
            "end": starts + gene_len - 1,
            "strand": np.where(rng.random(n_genes) < 0.5, "+", "-"),
            "gene_name": np.char.add("Gene", np.char.zfill(np.arange(n_genes).astype(str), width)),
        }
    )


def _place_peaks(
    genes: pd.DataFrame, n_peaks: int, genic_fraction: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """Peaks (0-based half-open) at promoters, in gene bodies and intergenic, in genomic order.

    Returns the peak table and, per peak, the index of its gene (-1 for intergenic peaks).
    """
    n_genes = len(genes)
    n_genic = int(round(genic_fraction * n_peaks))
    n_promoter = min(n_genes, n_genic // 2)
    n_body = n_genic - n_promoter
    n_intergenic = n_peaks - n_genic
    g_start = genes["start"].to_numpy() - 1  # 0-based
    g_end = genes["end"].to_numpy()
    plus = genes["strand"].to_numpy() == "+"
    chrom_index = pd.Categorical(genes["chrom"], categories=list(MM10_CHROMOSOMES)).codes.astype(np.int64)

    promoter_gene = rng.choice(n_genes, n_promoter, replace=False)
    tss = np.where(plus[promoter_gene], g_start[promoter_gene], g_end[promoter_gene])
    shift = rng.integers(-1_000, 500, n_promoter)
    promoter_centre = tss + np.where(plus[promoter_gene], shift, -shift)
    body_weight = (g_end - g_start).astype(float)
    body_gene = rng.choice(n_genes, n_body, p=body_weight / body_weight.sum())
    body_centre = g_start[body_gene] + (rng.random(n_body) * (g_end - g_start)[body_gene]).astype(np.int64)
    gap_chrom, gap_start, gap_len = _intergenic_gaps(chrom_index, g_start, g_end)
    gap = rng.choice(len(gap_len), n_intergenic, p=gap_len / gap_len.sum())
    inter_centre = gap_start[gap] + (rng.random(n_intergenic) * gap_len[gap]).astype(np.int64)

    gene_of_peak = np.concatenate([promoter_gene, body_gene, np.full(n_intergenic, -1)]).astype(np.int64)
    chrom = np.concatenate([chrom_index[promoter_gene], chrom_index[body_gene], gap_chrom[gap]])
    centre = np.concatenate([promoter_centre, body_centre, inter_centre])
    region = np.repeat(np.array(["promoter", "gene_body", "intergenic"]), [n_promoter, n_body, n_intergenic])
    width = np.clip(rng.lognormal(np.log(500), 0.3, n_peaks), 200, 2_000).astype(np.int64)

    order = np.lexsort((centre, chrom))
    chrom, centre, width, region, gene_of_peak = (a[order] for a in (chrom, centre, width, region, gene_of_peak))
    start = np.maximum(centre - width // 2, 0)
    # push peaks right where they would overlap the previous one: start_i >= end_{i-1} + 1 within a chromosome
    for c in np.unique(chrom):
        block = np.flatnonzero(chrom == c)
        room = np.concatenate([[0], np.cumsum(width[block] + 1)[:-1]])
        start[block] = np.maximum.accumulate(start[block] - room) + room
    end = start + width
    chrom_names = np.array(list(MM10_CHROMOSOMES))[chrom]
    names = pd.Index(pd.Series(chrom_names) + ":" + pd.Series(start).astype(str) + "-" + pd.Series(end).astype(str))
    linked = np.where(gene_of_peak >= 0, genes["gene_name"].to_numpy()[np.maximum(gene_of_peak, 0)], "")
    peaks = pd.DataFrame(
        {
            "chrom": chrom_names,
            "start": start,
            "end": end,
            "region": pd.Categorical(region, categories=["promoter", "gene_body", "intergenic"]),
            "linked_gene": linked.astype(str),
        },
        index=names,
    )
    return peaks, gene_of_peak


def _intergenic_gaps(
    chrom_index: np.ndarray, g_start: np.ndarray, g_end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chromosome, 0-based start and length of the spaces between genes (genes sorted, not overlapping)."""
    lengths = np.array(list(MM10_CHROMOSOMES.values()), dtype=np.int64)
    chroms, starts, ends = [], [], []
    for c, chrom_len in enumerate(lengths):
        on_chrom = chrom_index == c
        left = np.concatenate([[_CHROM_MARGIN], g_end[on_chrom] + _FLANK])
        right = np.concatenate([g_start[on_chrom] - _FLANK, [chrom_len - _CHROM_MARGIN]])
        chroms.append(np.full(len(left), c))
        starts.append(left)
        ends.append(right)
    start = np.concatenate(starts)
    length = np.maximum(np.concatenate(ends) - start, 0)
    return np.concatenate(chroms), start, length.astype(float)


# --------------------------------------------------------------------------------------------
# profiles and cells
# --------------------------------------------------------------------------------------------
def _profiles(
    genes: pd.DataFrame, peaks: pd.DataFrame, peak_gene: np.ndarray, n_types: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Log-profiles (types first, then programmes) x genes and x peaks."""
    n_genes, n_peaks = len(genes), len(peaks)
    n_markers = max(1, int(round(_MARKER_FRACTION * n_genes)))
    n_components = n_types + _N_PROGRAMMES
    gene_effect = np.zeros((n_components, n_genes))
    for c in range(n_components):
        low, high = (1.5, 3.0) if c < n_types else (1.0, 2.0)
        gene_effect[c, rng.choice(n_genes, n_markers, replace=False)] = rng.uniform(low, high, n_markers)
    gene_base = rng.normal(0.0, 1.0, n_genes)

    linked = peak_gene >= 0
    region = peaks["region"].to_numpy()
    strength = np.where(region == "promoter", 1.0, 0.8)[linked]
    peak_effect = np.zeros((n_components, n_peaks))
    peak_effect[:, linked] = gene_effect[:, peak_gene[linked]] * strength
    peak_base = rng.normal(0.0, 0.8, n_peaks)
    peak_base[linked] += 0.5 * gene_base[peak_gene[linked]]
    # type-specific distal elements: 15% of intergenic peaks open in one type
    intergenic = np.flatnonzero(~linked)
    specific = rng.choice(intergenic, int(0.15 * len(intergenic)), replace=False)
    peak_effect[rng.integers(0, n_types, len(specific)), specific] = rng.uniform(1.5, 3.0, len(specific))
    return gene_base + gene_effect, peak_base + peak_effect


def _draw_cells(n_cells: int, type_freq: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Type codes and mixture weights (own type, then each programme) of ``n_cells`` cells."""
    types = rng.choice(len(type_freq), n_cells, p=type_freq).astype(np.int32)
    own = rng.beta(8.0, 2.0, n_cells)
    programmes = rng.dirichlet(np.ones(_N_PROGRAMMES), n_cells) * (1.0 - own)[:, None]
    return types, np.column_stack([own, programmes])


def _cell_names(prefix: str, n: int) -> pd.Index:
    return pd.Index(np.char.add(prefix, np.char.zfill(np.arange(n).astype(str), len(str(n - 1)))))


# --------------------------------------------------------------------------------------------
# counts
# --------------------------------------------------------------------------------------------
def _alias_tables(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker alias tables of each row of a components x features probability matrix.

    Vose's pairing of under-full buckets with over-full features, done for all under-full buckets
    at once: each takes its alias from the over-full feature whose excess (in cumulative order)
    covers the start of its deficit. A feature that gives more than its excess becomes an
    under-full bucket of the next round. Each round settles every current under-full bucket.
    """
    n_components, n = probabilities.shape
    accept = np.ones((n_components, n), dtype=np.float32)
    alias = np.tile(np.arange(n, dtype=np.int32), (n_components, 1))
    for c in range(n_components):
        mass = probabilities[c] * n / probabilities[c].sum()
        small = np.flatnonzero(mass < 1.0)
        large = np.flatnonzero(mass >= 1.0)
        while len(small) and len(large):
            deficit_start = np.concatenate([[0.0], np.cumsum(1.0 - mass[small])[:-1]])
            excess_end = np.cumsum(mass[large] - 1.0)
            donor = np.minimum(np.searchsorted(excess_end, deficit_start, side="right"), len(large) - 1)
            accept[c, small] = mass[small]
            alias[c, small] = large[donor]
            mass[large] -= np.bincount(donor, weights=1.0 - mass[small], minlength=len(large))
            small, large = large[mass[large] < 1.0], large[mass[large] >= 1.0]
    return accept, alias


def _depth(probabilities: np.ndarray, n_types: int, detected: float, size_sd: float) -> np.ndarray:
    """Mean draws per cell of each type giving ``detected`` distinct features on average.

    Solves ``mean over size factors of sum_j (1 - exp(-N s p_j)) = detected`` by bisection on
    ``log N``, with the features of each type's mean profile pooled into 512 log-spaced bins.
    """
    mean_prog = probabilities[n_types:].mean(axis=0) if len(probabilities) > n_types else 0.0
    profile = 0.8 * probabilities[:n_types] + 0.2 * mean_prog  # mean mixture of each type
    log_p = np.log(np.maximum(profile, 1e-300))
    edges = np.linspace(log_p.min(), log_p.max() + 1e-9, 513)
    binned = np.stack([np.histogram(row, edges, weights=np.exp(row))[0] for row in log_p])
    count = np.stack([np.histogram(row, edges)[0] for row in log_p])
    p_bin = np.divide(binned, count, out=np.zeros_like(binned), where=count > 0)
    quantiles = (np.arange(16) + 0.5) / 16
    z = np.sqrt(2) * erfinv(2 * quantiles - 1)  # standard normal quantiles
    factors = np.exp(size_sd * z - size_sd**2 / 2)  # log-normal size factors with mean 1
    low = np.full(n_types, np.log(detected))
    high = np.full(n_types, np.log(detected) + 12)
    for _ in range(40):
        mid = (low + high) / 2
        rate = np.exp(mid)[:, None, None] * factors[None, :, None] * p_bin[:, None, :]
        found = (count[:, None, :] * -np.expm1(-rate)).sum(axis=2).mean(axis=1)
        low = np.where(found < detected, mid, low)
        high = np.where(found < detected, high, mid)
    return np.exp((low + high) / 2)


def _counts(
    logits: np.ndarray,
    cells: tuple[np.ndarray, np.ndarray],
    detected: float,
    size_sd: float,
    extra: float,
    dtype: np.dtype,
    rng: np.random.Generator,
) -> sp.csr_matrix:
    """Cells x features counts, written chunk by chunk into the final CSR arrays.

    The arrays are allocated for the number of draws (an upper bound of the non-zeros; pages that
    are never written take no memory) and shrunk in place at the end.
    """
    types, weights = cells
    n_cells, n_features = len(types), logits.shape[1]
    n_types = logits.shape[0] - _N_PROGRAMMES
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    accept, alias = _alias_tables(probabilities)
    depth = _depth(probabilities, n_types, detected, size_sd)
    size = rng.lognormal(-(size_sd**2) / 2, size_sd, n_cells)
    draws = rng.poisson(depth[types] * size)
    total = int(draws.sum())
    data = np.empty(total, dtype=dtype)
    indices = np.empty(total, dtype=np.int32)
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    ends = np.searchsorted(np.cumsum(draws), np.arange(_DRAWS_PER_CHUNK, total, _DRAWS_PER_CHUNK))
    bounds = np.unique(np.concatenate([[0], ends, [n_cells]]))
    nnz = 0
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        values, columns, row_nnz = _chunk(types[lo:hi], weights[lo:hi], draws[lo:hi], accept, alias, extra, dtype, rng)
        data[nnz : nnz + len(values)] = values
        indices[nnz : nnz + len(values)] = columns
        indptr[lo + 1 : hi + 1] = nnz + np.cumsum(row_nnz)
        nnz += len(values)
    data.resize(nnz, refcheck=False)
    indices.resize(nnz, refcheck=False)
    if nnz < np.iinfo(np.int32).max:  # scipy would otherwise upcast the int32 indices to int64
        indptr = indptr.astype(np.int32)
    return sp.csr_matrix((data, indices, indptr), shape=(n_cells, n_features), copy=False)


def _chunk(
    types: np.ndarray,
    weights: np.ndarray,
    draws: np.ndarray,
    accept: np.ndarray,
    alias: np.ndarray,
    extra: float,
    dtype: np.dtype,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the counts of a chunk of cells: ``draws[i]`` draws of cell ``i`` from its mixture of components.

    Returns the CSR values and column indices (rows in order, columns sorted within a row) and the
    number of non-zeros of each row.
    """
    n_cells, n_features = len(types), accept.shape[1]
    n_types = accept.shape[0] - _N_PROGRAMMES
    per_component = rng.multinomial(draws, weights)  # cells x (own type, programmes)
    component_of = np.column_stack(
        [types, np.broadcast_to(n_types + np.arange(_N_PROGRAMMES), (n_cells, _N_PROGRAMMES))]
    )
    component = np.repeat(component_of.astype(np.int64).ravel(), per_component.ravel())
    # alias method: a uniform position in [0, n_features) gives a candidate and the accept test
    position = rng.random(len(component)) * n_features
    candidate = position.astype(np.int64)
    flat = component * n_features + candidate
    feature = np.where(position - candidate < accept.ravel()[flat], candidate, alias.ravel()[flat])
    del position, candidate, flat, component
    # sort (cell, feature) keys and count repeats: CSR order with duplicates summed
    key = np.sort(np.repeat(np.arange(n_cells, dtype=np.int64) * n_features, draws) + feature)
    del feature
    first = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    if extra > 0:  # each draw (fragment) adds a second count with probability `extra`
        values = np.add.reduceat((rng.random(len(key)) < extra).astype(dtype) + 1, first)
    else:
        values = np.diff(np.append(first, len(key))).astype(dtype)
    key = key[first]
    row = key // n_features
    return values, (key - row * n_features).astype(np.int32), np.bincount(row, minlength=n_cells)
