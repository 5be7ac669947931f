"""Genome-build check: peaks at annotated TSSs against a shifted-TSS background, on real and simulated data."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

import sctransfer as st
from sctransfer._genome_check import (
    MIN_ENRICHMENT,
    GenomeMismatchWarning,
    check_genome_match,
    tss_enrichment,
)
from sctransfer._intervals import IntervalError, peak_coordinates
from sctransfer.nn import FeatureLayout
from sctransfer.pp import read_gene_annotation


@pytest.fixture(scope="module")
def genes():
    return {genome: read_gene_annotation(genome) for genome in ("mm10", "hg38", "hg19")}


@pytest.fixture(scope="module")
def mop():
    return st.datasets.mop_snareseq()


@pytest.fixture(scope="module")
def peaks(mop):
    simulated = st.datasets.simulate_multiome(n_rna=50, n_atac=50, random_state=0)
    return {
        "mop": peak_coordinates(mop["atac"]),
        "bmmc": peak_coordinates(st.datasets.bmmc_multiome_starter()["atac"]),
        "simulated": peak_coordinates(simulated["atac"]),
        "simulated_genes": read_gene_annotation(simulated["rna"].var),
    }


# (peaks, annotation) -> (peaks on annotated chromosomes, share at TSSs, background share, enrichment), measured
# (MOp SNARE-seq: 25,734 mm10 peaks; BMMC multiome starter: 600 hg38 peaks, one on an unplaced contig; simulated:
# 20,000 peaks on a mouse-sized genome)
MEASURED = {
    ("mop", "mm10"): (25_734, 0.0815, 0.0148, 5.51),
    ("mop", "hg38"): (25_734, 0.0366, 0.0387, 0.95),
    ("mop", "hg19"): (25_734, 0.0155, 0.0160, 0.97),
    ("bmmc", "hg38"): (599, 0.5717, 0.1022, 5.60),
    ("bmmc", "hg19"): (599, 0.0583, 0.0475, 1.23),
    ("bmmc", "mm10"): (566, 0.0217, 0.0257, 0.84),  # no peak of chr20-22 has a mouse chromosome
    ("simulated", "simulated_genes"): (20_000, 0.1245, 0.0047, 26.55),
    ("simulated", "mm10"): (20_000, 0.0235, 0.0215, 1.09),
}
MATCHED = {("mop", "mm10"), ("bmmc", "hg38"), ("simulated", "simulated_genes")}


@pytest.mark.parametrize("case", list(MEASURED))
def test_statistic_and_decision(case, peaks, genes):
    peak_set, genome = case
    table = peaks[genome] if genome == "simulated_genes" else genes[genome]
    result = tss_enrichment(peaks[peak_set], table)
    on_annotated, at_tss, background, enrichment = MEASURED[case]
    print(f"\n{peak_set} peaks vs {genome} genes: {result}")
    assert result.n_peaks == len(peaks[peak_set]) and result.n_peaks_on_annotated_chromosomes == on_annotated
    assert result.at_tss == pytest.approx(at_tss, abs=1e-4)
    assert result.background == pytest.approx(background, abs=1e-4)
    assert result.enrichment == pytest.approx(enrichment, abs=0.01)
    assert result.decided
    assert result.likely_mismatch == (case not in MATCHED)
    # the threshold sits between the two groups with a margin on both sides
    assert (enrichment > 2.5 * MIN_ENRICHMENT) if case in MATCHED else (enrichment < MIN_ENRICHMENT / 1.5)


def test_gene_activity_on_the_tutorial_data_does_not_warn(mop):
    with warnings.catch_warnings():
        warnings.simplefilter("error", GenomeMismatchWarning)
        mop_activity = st.pp.gene_activity(mop["atac"][:300].copy(), "mm10", genes=mop["rna"].var_names)
        bmmc = st.datasets.bmmc_multiome_starter()
        bmmc_activity = st.pp.gene_activity(bmmc["atac"], "hg38", genes=bmmc["rna"].var_names, layer="counts")
    check = mop_activity.uns["gene_activity"]["genome_check"]
    assert check["likely_mismatch"] is False and check["decided"] is True
    assert check["enrichment"] == pytest.approx(5.51, abs=0.01)
    assert bmmc_activity.uns["gene_activity"]["genome_check"]["enrichment"] == pytest.approx(5.60, abs=0.01)


def test_gene_activity_with_another_species_warns_with_the_statistic(mop):
    with pytest.warns(
        GenomeMismatchWarning,
        match=r"annotation likely does not match the genome build or species of the peaks of modality 'atac': "
        r"3\.7% of the 25,734 peaks lie within 1 kb of an annotated TSS against 3\.9% with the TSSs moved by "
        r"20-100 kb \(enrichment 0\.95\), below 2",
    ):
        activity = st.pp.gene_activity(mop["atac"][:300].copy(), "hg38")
    assert activity.uns["gene_activity"]["genome_check"]["likely_mismatch"] is True


def test_gene_activity_with_another_build_warns():
    bmmc = st.datasets.bmmc_multiome_starter()
    with pytest.warns(st.pp.GenomeMismatchWarning, match=r"enrichment 1\.23\).*e\.g\. hg38, not hg19"):
        st.pp.gene_activity(bmmc["atac"], "hg19", layer="counts")


def test_scclip_gene_layout_checks_the_annotation_against_the_peaks(mop, peaks):
    genes = mop["rna"].var_names
    with warnings.catch_warnings():
        warnings.simplefilter("error", GenomeMismatchWarning)
        matched = FeatureLayout.from_genes(genes, "mm10", peaks=peaks["mop"])
    assert matched == FeatureLayout.from_genes(genes, "mm10")  # the check does not change the layout
    with pytest.warns(GenomeMismatchWarning, match="the peaks of the modality matched with 'rna'"):
        FeatureLayout.from_genes(genes, "hg38", peaks=peaks["mop"])


def test_scclip_with_an_annotation_of_another_species_warns(mop):
    cells = mop[:300].copy()
    st.model.SCCLIP.setup_mudata(cells)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GenomeMismatchWarning)
        st.model.SCCLIP(cells, annotation="mm10", preset="tiny")
    with pytest.warns(GenomeMismatchWarning, match="the peaks of the modality matched with 'rna'"):
        st.model.SCCLIP(cells, annotation="hg38", preset="tiny")


def test_no_shared_chromosome_is_an_error(peaks):
    refseq = peaks["mop"].assign(chrom="NC_000067.6")
    with pytest.raises(
        IntervalError,
        match=r"No peak of modality 'x' is on a chromosome of the gene annotation.*"
        r"peaks on 'NC_000067\.6'; genes on 'chr1'",
    ):
        check_genome_match(refseq, read_gene_annotation("mm10"), what="modality 'x'")


def test_ensembl_chromosome_names_are_matched(peaks, genes):
    ensembl = genes["mm10"].assign(chrom=genes["mm10"]["chrom"].str.replace("chr", "", regex=False))
    assert tss_enrichment(peaks["mop"], ensembl) == tss_enrichment(peaks["mop"], genes["mm10"])


def test_genes_without_strand_use_both_ends(peaks, genes):
    # e.g. the coordinates SCCLIP reads from an RNA modality's .var
    result = tss_enrichment(peaks["mop"], genes["mm10"].drop(columns="strand"))
    assert result.decided and not result.likely_mismatch and result.enrichment > 3


def test_too_few_peaks_are_not_judged():
    genes = pd.DataFrame({"chrom": ["chr1"], "start": [10_000], "end": [20_000], "strand": ["+"], "gene_name": ["G"]})
    peaks = pd.DataFrame({"chrom": ["chr1"] * 3, "start": [50_000, 90_000, 130_000], "end": [50_500, 90_500, 130_500]})
    result = tss_enrichment(peaks, genes)
    assert not result.decided and not result.likely_mismatch
    atac = AnnData(
        sp.csr_matrix(np.ones((2, 3), dtype=np.float32)),
        var=pd.DataFrame(index=["chr1:9800-10300", "chr1:50000-50500", "chr1:90000-90500"]),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", GenomeMismatchWarning)
        activity = st.pp.gene_activity(atac, genes)
    assert activity.uns["gene_activity"]["genome_check"]["decided"] is False
