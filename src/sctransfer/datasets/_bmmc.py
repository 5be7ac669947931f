"""Human bone marrow 10x Multiome: the NeurIPS 2021 starter subset of Open Problems."""

from __future__ import annotations

import warnings
from typing import Literal

import anndata
import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from sctransfer._constants import ATAC, CELL_TYPE_KEY, RNA
from sctransfer._intervals import peak_coordinates

from ._registry import fetch_file

_NAME = "openproblems_bmmc_multiome_starter"


def _read(folder: str, part: str) -> AnnData:
    path = fetch_file(f"bmmc_multiome_starter/{folder}/{_NAME}.{part}.h5ad")
    with warnings.catch_warnings():
        # the files were written by anndata 0.7: every element warns that it has no encoding metadata
        warnings.simplefilter("ignore", anndata.OldFormatWarning)
        return anndata.read_h5ad(path)


def _counts_modality(source: AnnData, obs: pd.DataFrame, var: pd.DataFrame) -> AnnData:
    """AnnData with the source's ``layers['counts']`` as float32 CSR in ``.X`` and ``.layers['counts']``."""
    counts = sp.csr_matrix(source.layers["counts"], dtype=np.float32)
    adata = AnnData(X=counts, obs=obs, var=var)
    adata.layers["counts"] = counts.copy()
    return adata


def _categorical_obs(source: AnnData, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {column: pd.Categorical(source.obs[column].astype(str)) for column in columns},
        index=pd.Index(source.obs_names.astype(str)),
    )


def _atac_var(source: AnnData) -> pd.DataFrame:
    return peak_coordinates(AnnData(var=pd.DataFrame(index=source.var_names.astype(str))))


def bmmc_multiome_starter() -> MuData:
    """Human bone marrow 10x Multiome, the 500-cell starter subset of the NeurIPS 2021 challenge.

    Two donor samples (``s1d1``, ``s1d2``); 600 genes and 600 randomly chosen peaks only, so gene
    activity from these peaks is weak: good for API, I/O and metric tests, not for judging accuracy.

    Returns
    -------
    A paired :class:`~mudata.MuData` whose two modalities share their 500 obs_names:

    ``"rna"``
        500 cells x 600 genes. ``.X``: raw counts (the source's ``layers['counts']``), float32 CSR;
        also in ``.layers["counts"]``. ``.var["gene_ids"]``: Ensembl ids.
    ``"atac"``
        500 cells x 600 peaks named ``chrN-start-end``. ``.X``: raw counts (float32 CSR; insertion
        counts, mostly 2), also in ``.layers["counts"]``. ``.var``: ``chrom``, ``start``, ``end``
        (0-based, half-open).

    Each ``.obs`` has ``cell_type`` (categorical, 21 types) and ``batch`` (categorical).
    """
    rna_file = _read("common", "output_rna")
    atac_file = _read("common", "output_mod2")
    obs = _categorical_obs(rna_file, [CELL_TYPE_KEY, "batch"])
    rna = _counts_modality(rna_file, obs.copy(), pd.DataFrame({"gene_ids": rna_file.var["gene_ids"].astype(str)}))
    atac = _counts_modality(atac_file, obs.copy(), _atac_var(atac_file))
    with mudata.set_options(pull_on_update=False):
        return MuData({RNA: rna, ATAC: atac})


