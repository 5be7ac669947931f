import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mudata
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

import sctransfer as st

mudata.set_options(pull_on_update=False)

TRUE = ["T", "T", "T", "B", "B", "NK"]
PRED = ["T", "T", "B", "B", "Unknown", "T"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def mdata() -> mudata.MuData:
    rna = AnnData(
        np.ones((4, 2), dtype=np.float32),
        obs=pd.DataFrame(index=[f"rna_{i}" for i in range(4)]),
        var=pd.DataFrame(index=["g1", "g2"]),
    )
    atac = AnnData(
        np.ones((7, 2), dtype=np.float32),
        obs=pd.DataFrame(
            {"cell_type": [*TRUE, np.nan], "sctransfer_label": [*PRED, "T"]},
            index=[f"atac_{i}" for i in range(7)],
        ),
        var=pd.DataFrame(index=["chr1:1-2", "chr1:3-4"]),
    )
    return mudata.MuData({"rna": rna, "atac": atac})


def _texts(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_draws_row_normalised_matrix(mdata, tmp_path):
    ax = st.pl.confusion_matrix(mdata, "cell_type", show=False)
    assert isinstance(ax, Axes)
    ax.figure.savefig(tmp_path / "cm.png")
    assert (tmp_path / "cm.png").stat().st_size > 0

    (image,) = ax.images
    expected = [[1 / 2, 0, 0, 1 / 2], [0, 0, 1, 0], [1 / 3, 0, 2 / 3, 0]]  # cell with missing truth left out
    assert image.get_array().shape == (3, 4)
    np.testing.assert_allclose(image.get_array(), expected)
    assert image.get_clim() == (0, 1)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["B", "NK", "T", "Unknown"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["B", "NK", "T"]
    assert ax.get_xticklabels()[0].get_rotation() == 45
    assert ax.get_title() == "accuracy 0.500 (6 cells)"
    assert ax.get_ylabel() == "true label (cell_type)"
    assert ax.get_xlabel() == "predicted label (sctransfer_label)"
    # non-zero values written in their cells
    assert sorted(_texts(ax)) == sorted(["0.50", "0.50", "1.00", "0.33", "0.67"])
    # a colour bar was added
    assert len(ax.figure.axes) == 2
    assert ax.figure.axes[1].get_ylabel() == "fraction of true type"


def test_counts_and_closed_set_title(mdata):
    ax = st.pl.confusion_matrix(mdata, "cell_type", normalize=None, reference_types=["T", "B"], show=False)
    np.testing.assert_array_equal(ax.images[0].get_array(), [[1, 0, 0, 1], [0, 0, 1, 0], [1, 0, 2, 0]])
    assert sorted(_texts(ax)) == sorted(["1", "1", "1", "1", "2"])
    assert ax.get_title() == "closed-set accuracy 0.600 (5 cells)"
    colors = {t.get_text(): to_rgba(t.get_color()) for t in ax.get_yticklabels()}
    assert colors["NK"] == to_rgba("0.5")  # type absent from the reference is greyed
    assert colors["T"] != to_rgba("0.5")


def test_draws_on_given_ax_and_return_fig(mdata):
    fig, (left, right) = plt.subplots(1, 2)
    returned = st.pl.confusion_matrix(mdata, "cell_type", ax=right, show=False, title="mine")
    assert returned is right
    assert right.images and not left.images
    assert right.get_title() == "mine"

    figure = st.pl.confusion_matrix(mdata, "cell_type", return_fig=True)
    assert isinstance(figure, Figure)
    assert figure.axes[0].images[0].get_array().shape == (3, 4)


@pytest.fixture
def autoshow():
    original = sc.settings.autoshow
    yield
    sc.settings.autoshow = original


def test_show_follows_autoshow(mdata, monkeypatch, autoshow):
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(True))
    sc.settings.autoshow = True
    assert st.pl.confusion_matrix(mdata, "cell_type") is None
    assert shown == [True]
    sc.settings.autoshow = False
    assert isinstance(st.pl.confusion_matrix(mdata, "cell_type"), Axes)
    assert shown == [True]
    assert st.pl.confusion_matrix(mdata, "cell_type", show=True) is None
    assert shown == [True, True]


def test_annotation_switches(mdata):
    assert _texts(st.pl.confusion_matrix(mdata, "cell_type", annotate=False, show=False)) == []

    types = [f"type{i:02d}" for i in range(30)]
    many = AnnData(obs=pd.DataFrame({"truth": types, "sctransfer_label": types}, index=types))
    ax = st.pl.confusion_matrix(many, "truth", show=False)
    assert ax.images[0].get_array().shape == (30, 30)
    assert _texts(ax) == []  # too many types to annotate by default
    assert len(_texts(st.pl.confusion_matrix(many, "truth", annotate=True, show=False))) == 30


def test_anndata_and_categorical_order():
    adata = AnnData(
        obs=pd.DataFrame(
            {
                "truth": pd.Categorical(TRUE, categories=["T", "NK", "B"]),
                "pred": PRED,
            },
            index=[str(i) for i in range(6)],
        )
    )
    ax = st.pl.confusion_matrix(adata, "truth", pred_key="pred", show=False)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["T", "NK", "B"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["T", "NK", "B", "Unknown"]


def test_missing_columns(mdata):
    with pytest.raises(KeyError, match=r"Column 'truth' not found in mdata\['atac'\]\.obs; available columns"):
        st.pl.confusion_matrix(mdata, "truth", show=False)
    with pytest.raises(KeyError, match=r"Column 'label' not found"):
        st.pl.confusion_matrix(mdata, "cell_type", pred_key="label", show=False)
    with pytest.raises(KeyError, match=r"Modality 'peaks' not found"):
        st.pl.confusion_matrix(mdata, "cell_type", atac_key="peaks", show=False)
    assert plt.get_fignums() == []  # nothing drawn before the error


def test_values_rounding_to_zero_are_not_written():
    true = ["a"] * 201 + ["b"]
    pred = ["a"] * 200 + ["b", "b"]
    adata = AnnData(obs=pd.DataFrame({"truth": true, "sctransfer_label": pred}, index=[str(i) for i in range(202)]))
    ax = st.pl.confusion_matrix(adata, "truth", show=False)
    assert ax.images[0].get_array()[0, 1] == pytest.approx(1 / 201)
    assert _texts(ax) == ["1.00", "1.00"]  # 1/201 shows as 0.00 and is left out


# ---- novelty_kde ---------------------------------------------------------------------------
@pytest.fixture
def scored(mdata) -> mudata.MuData:
    """The small MuData with the fields label_transfer writes for novelty, for six labelled cells and one without."""
    atac = mdata["atac"]
    atac.obs["sctransfer_novelty"] = np.array([0.1, 0.3, 0.2, 0.4, 3.0, 2.8, 0.0], dtype=np.float32)
    atac.obs["sctransfer_confidence"] = np.array([0.9, 0.8, 0.7, 0.95, 0.3, 0.4, 0.9], dtype=np.float32)
    atac.obs["sctransfer_novel"] = atac.obs["sctransfer_novelty"] > 2.5
    mdata.uns["sctransfer"] = {"reference_types": ["T", "B"], "params": {"novelty_threshold": 2.5}}
    return mdata


def _curves(ax: Axes) -> dict[str, np.ndarray]:
    """Density curves drawn, by legend label (the threshold line left out)."""
    return {line.get_label(): line.get_ydata() for line in ax.lines if line.get_label() != "threshold"}


def test_novelty_kde_groups_by_prediction_with_threshold(scored, tmp_path):
    ax = st.pl.novelty_kde(scored, show=False)
    assert isinstance(ax, Axes)
    ax.figure.savefig(tmp_path / "kde.png")
    assert (tmp_path / "kde.png").stat().st_size > 0
    curves = _curves(ax)
    # predicted labels of the 7 cells: T x4, B x2, Unknown x1 (a single cell: no density)
    assert set(curves) == {"T (4)", "B (2)"}
    (threshold,) = [line for line in ax.lines if line.get_label() == "threshold"]
    assert threshold.get_xdata()[0] == 2.5
    grid = ax.lines[0].get_xdata()
    for density in curves.values():
        assert (density >= 0).all()
        assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=0.02)
    assert ax.get_xlabel() == "sctransfer_novelty"


def test_novelty_kde_known_vs_novel_from_truth(scored):
    ax = st.pl.novelty_kde(scored, truth_key="cell_type", show=False)
    curves = _curves(ax)
    # truth T,T,T,B,B,NK (+ one missing): 5 known cells, 1 novel (no density for a single cell)
    assert list(curves) == ["reference type (5)"]
    scored["atac"].obs["cell_type"] = ["T", "T", "T", "NK", "B", "NK", np.nan]
    curves = _curves(st.pl.novelty_kde(scored, truth_key="cell_type", show=False))
    assert list(curves) == ["reference type (4)", "not in reference (2)"]
    # the novel cells (scores 0.4, 2.8) put more density at high scores than the known ones
    grid = plt.gca().lines[0].get_xdata()
    high = grid > 2.0
    assert curves["not in reference (2)"][high].sum() > curves["reference type (4)"][high].sum()


def test_novelty_kde_reference_key_and_types(scored):
    scored["rna"].obs["label"] = ["T", "T", "B", "NK"]  # NK is a reference type here
    curves = _curves(st.pl.novelty_kde(scored, truth_key="cell_type", reference_key="label", show=False))
    assert list(curves) == ["reference type (6)"]
    curves = _curves(st.pl.novelty_kde(scored, truth_key="cell_type", reference_types=["T"], show=False))
    assert list(curves) == ["reference type (3)", "not in reference (3)"]


def test_novelty_kde_confidence_groupby_and_return_fig(scored):
    fig = st.pl.novelty_kde(
        scored, score_key="sctransfer_confidence", groupby="sctransfer_novel", return_fig=True, fill=False
    )
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    assert set(_curves(ax)) == {"False (5)", "True (2)"}
    assert not any(line.get_label() == "threshold" for line in ax.lines)  # no threshold on the confidence
    assert not ax.collections  # fill=False


def test_novelty_kde_draws_on_given_axes(scored):
    fig, ax = plt.subplots()
    out = st.pl.novelty_kde(scored, ax=ax, threshold=False, show=False)
    assert out is ax
    assert not any(line.get_label() == "threshold" for line in ax.lines)
    assert len(ax.collections) == 2  # one shaded area per curve


def test_novelty_kde_before_label_transfer(mdata):
    with pytest.raises(KeyError, match="sctransfer_novelty.*label_transfer"):
        st.pl.novelty_kde(mdata, show=False)  # no predictions yet


def test_novelty_kde_bad_input(scored):
    with pytest.raises(KeyError, match="'truth'"):
        st.pl.novelty_kde(scored, truth_key="truth", show=False)
    with pytest.raises(KeyError, match="'cluster'"):
        st.pl.novelty_kde(scored, groupby="cluster", show=False)
    with pytest.raises(KeyError, match="'missing'"):
        st.pl.novelty_kde(scored, truth_key="cell_type", reference_key="missing", show=False)
    del scored.uns["sctransfer"]
    with pytest.raises(ValueError, match="reference types"):
        st.pl.novelty_kde(scored, truth_key="cell_type", show=False)
