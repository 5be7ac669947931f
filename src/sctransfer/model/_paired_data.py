"""Step-based batches of paired cells (the same cells in RNA and ATAC) for scCLIP, read from memory or a backed file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from lightning.pytorch import LightningDataModule
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager
from scvi.dataloaders._data_splitting import validate_data_split
from torch.utils.data import DataLoader, IterableDataset

from sctransfer._constants import ATAC, ATAC_COUNTS_KEY, RNA
from sctransfer._matrix import as_csr, is_backed, row_block

from ._distributed import stream_generator
from ._feature_mapping import FeatureMapping
from ._transform import InputTransform


@dataclass
class ScaledCounts:
    """One modality's cells x features counts and how they become model input, read a few rows at a time.

    ``counts`` is any matrix the package reads by rows (scipy sparse, numpy, or the matrix of a
    backed AnnData): only the rows a batch asks for are read (:func:`~sctransfer._matrix.row_block`),
    so a backed matrix stays on disk and an in-memory one is never copied whole.

    Attributes
    ----------
    counts
        Cells x features counts, CSR in memory (see :func:`model_matrix`) or backed.
    scaling
        The model's input scaling of this modality.
    mapping
        For new data: the :class:`~sctransfer.model.FeatureMapping` onto the model's features, applied
        to each block read; ``None`` when the columns are the model's features.
    rows
        Sorted positions of the cells used (``None``: all cells); batch positions index into them.
    """

    counts: Any
    scaling: InputTransform
    mapping: FeatureMapping | None = None
    rows: np.ndarray | None = None

    @property
    def n_cells(self) -> int:
        return self.counts.shape[0] if self.rows is None else len(self.rows)

    def model_counts(self, rows: np.ndarray | slice) -> sp.csr_matrix:
        """Counts of the given cells (sorted positions or a slice) in the model's feature order, CSR."""
        positions = rows if self.rows is None else self.rows[rows]
        block = row_block(self.counts, positions)
        return block if self.mapping is None else self.mapping.apply(block)

    def batch(self, rows: np.ndarray | slice) -> torch.Tensor:
        """Scaled network input of the given cells (sorted positions or a slice), sparse COO (not densified)."""
        return self.network_input(self.model_counts(rows))

    def network_input(self, block: sp.csr_matrix) -> torch.Tensor:
        """Scaled network input of a block of :meth:`model_counts`, sparse COO (not densified)."""
        scaled = self.scaling.sparse(block).tocoo()
        indices = torch.from_numpy(np.vstack([scaled.row, scaled.col]).astype(np.int64))
        return torch.sparse_coo_tensor(
            indices, torch.from_numpy(scaled.data), size=scaled.shape, is_coalesced=True, check_invariants=False
        )


def model_matrix(x) -> Any:
    """A counts matrix as the models read it by rows.

    A backed matrix stays as it is (its rows are read from disk when needed); anything in memory
    becomes CSR (not copied when it already is).
    """
    return x if is_backed(x) else as_csr(x)


class _PairedStream(IterableDataset):
    """``n_steps`` batches ``{"rna": ..., "atac": ...}`` of the same cells.

    Cells are visited in a fresh random order each pass over the data (no cell repeats within
    a pass); a pass that does not fill the last batch continues into the next one. Under DDP
    every process draws its own order (:func:`stream_generator`).
    """

    def __init__(self, rna: ScaledCounts, atac: ScaledCounts, batch_size: int, n_steps: int, seed: int):
        super().__init__()
        self.rna, self.atac = rna, atac
        self.batch_size, self.n_steps = min(batch_size, rna.n_cells), n_steps
        self.seed, self.rng = seed, None
        self.queue = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return self.n_steps

    def __iter__(self):
        if self.rng is None:
            self.rng = stream_generator(self.seed)
        for _ in range(self.n_steps):
            while len(self.queue) < self.batch_size:
                self.queue = np.concatenate([self.queue, self.rng.permutation(self.rna.n_cells)])
            rows, self.queue = np.sort(self.queue[: self.batch_size]), self.queue[self.batch_size :]
            yield {RNA: self.rna.batch(rows), ATAC: self.atac.batch(rows)}


