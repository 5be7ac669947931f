"""Step-based batches of unpaired RNA and ATAC cells, one sampler per modality."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, IterableDataset

from sctransfer._matrix import row_block, row_blocks
from sctransfer.module._scncl import ATAC, LABELS_KEY, PEAK_KEY, POSITIVE_KEY, RNA, X_KEY

from ._distributed import stream_generator
from ._transform import InputTransform


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
        """Dense, transformed genes of the given cells (model gene order)."""
        return torch.from_numpy(self.transform(row_block(self.counts, rows) @ self.selection))

    def decomposed(self, rows: np.ndarray | slice) -> tuple[sp.csr_matrix, np.ndarray]:
        """The transformed genes of the given cells as ``(sparse, offset)``, see :meth:`InputTransform.decomposed`."""
        return self.transform.decomposed(row_block(self.counts, rows) @ self.selection)

    def decomposed_blocks(self) -> Iterator[tuple[sp.csr_matrix, np.ndarray]]:
        """:meth:`decomposed` of every cell, block after block (see :func:`sctransfer._matrix.row_blocks`)."""
        for _, block in row_blocks(self.counts):
            yield self.transform.decomposed(block @ self.selection)


#: What the sampler draws batches from: transformed genes batch by batch, or precomputed inputs.
CellInputs = ModalityData | PrecomputedInputs


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
            atac = {X_KEY: self.atac.batch(atac_rows), POSITIVE_KEY: self.atac.batch(positive_rows)}
            if self.peak_view is not None:
                atac[PEAK_KEY] = self.peak_view[torch.from_numpy(atac_rows)]
            yield {
                RNA: {X_KEY: self.rna.batch(rna_rows), LABELS_KEY: torch.from_numpy(self.labels[rna_rows])},
                ATAC: atac,
            }


class UnpairedDataModule(LightningDataModule):
    """Lightning data module feeding :class:`~sctransfer.module.SCNCLModule`.

    One "epoch" is ``steps_per_epoch`` steps; losses are averaged per epoch in ``model.history``.
    """

    def __init__(
        self,
        rna: CellInputs,
        labels: np.ndarray,
        atac: CellInputs,
        neighbors: np.ndarray,
        *,
        peak_view: np.ndarray | None,
        rna_weights: np.ndarray,
        batch_size: int,
        steps_per_epoch: int,
        seed: int,
    ):
        super().__init__()
        self.stream = _UnpairedStream(
            rna, labels, atac, neighbors, peak_view, rna_weights, batch_size, steps_per_epoch, seed
        )

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.stream, batch_size=None, num_workers=0)
