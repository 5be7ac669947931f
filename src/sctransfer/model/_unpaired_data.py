"""SCNCL's training data module: step-based batches of unpaired RNA and ATAC cells, one sampler per modality.

scvi-tools' stock :class:`~scvi.dataloaders.DataSplitter` indexes every registered field with the
same cell indices, which does not fit two modalities of different cells; like scvi-tools'
``external.contrastivevi`` (``{"background": ..., "target": ...}`` batches), this module yields
``{"rna": {...}, "atac": {...}}`` batches from one sampler per modality. What it samples from
comes from the registry (the labels, the peak-space graph it names) and from the encoder inputs
the model computed for the registered cells.
"""

from __future__ import annotations

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager
from torch.utils.data import DataLoader, IterableDataset

from sctransfer._constants import ATAC, PEAK_KEY, POSITIVE_KEY, RNA
from sctransfer.pp._neighbors import neighbor_indices

from ._distributed import stream_generator
from ._scncl_inputs import CellInputs, PrecomputedInputs


class _UnpairedStream(IterableDataset):
    """Endless-in-principle stream of ``{"rna": ..., "atac": ...}`` batches, ``n_steps`` long.

    Cells are drawn with replacement, independently per modality; RNA cells are drawn with
    probability proportional to ``rna_weights`` (class balancing); each ATAC cell comes with one
    of its peak-space neighbours, redrawn at every step, and its peak view when there is one.
    Under DDP every process draws its own cells (:func:`stream_generator`).
    """

    def __init__(
        self,
        rna: CellInputs,
        labels: np.ndarray,
        atac: CellInputs,
        neighbors: np.ndarray,
        peak_view: np.ndarray | None,
        rna_weights: np.ndarray,
        batch_size: int,
        n_steps: int,
        seed: int,
    ):
        super().__init__()
        self.rna, self.labels, self.atac, self.neighbors = rna, labels, atac, neighbors
        self.peak_view = None if peak_view is None else torch.from_numpy(np.ascontiguousarray(peak_view))
        self.rna_cdf = np.cumsum(rna_weights / rna_weights.sum())
        self.batch_size, self.n_steps = batch_size, n_steps
        self.seed, self.rng = seed, None

    def __len__(self) -> int:
        return self.n_steps

    def __iter__(self):
        if self.rng is None:
            self.rng = stream_generator(self.seed)
        rng, b = self.rng, self.batch_size
        for _ in range(self.n_steps):
            rna_rows = np.minimum(np.searchsorted(self.rna_cdf, rng.random(b), side="right"), len(self.rna_cdf) - 1)
            atac_rows = rng.integers(0, self.neighbors.shape[0], b)
            positive_rows = self.neighbors[atac_rows, rng.integers(0, self.neighbors.shape[1], b)]
            atac = {REGISTRY_KEYS.X_KEY: self.atac.batch(atac_rows), POSITIVE_KEY: self.atac.batch(positive_rows)}
            if self.peak_view is not None:
                atac[PEAK_KEY] = self.peak_view[torch.from_numpy(atac_rows)]
            yield {
                RNA: {
                    REGISTRY_KEYS.X_KEY: self.rna.batch(rna_rows),
                    REGISTRY_KEYS.LABELS_KEY: torch.from_numpy(self.labels[rna_rows]),
                },
                ATAC: atac,
            }


def sampling_weights(labels: np.ndarray, class_balance: float) -> np.ndarray:
    """Weight of each RNA cell in the sampler: ``1 / n_type ** class_balance`` for labelled cells, 0 for the others.

    Parameters
    ----------
    labels
        Type code per cell, -1 for a cell without label.
    class_balance
        0 draws labelled cells uniformly; 1 gives every type the same share.
    """
    labelled = labels >= 0
    counts = np.bincount(labels[labelled], minlength=1).astype(np.float64)
    weights = np.zeros(len(labels))
    weights[labelled] = 1.0 / np.maximum(counts[labels[labelled]], 1.0) ** class_balance
    return weights


class UnpairedDataModule(LightningDataModule):
    """Lightning data module feeding :class:`~sctransfer.module.SCNCLModule` (``SCNCL._data_splitter_cls``).

    Reads from the registry of ``adata_manager``: the labels (``REGISTRY_KEYS.LABELS_KEY``; cells
    without label are never drawn) and the peak-space neighbour graph named by the set-up
    (``neighbors_key``, in the modality the set-up gave it), whose neighbours are the positives of
    the ATAC cells. One "epoch" is ``steps_per_epoch`` steps; losses are averaged per epoch in
    ``model.history``.

    Parameters
    ----------
    adata_manager
        The model's :class:`~scvi.data.AnnDataManager` (set up by
        :meth:`~sctransfer.model.SCNCL.setup_mudata`).
    rna_inputs, atac_inputs
        Encoder input of every registered RNA cell and gene-activity (ATAC) cell, in registry order:
        cells x inputs float32 arrays (joint-PCA scores), or objects with ``n_cells`` and
        ``batch(rows)`` (the transformed genes, ``n_pcs=None``).
    peak_inputs
        Cells x components peak view of the ATAC cells, or None.
    class_balance
        RNA cells are drawn with probability proportional to ``1 / n_type ** class_balance``.
    batch_size
        Cells per modality and step.
    steps_per_epoch
        Batches per epoch.
    seed
        Seed of the samplers (per DDP process, see :func:`~sctransfer.model._distributed.stream_generator`).

    Raises
    ------
    ValueError
        When the inputs do not hold one row per registered cell.
    """

    def __init__(
        self,
        adata_manager: AnnDataManager,
        *,
        rna_inputs: np.ndarray | CellInputs,
        atac_inputs: np.ndarray | CellInputs,
        peak_inputs: np.ndarray | None = None,
        class_balance: float = 0.0,
        batch_size: int = 256,
        steps_per_epoch: int = 50,
        seed: int = 0,
    ):
        super().__init__()
        rna = PrecomputedInputs(rna_inputs) if isinstance(rna_inputs, np.ndarray) else rna_inputs
        atac = PrecomputedInputs(atac_inputs) if isinstance(atac_inputs, np.ndarray) else atac_inputs
        labels = np.asarray(adata_manager.get_from_registry(REGISTRY_KEYS.LABELS_KEY)).reshape(-1).astype(np.int64)
        setup = adata_manager.registry["setup_args"]
        peaks = adata_manager.adata.mod[(setup.get("modalities") or {}).get("neighbors_key", ATAC)]
        neighbors = neighbor_indices(peaks, setup["neighbors_key"])
        sizes = {"RNA inputs": (rna.n_cells, len(labels)), "ATAC inputs": (atac.n_cells, len(neighbors))}
        if peak_inputs is not None:
            sizes["peak inputs"] = (len(peak_inputs), len(neighbors))
        for what, (n, expected) in sizes.items():
            if n != expected:
                raise ValueError(f"The {what} hold {n} cells, but the registry has {expected}.")
        self.stream = _UnpairedStream(
            rna,
            labels,
            atac,
            neighbors,
            peak_inputs,
            sampling_weights(labels, class_balance),
            batch_size,
            steps_per_epoch,
            seed,
        )

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.stream, batch_size=None, num_workers=0)
