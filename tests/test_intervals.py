"""Genomic intervals: peak names, gene annotations, chromosome names and order, overlaps."""

import gzip
import logging
import re

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

import sctransfer as st
from sctransfer._intervals import (
    GENE_COLUMNS,
    IntervalError,
    annotation_from_dataframe,
    chromosome_rank,
    genomic_order,
    harmonise_chromosomes,
    overlap_pairs,
    parse_interval_names,
    peak_coordinates,
    read_annotation,
)
from sctransfer.pp._annotation import gene_coordinates, read_gene_annotation


def _peaks(var_names, var=None) -> AnnData:
    var = pd.DataFrame(index=pd.Index(var_names)) if var is None else var.set_axis(pd.Index(var_names))
    return AnnData(X=np.ones((2, len(var_names)), dtype=np.float32), var=var)


def _genes(table: pd.DataFrame) -> list[tuple]:
    """Rows of a gene table as plain tuples (chrom, start, end, strand, gene_name), in table order."""
    assert list(table.columns) == GENE_COLUMNS
    assert table["start"].dtype == np.int64 and table["end"].dtype == np.int64
    return [(str(c), int(s), int(e), str(d), str(g)) for c, s, e, d, g in table.itertuples(index=False)]


# --------------------------------------------------------------------------------------------
# peak names and var columns
# --------------------------------------------------------------------------------------------
EXPECTED_PEAKS = pd.DataFrame(
    {"chrom": ["chr1", "chr1", "chr10", "chrX"], "start": [100, 5000, 0, 123456789], "end": [200, 5600, 1, 123457000]}
)


@pytest.mark.parametrize(
    "names",
    [
        ["chr1:100-200", "chr1:5000-5600", "chr10:0-1", "chrX:123456789-123457000"],
        ["chr1-100-200", "chr1-5000-5600", "chr10-0-1", "chrX-123456789-123457000"],
        ["chr1_100_200", "chr1_5000_5600", "chr10_0_1", "chrX_123456789_123457000"],
    ],
    ids=["colon-dash", "dashes", "underscores"],
)
def test_the_three_peak_name_forms_give_the_same_coordinates(names):
    coords = peak_coordinates(_peaks(names))
    assert list(coords.index) == names
    assert list(coords.columns) == ["chrom", "start", "end"]
    assert coords["start"].dtype == np.int64 and coords["end"].dtype == np.int64
    pd.testing.assert_frame_equal(coords.reset_index(drop=True), EXPECTED_PEAKS)


@pytest.mark.parametrize(
    "columns",
    [
        ("chrom", "start", "end"),
        ("seqnames", "chromStart", "chromEnd"),
        ("Chromosome", "start_position", "end_position"),
    ],
)
def test_var_columns_and_their_aliases_take_precedence_over_names(columns):
    var = pd.DataFrame(
        dict(zip(columns, [EXPECTED_PEAKS["chrom"], EXPECTED_PEAKS["start"], EXPECTED_PEAKS["end"]], strict=True))
    )
    # names that are not coordinates at all: only the columns can give these coordinates
    names = [f"peak{i}" for i in range(len(var))]
    coords = st.pp.peak_coordinates(_peaks(names, var))
    assert list(coords.index) == names
    pd.testing.assert_frame_equal(coords.reset_index(drop=True), EXPECTED_PEAKS)
    # the columns win even when the names parse to something else
    other = [f"chr5:{i}-{i + 1}" for i in range(len(var))]
    pd.testing.assert_frame_equal(peak_coordinates(_peaks(other, var)).reset_index(drop=True), EXPECTED_PEAKS)


def test_chromosome_names_with_underscores_and_dashes():
    names = [
        "chrUn_GL000220v1_100_200",
        "chr1_KI270706v1_random:5-9",
        "scaffold_1_100_200",
        "1-5-6",
        "GL456210.1-10-20",
    ]
    coords = parse_interval_names(names)
    assert coords["chrom"].tolist() == ["chrUn_GL000220v1", "chr1_KI270706v1_random", "scaffold_1", "1", "GL456210.1"]
    assert coords["start"].tolist() == [100, 5, 100, 5, 10]
    assert coords["end"].tolist() == [200, 9, 200, 6, 20]


