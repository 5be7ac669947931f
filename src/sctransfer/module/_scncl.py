"""The scNCL torch module: a shared encoder, a cell-type classifier and the four scNCL losses."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from sctransfer._constants import ATAC, PEAK_KEY, POSITIVE_KEY, RNA

from ._losses import cross_view_contrastive, feature_alignment, neighbourhood_contrastive, projection_regularisation


class SCNCLModule(BaseModuleClass):
    """Encoder, classifier and losses of scNCL (RNA -> ATAC label transfer).

    One encoder ``f`` embeds both the RNA cells and the gene activity of the ATAC cells (the
    same genes, in the same order); a linear classifier ``g`` on the embedding predicts the
    cell type. Per training step, with an RNA batch ``R`` (labelled), an ATAC batch ``A`` and
    one random peak-space neighbour ``A+`` of each ATAC cell::

        loss = CE(g(f(R)), y) + w_pr * (PR(f(R)) + PR_var(f(A)))
               + w_ncl * NCL(f(A), f(A+)) + w_fa * FA(f(R), f(A))
               [+ w_peak * XV(f_peak(P_A), stopgrad(f(A)))]

    ``CE`` is the cross-entropy on the RNA labels; ``PR`` the projection regularisation (mean
    absolute value plus mean absolute off-diagonal covariance of the embedding; ``PR_var`` adds
    the inverse of its spread); ``NCL`` a symmetric InfoNCE between each ATAC cell and its
    neighbour; ``FA`` feature alignment, which pulls ATAC cells towards their most similar RNA
    cell (Yan et al. 2023). ``XV``, used when the ATAC cells' peak view ``P_A`` is given, is a
    symmetric InfoNCE between the peak-view embedding and the (detached) gene-activity embedding
    of the same cells. Batches hold *encoder inputs*: the joint-PCA scores
    ``(genes - pca_mean) @ pca_components`` of the transformed genes (the model computes them
    once per cell, sparse, from these buffers), or the transformed genes themselves when
    ``n_pcs`` is ``None``. The only data-derived state of the module is that fixed joint-PCA
    input layer.

    Parameters
    ----------
    n_input
        Number of genes.
    n_labels
        Number of reference cell types.
    n_pcs
        Size of the fixed joint-PCA input layer: genes are centred with ``pca_mean`` and projected
        on ``pca_components`` (buffers the model fills from a PCA of the RNA and gene-activity
        cells together, saved with the weights) before the encoder. ``None``: the encoder reads
        the genes directly, as in the original scNCL.
    n_latent
        Embedding size.
    encoder
        ``"linear"``: one linear layer; ``"mlp"``: two layers with ReLU and dropout.
    n_hidden
        Hidden width of the MLP encoder.
    dropout
        Dropout of the MLP encoder.
    temperature
        Temperature of the neighbourhood contrastive loss.
    weight_ncl, weight_fa, weight_pr
        Weights of the NCL, feature-alignment and projection-regularisation terms.
    fa_top_fraction
        Share of ATAC cells (by similarity to their partner) used by feature alignment.
    fa_start_step
        Feature alignment is switched on from this training step (the embedding must first
        carry some type structure).
    n_peak_input
        Size of the ATAC cells' peak view (standardised LSI scores); 0 for none. With a peak view,
        a second linear encoder maps it to the embedding, trained to agree with the gene-activity
        embedding of the same cell (a cross-view contrastive loss against the detached gene
        embedding, weight ``weight_peak``), and the classifier is applied to both.
    weight_peak
        Weight of the cross-view loss.
    label_smoothing
        Label smoothing of the cross-entropy on RNA cells.
    """

    def __init__(
        self,
        n_input: int,
        n_labels: int,
        *,
        n_pcs: int | None = 30,
        n_latent: int = 64,
        encoder: Literal["linear", "mlp"] = "linear",
        n_hidden: int = 256,
        dropout: float = 0.2,
        temperature: float = 0.2,
        weight_ncl: float = 1.0,
        weight_fa: float = 0.05,
        weight_pr: float = 0.1,
        fa_top_fraction: float = 0.8,
        fa_start_step: int = 100,
        n_peak_input: int = 0,
        weight_peak: float = 1.0,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.n_pcs = n_pcs
        if n_pcs is not None:
            self.register_buffer("pca_mean", torch.zeros(n_input))
            self.register_buffer("pca_components", torch.zeros(n_input, n_pcs))
        n_encoder_input = n_input if n_pcs is None else n_pcs
        if encoder == "linear":
            self.encoder = nn.Linear(n_encoder_input, n_latent)
        elif encoder == "mlp":
            self.encoder = nn.Sequential(
                nn.Linear(n_encoder_input, n_hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(n_hidden, n_latent)
            )
        else:
            raise ValueError(f"encoder must be 'linear' or 'mlp', got {encoder!r}.")
        self.classifier = nn.Linear(n_latent, n_labels)
        self.peak_encoder = nn.Linear(n_peak_input, n_latent) if n_peak_input > 0 else None
        if encoder == "linear" and n_pcs is not None:
            self._start_from_the_inputs()
        self.weight_peak = weight_peak
        self.temperature = temperature
        self.weight_ncl = weight_ncl
        self.weight_fa = weight_fa
        self.weight_pr = weight_pr
        self.fa_top_fraction = fa_top_fraction
        self.fa_start_step = fa_start_step
        self.label_smoothing = label_smoothing

    @torch.no_grad()
    def _start_from_the_inputs(self) -> None:
        """Deterministic start of the linear encoders and the classifier (no random numbers drawn).

        Each linear encoder starts as the identity on its inputs (the joint-PCA scores, the peak
        view's LSI scores; zero rows for embedding dimensions beyond the inputs) and the classifier
        at zero, so that training starts from the joint PCA itself, whatever the seed: a random
        start of these layers was the main reason labels changed with ``random_state``
        (:doc:`/benchmarks`).
        """
        layers = [self.encoder] + ([self.peak_encoder] if self.peak_encoder is not None else [])
        for layer in layers:
            layer.weight.zero_()
            n = min(layer.weight.shape)
            layer.weight[:n, :n] = torch.eye(n)
            layer.bias.zero_()
        self.classifier.weight.zero_()
        self.classifier.bias.zero_()

    def set_input_pca(self, mean: torch.Tensor, components: torch.Tensor) -> None:
        """Fill the fixed joint-PCA input layer (``components``: genes x ``n_pcs``)."""
        self.pca_mean.copy_(mean)
        self.pca_components.copy_(components)

    def _get_inference_input(self, tensors: dict) -> dict[str, torch.Tensor | None]:
        return {
            "rna_x": tensors[RNA][REGISTRY_KEYS.X_KEY],
            "atac_x": tensors[ATAC][REGISTRY_KEYS.X_KEY],
            "atac_positive_x": tensors[ATAC][POSITIVE_KEY],
            "atac_peaks": tensors[ATAC].get(PEAK_KEY),
        }

    @auto_move_data
    def inference(
        self,
        rna_x: torch.Tensor,
        atac_x: torch.Tensor,
        atac_positive_x: torch.Tensor,
        atac_peaks: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor | None]:
        """Embed the three batches of encoder inputs with the shared encoder (one pass), and the peak view if given."""
        n_rna, n_atac = rna_x.shape[0], atac_x.shape[0]
        z = self.encoder(torch.cat([rna_x, atac_x, atac_positive_x]))
        z_peaks = self.peak_encoder(atac_peaks) if self.peak_encoder is not None and atac_peaks is not None else None
        return {
            "z_rna": z[:n_rna],
            "z_atac": z[n_rna : n_rna + n_atac],
            "z_positive": z[n_rna + n_atac :],
            "z_peaks": z_peaks,
        }

    def _get_generative_input(self, tensors: dict, inference_outputs: dict) -> dict[str, torch.Tensor]:
        return {"z_rna": inference_outputs["z_rna"]}

    @auto_move_data
    def generative(self, z_rna: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cell-type logits of the RNA cells."""
        return {"logits_rna": self.classifier(z_rna)}

    def loss(
        self, tensors: dict, inference_outputs: dict, generative_outputs: dict, step: int | None = None
    ) -> LossOutput:
        """The scNCL objective; each term is reported in ``extra_metrics`` (so in ``model.history``)."""
        z_rna, z_atac, z_pos = (inference_outputs[k] for k in ("z_rna", "z_atac", "z_positive"))
        labels = tensors[RNA][REGISTRY_KEYS.LABELS_KEY].reshape(-1).long().to(z_rna.device)
        ce = F.cross_entropy(generative_outputs["logits_rna"], labels, label_smoothing=self.label_smoothing)
        pr = projection_regularisation(z_rna, with_variance=False) + projection_regularisation(
            z_atac, with_variance=True
        )
        ncl = neighbourhood_contrastive(z_atac, z_pos, temperature=self.temperature)
        fa_on = step is None or step >= self.fa_start_step
        fa = feature_alignment(z_rna, z_atac, top_fraction=self.fa_top_fraction) if fa_on else ce.new_zeros(())
        total = ce + self.weight_pr * pr + self.weight_ncl * ncl + self.weight_fa * fa
        metrics = {"loss_ce": ce.detach(), "loss_pr": pr.detach(), "loss_ncl": ncl.detach(), "loss_fa": fa.detach()}
        z_peaks = inference_outputs.get("z_peaks")
        if z_peaks is not None:
            cross_view = cross_view_contrastive(z_peaks, z_atac.detach(), temperature=self.temperature)
            total = total + self.weight_peak * cross_view
            metrics["loss_peak_view"] = cross_view.detach()
        return LossOutput(loss=total, n_obs_minibatch=z_rna.shape[0] + z_atac.shape[0], extra_metrics=metrics)

    @torch.inference_mode()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding of a batch of encoder inputs."""
        return self.encoder(x)

    @torch.inference_mode()
    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """Class probabilities of an embedding batch."""
        return F.softmax(self.classifier(z), dim=-1)

    @torch.inference_mode()
    def predict_proba_peaks(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities from the peak view (standardised LSI scores) of ATAC cells."""
        return self.classify(self.peak_encoder(x))
