"""Building blocks of the SCNCL model: input transformation, streamed joint PCA, peak view, losses."""

import numpy as np
import scipy.sparse as sp
import torch

from sctransfer.model._peak_view import PeakView
from sctransfer.model._scncl_inputs import joint_pca
from sctransfer.model._transform import InputTransform
from sctransfer.module._losses import cross_view_contrastive, neighbourhood_contrastive, projection_regularisation


class _Rows:
    """Transformed rows given as a constant offset plus a sparse part, as the model's data decomposes them."""

    def __init__(self, x):
        self.x, self.n_cells = x, len(x)
        self.offset = np.median(x, axis=0).astype(np.float32)

    def decomposed(self, rows):
        return sp.csr_matrix(self.x[rows] - self.offset), self.offset


def test_streamed_joint_pca_matches_exact_svd():
    rng = np.random.default_rng(0)
    low_rank = (rng.standard_normal((3000, 40)) * np.exp(-np.arange(40) / 5)) @ rng.standard_normal((40, 300))
    a = (low_rank + 0.05 * rng.standard_normal((3000, 300))).astype(np.float32)
    b = a[:1500] + 1.0
    mean, components = joint_pca([_Rows(a), _Rows(b)], 10, max_cells=5000)
    stacked = np.vstack([a, b]).astype(np.float64)
    np.testing.assert_allclose(mean, stacked.mean(axis=0), rtol=1e-5, atol=1e-5)
    _, _, vt = np.linalg.svd(stacked - stacked.mean(axis=0), full_matrices=False)
    unit = components / np.linalg.norm(components, axis=0)
    np.testing.assert_allclose(np.abs((unit * vt[:10].T).sum(axis=0)), 1.0, atol=1e-6)
    assert abs(((stacked - mean) @ components[:, 0]).std() - 1.0) < 1e-6


def test_joint_pca_caps_cells_per_data_set():
    rng = np.random.default_rng(1)
    big, small = rng.standard_normal((5000, 20)).astype(np.float32), rng.standard_normal((100, 20)).astype(np.float32)
    calls = []

    class Counting(_Rows):
        def decomposed(self, rows):
            calls.append(len(rows))
            return super().decomposed(rows)

    joint_pca([Counting(big), Counting(small)], 3, max_cells=500, n_power_iterations=0)
    assert calls == [500, 100]  # each data set's sample is read once


