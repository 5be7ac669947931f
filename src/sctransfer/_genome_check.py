"""Genome-build check: whether peaks and a gene annotation come from the same genome build and species.

ATAC peaks pile up at transcription start sites (TSSs): with the annotation of the peaks' own
genome, many more peaks lie within 1 kb of an annotated TSS than within 1 kb of the same TSSs
moved by tens of kilobases. With an annotation of another build (hg19 genes for hg38 peaks) or
species (human genes for mouse peaks), TSSs fall at unrelated places and the two shares are
about equal. :func:`tss_enrichment` measures the ratio; :func:`check_genome_match` warns when it
says "likely mismatch", and refuses peaks and annotations that share no chromosome name at all.

The enrichment of matched and mismatched pairs on the project's data, and why :data:`MIN_ENRICHMENT`
is 2: :doc:`/benchmarks`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from sctransfer._intervals import IntervalError, harmonise_chromosomes, overlap_pairs
from sctransfer._validation import user_stacklevel

logger = logging.getLogger(__name__)

#: Half-width of the window around each TSS (bases): a peak within this distance is "at a TSS".
TSS_WINDOW = 1_000
#: Shifts of the TSSs (bases) whose shares, averaged, are the local background.
BACKGROUND_SHIFTS = (-100_000, -80_000, -60_000, -40_000, -20_000, 20_000, 40_000, 60_000, 80_000, 100_000)
#: Below this enrichment (share at TSSs / background share) the genomes likely do not match.
MIN_ENRICHMENT = 2.0
#: Fewest peaks at TSSs, in place and in the background together, for a decision: with fewer the
#: ratio is too noisy and no decision is made.
MIN_EVIDENCE = 20


class GenomeMismatchWarning(UserWarning):
    """The peaks and the gene annotation look like different genome builds or species."""


@dataclass(frozen=True)
class TssEnrichment:
    """How much the peaks concentrate at the annotation's TSSs (see :func:`tss_enrichment`).

    Attributes
    ----------
    n_peaks
        Peaks tested.
    n_peaks_on_annotated_chromosomes
        Peaks on a chromosome the annotation has genes on (after matching ``chr1`` with ``1``).
    at_tss
        Share of the peaks within :data:`TSS_WINDOW` bases of a TSS.
    background
        The same share with the TSSs moved by each of :data:`BACKGROUND_SHIFTS`, averaged.
    enrichment
        ``at_tss / background`` (``inf`` when the background is 0 and some peaks are at TSSs, 1.0
        when both are 0).
    decided
        Whether there were enough peaks at TSSs (at least :data:`MIN_EVIDENCE`, in place and in the
        background together) to decide.
    likely_mismatch
        ``decided`` and ``enrichment < MIN_ENRICHMENT``.
    """

    n_peaks: int
    n_peaks_on_annotated_chromosomes: int
    at_tss: float
    background: float
    enrichment: float
    decided: bool
    likely_mismatch: bool

    def to_dict(self) -> dict[str, int | float | bool]:
        """Plain Python values (for ``.uns``; they survive ``write_h5mu``/``write_zarr``)."""
        return {k: (v if isinstance(v, bool | int) else float(v)) for k, v in asdict(self).items()}


def _tss(genes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Chromosome and 0-based TSS of each gene; both ends of a gene when the table has no strand."""
    chrom = genes["chrom"].to_numpy()
    start = genes["start"].to_numpy(np.int64)
    last = genes["end"].to_numpy(np.int64) - 1
    if "strand" not in genes.columns:
        return np.concatenate([chrom, chrom]), np.concatenate([start, last])
    return chrom, np.where(genes["strand"].to_numpy() == "-", last, start)


def _share_near(peaks: pd.DataFrame, chrom: np.ndarray, tss: np.ndarray) -> float:
    windows = pd.DataFrame(
        {"chrom": chrom, "start": np.maximum(tss - TSS_WINDOW, 0), "end": np.maximum(tss + TSS_WINDOW + 1, 1)}
    )
    _, peak_idx = overlap_pairs(windows, peaks)
    return len(np.unique(peak_idx)) / len(peaks)


