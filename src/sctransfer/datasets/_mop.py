"""Mouse primary motor cortex SNARE-seq (paired RNA + ATAC), as packaged by scMoMaT."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from sctransfer._constants import ATAC, CELL_TYPE_KEY, RNA
from sctransfer._intervals import peak_coordinates

from ._registry import fetch_file

#: The twelve SNARE-seq libraries of the MOp data set, ``"09A"`` to ``"09L"``.
MOP_LIBRARIES = tuple(f"09{letter}" for letter in "ABCDEFGHIJKL")

_FOLDER = "scmomat_mop"


class GenePeakLinks(NamedTuple):
    """Binary gene-peak links of the MOp data set, from :func:`~sctransfer.datasets.mop_gene_peak_links`."""

    #: Genes x peaks :class:`scipy.sparse.csr_matrix`, float32, 1.0 where the peak is linked to the gene.
    matrix: sp.csr_matrix
    #: Gene names, the rows of ``matrix`` (the RNA var_names of :func:`mop_snareseq`).
    genes: pd.Index
    #: Peak names, the columns of ``matrix`` (the ATAC var_names of :func:`mop_snareseq`).
    peaks: pd.Index


def _read_names(name: str) -> pd.Index:
    with open(fetch_file(f"{_FOLDER}/{name}")) as fh:
        return pd.Index([line.strip() for line in fh if line.strip()])


def _read_counts(name: str) -> sp.csr_matrix:
    """Cells x features float32 CSR from a features x cells ``.npz``."""
    matrix = sp.load_npz(fetch_file(f"{_FOLDER}/{name}")).T.tocsr()
    return sp.csr_matrix(matrix, dtype=np.float32)


def _read_obs() -> pd.DataFrame:
    meta = pd.read_csv(fetch_file(f"{_FOLDER}/meta_c1.csv"), index_col=0)
    obs = pd.DataFrame(
        {
            "library": pd.Categorical(meta["Batch"].astype(str)),
            "barcode": meta["Barcode"].astype(str).to_numpy(),
            CELL_TYPE_KEY: pd.Categorical(meta["cluster (remapped)"].astype(str)),
            "cell_type_fine": pd.Categorical(meta["Ident"].astype(str)),
        },
        index=pd.Index(meta.index.astype(str)),
    )
    obs.index.name = None
    return obs


def _modalities() -> tuple[AnnData, AnnData]:
    obs = _read_obs()
    rna_x = _read_counts("GxC1.npz")
    atac_x = _read_counts("RxC1.npz")
    rna = AnnData(X=rna_x, obs=obs.copy(), var=pd.DataFrame(index=_read_names("genes.txt")))
    rna.layers["counts"] = rna_x.copy()
    atac = AnnData(X=atac_x, obs=obs.copy(), var=pd.DataFrame(index=_read_names("regions.txt")))
    atac.layers["counts"] = atac_x.copy()
    atac.var = peak_coordinates(atac)
    return rna, atac


def mop_snareseq(libraries: Sequence[str] | None = None) -> MuData:
    """Mouse primary motor cortex SNARE-seq: 10,309 cells with RNA and ATAC measured together.

    BICCN MOp SNARE-seq data as packaged by scMoMaT (``data/real/MOp_5batches``), 12 libraries
    (``09A`` .. ``09L``). The data are very sparse: about 100 detected genes and 100 detected peaks
    per cell.

    Parameters
    ----------
    libraries
        Keep the cells of these libraries only (e.g. ``("09A", "09B", "09C")``); ``None`` keeps all.
        Categories of the ``.obs`` columns are then limited to those with cells.

    Returns
    -------
    A paired :class:`~mudata.MuData` with two modalities that share their obs_names (the cell
    names of the source, e.g. ``09A_CAGCCCCGCCTT``):

    ``"rna"``
        Cells (10,309 for all libraries) x 1,677 genes (mm10 symbols). ``.X``: raw counts, float32 CSR; also in
        ``.layers["counts"]`` (a separate copy).
    ``"atac"``
        Cells x 25,734 peaks named as in the source (``chr1_4914570_4914685``). ``.X``: raw
        counts, float32 CSR (also in ``.layers["counts"]``). ``.var``: ``chrom``, ``start``,
        ``end`` (0-based, half-open, from :func:`sctransfer.pp.peak_coordinates`).

    Each modality's ``.obs`` has ``library`` (categorical, ``09A`` .. ``09L``), ``barcode`` (str),
    ``cell_type`` (categorical coarse label, 15 types including ``Mis``, a bucket of unassigned
    cells) and ``cell_type_fine`` (categorical, the source's ``Ident`` label, 23 types).
    """
    rna, atac = _modalities()
    if libraries is not None:
        libraries = _check_libraries(libraries, "libraries")
        rna, atac = _subset(rna, libraries, (), ""), _subset(atac, libraries, (), "")
    with mudata.set_options(pull_on_update=False):
        return MuData({RNA: rna, ATAC: atac})


def mop_gene_peak_links() -> GenePeakLinks:
    """Load the binary gene-peak links that scMoMaT made for the MOp data set.

    Every peak is linked to exactly one gene (about 15 peaks per gene). They are an independent
    reference to test a gene activity against, not a definition sctransfer follows.

    Returns
    -------
    A :class:`~sctransfer.datasets.GenePeakLinks` with ``matrix`` (1,677 genes x 25,734 peaks, float32 CSR, 1.0 where
    linked), ``genes`` and ``peaks`` (the name indexes of its rows and columns, equal to the RNA and
    ATAC var_names of :func:`mop_snareseq`).
    """
    matrix = sp.csr_matrix(sp.load_npz(fetch_file(f"{_FOLDER}/GxR.npz")), dtype=np.float32)
    return GenePeakLinks(matrix=matrix, genes=_read_names("genes.txt"), peaks=_read_names("regions.txt"))


def _check_libraries(libraries: Sequence[str], argument: str) -> list[str]:
    if isinstance(libraries, str):
        libraries = [libraries]
    libraries = list(dict.fromkeys(libraries))
    if not libraries:
        raise ValueError(f"{argument} is empty; pass at least one of {', '.join(MOP_LIBRARIES)}.")
    unknown = [lib for lib in libraries if lib not in MOP_LIBRARIES]
    if unknown:
        raise ValueError(f"Unknown libraries in {argument}: {unknown}; valid libraries: {', '.join(MOP_LIBRARIES)}.")
    return libraries


def _subset(adata: AnnData, libraries: list[str], drop_types: Sequence[str], prefix: str) -> AnnData:
    keep = adata.obs["library"].isin(libraries).to_numpy() & ~adata.obs[CELL_TYPE_KEY].isin(drop_types).to_numpy()
    out = adata[keep].copy()
    out.obs_names = prefix + out.obs_names
    for column in ("library", CELL_TYPE_KEY, f"{CELL_TYPE_KEY}_fine"):
        out.obs[column] = out.obs[column].cat.remove_unused_categories()
    return out


def mop_label_transfer(
    rna_libraries: Sequence[str] = ("09A", "09B", "09C", "09D", "09E", "09F"),
    atac_libraries: Sequence[str] = ("09G", "09H", "09I", "09J", "09K", "09L"),
    drop_types: Sequence[str] = ("Mis",),
) -> MuData:
    """Load the MOp label-transfer benchmark: labelled RNA cells and ATAC cells to predict labels for.

    The cells of :func:`mop_snareseq` are split by library into an RNA reference and an ATAC query,
    kept as two *unpaired* modalities (in the default split no cell is in both).

    Parameters
    ----------
    rna_libraries
        Libraries whose RNA forms the labelled reference (at least one of ``09A`` .. ``09L``).
    atac_libraries
        Libraries whose ATAC forms the query (at least one). It may overlap ``rna_libraries``: the
        obs_names are prefixed, so the modalities stay unpaired even then.
    drop_types
        Coarse cell types whose cells are removed from both modalities (``Mis`` is a bucket of
        unassigned cells).

    Returns
    -------
    An unpaired :class:`~mudata.MuData`:

    ``"rna"``
        RNA of the ``rna_libraries`` cells, genes as in :func:`mop_snareseq`; obs_names
        ``rna:<cell>``.
    ``"atac"``
        ATAC peaks of the ``atac_libraries`` cells, with peak coordinates in ``.var``; obs_names
        ``atac:<cell>``.

    ``.X`` of both holds raw counts (float32 CSR, also in ``.layers["counts"]``). Each ``.obs`` has
    ``library``, ``barcode``, ``cell_type`` and ``cell_type_fine``, categories limited to those with
    cells. ``mdata["atac"].obs["cell_type"]`` is the known truth the benchmark compares predictions
    against; a user transferring labels would not have it and a method must not read it.

    Raises
    ------
    ValueError
        When a library set is empty or holds an unknown library, or ``drop_types`` names an unknown type.
    """
    rna_libs = _check_libraries(rna_libraries, "rna_libraries")
    atac_libs = _check_libraries(atac_libraries, "atac_libraries")
    rna, atac = _modalities()
    drop_types = [drop_types] if isinstance(drop_types, str) else list(drop_types)
    types = rna.obs[CELL_TYPE_KEY].cat.categories
    unknown = [t for t in drop_types if t not in types]
    if unknown:
        raise ValueError(f"Unknown cell types in drop_types: {unknown}; cell types: {', '.join(types)}.")
    modalities = {
        RNA: _subset(rna, rna_libs, drop_types, f"{RNA}:"),
        ATAC: _subset(atac, atac_libs, drop_types, f"{ATAC}:"),
    }
    with mudata.set_options(pull_on_update=False):
        return MuData(modalities)