def test_input_transform_standardises_per_gene():
    counts = sp.csr_matrix(np.array([[1, 0, 3], [2, 2, 0], [0, 1, 1], [4, 0, 0]], dtype=np.float32))
    transform = InputTransform.fit(counts)
    dense = transform(counts)
    np.testing.assert_allclose(dense.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(dense.std(axis=0), 1.0, atol=1e-4)
    clipped = InputTransform.fit(counts, clip=0.8)
    for each in (transform, clipped, InputTransform.fit(counts, name="log"), InputTransform.fit(counts, name="binary")):
        sparse, offset = each.decomposed(counts)
        assert sp.issparse(sparse) and sparse.nnz <= counts.nnz
        np.testing.assert_allclose(offset + sparse.toarray(), each(counts), atol=1e-6)
    binary = InputTransform.fit(counts, name="binary")(counts)
    np.testing.assert_array_equal(binary, counts.toarray() > 0)


def test_peak_view_folds_in_the_training_cells():
    rng = np.random.default_rng(2)
    counts = sp.random(300, 400, density=0.05, random_state=3, format="csr", dtype=np.float32)
    counts.data[:] = rng.integers(1, 3, counts.nnz)
    names = np.array([f"chr1:{i * 1000}-{i * 1000 + 500}" for i in range(400)])
    view, fitted = PeakView.fit_transform(counts, names, n_components=11)
    scores = view.transform(counts, names)
    assert scores.shape == (300, 10)
    np.testing.assert_allclose(fitted, scores, atol=1e-5)
    np.testing.assert_allclose(scores.mean(axis=0), 0.0, atol=1e-4)
    # the same cells with their peaks in another order project identically
    order = rng.permutation(400)
    np.testing.assert_allclose(view.transform(counts[:, order], names[order]), scores, atol=1e-4)
    # too few shared peaks: the view is not used
    assert view.transform(counts[:, :100], names[:100]) is None


def test_losses_hand_checked():
    h = torch.tensor([[1.0, -1.0], [3.0, 1.0]])
    # center = mean|H| = 1.5; cov off-diagonal = 2.0 (centred rows +-[1, 1]); var term = 1 / mean|H - mean| = 1
    assert torch.isclose(projection_regularisation(h, with_variance=False), torch.tensor(3.5))
    assert torch.isclose(projection_regularisation(h, with_variance=True), torch.tensor(4.5))
    z = torch.eye(4)
    aligned = cross_view_contrastive(z, z, temperature=0.1)
    shuffled = cross_view_contrastive(z, z[[1, 0, 3, 2]], temperature=0.1)
    assert aligned < 0.01 < shuffled
    assert neighbourhood_contrastive(z[:2], z[:2], temperature=0.1) < neighbourhood_contrastive(
        z[:2], z[2:], temperature=0.1
    )


def test_self_training_follows_the_peak_space_clusters():
    """Unsure cells whose peaks sit in the other type's cluster are moved there; sure ones stay; rows sum to one."""
    from sctransfer.model._prediction import self_trained_probabilities

    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    truth = np.repeat([0, 1], 100)
    peaks = centres[truth] + rng.standard_normal((200, 3))
    proba = np.where(truth[:, None] == 0, [0.8, 0.2], [0.2, 0.8])
    unsure = np.arange(0, 100, 10)  # type-0 cells the ensemble leans (weakly) to call type 1
    proba[unsure] = [0.45, 0.55]
    refined = self_trained_probabilities(proba, peaks)
    assert refined.dtype == np.float32 and refined.shape == proba.shape
    np.testing.assert_allclose(refined.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(refined.argmax(axis=1), truth)  # the unsure cells follow their cluster
    sure = np.setdiff1d(np.arange(200), unsure)
    assert (refined[sure].max(axis=1) > proba[sure].max(axis=1)).all()  # agreeing evidence raises the confidence
    np.testing.assert_array_equal(refined, self_trained_probabilities(proba, peaks))
    # nothing to learn from: a single pseudo-label, or too few cells for the folds
    one_type = np.tile([0.3, 0.7], (200, 1))
    np.testing.assert_allclose(self_trained_probabilities(one_type, peaks), one_type, rtol=1e-6)
    np.testing.assert_allclose(self_trained_probabilities(proba[:8], peaks[:8]), proba[:8], rtol=1e-6)


def _three_clusters(rng, sizes=(100, 100, 40), third=(0.0, 0.0, 5.0)):
    """Peaks of three clusters (centres: the first two axes and ``third``) and the cluster of each cell."""
    cluster = np.repeat(np.arange(3), sizes)
    centres = np.array([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], third])
    return centres[cluster] + rng.standard_normal((len(cluster), 3)), cluster


def test_self_training_learns_nothing_from_novel_cells():
    """A cluster of a type missing from the reference, leaning weakly to a known type, is not made confident."""
    from sctransfer.model._prediction import self_trained_probabilities

    # cluster 2: a novel type between the two known ones, weakly called type 0 by the ensemble (confidence 0.55)
    peaks, cluster = _three_clusters(np.random.default_rng(2), third=(3.5, 3.5, 2.5))
    proba = np.array([[0.8, 0.2], [0.2, 0.8], [0.55, 0.45]])[cluster]
    novel = cluster == 2
    flagged = self_trained_probabilities(proba, peaks, novel=novel)
    unflagged = self_trained_probabilities(proba, peaks)
    # learning the novel cells' own pseudo-labels makes them confident (0.80); flagged, they teach nothing (0.64)
    assert unflagged[novel].max(axis=1).mean() > 0.75
    assert flagged[novel].max(axis=1).mean() < 0.7
    # the known clusters are refined as without novel cells
    np.testing.assert_array_equal(flagged[~novel].argmax(axis=1), cluster[~novel])
    assert (flagged[~novel].max(axis=1) > proba[~novel].max(axis=1)).all()


def test_self_training_falls_back_when_too_few_cells_of_a_type():
    """Types with fewer than SELF_TRAINING_MIN_CELLS pseudo-labels are not learned (neutral, not suppressed);
    a query of one type (plus a few stray calls) keeps the ensemble's probabilities."""
    from sctransfer.model._prediction import SELF_TRAINING_MIN_CELLS, self_trained_probabilities

    rng = np.random.default_rng(3)
    peaks, cluster = _three_clusters(rng, sizes=(100, 100, SELF_TRAINING_MIN_CELLS - 1))
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])[cluster]
    refined = self_trained_probabilities(proba, peaks)
    rare = cluster == 2
    np.testing.assert_array_equal(refined.argmax(axis=1), cluster)  # the rare type keeps its cells
    assert refined[rare, 2].min() > 0.5
    # one type and a few stray calls of another: nothing is learned, the ensemble is returned
    one_type = np.tile([0.6, 0.4], (200, 1))
    one_type[: SELF_TRAINING_MIN_CELLS - 1] = [0.4, 0.6]
    np.testing.assert_allclose(self_trained_probabilities(one_type, peaks[:200]), one_type, rtol=1e-6)


