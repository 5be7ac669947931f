"""SCNCL's input pipeline: a modality's counts in model gene order, their transformation, the joint PCA, encoder inputs.

The encoder of :class:`~sctransfer.model.SCNCL` reads, for every cell, the first ``n_pcs``
components of a PCA fitted on the transformed genes of the RNA reference and the gene activity
together (:func:`joint_pca`); with ``n_pcs=None`` it reads the transformed genes. Counts are never
copied or reordered: a 0/1 selection matrix puts a block's columns in model gene order, and
blocks are read one at a time (backed matrices too).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.data._constants import _FIELD_REGISTRIES_KEY, _STATE_REGISTRY_KEY

from sctransfer._constants import GENE_ACTIVITY, GENE_ACTIVITY_KEY
from sctransfer._matrix import BLOCK_NONZEROS, row_block, row_blocks, stored_values
from sctransfer._validation import check_counts, check_unique_names, user_stacklevel

from ._transform import InputTransform, InputTransformName


@dataclass
class PrecomputedInputs:
    """Every cell's encoder input, computed once (cells x inputs, float32): a batch is a row lookup."""

    values: np.ndarray

    @property
    def n_cells(self) -> int:
        return self.values.shape[0]

    def batch(self, rows: np.ndarray | slice) -> torch.Tensor:
        return torch.from_numpy(self.values[rows])


@dataclass
class ModalityData:
    """One modality's cells x features counts (any matrix, backed too), the genes it feeds and their transformation.

    ``selection`` (features x model genes, 0/1) puts a block's columns in model gene order; the
    counts themselves are never copied or reordered.
    """

    counts: Any
    selection: sp.csr_matrix
    transform: InputTransform
    #: every cell's encoder input, once the model has computed it
    encoder_inputs: PrecomputedInputs | None = None

    @property
    def n_cells(self) -> int:
        return self.counts.shape[0]

    def batch(self, rows: np.ndarray | slice) -> torch.Tensor:
        """Dense, transformed genes of the given cells (model gene order; ``rows`` sorted)."""
        return torch.from_numpy(self.transform(row_block(self.counts, rows) @ self.selection))

    def decomposed(self, rows: np.ndarray | slice) -> tuple[sp.csr_matrix, np.ndarray]:
        """The transformed genes of the given cells as ``(sparse, offset)``, see :meth:`InputTransform.decomposed`."""
        return self.transform.decomposed(row_block(self.counts, rows) @ self.selection)

    def decomposed_blocks(self, rows: np.ndarray | None = None) -> Iterator[tuple[sp.csr_matrix, np.ndarray]]:
        """:meth:`decomposed` of every cell (or of the sorted ``rows``), block after block of about 16M non-zeros."""
        if rows is None:
            for _, block in row_blocks(self.counts):
                yield self.transform.decomposed(block @ self.selection)
            return
        per_row = stored_values(self.counts) / max(self.n_cells, 1)
        block_rows = max(1024, int(BLOCK_NONZEROS / max(per_row, 1.0)))
        for lo in range(0, len(rows), block_rows):
            yield self.decomposed(rows[lo : lo + block_rows])


@dataclass
class SelectedRows:
    """Some cells of a modality as encoder input: their transformed genes, batch by batch (``n_pcs=None``)."""

    data: ModalityData
    #: the cells, sorted positions in ``data``
    rows: np.ndarray

    @property
    def n_cells(self) -> int:
        return len(self.rows)

    def batch(self, rows: slice) -> torch.Tensor:
        return self.data.batch(self.rows[rows])


#: What the encoder and the training sampler read: transformed genes batch by batch, or precomputed inputs.
CellInputs = ModalityData | PrecomputedInputs


def registered_features(registry: dict, key: str) -> np.ndarray:
    """Feature names of a registered layer, as set up (from the registry's state)."""
    return np.asarray(registry[_FIELD_REGISTRIES_KEY][key][_STATE_REGISTRY_KEY]["column_names"]).astype(str)


def shared_genes(registry: dict) -> np.ndarray:
    """The model's genes: those of the RNA reference that the gene activity has too, in the reference's order."""
    activity = set(registered_features(registry, GENE_ACTIVITY_KEY))
    return np.asarray([g for g in registered_features(registry, REGISTRY_KEYS.X_KEY) if g in activity], dtype=str)