def test_unparseable_names_give_nan_rows():
    coords = parse_interval_names(["chr1:100-200", "Gad1", "chr1:abc-200"])
    assert coords.loc["chr1:100-200", "start"] == 100
    assert coords.loc[["Gad1", "chr1:abc-200"]].isna().all(axis=None)


def test_unparseable_peak_names_raise_with_examples_and_the_fix():
    names = ["chr1:100-200", "Gad1", "Slc17a7", "chr2-300-400", "peak_x"]
    with pytest.raises(IntervalError) as info:
        st.pp.peak_coordinates(_peaks(names), modality="my_atac")
    message = str(info.value)
    assert "3 of 5 features" in message
    assert "'my_atac'" in message
    assert "'Gad1'" in message and "'Slc17a7'" in message and "'peak_x'" in message
    assert "'chr1:100-200'" not in message.split("e.g.")[1].split(")")[0]  # good names are not examples
    assert "chr1:100-200" in message and "chr1_100_200" in message  # the accepted forms
    assert "var columns 'chrom', 'start' and 'end'" in message  # and the other fix
    assert isinstance(info.value, ValueError)


def test_bad_var_columns_and_reversed_intervals_raise():
    var = pd.DataFrame({"chrom": ["chr1", "chr1"], "start": [10, "x"], "end": [20, 30]})
    with pytest.raises(IntervalError, match="1 of 2 features .* var columns 'chrom', 'start', 'end'"):
        peak_coordinates(_peaks(["a", "b"], var))
    with pytest.raises(IntervalError, match="end before they start"):
        peak_coordinates(_peaks(["chr1:300-200"]))


def test_missing_chromosome_in_var_columns_raises():
    """A peak whose ``chrom`` is missing (NaN/None) has no readable coordinate, like a missing start."""
    var = pd.DataFrame({"chrom": ["chr1", np.nan], "start": [10, 20], "end": [20, 30]})
    with pytest.raises(IntervalError, match="1 of 2 features"):
        coords = peak_coordinates(_peaks(["a", "b"], var))
        pytest.fail(f"no error; the missing chromosome became {coords.loc['b', 'chrom']!r}")


# --------------------------------------------------------------------------------------------
# gene annotations
# --------------------------------------------------------------------------------------------
def _gtf(*records) -> str:
    """GTF/GFF text from (chrom, feature, start, end, strand, attributes) records."""
    return "".join(f"{c}\tensembl\t{f}\t{s}\t{e}\t.\t{d}\t.\t{a}\n" for c, f, s, e, d, a in records)


XKR4 = 'gene_id "ENSMUSG00000051951"; gene_version "5"; gene_name "Xkr4"; gene_biotype "protein_coding";'
XKR4_T = 'gene_id "ENSMUSG00000051951"; transcript_id "ENSMUST00000162897"; gene_name "Xkr4";'
GTF = "#!genome-build GRCm38.p6\n#!genome-version GRCm38\n" + _gtf(
    ("chr1", "gene", 3205901, 3671498, "-", XKR4),
    ("chr1", "transcript", 3205901, 3672000, "-", XKR4_T + ' transcript_name "Xkr4-203";'),
    ("chr1", "exon", 3205901, 3207317, "-", XKR4_T + ' exon_number "1";'),
    ("chr2", "gene", 101, 200, "+", 'gene_id "ENSMUSG00000000001"; gene_name "Gnai3";'),
    ("chr2", "transcript", 1, 200, "+", 'gene_id "ENSMUSG00000000001"; transcript_id "ENSMUST1"; gene_name "Gnai3";'),
    ("chrX", "gene", 1001, 1001, "+", 'gene_id "ENSMUSG00000000002";'),
)

GTF_EXPECTED = [
    ("chr1", 3205900, 3671498, "-", "Xkr4"),
    ("chr2", 100, 200, "+", "Gnai3"),
    ("chrX", 1000, 1001, "+", "ENSMUSG00000000002"),  # no gene_name: the gene_id
]


def test_gtf_genes_are_read_0_based_half_open(tmp_path):
    path = tmp_path / "genes.gtf"
    path.write_text(GTF)
    table = read_gene_annotation(path)
    # gene records only: the transcripts (which reach further) do not widen the genes
    assert _genes(table) == GTF_EXPECTED
    assert _genes(st.pp.read_gene_annotation(str(path))) == GTF_EXPECTED