def test_self_training_with_cell_names_does_not_depend_on_the_order_of_the_cells():
    from sctransfer.model._prediction import self_trained_probabilities

    rng = np.random.default_rng(1)
    truth = np.repeat([0, 1, 2], 60)
    peaks = np.eye(3)[truth] * 4 + rng.standard_normal((180, 3))
    proba = np.full((180, 3), 0.2)
    proba[np.arange(180), truth] = 0.6
    proba[::7] = [0.34, 0.33, 0.33]  # unsure cells
    names = np.array([f"cell{i}" for i in range(180)])
    refined = self_trained_probabilities(proba, peaks, cell_names=names)
    order = rng.permutation(180)
    shuffled = self_trained_probabilities(proba[order], peaks[order], cell_names=names[order])
    np.testing.assert_allclose(shuffled, refined[order], atol=1e-5)
    np.testing.assert_allclose(refined.sum(axis=1), 1.0, atol=1e-6)


def test_linear_encoder_starts_from_its_inputs_whatever_the_seed():
    from sctransfer.module import SCNCLModule

    starts = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        starts.append(SCNCLModule(n_input=50, n_labels=3, n_pcs=10, n_latent=16, n_peak_input=20))
    first, second = starts
    for name, value in first.state_dict().items():
        torch.testing.assert_close(value, second.state_dict()[name], msg=name)
    expected = torch.zeros(16, 10)
    expected[:10, :10] = torch.eye(10)
    torch.testing.assert_close(first.encoder.weight, expected)
    torch.testing.assert_close(first.peak_encoder.weight, torch.eye(16, 20))
    assert not first.classifier.weight.any() and not first.classifier.bias.any() and not first.encoder.bias.any()
    # the MLP encoder and the gene input (n_pcs=None) keep a random start
    torch.manual_seed(0)
    mlp = SCNCLModule(n_input=50, n_labels=3, n_pcs=10, encoder="mlp")
    genes = SCNCLModule(n_input=50, n_labels=3, n_pcs=None, n_latent=16)
    assert mlp.classifier.weight.any() and genes.classifier.weight.any()
    assert not torch.equal(genes.encoder.weight[:, :16], torch.eye(16))
