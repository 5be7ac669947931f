"""The pieces of scCLIP against hand-computed cases: loss, attention, tokens, input scaling, schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from sctransfer.model._scclip_input import patch_basis
from sctransfer.model._training_plan import StepTrainingPlan
from sctransfer.model._transform import InputTransform
from sctransfer.module import SCCLIPModule
from sctransfer.module._losses import clip_loss
from sctransfer.nn import FeatureLayout, GenomicPatchEncoder, TransformerBlock
from sctransfer.pp._lsi import tfidf


def _layout(n_features: int = 7, patch_size: int = 2) -> FeatureLayout:
    """Features on two chromosomes, given in shuffled order."""
    import pandas as pd

    chroms = ["chr2", "chr1", "chr1", "chr2", "chr1", "chr1", "chr2"][:n_features]
    starts = [500, 300, 100, 100, 700, 500, 900][:n_features]
    coords = pd.DataFrame(
        {"chrom": chroms, "start": starts, "end": [s + 50 for s in starts]}, index=[f"f{i}" for i in range(n_features)]
    )
    return FeatureLayout.from_coordinates(coords.index, coords, patch_size=patch_size)


def test_clip_loss_matches_hand_computation():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [math.sqrt(0.5), math.sqrt(0.5)]])
    scale = 2.0
    # similarities: [[1, s], [0, s]] with s = sqrt(0.5); logits = 2 * that
    s = math.sqrt(0.5)
    rows = [
        -math.log(math.exp(2) / (math.exp(2) + math.exp(2 * s))),
        -math.log(math.exp(2 * s) / (1 + math.exp(2 * s))),
    ]
    cols = [
        -math.log(math.exp(2) / (math.exp(2) + 1)),
        -math.log(math.exp(2 * s) / (math.exp(2 * s) + math.exp(2 * s))),
    ]
    expected = 0.5 * (np.mean(rows) + np.mean(cols))
    assert clip_loss(a, b, scale).item() == pytest.approx(expected, rel=1e-6)
    # perfectly separated pairs at a high scale: loss near 0; swapped pairs: large
    assert clip_loss(a, a, 100.0).item() < 1e-6
    assert clip_loss(a, a.flip(0), 100.0).item() > 50


def test_transformer_block_attention_is_scaled_dot_product():
    torch.manual_seed(0)
    block = TransformerBlock(n_hidden=8, n_heads=2, n_ff=16, dropout=0.0).eval()
    x = torch.randn(3, 5, 8)
    # the same block written out by hand
    h = block.attention_norm(x)
    q, k, v = block.qkv(h).view(3, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4), dim=-1)
    attended = (weights @ v).transpose(1, 2).reshape(3, 5, 8)
    y = x + block.attention_out(attended)
    y = y + block.feed_forward(block.feed_forward_norm(y))
    torch.testing.assert_close(block(x), y, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        TransformerBlock(n_hidden=10, n_heads=3, n_ff=8, dropout=0.0)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_tokens_are_patch_projections_and_padding_is_ignored(pooling):
    layout = _layout()
    size = {"n_components": 2, "n_hidden": 4, "n_layers": 1, "n_heads": 2, "n_ff": 8, "dropout": 0.0, "n_output": 3}
    encoder = GenomicPatchEncoder(layout.to_dict(), **size, pooling=pooling).eval()
    basis = torch.randn(layout.n_patches, layout.patch_size, 2)
    encoder.set_basis(basis.numpy(), np.zeros((layout.n_patches, 2)), np.ones(2))
    x = torch.randn(2, layout.n_features)
    patches = layout.gather(x)
    expected_scores = torch.einsum("bcp,cpk->bck", patches, basis)
    expected = torch.einsum("bck,ckh->bch", expected_scores, encoder.token_weight) + encoder.token_bias
    position = encoder.tokens(torch.zeros(1, layout.n_features))[0] - encoder.token_bias
    torch.testing.assert_close(encoder.tokens(x), expected + position, rtol=1e-5, atol=1e-5)
    # padding slots never reach the tokens, whatever the basis holds there
    padded = torch.as_tensor(layout.patch_index < 0)
    basis[padded] = 1e3
    encoder.set_basis(basis.numpy(), np.zeros((layout.n_patches, 2)), np.ones(2))
    torch.testing.assert_close(encoder.tokens(x), expected + position, rtol=1e-5, atol=1e-5)
    z = encoder(x)
    assert z.shape == (2, 3)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(2))
    # the pooled vector: the [CLS] output or the mean of the patch outputs
    tokens = torch.cat([encoder.cls_token.expand(2, -1, -1), encoder.tokens(x)], dim=1)
    for block in encoder.blocks:
        tokens = block(tokens)
    pooled = tokens[:, 0] if pooling == "cls" else tokens[:, 1:].mean(dim=1)
    torch.testing.assert_close(z, F.normalize(encoder.head(encoder.output_norm(pooled)), dim=1))
    with pytest.raises(ValueError, match="pooling"):
        GenomicPatchEncoder(layout.to_dict(), **size, pooling="max")


def test_sparse_input_gives_the_dense_result_and_drops_only_non_zeros():
    layout = _layout()
    size = {"n_components": 2, "n_hidden": 4, "n_layers": 1, "n_heads": 2, "n_ff": 8, "dropout": 0.0, "n_output": 3}
    encoder = GenomicPatchEncoder(layout.to_dict(), **size, pooling="mean", input_dropout=0.5).eval()
    encoder.set_basis(
        np.random.default_rng(0).normal(size=(layout.n_patches, layout.patch_size, 2)),
        np.ones((layout.n_patches, 2)),
        np.full(2, 2.0),
    )
    dense = torch.tensor([[0.0, 1.5, 0.0, 0.0, 2.0, 0.0, 0.5], [3.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
    sparse = dense.to_sparse()
    torch.testing.assert_close(encoder.tokens(sparse), encoder.tokens(dense), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(encoder(sparse), encoder(dense), rtol=1e-5, atol=1e-5)
    # training: non-zeros are kept with probability 1 - p and scaled by 1 / (1 - p), so the mean
    # projection is unchanged; zeros stay zero, so an empty row is never touched
    batch = torch.cat([torch.ones(3000, layout.n_features), torch.zeros(1, layout.n_features)]).to_sparse()
    expected = encoder._patch_scores(batch)
    encoder.train()
    torch.manual_seed(0)
    scores = encoder._patch_scores(batch)
    assert scores[:-1].std(dim=0).min() > 0.05  # values were dropped at random
    torch.testing.assert_close(scores[:-1].mean(dim=0), expected[0], rtol=0, atol=0.1)
    torch.testing.assert_close(scores[-1], expected[-1])


@pytest.mark.parametrize("genomic_order", [True, False])
def test_sparse_projection_equals_dense_whatever_the_feature_order(genomic_order):
    """The sparse path sorts its entries only when the columns are not in genomic order: both give the dense scores."""
    import pandas as pd

    rng = np.random.default_rng(3)
    n = 40
    chroms = np.repeat(["chr1", "chr2", "chr3"], [15, 15, 10])
    starts = np.concatenate([np.arange(15) * 1000, np.arange(15) * 1000, np.arange(10) * 1000])
    order = np.arange(n) if genomic_order else rng.permutation(n)
    coords = pd.DataFrame({"chrom": chroms[order], "start": starts[order], "end": starts[order] + 100})
    coords.index = [f"p{i}" for i in range(n)]
    layout = FeatureLayout.from_coordinates(coords.index, coords, patch_size=4)
    encoder = GenomicPatchEncoder(
        layout.to_dict(),
        n_components=3,
        n_hidden=4,
        n_layers=1,
        n_heads=2,
        n_ff=8,
        dropout=0.0,
        n_output=3,
        pooling="cls",
    ).eval()
    encoder.set_basis(
        rng.normal(size=(layout.n_patches, layout.patch_size, 3)), np.zeros((layout.n_patches, 3)), np.ones(3)
    )
    dense = torch.as_tensor(sp.random(25, n, density=0.3, random_state=4, dtype=np.float32).toarray())
    dense[5] = 0.0  # an empty cell
    torch.testing.assert_close(
        encoder._patch_scores(dense.to_sparse()), encoder._patch_scores(dense), rtol=1e-5, atol=1e-5
    )


def test_patch_basis_tokens_sum_to_principal_component_scores():
    rng = np.random.default_rng(0)
    layout = _layout()
    counts = sp.random(60, layout.n_features, density=0.4, random_state=1, format="csr", dtype=np.float32)
    counts.data = rng.integers(1, 5, size=counts.nnz).astype(np.float32)
    basis, offset, scale = patch_basis(counts, layout.padded_columns(), layout.n_patches, 3)
    assert basis.shape == (layout.n_patches, layout.patch_size, 3)
    patches = layout.gather(torch.from_numpy(counts.toarray())).numpy()
    tokens = (np.einsum("bcp,cpk->bck", patches, basis) - offset) / scale
    summed = tokens.sum(axis=1) * scale
    centred = counts.toarray() - counts.toarray().mean(axis=0)
    _, _, vt = np.linalg.svd(counts.toarray(), full_matrices=False)
    np.testing.assert_allclose(np.abs(summed), np.abs(centred @ vt[:3].T), rtol=1e-3, atol=1e-3)
    # tokens have about unit scale: the scores' standard deviation is sqrt(n_patches) * scale
    np.testing.assert_allclose(summed.std(axis=0), scale * np.sqrt(layout.n_patches), rtol=1e-4)


def test_feature_scaling_log_and_tfidf():
    counts = sp.csr_matrix(np.array([[1, 0, 3], [2, 2, 0], [0, 0, 5]], dtype=np.float32))
    log = InputTransform.fit(counts, name="max_scaled_log")
    expected = np.log1p(counts.toarray() / counts.toarray().sum(axis=1, keepdims=True) * 1e4)
    np.testing.assert_allclose(log.sparse(counts).toarray(), expected / expected.max(axis=0), rtol=1e-5)
    assert sp.issparse(log.sparse(counts)) and log.sparse(counts).nnz == counts.nnz
    peaks = InputTransform.fit(counts, name="max_scaled_tfidf")
    raw = tfidf(counts).toarray()
    np.testing.assert_allclose(peaks.sparse(counts).toarray(), raw / raw.max(axis=0), rtol=1e-5)
    # new cells are scaled with the training statistics, not their own
    other = sp.csr_matrix(np.array([[0, 1, 1]], dtype=np.float32))
    np.testing.assert_allclose(peaks.sparse(other).toarray(), tfidf(other, idf=peaks.idf).toarray() / peaks.feature_max)
    # the dense and decomposed forms agree with the sparse one
    sparse, offset = peaks.decomposed(other)
    np.testing.assert_array_equal(offset, 0)
    np.testing.assert_array_equal(peaks(other), sparse.toarray())
    with pytest.raises(ValueError, match="must be one of"):
        InputTransform.fit(counts, name="tfidf")


def test_cosine_schedule_warms_up_then_decays():
    layout = _layout().to_dict()
    plan = StepTrainingPlan(
        SCCLIPModule(layout, layout, n_components=2, n_hidden=4, n_layers=1, n_heads=2, n_ff=8),
        optimizer="adamw",
        lr=1e-3,
        weight_decay=0.05,
        warmup_steps=10,
        schedule="cosine",
        max_steps=100,
    )
    factors = [plan._rate_factor(step) for step in range(101)]
    assert factors[0] == pytest.approx(0.1 * 0.5 * (1 + math.cos(0)))
    assert np.argmax(factors) == 9
    assert factors[100] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False))


def test_module_loss_reports_temperature():
    layout = _layout().to_dict()
    module = SCCLIPModule(layout, layout, n_components=2, n_hidden=4, n_layers=1, n_heads=2, n_ff=8, max_logit_scale=5)
    assert 1.0 / module.logit_scale.item() == pytest.approx(0.2)  # 1/0.07 is clamped to 5
    x = torch.rand(4, 7)
    _, _, out = module({"rna": x, "atac": x})
    assert set(out.extra_metrics) == {"loss_clip", "temperature"}
    assert out.extra_metrics["temperature"].item() == pytest.approx(0.2)
    assert torch.isfinite(out.loss)
    z = module.embed(x, "rna")
    torch.testing.assert_close(z, F.normalize(z, dim=1))


def test_ensemble_loss_and_embedding_are_the_members_mean():
    layout = _layout().to_dict()
    torch.manual_seed(0)
    size = {"n_components": 2, "n_hidden": 4, "n_layers": 1, "n_heads": 2, "n_ff": 8}
    module = SCCLIPModule(layout, layout, **size, n_output=3, n_members=2)
    module.eval()
    rna, atac = torch.rand(5, 7), torch.rand(5, 7)
    _, _, out = module({"rna": rna, "atac": atac})
    members = [(member["rna"](rna), member["atac"](atac)) for member in module.members]
    assert not torch.allclose(members[0][0], members[1][0])  # initialised differently
    expected = (clip_loss(*members[0], module.logit_scale) + clip_loss(*members[1], module.logit_scale)) / 2
    torch.testing.assert_close(out.loss, expected)
    z_rna, z_atac = module.embed(rna, "rna"), module.embed(atac, "atac")
    assert z_rna.shape == (5, 6)
    torch.testing.assert_close(z_rna.norm(dim=1), torch.ones(5))
    # the joint embedding's cosine similarity is the mean of the members' similarities
    member_mean = (members[0][0] @ members[0][1].T + members[1][0] @ members[1][1].T) / 2
    torch.testing.assert_close(z_rna @ z_atac.T, member_mean)
    with pytest.raises(ValueError, match="n_members"):
        SCCLIPModule(layout, layout, **size, n_members=0)