def test_gzipped_gtf_is_read_by_its_content_not_its_suffix(tmp_path):
    for name in ("genes.gtf.gz", "genes.gtf"):
        path = tmp_path / name
        path.write_bytes(gzip.compress(GTF.encode()))
        assert _genes(read_gene_annotation(path)) == GTF_EXPECTED


def test_gtf_repeated_gene_name_keeps_first_record(tmp_path):
    """read_gene_annotation promises one row per gene name (the first record).

    GENCODE GTFs repeat names (PAR genes on chrX and chrY, many small RNAs); a repeated name
    must not become two rows, or gene activity gets duplicated var_names.
    """
    path = tmp_path / "par.gtf"
    path.write_text(
        'chrX\tHAVANA\tgene\t276323\t303356\t.\t+\t.\tgene_id "ENSG00000182378.14"; gene_name "PLCXD1";\n'
        'chrY\tHAVANA\tgene\t276323\t303356\t.\t+\t.\tgene_id "ENSG00000182378.14_PAR_Y"; gene_name "PLCXD1";\n'
        'chr1\tHAVANA\tgene\t11\t20\t.\t-\t.\tgene_id "ENSG1"; gene_name "OTHER";\n'
    )
    table = read_gene_annotation(path)
    assert table["gene_name"].is_unique, f"repeated gene names in the GTF table:\n{table}"
    assert _genes(table) == [("chrX", 276322, 303356, "+", "PLCXD1"), ("chr1", 10, 20, "-", "OTHER")]


def test_gff3_gene_names_from_name_or_id(tmp_path):
    path = tmp_path / "genes.gff3"
    path.write_text(
        "##gff-version 3\n"
        "##sequence-region 1 1 195471971\n"
        "1\tensembl\tgene\t3205901\t3671498\t.\t-\t.\tID=gene:ENSMUSG00000051951;Name=Xkr4;biotype=protein_coding\n"
        "1\tensembl\tmRNA\t3205901\t3671498\t.\t-\t.\tID=transcript:ENSMUST00000070533;Parent=gene:ENSMUSG00000051951;"
        "Name=Xkr4-201\n"
        "1\tensembl\texon\t3205901\t3207317\t.\t-\t.\tParent=transcript:ENSMUST00000070533;Name=ENSMUSE00000485541\n"
        "MT\tensembl\tgene\t1\t68\t.\t+\t.\tID=gene:ENSMUSG00000064336;biotype=Mt_tRNA\n"
    )
    table = read_gene_annotation(path)
    assert _genes(table) == [("1", 3205900, 3671498, "-", "Xkr4"), ("MT", 0, 68, "+", "ENSMUSG00000064336")]


def test_gtf_with_only_transcripts_spans_each_gene(tmp_path):
    path = tmp_path / "transcripts.gtf"
    path.write_text(
        'chr1\tsrc\ttranscript\t101\t200\t.\t-\t.\tgene_id "G1"; transcript_id "T1"; gene_name "Foo";\n'
        'chr1\tsrc\texon\t101\t150\t.\t-\t.\tgene_id "G1"; transcript_id "T1"; gene_name "Foo";\n'
        'chr1\tsrc\ttranscript\t151\t300\t.\t-\t.\tgene_id "G1"; transcript_id "T2"; gene_name "Foo";\n'
        'chr3\tsrc\ttranscript\t1001\t2000\t.\t+\t.\tgene_id "G2"; transcript_id "T3"; gene_name "Bar";\n'
        'chr3\tsrc\ttranscript\t501\t1500\t.\t+\t.\tgene_id "G2"; transcript_id "T4"; gene_name "Bar";\n'
    )
    table = read_gene_annotation(path)
    assert sorted(_genes(table)) == [("chr1", 100, 300, "-", "Foo"), ("chr3", 500, 2000, "+", "Bar")]


def test_gff3_with_only_mrna_records_spans_each_gene(tmp_path):
    """NCBI-style GFF3 transcripts: ``Name=`` is the transcript accession, ``gene=`` the gene.

    Spanning the transcripts of a gene must group them by the gene, not by the transcript's own name.
    """
    path = tmp_path / "mrna.gff3"
    path.write_text(
        "##gff-version 3\n"
        "chr1\tRefSeq\tmRNA\t101\t200\t.\t-\t.\tID=rna-NM_001;Parent=gene-Foo;Name=NM_001;gbkey=mRNA;gene=Foo\n"
        "chr1\tRefSeq\tmRNA\t151\t300\t.\t-\t.\tID=rna-NM_002;Parent=gene-Foo;Name=NM_002;gbkey=mRNA;gene=Foo\n"
    )
    table = read_gene_annotation(path)
    assert _genes(table) == [("chr1", 100, 300, "-", "Foo")], f"transcripts were not spanned into genes:\n{table}"