def tss_enrichment(peaks: pd.DataFrame, genes: pd.DataFrame) -> TssEnrichment:
    """Share of peaks within 1 kb of an annotated TSS, against a local background.

    Parameters
    ----------
    peaks
        Peak intervals (``chrom``, ``start``, ``end``, 0-based half-open), e.g. from
        :func:`sctransfer.pp.peak_coordinates`.
    genes
        Gene table (``chrom``, ``start``, ``end``, optional ``strand``; 0-based half-open), e.g. from
        :func:`sctransfer.pp.read_gene_annotation`. The TSS is ``start`` on the + strand and
        ``end - 1`` on the - strand; without a strand column both ends count. Chromosome names
        are matched across styles (``chr1``/``1``, ``chrM``/``MT``).

    Returns
    -------
    The statistic and the decision.
    """
    chrom = harmonise_chromosomes(genes["chrom"], peaks["chrom"].to_numpy()).to_numpy()
    on_annotated = int(np.isin(peaks["chrom"].to_numpy(), pd.unique(chrom)).sum())
    tss_chrom, tss = _tss(genes.assign(chrom=chrom))
    n = len(peaks)
    if n == 0 or on_annotated == 0:
        return TssEnrichment(n, on_annotated, 0.0, 0.0, 1.0, False, False)
    at_tss = _share_near(peaks, tss_chrom, tss)
    background = float(np.mean([_share_near(peaks, tss_chrom, tss + shift) for shift in BACKGROUND_SHIFTS]))
    if background > 0:
        enrichment = at_tss / background
    else:
        enrichment = np.inf if at_tss > 0 else 1.0
    decided = (at_tss + background) * n >= MIN_EVIDENCE
    return TssEnrichment(
        n_peaks=n,
        n_peaks_on_annotated_chromosomes=on_annotated,
        at_tss=float(at_tss),
        background=background,
        enrichment=float(enrichment),
        decided=bool(decided),
        likely_mismatch=bool(decided and enrichment < MIN_ENRICHMENT),
    )


def check_genome_match(peaks: pd.DataFrame, genes: pd.DataFrame, *, what: str) -> TssEnrichment:
    """Warn when peaks and gene annotation look like different genome builds or species.

    Computes :func:`tss_enrichment`. Matched data have several times more peaks at TSSs than
    with the TSSs moved by 20-100 kb; a build or species mismatch gives about 1 (figures:
    :doc:`/benchmarks`).

    Parameters
    ----------
    peaks, genes
        See :func:`tss_enrichment`.
    what
        Whose peaks they are, for messages (``"modality 'atac'"``).

    Returns
    -------
    The statistic and the decision.

    Raises
    ------
    sctransfer.pp.IntervalError
        When no peak is on a chromosome of the annotation, even after matching ``chr1`` with
        ``1`` (another assembly or naming scheme, e.g. RefSeq accessions).

    Warns
    -----
    GenomeMismatchWarning
        When the enrichment is below :data:`MIN_ENRICHMENT` (2.0) and there are enough peaks at TSSs
        to decide (:data:`MIN_EVIDENCE`); the message gives the statistic.
    """
    result = tss_enrichment(peaks, genes)
    if result.n_peaks and result.n_peaks_on_annotated_chromosomes == 0:
        peak_chroms = ", ".join(map(repr, pd.unique(peaks["chrom"].astype(str))[:3]))
        gene_chroms = ", ".join(map(repr, pd.unique(genes["chrom"].astype(str))[:3]))
        raise IntervalError(
            f"No peak of {what} is on a chromosome of the gene annotation, even ignoring a 'chr' prefix (peaks on "
            f"{peak_chroms}; genes on {gene_chroms}). The peaks and the annotation are from different genome "
            "assemblies or naming schemes: use an annotation of the peaks' genome build, or rename the chromosomes."
        )
    summary = (
        f"{100 * result.at_tss:.1f}% of the {result.n_peaks:,} peaks lie within {TSS_WINDOW // 1000} kb of an "
        f"annotated TSS against {100 * result.background:.1f}% with the TSSs moved by 20-100 kb "
        f"(enrichment {result.enrichment:.2f})"
    )
    if result.likely_mismatch:
        warnings.warn(
            f"The gene annotation likely does not match the genome build or species of the peaks of {what}: "
            f"{summary}, below {MIN_ENRICHMENT:g}. Peaks and genes of one genome give several times the background "
            "(5 or more on the data sets measured); another build or species gives about 1. Use an annotation of "
            "the peaks' build (e.g. hg38, not hg19) and species, or lift the peaks over: gene-level results computed "
            "with this annotation are not meaningful.",
            GenomeMismatchWarning,
            stacklevel=user_stacklevel(),
        )
    elif result.decided:
        logger.info("Genome check of %s: %s.", what, summary)
    return result