def split_pairs(
    n_pairs: int, train_size: float | None, validation_size: float | None, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted positions of the training, validation and test pairs (scvi-tools' sizes; ``train_size=None``: all).

    Raises
    ------
    ValueError
        Sizes outside scvi-tools' ranges (``0 < train_size <= 1``, ``0 <= validation_size < 1``, their sum at most 1)
        or an empty training set.
    """
    if train_size is None and validation_size is None:
        return np.arange(n_pairs), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    train_size = 1.0 - validation_size if train_size is None else float(train_size)
    n_train, n_val = validate_data_split(n_pairs, train_size, validation_size)
    order = np.random.default_rng(seed).permutation(n_pairs)
    parts = np.split(order, [n_train, n_train + n_val])
    return tuple(np.sort(part) for part in parts)


class PairedDataModule(LightningDataModule):
    """Lightning data module feeding :class:`~sctransfer.module.SCCLIPModule` (``SCCLIP._data_splitter_cls``).

    Reads the RNA and ATAC counts of the registered cells from the registry of ``adata_manager``
    (``REGISTRY_KEYS.X_KEY`` and ``ATAC_COUNTS_KEY``) and yields ``{"rna": ..., "atac": ...}``
    batches of the same cells, scaled as the model scales its input; a batch reads only its own
    rows, so the matrices may be backed (an ``.h5mu`` read with ``backed=True``). One "epoch" is
    ``steps_per_epoch`` steps; losses are averaged per epoch in ``model.history``.

    As scvi-tools' :class:`~scvi.dataloaders.DataSplitter`, it splits the pairs by ``train_size`` and
    ``validation_size`` (scvi-tools' sizes and checks, cells drawn at random from ``seed``, the same in every DDP
    process) and exposes the split as ``train_idx``, ``val_idx`` and ``test_idx`` (which
    :class:`~scvi.train.TrainRunner` copies to ``model.train_indices`` ...); batches come from the training
    pairs only.

    Parameters
    ----------
    adata_manager
        The model's :class:`~scvi.data.AnnDataManager` (set up by
        :meth:`~sctransfer.model.SCCLIP.setup_mudata`).
    rna_scaling, atac_scaling
        The model's input scaling of each modality (fitted on these cells).
    train_size
        Share of the pairs to train on; ``None``: all of them (unlike scvi-tools' 0.9, see
        :meth:`~sctransfer.model.SCCLIP.train`).
    validation_size
        Share of the pairs held out for validation; ``None``: the rest (``1 - train_size``).
    batch_size
        Paired cells per step (at most the number of cells).
    steps_per_epoch
        Batches per epoch.
    seed
        Seed of the cell order (per DDP process, see :func:`~sctransfer.model._distributed.stream_generator`).
    """

    def __init__(
        self,
        adata_manager: AnnDataManager,
        *,
        rna_scaling: InputTransform,
        atac_scaling: InputTransform,
        train_size: float | None,
        validation_size: float | None,
        batch_size: int = 256,
        steps_per_epoch: int = 50,
        seed: int = 0,
    ):
        super().__init__()
        counts = [adata_manager.get_from_registry(key) for key in (REGISTRY_KEYS.X_KEY, ATAC_COUNTS_KEY)]
        self.train_idx, self.val_idx, self.test_idx = split_pairs(counts[0].shape[0], train_size, validation_size, seed)
        rows = None if len(self.train_idx) == counts[0].shape[0] else self.train_idx
        rna, atac = (
            ScaledCounts(model_matrix(x), scaling, rows=rows)
            for x, scaling in zip(counts, (rna_scaling, atac_scaling), strict=True)
        )
        self.stream = _PairedStream(rna, atac, batch_size, steps_per_epoch, seed)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.stream, batch_size=None, num_workers=0)