def test_gtf_without_named_records_raises(tmp_path):
    path = tmp_path / "exons.gtf"
    path.write_text('chr1\tsrc\texon\t1\t10\t.\t+\t.\tgene_id "G1";\n')
    with pytest.raises(IntervalError, match="No gene or transcript records with a name"):
        read_gene_annotation(path)


def test_bed_is_0_based(tmp_path):
    path = tmp_path / "genes.bed"
    path.write_text("chr1\t100\t200\tFoo\t0\t-\nchr2\t0\t50\tBar\t0\t+\n")
    assert _genes(read_gene_annotation(path)) == [("chr1", 100, 200, "-", "Foo"), ("chr2", 0, 50, "+", "Bar")]
    four = tmp_path / "four.bed"
    four.write_text("chr1 100 200 Foo\n")  # whitespace separated, no strand
    assert _genes(read_gene_annotation(four)) == [("chr1", 100, 200, "+", "Foo")]
    three = tmp_path / "three.bed"
    three.write_text("chr1\t100\t200\n")
    with pytest.raises(IntervalError, match="at least 4 columns"):
        read_gene_annotation(three)


@pytest.mark.parametrize("name_column", ["gene_name", "symbol", "gene"])
def test_tsv_tables_are_1_based_with_any_gene_name_column(tmp_path, name_column):
    table = pd.DataFrame(
        {
            "chrom": ["chr1", "chr2"],
            "start": [101, 1],
            "end": [200, 50],
            "strand": ["-", "+"],
            "gene_id": ["ENSMUSG1", "ENSMUSG2"],  # present, but a name column comes first
            name_column: ["Foo", "Bar"],
        }
    )
    path = tmp_path / "genes.tsv"
    table.to_csv(path, sep="\t", index=False)
    expected = [("chr1", 100, 200, "-", "Foo"), ("chr2", 0, 50, "+", "Bar")]
    assert _genes(read_gene_annotation(path)) == expected
    # gzipped too, and one_based=False keeps the starts
    table.to_csv(tmp_path / "genes.tsv.gz", sep="\t", index=False)
    assert _genes(read_gene_annotation(tmp_path / "genes.tsv.gz")) == expected
    assert [g[1] for g in _genes(read_gene_annotation(path, one_based=False))] == [101, 1]


def test_dataframe_annotation_with_aliases():
    frame = pd.DataFrame(
        {
            "seqnames": ["chr1", "chr1", "chr2"],
            "start": [101, 1001, 51],
            "end": [200, 2000, 60],
            "strand": ["+", "-", "."],
            "symbol": ["Foo", "Bar", "Foo"],  # repeated name: the first record is kept
        }
    )
    expected = [("chr1", 100, 200, "+", "Foo"), ("chr1", 1000, 2000, "-", "Bar")]
    assert _genes(read_gene_annotation(frame)) == expected
    assert _genes(annotation_from_dataframe(frame, one_based=False))[0] == ("chr1", 101, 200, "+", "Foo")
    assert list(frame["start"]) == [101, 1001, 51]  # the input is not changed


def test_annotation_without_strand_warns_and_without_name_raises(caplog):
    frame = pd.DataFrame({"chrom": ["chr1"], "start": [11], "end": [20], "gene_name": ["Foo"]})
    with caplog.at_level(logging.WARNING, logger="sctransfer"):
        table = read_gene_annotation(frame)
    assert _genes(table) == [("chr1", 10, 20, "+", "Foo")]
    assert "no strand column" in caplog.text
    with pytest.raises(IntervalError, match="no gene name column"):
        read_gene_annotation(frame.drop(columns="gene_name"))