def bmmc_multiome_match(split: Literal["train", "test"]) -> MuData:
    """Load the official modality-matching task of the BMMC starter subset (RNA -> ATAC, ``gex2atac``).

    The ATAC rows of **both** splits are shuffled relative to the RNA rows (the README of the source
    mentions it for the test split only; the train ATAC rows are renamed ``cell_1`` .. and shuffled
    too). The ``*_sol.h5ad`` file holds the true pairing, read here as follows (checked by
    matching every row's counts against the paired ``common`` files, which have cell names on both
    modalities): its ``X`` is an RNA x ATAC permutation matrix, rows in the RNA file's order and
    columns in the ATAC file's order, ``X[i, j] == 1`` when RNA row ``i`` and ATAC row ``j`` are the
    same cell; ``uns['pairing_ix'][j]`` is the RNA row of ATAC row ``j``. The loader checks that the
    two agree.

    Parameters
    ----------
    split
        ``"train"`` (221 cells, sample ``s1d1``) or ``"test"`` (279 cells, sample ``s1d2``).

    Returns
    -------
    An unpaired :class:`~mudata.MuData`, both modalities in their file's row order:

    ``"rna"``
        Cells x 600 genes; obs_names ``rna:<cell barcode>``. ``.X``: raw counts, float32 CSR (also
        in ``.layers["counts"]``). ``.obs["batch"]`` (categorical), ``.var["gene_ids"]``.
    ``"atac"``
        Cells x 600 peaks; obs_names ``atac:<row name of the file>`` (``atac:cell_1`` ... for train,
        ``atac:0`` ... for test). ``.X``: raw counts, float32 CSR (also in ``.layers["counts"]``).
        ``.var``: ``chrom``, ``start``, ``end``. The test file's ``obs['size_factors']`` is dropped:
        it is in the RNA row order, so it does not belong to the ATAC rows.

    ``.obs["true_match"]`` of each modality is the obs_name of the same cell in the other modality:
    the answer a matching method is scored against, not an input for it.

    Raises
    ------
    ValueError
        When ``split`` is not ``"train"`` or ``"test"``, or the solution file is not a permutation
        that agrees with its ``pairing_ix``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}.")
    rna_file = _read("match_modality", f"{split}_mod1")
    atac_file = _read("match_modality", f"{split}_mod2")
    solution = _read("match_modality", f"{split}_sol")
    atac_row_of_rna = _pairing(solution, rna_file, atac_file)

    rna_obs = _categorical_obs(rna_file, ["batch"])
    rna_obs.index = "rna:" + rna_obs.index
    atac_obs = pd.DataFrame(index="atac:" + pd.Index(atac_file.obs_names.astype(str)))
    rna_obs["true_match"] = atac_obs.index[atac_row_of_rna].to_numpy()
    rna_of_atac_row = np.empty_like(atac_row_of_rna)
    rna_of_atac_row[atac_row_of_rna] = np.arange(len(atac_row_of_rna))
    atac_obs["true_match"] = rna_obs.index[rna_of_atac_row].to_numpy()

    rna = _counts_modality(rna_file, rna_obs, pd.DataFrame({"gene_ids": rna_file.var["gene_ids"].astype(str)}))
    atac = _counts_modality(atac_file, atac_obs, _atac_var(atac_file))
    with mudata.set_options(pull_on_update=False):
        return MuData({RNA: rna, ATAC: atac})


def _pairing(solution: AnnData, rna: AnnData, atac: AnnData) -> np.ndarray:
    """ATAC row of each RNA row, from the solution's permutation matrix (checked against ``pairing_ix``)."""
    n = rna.n_obs
    matrix = sp.coo_matrix(solution.X)
    if (
        solution.shape != (n, atac.n_obs)
        or not solution.obs_names.equals(rna.obs_names)
        or matrix.nnz != n
        or not np.all(matrix.data == 1)
        or len(np.unique(matrix.row)) != n
        or len(np.unique(matrix.col)) != n
    ):
        raise ValueError("The solution file of the BMMC match split is not an RNA x ATAC permutation matrix.")
    atac_row_of_rna = np.empty(n, dtype=np.int64)
    atac_row_of_rna[matrix.row] = matrix.col
    rna_row_of_atac = np.asarray(solution.uns["pairing_ix"]).astype(np.int64)
    if not np.array_equal(atac_row_of_rna[rna_row_of_atac], np.arange(n)):
        raise ValueError("The solution file's permutation matrix and its uns['pairing_ix'] disagree.")
    return atac_row_of_rna