def model_modality(data: MuData | AnnData, key: str) -> tuple[AnnData, str]:
    """The modality ``key`` of data given to a model method, and its description for messages.

    Parameters
    ----------
    data
        A MuData holding the modality under ``key``, or the modality's AnnData itself.
    key
        Modality name used at set-up.

    Returns
    -------
    ``(adata, what)``: the modality (not copied) and its description (``"modality 'rna'"``).

    Raises
    ------
    TypeError
        ``data`` is neither a MuData nor an AnnData.
    KeyError
        The MuData lacks the modality.
    ValueError
        The MuData's modality repeats cell or feature names (as
        :func:`~sctransfer._validation.get_modality`; repeated gene names of an AnnData are refused
        by the gene matcher).
    """
    if isinstance(data, AnnData):
        return data, f"the AnnData given for modality {key!r}"
    if not isinstance(data, MuData):
        raise TypeError(f"Expected a MuData or an AnnData, got {type(data).__name__}.")
    if key not in data.mod:
        hint = " Compute it with sctransfer.pp.gene_activity(mdata, annotation)." if key == GENE_ACTIVITY else ""
        raise KeyError(f"The MuData has no modality {key!r}; it has {list(data.mod)}.{hint}")
    check_unique_names(data.mod[key], key=key)
    return data.mod[key], f"modality {key!r}"