def test_genome_name_mm10():
    table = read_gene_annotation("mm10")
    assert len(table) == 24_367 and table["gene_name"].is_unique
    assert set(table["strand"]) == {"+", "-"}
    assert set(table["chrom"]) == {f"chr{i}" for i in [*range(1, 20), "X", "Y"]}
    assert (table["end"] > table["start"]).all() and (table["start"] >= 0).all()
    xkr4 = table.set_index("gene_name").loc["Xkr4"]
    # ArchR's geneAnnoMm10 lists Xkr4 at chr1:3214482-3671498 (1-based), minus strand
    assert (xkr4["chrom"], xkr4["start"], xkr4["end"], xkr4["strand"]) == ("chr1", 3214481, 3671498, "-")
    pd.testing.assert_frame_equal(table, st.datasets.gene_annotation("mm10"))


def test_unknown_genome_and_missing_file_raise(tmp_path):
    known = re.escape(", ".join(st.datasets.KNOWN_GENOMES))
    with pytest.raises(IntervalError, match=rf"'mm9' is neither an existing file nor a known genome name \({known}\)"):
        read_gene_annotation("mm9")
    with pytest.raises(IntervalError, match="does not exist"):
        read_gene_annotation(tmp_path / "missing.gtf")
    # the interval module reads files and frames only: genome names are resolved by pp.read_gene_annotation
    with pytest.raises(IntervalError, match="Annotation file 'mm10' does not exist"):
        read_annotation("mm10")
    with pytest.raises(ValueError, match="Unknown genome 'mm9'"):
        st.datasets.gene_annotation("mm9")


# --------------------------------------------------------------------------------------------
# chromosome names and order
# --------------------------------------------------------------------------------------------
def test_harmonise_chromosomes_both_ways():
    query = pd.Series(["1", "MT", "X", "10", "GL456210.1", "1"], index=list("abcdef"))
    out = harmonise_chromosomes(query, ["chr1", "chrX", "chrM", "chr10", "chr2"])
    assert out.tolist() == ["chr1", "chrM", "chrX", "chr10", "GL456210.1", "chr1"]  # unknown names are kept
    assert list(out.index) == list("abcdef")
    back = harmonise_chromosomes(pd.Series(["chr1", "chrM", "chrX", "chr1"]), ["1", "MT", "X"])
    assert back.tolist() == ["1", "MT", "X", "1"]
    same = harmonise_chromosomes(pd.Series(["chr2", "chr1"]), ["chr1", "chr2", "chr3"])
    assert same.tolist() == ["chr2", "chr1"]


def test_chromosome_rank_is_natural():
    names = ["chrM", "chrUn_B", "chr10", "chrY", "chr2", "chrX", "chr1", "chrUn_A", "chr2"]
    rank = chromosome_rank(names)
    assert rank.dtype == np.int64
    ordered = [names[i] for i in np.argsort(rank, kind="stable")]
    assert ordered == ["chr1", "chr2", "chr2", "chr10", "chrX", "chrY", "chrM", "chrUn_A", "chrUn_B"]
    ensembl = ["MT", "X", "10", "2", "Y", "1"]
    assert [ensembl[i] for i in np.argsort(chromosome_rank(ensembl))] == ["1", "2", "10", "X", "Y", "MT"]


def test_genomic_order_sorts_by_chromosome_start_end():
    coords = pd.DataFrame(
        {
            "chrom": ["chr10", "chr2", "chrX", "chrM", "chr2", "chr2", "scaffold_1", "chrY"],
            "start": [5, 900, 1, 1, 100, 100, 0, 7],
            "end": [10, 950, 2, 2, 300, 200, 10, 8],
        }
    )
    order = genomic_order(coords)
    got = list(coords.iloc[order].itertuples(index=False, name=None))
    assert got == [
        ("chr2", 100, 200),
        ("chr2", 100, 300),
        ("chr2", 900, 950),
        ("chr10", 5, 10),
        ("chrX", 1, 2),
        ("chrY", 7, 8),
        ("chrM", 1, 2),
        ("scaffold_1", 0, 10),
    ]


# --------------------------------------------------------------------------------------------
# overlaps
# --------------------------------------------------------------------------------------------
def _brute_force_pairs(query, subject):
    pairs = set()
    for i, (qc, qs, qe) in enumerate(query.itertuples(index=False, name=None)):
        for j, (sc, ss, se) in enumerate(subject.itertuples(index=False, name=None)):
            if qc == sc and max(qs, ss) < min(qe, se):  # half-open: at least one shared base
                pairs.add((i, j))
    return pairs


