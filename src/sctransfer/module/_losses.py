"""Loss terms of scNCL and scCLIP, as plain functions of embedding batches (METHODS.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def projection_regularisation(embedding: torch.Tensor, *, with_variance: bool) -> torch.Tensor:
    """Projection regularisation of an embedding batch (adapted from scJoint's NNDR loss).

    ``center = mean |H|``; ``corr = mean |off-diagonal upper triangle of cov(H)|``;
    ``var = 1 / mean |H - mean(H)|``. The RNA batch gets ``center + corr``, the ATAC batch
    ``center + corr + var`` (``with_variance=True``): the asymmetry keeps the two modalities'
    spreads growing at the same pace.
    """
    center = embedding.abs().mean()
    centred = embedding - embedding.mean(dim=0, keepdim=True)
    cov = centred.T @ centred / max(embedding.shape[0] - 1, 1)
    rows, cols = torch.triu_indices(cov.shape[0], cov.shape[1], offset=1, device=cov.device)
    loss = center + cov[rows, cols].abs().mean()
    if with_variance:
        loss = loss + 1.0 / centred.abs().mean().clamp_min(1e-8)
    return loss


def feature_alignment(rna: torch.Tensor, atac: torch.Tensor, *, top_fraction: float = 0.8) -> torch.Tensor:
    """Feature alignment: pull each ATAC cell towards its most similar RNA cell of the batch.

    Partners are chosen on detached cosine similarities; only the ``top_fraction`` of ATAC cells
    with the most similar partners count. Returns ``-mean cosine`` of the kept pairs.
    """
    similarity = F.normalize(atac, dim=1) @ F.normalize(rna, dim=1).T
    best, partner = similarity.detach().max(dim=1)
    n_keep = max(1, int(round(top_fraction * atac.shape[0])))
    kept = torch.topk(best, n_keep).indices
    return -similarity[kept, partner[kept]].mean()


def neighbourhood_contrastive(anchors: torch.Tensor, positives: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between ATAC cells and one of their peak-space neighbours each.

    The ``2B`` embeddings (anchors then positives) are compared by cosine similarity divided by
    ``temperature``; each cell's positive is its pair, every other cell of the ``2B`` batch is a
    negative (the cell itself is excluded).
    """
    n = anchors.shape[0]
    z = F.normalize(torch.cat([anchors, positives]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def clip_loss(first: torch.Tensor, second: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric CLIP loss of a batch of paired cells.

    Row ``i`` of ``first`` and of ``second`` (L2-normalised embeddings) are the same cell: the
    positives lie on the diagonal of the ``N x N`` cosine-similarity matrix, scaled by
    ``logit_scale`` (the inverse temperature); every other cell of the batch is a negative. The
    cross-entropy is averaged over both directions (first -> second and second -> first).
    """
    logits = logit_scale * first @ second.T
    targets = torch.arange(first.shape[0], device=first.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def cross_view_contrastive(first: torch.Tensor, second: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """:func:`clip_loss` with a fixed temperature on embeddings that are not yet normalised."""
    return clip_loss(F.normalize(first, dim=1), F.normalize(second, dim=1), 1.0 / temperature)
