"""Genomic tokenisation of one modality: features ordered along the genome and cut into patches.

scCLIP turns a cell's feature vector into tokens by sorting the features by genomic position and
cutting the sorted vector into contiguous patches of ``P`` features (one token per patch). Here
patches never cross a chromosome boundary, and features without a coordinate get their own
trailing pseudo-chromosome ``"unplaced"``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from sctransfer._constants import RNA
from sctransfer._genome_check import check_genome_match
from sctransfer._intervals import INTERVAL_COLUMNS, IntervalError, chromosome_rank, genomic_order
from sctransfer.pp._annotation import gene_coordinates, read_gene_annotation

logger = logging.getLogger(__name__)

UNPLACED = "unplaced"
_ARRAYS = ("feature_names", "patch_index", "patch_chromosome", "patch_position", "chromosomes")


def _patches(columns: np.ndarray, patch_size: int) -> np.ndarray:
    """Cut ``columns`` into rows of ``patch_size``, the last padded with -1."""
    n_rows = math.ceil(len(columns) / patch_size)
    out = np.full(n_rows * patch_size, -1, dtype=np.int64)
    out[: len(columns)] = columns
    return out.reshape(n_rows, patch_size)


@dataclass(frozen=True, eq=False)
class FeatureLayout:
    """The features of one modality in genomic order, cut into patch tokens.

    Build it with :meth:`~sctransfer.nn.FeatureLayout.from_coordinates` (peaks: coordinates
    from :func:`sctransfer.pp.peak_coordinates`) or
    :meth:`~sctransfer.nn.FeatureLayout.from_genes` (genes: coordinates from a gene
    annotation). All attributes are read-only numpy arrays;
    :meth:`~sctransfer.nn.FeatureLayout.to_dict` and
    :meth:`~sctransfer.nn.FeatureLayout.from_dict` store and restore them (e.g. in a saved
    model's attributes).

    Fields:

    feature_names
        The model's features (str) in input-column order.
    patch_index
        ``(n_patches, patch_size)`` int64: the input column of each slot of each patch, ``-1`` for
        padding. Read row by row it lists the features in genomic order, unplaced features last.
    patch_chromosome
        int64 per patch: index into :attr:`chromosomes`.
    patch_position
        float32 per patch in ``[0, 1]``: the midpoint of the patch's features along its chromosome,
        relative to the chromosome's length (taken as the largest end of its features); ``0.5``
        for unplaced patches.
    chromosomes
        Chromosome names (str) in natural order (1..22, X, Y, M, others), ``"unplaced"`` last when
        some features have no coordinate.
    """

    feature_names: np.ndarray
    patch_index: np.ndarray
    patch_chromosome: np.ndarray
    patch_position: np.ndarray
    chromosomes: np.ndarray

    def __post_init__(self) -> None:
        arrays = {
            "feature_names": np.array(self.feature_names, dtype=str),
            "patch_index": np.array(self.patch_index, dtype=np.int64),
            "patch_chromosome": np.array(self.patch_chromosome, dtype=np.int64),
            "patch_position": np.array(self.patch_position, dtype=np.float32),
            "chromosomes": np.array(self.chromosomes, dtype=str),
        }
        index = arrays["patch_index"]
        n_patches = index.shape[0] if index.ndim == 2 else -1
        if (
            index.ndim != 2
            or arrays["patch_chromosome"].shape != (n_patches,)
            or arrays["patch_position"].shape != (n_patches,)
            or index.min(initial=0) < -1
            or index.max(initial=-1) >= len(arrays["feature_names"])
            or arrays["patch_chromosome"].min(initial=0) < 0
            or arrays["patch_chromosome"].max(initial=-1) >= len(arrays["chromosomes"])
        ):
            raise ValueError(
                "Inconsistent FeatureLayout arrays (patch_index must be 2-D with columns in [-1, n_features), "
                "patch_chromosome and patch_position one value per patch). Build layouts with "
                "FeatureLayout.from_coordinates or restore them with FeatureLayout.from_dict."
            )
        for name, value in arrays.items():  # private copies, read-only
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    # ----------------------------------------------------------------------------------------
    # construction
    # ----------------------------------------------------------------------------------------
    @classmethod
    def from_coordinates(
        cls,
        names: Sequence[str],
        coords: pd.DataFrame,
        *,
        n_patches: int = 128,
        patch_size: int | None = None,
        min_placed_fraction: float = 0.5,
        modality: str = "features",
    ) -> FeatureLayout:
        """Order features along the genome and cut each chromosome into patches.

        The patch size is ``P = patch_size`` or, when not given, ``ceil(n_placed / n_patches)``
        with ``n_placed`` the features that have a coordinate. Each chromosome gets
        ``ceil(n_chromosome_features / P)`` patches of consecutive features (ordered by start, then
        end), its last patch padded, so no patch crosses a chromosome boundary. ``n_patches`` is
        therefore a target: the layout has at most ``n_patches`` plus one patch per chromosome
        (fewer when rounding ``P`` up leaves slack), plus the unplaced patches.

        Features without a coordinate (a missing ``chrom``, ``start`` or ``end``) are reported in a
        warning and placed after all chromosomes in the pseudo-chromosome ``"unplaced"``, ordered
        by name and cut into patches of the same size ``P``.

        Parameters
        ----------
        names
            The model's features in input-column order (e.g. ``adata.var_names``).
        coords
            Data frame with ``chrom``, ``start``, ``end`` (BED style) indexed like ``names``, e.g.
            from :func:`sctransfer.pp.peak_coordinates` or :func:`sctransfer.pp.gene_coordinates`. When its
            index differs from ``names`` it is matched by name (features absent from it are unplaced).
        n_patches
            Target number of patches (scCLIP uses 128); ignored when ``patch_size`` is given.
        patch_size
            Features per patch, overriding the target.
        min_placed_fraction
            Smallest share of features with a coordinate: below it the annotation most likely does
            not fit the features (another species or gene naming) and an error is raised.
        modality
            Name used in messages.

        Returns
        -------
        The layout.

        Raises
        ------
        sctransfer.pp.IntervalError
            When ``coords`` lacks a column or fewer than ``min_placed_fraction`` of the features
            have a coordinate.
        """
        names = np.asarray(names, dtype=str)
        missing = [c for c in INTERVAL_COLUMNS if c not in coords.columns]
        if missing:
            raise IntervalError(
                f"The coordinates of modality {modality!r} have no column {', '.join(map(repr, missing))}. Pass a "
                "data frame with chrom, start and end, e.g. sctransfer.pp.peak_coordinates(adata) for peaks or "
                "gene_coordinates(gene_names, annotation) for genes."
            )
        if not coords.index.equals(pd.Index(names)):
            if not coords.index.is_unique:
                raise IntervalError(
                    f"The coordinates of modality {modality!r} are not indexed like the feature names and their "
                    "index has duplicates; index them by the feature names (one row per feature)."
                )
            coords = coords.reindex(pd.Index(names))
        if patch_size is None and n_patches < 1:
            raise ValueError(f"n_patches must be at least 1, got {n_patches}.")
        if patch_size is not None and patch_size < 1:
            raise ValueError(f"patch_size must be at least 1, got {patch_size}.")

        start = pd.to_numeric(coords["start"], errors="coerce").to_numpy(np.float64)
        end = pd.to_numeric(coords["end"], errors="coerce").to_numpy(np.float64)
        placed = coords["chrom"].notna().to_numpy() & ~np.isnan(start) & ~np.isnan(end)
        if not placed.any() or placed.mean() < min_placed_fraction:
            raise IntervalError(
                f"Only {int(placed.sum())} of the {len(names)} features of modality {modality!r} have a genomic "
                f"coordinate (e.g. without: {', '.join(repr(str(n)) for n in names[~placed][:3])}). For peaks pass "
                "sctransfer.pp.peak_coordinates(adata); for genes pass an annotation of the same species and gene "
                "naming (symbols vs Ensembl IDs)."
            )
        columns = np.flatnonzero(placed)
        table = pd.DataFrame(
            {
                "chrom": coords["chrom"].to_numpy()[columns].astype(str),
                "start": start[columns].astype(np.int64),
                "end": end[columns].astype(np.int64),
            }
        )
        size = patch_size if patch_size is not None else math.ceil(len(columns) / n_patches)

        order = genomic_order(table)
        rank = chromosome_rank(table["chrom"].to_numpy())[order]
        t_start, t_end = table["start"].to_numpy(), table["end"].to_numpy()
        blocks, chromosome, position, chromosomes = [], [], [], []
        for k, part in enumerate(np.split(order, np.flatnonzero(np.diff(rank)) + 1)):
            patches = _patches(part, size)  # rows of `table`, -1 for padding
            valid = patches >= 0
            rows = np.where(valid, patches, 0)
            first = t_start[patches[:, 0]]  # features are sorted by start within the chromosome
            last = np.where(valid, t_end[rows], 0).max(axis=1)
            length = max(int(t_end[part].max()), 1)
            blocks.append(np.where(valid, columns[rows], -1))
            chromosome.append(np.full(len(patches), k, dtype=np.int64))
            position.append(np.clip((first + last) / 2 / length, 0.0, 1.0))
            chromosomes.append(table["chrom"].iat[part[0]])

        if not placed.all():
            unplaced = np.flatnonzero(~placed)
            unplaced = unplaced[np.argsort(names[unplaced], kind="stable")]
            logger.warning(
                "%d of %d features of modality %r have no genomic coordinate (e.g. %s); they are placed in %d "
                "trailing patch(es) of the pseudo-chromosome %r, ordered by name.",
                len(unplaced),
                len(names),
                modality,
                ", ".join(names[unplaced[:5]]),
                math.ceil(len(unplaced) / size),
                UNPLACED,
            )
            blocks.append(_patches(unplaced, size))
            chromosome.append(np.full(len(blocks[-1]), len(chromosomes), dtype=np.int64))
            position.append(np.full(len(blocks[-1]), 0.5))
            chromosomes.append(UNPLACED)

        layout = cls(
            feature_names=names,
            patch_index=np.concatenate(blocks),
            patch_chromosome=np.concatenate(chromosome),
            patch_position=np.concatenate(position),
            chromosomes=np.asarray(chromosomes, dtype=str),
        )
        logger.info(
            "Modality %r: %d features in %d patches of %d on %d chromosomes.",
            modality,
            layout.n_features,
            layout.n_patches,
            layout.patch_size,
            len(chromosomes),
        )
        return layout

    @classmethod
    def from_genes(
        cls,
        gene_names: Sequence[str],
        annotation: str | os.PathLike | pd.DataFrame,
        *,
        n_patches: int = 128,
        patch_size: int | None = None,
        modality: str = RNA,
        peaks: pd.DataFrame | None = None,
    ) -> FeatureLayout:
        """Layout of genes placed by a gene annotation (see :meth:`~sctransfer.nn.FeatureLayout.from_coordinates`).

        Parameters
        ----------
        gene_names
            The model's genes in input-column order.
        annotation
            GTF/GFF3/BED/TSV path, :class:`~pandas.DataFrame` or genome name (``"mm10"``, ``"hg38"``, ``"hg19"``);
            genes are matched by name, then case-insensitively (see :func:`sctransfer.pp.gene_coordinates`).
            Genes not in the annotation go to the ``"unplaced"`` patches.
        n_patches, patch_size, modality
            As in :meth:`~sctransfer.nn.FeatureLayout.from_coordinates`.
        peaks
            Coordinates of the peaks the genes will be matched with (from
            :func:`sctransfer.pp.peak_coordinates`): the annotation is checked to be of their genome
            build and species (as in :func:`sctransfer.pp.gene_activity`).

        Returns
        -------
        The layout.

        Raises
        ------
        sctransfer.pp.IntervalError
            As :meth:`~sctransfer.nn.FeatureLayout.from_coordinates`; or no peak is on a
            chromosome of the annotation.

        Warns
        -----
        sctransfer.pp.GenomeMismatchWarning
            The annotation likely comes from another genome build or species than ``peaks``.
        """
        table = read_gene_annotation(annotation)
        if peaks is not None:
            check_genome_match(peaks, table, what=f"the modality matched with {modality!r}")
        coords = gene_coordinates(gene_names, table, one_based=False)
        return cls.from_coordinates(gene_names, coords, n_patches=n_patches, patch_size=patch_size, modality=modality)

    # ----------------------------------------------------------------------------------------
    # sizes, storage
    # ----------------------------------------------------------------------------------------
    @property
    def n_patches(self) -> int:
        """Number of patches (tokens, without any [CLS] token)."""
        return int(self.patch_index.shape[0])

    @property
    def patch_size(self) -> int:
        """Features per patch (``P``)."""
        return int(self.patch_index.shape[1])

    @property
    def n_features(self) -> int:
        """Number of input features."""
        return len(self.feature_names)

    def to_dict(self) -> dict[str, np.ndarray]:
        """The layout as plain numpy arrays (copies), keyed by attribute name (read back by ``from_dict``)."""
        return {name: np.array(getattr(self, name)) for name in _ARRAYS}

    @classmethod
    def from_dict(cls, d: Mapping[str, np.ndarray]) -> FeatureLayout:
        """Restore a layout from :meth:`~sctransfer.nn.FeatureLayout.to_dict` output.

        Returns
        -------
        The layout.
        """
        missing = [name for name in _ARRAYS if name not in d]
        if missing:
            raise ValueError(
                f"The stored feature layout lacks {', '.join(missing)}; store it with FeatureLayout.to_dict()."
            )
        return cls(**{name: d[name] for name in _ARRAYS})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureLayout):
            return NotImplemented
        return all(np.array_equal(getattr(self, name), getattr(other, name)) for name in _ARRAYS)

    # ----------------------------------------------------------------------------------------
    # gathering inputs into patches
    # ----------------------------------------------------------------------------------------
    def padded_columns(self) -> np.ndarray:
        """Input column of every slot, patch by patch, with padding pointing past the last feature.

        Returns
        -------
        int64 vector of length ``n_patches * patch_size``; padding slots hold ``n_features``, so
        that ``np.hstack([x, zeros])[:, padded_columns()]`` reshaped to
        ``(n_cells, n_patches, patch_size)`` gives the patches with zeros at padding.
        """
        flat = self.patch_index.ravel()
        return np.where(flat >= 0, flat, self.n_features)

    def gather(self, x: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """Cut a dense ``(batch, n_features)`` tensor into patches.

        Parameters
        ----------
        x
            Inputs in the layout's feature order (columns as :attr:`feature_names`).
        columns
            ``torch.as_tensor(layout.padded_columns())`` on ``x``'s device, e.g. a module buffer, to
            avoid building it at every call; built here when ``None``.

        Returns
        -------
        ``(batch, n_patches, patch_size)`` tensor of ``x``'s dtype, zeros at padding.
        """
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(
                f"gather expects a (batch, {self.n_features}) tensor in the layout's feature order, "
                f"got shape {tuple(x.shape)}."
            )
        if columns is None:
            columns = torch.as_tensor(self.padded_columns(), device=x.device)
        padded = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)
        return padded.index_select(1, columns).reshape(x.shape[0], self.n_patches, self.patch_size)