def _random_intervals(rng, n, chroms, max_len):
    start = rng.integers(0, 5_000, n)
    return pd.DataFrame({"chrom": rng.choice(chroms, n), "start": start, "end": start + rng.integers(1, max_len, n)})


def test_overlap_pairs_equals_brute_force():
    rng = np.random.default_rng(7)
    # genes: long intervals, one chromosome only they have; peaks: short, one only they have
    query = _random_intervals(rng, 250, ["chr1", "chr2", "chr3", "chr9"], 1_500)
    subject = _random_intervals(rng, 300, ["chr1", "chr2", "chr3", "chrM"], 200)
    # nested intervals, zero-gap neighbours and exact duplicates
    extra_q = pd.DataFrame(
        {"chrom": ["chr1", "chr1", "chr2", "chr2"], "start": [0, 10, 7000, 7000], "end": [10, 20, 9000, 7001]}
    )
    extra_s = pd.DataFrame(
        {
            "chrom": ["chr1", "chr1", "chr1", "chr2", "chr2", "chr2"],
            "start": [10, 9, 20, 7500, 6000, 9000],
            "end": [20, 10, 21, 7600, 7001, 9001],
        }
    )
    query = pd.concat([query, extra_q], ignore_index=True)
    subject = pd.concat([subject, extra_s], ignore_index=True)
    q_idx, s_idx = overlap_pairs(query, subject)
    assert q_idx.dtype == np.int64 and s_idx.dtype == np.int64
    got = list(zip(q_idx.tolist(), s_idx.tolist(), strict=True))
    assert len(got) == len(set(got))  # no pair twice
    expected = _brute_force_pairs(query, subject)
    assert set(got) == expected
    assert len(expected) > 300  # the random part really overlaps
    # the hand-placed cases, by position
    q0, s0 = len(query) - 4, len(subject) - 6
    hits = set(got)
    assert (q0, s0) not in hits  # [0,10) and [10,20) touch but do not overlap
    assert (q0, s0 + 1) in hits  # [0,10) and [9,10) share base 9
    assert (q0 + 1, s0) in hits and (q0 + 1, s0 + 2) not in hits  # [10,20) vs [10,20) and [20,21)
    assert (q0 + 2, s0 + 3) in hits and (q0 + 2, s0 + 4) in hits and (q0 + 2, s0 + 5) not in hits  # nested, left edge
    assert (q0 + 3, s0 + 4) in hits and (q0 + 3, s0 + 3) not in hits


def test_overlap_pairs_empty_results():
    a = pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": [10]})
    b = pd.DataFrame({"chrom": ["chr2", "chr1"], "start": [0, 10], "end": [10, 20]})
    for q_idx, s_idx in (overlap_pairs(a, b), overlap_pairs(a, b.iloc[:0])):
        assert q_idx.dtype == np.int64 and len(q_idx) == 0 and len(s_idx) == 0


# --------------------------------------------------------------------------------------------
# coordinates of named genes
# --------------------------------------------------------------------------------------------
def test_gene_coordinates_by_name_then_ignoring_case(caplog):
    annotation = pd.DataFrame(
        {
            "chrom": ["chr2", "chr1", "chr1"],
            "start": [101, 11, 51],
            "end": [200, 40, 90],
            "strand": ["+", "-", "+"],
            "gene_name": ["Sox2", "Foo", "FOO"],
        }
    )
    with caplog.at_level(logging.INFO, logger="sctransfer"):
        coords = gene_coordinates(["SOX2", "Foo", "foo", "Missing", "Foo"], annotation)
    assert coords.index.tolist() == ["SOX2", "Foo", "foo", "Missing", "Foo"]
    assert coords.columns.tolist() == ["chrom", "start", "end"]
    assert coords["chrom"].tolist() == ["chr2", "chr1", "chr1", None, "chr1"]
    # exact match first ("Foo"), then the first case-insensitive match ("foo" -> "Foo"); 1-based table
    np.testing.assert_array_equal(coords["start"].to_numpy(), [100.0, 10.0, 10.0, np.nan, 10.0])
    np.testing.assert_array_equal(coords["end"].to_numpy(), [200.0, 40.0, 40.0, np.nan, 40.0])
    assert "2 genes were matched to the annotation ignoring case" in caplog.text
    with pytest.raises(IntervalError, match="holds no gene"):
        gene_coordinates(["Foo"], annotation.iloc[:0])
