"""Genomic-patch transformer encoder: the scCLIP building blocks (a transformer block, a patch encoder)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Sine/cosine frequencies of the genomic-position features of a patch.
N_POSITION_FREQUENCIES = 16


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer encoder block.

    Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention`, which picks
    the flash or memory-efficient kernel on a GPU and a fused kernel on the CPU.

    Parameters
    ----------
    n_hidden
        Token width.
    n_heads
        Attention heads (``n_hidden`` must be divisible by it).
    n_ff
        Width of the feed-forward layer (GELU).
    dropout
        Dropout of the attention weights and of both residual branches.
    """

    def __init__(self, n_hidden: int, n_heads: int, n_ff: int, dropout: float):
        super().__init__()
        if n_hidden % n_heads:
            raise ValueError(f"n_hidden ({n_hidden}) must be divisible by n_heads ({n_heads}).")
        self.n_heads = n_heads
        self.dropout = dropout
        self.attention_norm = nn.LayerNorm(n_hidden)
        self.qkv = nn.Linear(n_hidden, 3 * n_hidden)
        self.attention_out = nn.Linear(n_hidden, n_hidden)
        self.feed_forward_norm = nn.LayerNorm(n_hidden)
        self.feed_forward = nn.Sequential(
            nn.Linear(n_hidden, n_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(n_ff, n_hidden)
        )
        self.residual_dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(batch, tokens, n_hidden)`` -> same shape."""
        batch, length, width = tokens.shape
        qkv = self.qkv(self.attention_norm(tokens))
        query, key, value = qkv.view(batch, length, 3, self.n_heads, width // self.n_heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(query, key, value, dropout_p=self.dropout if self.training else 0.0)
        attended = attended.transpose(1, 2).reshape(batch, length, width)
        tokens = tokens + self.residual_dropout(self.attention_out(attended))
        return tokens + self.residual_dropout(self.feed_forward(self.feed_forward_norm(tokens)))


def _position_features(position: np.ndarray) -> torch.Tensor:
    """Fixed sinusoids of relative positions in ``[0, 1]`` (periods from 2 down to 2 / 2**15)."""
    frequencies = np.pi * 2.0 ** np.arange(N_POSITION_FREQUENCIES)
    angles = np.asarray(position, dtype=np.float64)[:, None] * frequencies[None, :]
    return torch.tensor(np.concatenate([np.sin(angles), np.cos(angles)], axis=1), dtype=torch.float32)


class GenomicPatchEncoder(nn.Module):
    """Encoder of one modality: genomic patches -> tokens -> transformer -> [CLS] -> unit vector.

    The input (cells x features, already scaled by the model) is cut into the patches of a
    :class:`~sctransfer.nn.FeatureLayout`: contiguous runs of features in
    genomic order that never cross a chromosome. Token ``c`` is a linear projection of patch
    ``c``, in two steps: a fixed projection onto the patch's rows of the modality's principal
    axes (the ``basis`` buffer, fitted on the training cells by the model; summed over patches
    it gives the cells' principal-component scores), then a learned per-patch linear map to
    ``n_hidden``. Reading the patch through the data's principal axes first keeps the tokens on
    the cell-to-cell programmes both modalities share instead of single sparse features (a free
    per-patch projection memorises the training pairs: see :doc:`/benchmarks`). Each token gets a position
    encoding that knows its chromosome (a learned embedding) and its relative position along it
    (fixed sinusoids through a learned linear map); a learned [CLS] token is prepended. The
    pooled output (see ``pooling``) goes through ``Linear -> tanh -> Linear`` (no bias) to
    ``n_output`` dimensions and is L2-normalised.

    Parameters
    ----------
    layout
        ``FeatureLayout.to_dict()`` of the modality.
    n_components
        Principal axes in the fixed part of the token projection.
    n_hidden, n_layers, n_heads, n_ff, dropout
        Transformer size (see :class:`TransformerBlock`).
    n_output
        Size of the joint embedding.
    pooling
        ``"cls"``: the [CLS] token's output, as scCLIP; ``"mean"``: the mean of the patch tokens'
        outputs (the [CLS] token still takes part in attention).
    input_dropout
        During training, each input value is zeroed with this probability (the others scaled by
        ``1 / (1 - input_dropout)``): an augmentation that shows the encoder thinned-out profiles,
        as a shallower sequencing of the same cell would give.
    """

    def __init__(
        self,
        layout: Mapping[str, np.ndarray],
        *,
        n_components: int,
        n_hidden: int,
        n_layers: int,
        n_heads: int,
        n_ff: int,
        dropout: float,
        n_output: int,
        pooling: Literal["cls", "mean"],
        input_dropout: float = 0.0,
    ):
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}.")
        self.pooling = pooling
        self.input_dropout = input_dropout
        patch_index = np.asarray(layout["patch_index"])
        self.n_features = len(layout["feature_names"])
        self.n_patches, self.patch_size = patch_index.shape
        self.n_components = n_components
        flat = patch_index.ravel()
        self.register_buffer("columns", torch.as_tensor(np.where(flat >= 0, flat, self.n_features)))
        feature_slot = np.zeros(self.n_features, dtype=np.int64)
        feature_slot[flat[flat >= 0]] = np.flatnonzero(flat >= 0)
        self.register_buffer("feature_slot", torch.as_tensor(feature_slot), persistent=False)
        self.register_buffer("patch_chromosome", torch.as_tensor(np.asarray(layout["patch_chromosome"])))
        self.register_buffer("position_features", _position_features(layout["patch_position"]))
        self.register_buffer("basis", torch.zeros(self.n_patches, self.patch_size, n_components))
        self.register_buffer("basis_offset", torch.zeros(self.n_patches, n_components))
        self.register_buffer("basis_scale", torch.ones(n_components))
        self.token_weight = nn.Parameter(torch.randn(self.n_patches, n_components, n_hidden) / math.sqrt(n_components))
        self.token_bias = nn.Parameter(torch.zeros(self.n_patches, n_hidden))
        self.chromosome_embedding = nn.Embedding(len(layout["chromosomes"]), n_hidden)
        nn.init.normal_(self.chromosome_embedding.weight, std=0.02)
        self.position_projection = nn.Linear(2 * N_POSITION_FREQUENCIES, n_hidden, bias=False)
        nn.init.normal_(self.position_projection.weight, std=0.02)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, n_hidden))
        self.blocks = nn.ModuleList(TransformerBlock(n_hidden, n_heads, n_ff, dropout) for _ in range(n_layers))
        self.output_norm = nn.LayerNorm(n_hidden)
        self.head = nn.Sequential(nn.Linear(n_hidden, n_hidden), nn.Tanh(), nn.Linear(n_hidden, n_output, bias=False))

    def set_basis(self, basis: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> None:
        """Fill the fixed projection: ``basis`` patches x patch_size x components, ``offset``, ``scale``."""
        self.basis.copy_(torch.as_tensor(basis, dtype=torch.float32))
        self.basis_offset.copy_(torch.as_tensor(offset, dtype=torch.float32))
        self.basis_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    def _patch_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Input dropout, then each patch's projection on the principal axes, ``(batch, n_patches, n_components)``.

        A sparse COO input is projected without densifying: its non-zero values are laid out as a
        sparse CSR matrix with one row per (cell, patch) and one column per patch slot, and that
        matrix times the basis (patch slots x components) gives every patch's scores in one sparse
        product (cost proportional to the non-zeros, not to batch x features), in float32 also
        under mixed precision. Input dropout only ever changes non-zero values, so on sparse input
        it is drawn for those alone, with the same distribution as on the dense input.
        """
        if x.is_sparse:
            x = x.coalesce()
            (cells, features), values = x.indices(), x.values()
            if self.training and self.input_dropout > 0:
                keep = torch.rand_like(values) >= self.input_dropout
                values = values * keep / (1.0 - self.input_dropout)
            slots = self.feature_slot[features]
            flat_basis = self.basis.view(-1, self.n_components)
            n_rows = x.shape[0] * self.n_patches
            rows = cells * self.n_patches + torch.div(slots, self.patch_size, rounding_mode="floor")
            entry = rows * flat_basis.shape[0] + slots  # CSR order: by row, then by column
            if not bool((entry[1:] > entry[:-1]).all()):  # features not in genomic order: sort
                order = torch.argsort(entry)
                rows, slots, values = rows[order], slots[order], values[order]
            row_starts = torch.zeros(n_rows + 1, dtype=torch.int64, device=x.device)
            row_starts[1:] = torch.bincount(rows, minlength=n_rows).cumsum(0)
            with warnings.catch_warnings():  # torch flags its sparse CSR layout as beta, once per process
                warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
                projection = torch.sparse_csr_tensor(
                    row_starts, slots, values.float(), (n_rows, flat_basis.shape[0]), check_invariants=False
                )
            with torch.autocast(x.device.type, enabled=False):
                scores = (projection @ flat_basis).view(x.shape[0], self.n_patches, self.n_components)
        else:
            x = F.dropout(x, self.input_dropout, self.training)
            padded = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)
            patches = padded.index_select(1, self.columns).view(x.shape[0], self.n_patches, self.patch_size)
            scores = torch.einsum("bcp,cpk->bck", patches, self.basis)
        return (scores - self.basis_offset) / self.basis_scale

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens with their position encoding, ``(batch, n_patches, n_hidden)``, after input dropout."""
        tokens = torch.einsum("bck,ckh->bch", self._patch_scores(x), self.token_weight) + self.token_bias
        position = self.chromosome_embedding(self.patch_chromosome) + self.position_projection(self.position_features)
        return tokens + position

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_features)`` input, dense or sparse COO -> L2-normalised ``(batch, n_output)`` embedding."""
        tokens = self.tokens(x)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        pooled = tokens[:, 0] if self.pooling == "cls" else tokens[:, 1:].mean(dim=1)
        return F.normalize(self.head(self.output_norm(pooled)), dim=-1)
