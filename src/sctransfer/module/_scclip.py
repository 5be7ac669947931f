"""The scCLIP torch module: one genomic-patch transformer per modality and the CLIP loss."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import numpy as np
import torch
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from sctransfer._constants import ATAC, RNA
from sctransfer.nn import GenomicPatchEncoder

from ._losses import clip_loss


class SCCLIPModule(BaseModuleClass):
    """Genomic-patch transformers (one for RNA, one for ATAC) trained with the CLIP loss on paired cells.

    For a batch of ``N`` cells measured in both modalities, the loss is the symmetric
    cross-entropy of the ``N x N`` cosine similarities of their embeddings times a learned logit
    scale (the inverse temperature, clamped to at most ``max_logit_scale``), positives on the
    diagonal (Radford et al. 2021; Xiong et al. 2023).

    With ``n_members > 1`` the module is an ensemble of that many such encoder pairs, initialised
    differently and trained side by side on the same batches, each with its own CLIP loss (the
    reported loss is the members' mean; the temperature is shared). The joint embedding is the members'
    embeddings concatenated and divided by ``sqrt(n_members)``: still of unit length, and the
    cosine similarity of two cells is the mean of the members' similarities.

    Parameters
    ----------
    rna_layout, atac_layout
        ``FeatureLayout.to_dict()`` of the genes and of the peaks.
    n_components
        Principal axes in the fixed part of each token projection (see :class:`~sctransfer.nn.GenomicPatchEncoder`).
    n_hidden, n_layers, n_heads, n_ff, dropout
        Size of each transformer.
    n_output
        Size of the joint embedding.
    pooling, input_dropout
        How each encoder summarises its tokens, and the input augmentation (see
        :class:`~sctransfer.nn.GenomicPatchEncoder`). How these defaults and the others compare with
        their alternatives is on the :doc:`/benchmarks` page.
    initial_temperature
        Starting temperature of the contrastive loss.
    max_logit_scale
        Upper bound of the learned inverse temperature.
    n_members
        Encoder pairs in the ensemble; the joint embedding has ``n_members * n_output`` dimensions.
    """

    def __init__(
        self,
        rna_layout: Mapping[str, np.ndarray],
        atac_layout: Mapping[str, np.ndarray],
        *,
        n_components: int = 50,
        n_hidden: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        n_ff: int = 128,
        dropout: float = 0.1,
        n_output: int = 128,
        pooling: Literal["cls", "mean"] = "mean",
        input_dropout: float = 0.3,
        initial_temperature: float = 0.07,
        max_logit_scale: float = 100.0,
        n_members: int = 1,
    ):
        super().__init__()
        if n_members < 1:
            raise ValueError(f"n_members must be at least 1, got {n_members}.")
        size = {
            "n_components": n_components,
            "n_hidden": n_hidden,
            "n_layers": n_layers,
            "n_heads": n_heads,
            "n_ff": n_ff,
            "dropout": dropout,
            "n_output": n_output,
            "pooling": pooling,
            "input_dropout": input_dropout,
        }
        self.members = nn.ModuleList(
            nn.ModuleDict(
                {RNA: GenomicPatchEncoder(rna_layout, **size), ATAC: GenomicPatchEncoder(atac_layout, **size)}
            )
            for _ in range(n_members)
        )
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / initial_temperature)))
        self.max_log_logit_scale = math.log(max_logit_scale)

    @property
    def logit_scale(self) -> torch.Tensor:
        """The learned inverse temperature, clamped."""
        return self.log_logit_scale.clamp(max=self.max_log_logit_scale).exp()

    @property
    def n_members(self) -> int:
        """Encoder pairs in the ensemble."""
        return len(self.members)

    def set_basis(self, modality: str, basis: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> None:
        """Fill every member's fixed token projection of one modality.

        See :meth:`~sctransfer.nn.GenomicPatchEncoder.set_basis`.
        """
        for member in self.members:
            member[modality].set_basis(basis, offset, scale)

    def _encode(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """Each member's embedding of a batch, ``(n_members, batch, n_output)``."""
        return torch.stack([member[modality](x) for member in self.members])

    def _get_inference_input(self, tensors: dict) -> dict[str, torch.Tensor]:
        return {"rna_x": tensors[RNA], "atac_x": tensors[ATAC]}

    @auto_move_data
    def inference(self, rna_x: torch.Tensor, atac_x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each member's embeddings of the RNA and ATAC batches, ``(n_members, batch, n_output)``.

        Row ``i`` of both batches is the same cell.
        """
        return {"z_rna": self._encode(rna_x, RNA), "z_atac": self._encode(atac_x, ATAC)}

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict:
        return {}

    def generative(self) -> dict:
        """ScCLIP has no generative part."""
        return {}

    def loss(self, tensors: dict, inference_outputs: dict, generative_outputs: dict) -> LossOutput:
        """CLIP loss, averaged over the members; the temperature goes to ``extra_metrics`` (so ``model.history``)."""
        z_rna, z_atac = inference_outputs["z_rna"].float(), inference_outputs["z_atac"].float()
        logit_scale = self.logit_scale
        loss = torch.stack([clip_loss(rna, atac, logit_scale) for rna, atac in zip(z_rna, z_atac, strict=True)]).mean()
        return LossOutput(
            loss=loss,
            n_obs_minibatch=z_rna.shape[1],
            extra_metrics={"loss_clip": loss.detach(), "temperature": 1.0 / logit_scale.detach()},
        )

    @torch.inference_mode()
    def embed(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """Joint embedding of a scaled batch (dense or sparse COO) of one modality (``"rna"`` or ``"atac"``).

        The members' embeddings side by side, divided by ``sqrt(n_members)``: ``(batch, n_members * n_output)``,
        rows of unit length.
        """
        z = self._encode(x, modality).float()
        return z.permute(1, 0, 2).reshape(x.shape[0], -1) / math.sqrt(self.n_members)