def modality_counts(data: MuData | AnnData, key: str, layer: str | None, *, argument: str) -> tuple[AnnData, Any, str]:
    """The modality ``key`` of new data and the counts a model reads from it, checked to be counts.

    Both models read new data alike: the layer used at set-up when the modality has it, otherwise
    ``.X`` (with a warning naming the layer). Either way the matrix read must hold raw counts
    (:func:`~sctransfer._validation.check_counts`): normalised, log-transformed or scaled values
    would give meaningless (or NaN) embeddings.

    Parameters
    ----------
    data, key
        As in :func:`model_modality`.
    layer
        Layer used at set-up (``None``: ``.X``).
    argument
        The set-up argument that names the layer, for messages.

    Returns
    -------
    ``(adata, counts, what)``: the modality, its counts (not copied) and its description for messages.

    Raises
    ------
    TypeError
        ``data`` is neither a MuData nor an AnnData, or the counts are not numeric.
    KeyError
        The MuData lacks the modality.
    ValueError
        The counts are not counts (NaN, infinite or negative values, or log-normalised values), or
        the MuData's modality repeats cell or feature names (see :func:`model_modality`).

    Warns
    -----
    UserWarning
        The modality lacks the layer used at set-up, so ``.X`` is read; or some counts are not whole
        numbers (see :func:`~sctransfer._validation.check_counts`).
    """
    adata, what = model_modality(data, key)
    if layer is not None and layer in adata.layers:
        counts, source = adata.layers[layer], f"layer {layer!r} of {what}"
        hint = f"put the raw counts in layer {layer!r} (the layer the model reads)"
    else:
        if layer is not None:
            warnings.warn(
                f"{what} has no layer {layer!r}, which the model reads (set up with {argument}={layer!r}; layers: "
                f"{list(adata.layers)}); its .X is read instead and must hold raw counts.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        counts, source = adata.X, f"{what} .X"
        hint = "put the raw counts in .X" + (f" or in layer {layer!r}" if layer is not None else "")
    check_counts(counts, what=source, hint=hint)
    return adata, counts, what


def read_modality(
    counts, selection: sp.csr_matrix, name: InputTransformName, transform: InputTransform | None = None
) -> ModalityData:
    """A modality's counts in model gene order, with an input transformation fitted on these cells (or ``transform``).

    Parameters
    ----------
    counts
        Cells x features counts (scipy sparse, numpy, or backed), not copied.
    selection
        Features x model genes 0/1 matrix putting the counts' columns in model gene order (the
        ``matrix`` of :func:`~sctransfer.model._feature_mapping.map_genes` for new data).
    name
        Input transformation (see :class:`~sctransfer.model._transform.InputTransform`).
    transform
        A fitted transformation to use instead (statistics of other cells, in model gene order).
    """
    if transform is None:
        transform = InputTransform.fit(counts, selection, name=name)
    return ModalityData(counts=counts, selection=selection, transform=transform)


def encoder_inputs(
    data: ModalityData, mean: np.ndarray, components: np.ndarray, rows: np.ndarray | None = None
) -> PrecomputedInputs:
    """Joint-PCA scores of every cell of ``data`` (or of the sorted ``rows``), computed sparse, block by block.

    The transformed genes are ``offset + sparse`` (:meth:`InputTransform.decomposed`), so the
    scores are ``sparse @ components + (offset - mean) @ components``, with no dense cells x genes
    block.

    Returns
    -------
    Cells x ``n_pcs`` float32 scores.
    """
    blocks = [
        np.asarray(sparse @ components) + (offset - mean) @ components
        for sparse, offset in data.decomposed_blocks(rows)
    ]
    if not blocks:
        return PrecomputedInputs(np.zeros((0, components.shape[1]), dtype=np.float32))
    return PrecomputedInputs(np.concatenate(blocks).astype(np.float32, copy=False))


def annotation_from_var(var: pd.DataFrame, genes: np.ndarray) -> pd.DataFrame | None:
    """Coordinates of the model's genes from a gene-activity ``.var``, 1-based like GTF, or None without them.

    Parameters
    ----------
    var
        ``.var`` of the gene-activity modality (0-based ``start``, as
        :func:`~sctransfer.pp.gene_activity` writes it), indexed by gene name.
    genes
        The model's genes.

    Returns
    -------
    A table with ``chrom``, ``start`` (1-based), ``end``, ``strand`` and ``gene_name`` per model
    gene (readable back as an annotation by :func:`~sctransfer.pp.read_gene_annotation`), or
    None when ``var`` lacks one of the ``chrom``/``start``/``end``/``strand`` columns or a gene.
    """
    if not {"chrom", "start", "end", "strand"} <= set(var.columns):
        return None
    positions = pd.Index(np.asarray(var.index, dtype=str)).get_indexer(np.asarray(genes, dtype=str))
    if (positions < 0).any():
        return None
    rows = var.iloc[positions]
    return pd.DataFrame(
        {
            "chrom": rows["chrom"].astype(str).to_numpy(),
            "start": rows["start"].to_numpy(np.int64) + 1,
            "end": rows["end"].to_numpy(np.int64),
            "strand": rows["strand"].astype(str).to_numpy(),
            "gene_name": np.asarray(genes, dtype=str),
        }
    )


def joint_pca(
    datasets: list,
    n_pcs: int,
    *,
    max_cells: int = 20_000,
    n_oversamples: int = 10,
    n_power_iterations: int = 4,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """PCA of several data sets' transformed inputs together (same genes, same order).

    Each data set contributes at most ``max_cells`` randomly chosen cells (so a large query does
    not drown a small reference). The decomposition is a randomised SVD (Halko et al. 2011) of
    the centred inputs, kept sparse: each data set's transformed rows are ``offset + sparse``
    (:meth:`InputTransform.decomposed`), so every product with the centred matrix is a sparse
    product plus a rank-one correction, and memory stays at the sampled non-zeros plus
    cells x ``n_pcs`` and genes x ``n_pcs`` arrays, whatever the number of genes.

    Parameters
    ----------
    datasets
        Objects with ``n_cells`` and ``decomposed(rows)`` (the ``(sparse, offset)`` of the
        transformed rows), such as :class:`ModalityData`.
    n_pcs
        Number of components.
    max_cells
        Cells sampled per data set.
    n_oversamples, n_power_iterations
        Accuracy settings of the randomised SVD.
    random_state
        Seed of the sampling and the SVD.

    Returns
    -------
    ``(mean, components)``: the genes' mean (float32) and a genes x ``n_pcs`` projection, scaled
    so that the first component's scores have unit standard deviation.
    """
    rng = np.random.default_rng(random_state)
    parts = []
    for data in datasets:
        rows = np.sort(rng.choice(data.n_cells, size=min(data.n_cells, max_cells), replace=False))
        sparse, offset = data.decomposed(rows)
        parts.append((sp.csr_matrix(sparse, dtype=np.float64), offset.astype(np.float64)))
    n_rows = sum(sparse.shape[0] for sparse, _ in parts)
    mean = sum(np.asarray(sparse.sum(axis=0)).ravel() + sparse.shape[0] * offset for sparse, offset in parts) / n_rows
    n_genes = mean.shape[0]
    size = min(n_pcs + n_oversamples, n_genes, n_rows)

    def times(right: np.ndarray) -> np.ndarray:  # (Z - mean) @ right, cells x size
        return np.concatenate([sparse @ right + (offset - mean) @ right for sparse, offset in parts])

    def transposed_times(left: np.ndarray) -> np.ndarray:  # (Z - mean).T @ left, genes x size
        out, start = np.zeros((n_genes, left.shape[1])), 0
        for sparse, offset in parts:
            block = left[start : start + sparse.shape[0]]
            out += sparse.T @ block + np.outer(offset - mean, block.sum(axis=0))
            start += sparse.shape[0]
        return out

    basis = times(rng.standard_normal((n_genes, size)))
    for _ in range(n_power_iterations):
        basis, _ = np.linalg.qr(basis)
        gene_basis, _ = np.linalg.qr(transposed_times(basis))
        basis = times(gene_basis)
    basis, _ = np.linalg.qr(basis)
    small = transposed_times(basis).T  # size x genes
    left, singular, vt = np.linalg.svd(small, full_matrices=False)
    n_pcs = min(n_pcs, size)
    scores = (basis @ left[:, :n_pcs]) * singular[:n_pcs]
    # deterministic signs: each component's largest-magnitude cell score is positive (as sklearn's svd_flip)
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(n_pcs)])
    signs[signs == 0] = 1.0
    components = vt[:n_pcs].T * signs
    first_scores = scores[:, 0] * signs[0]
    scale = float(first_scores.std())
    components = components / (scale if scale > 0 else 1.0)
    return mean.astype(np.float32), components.astype(np.float32)
