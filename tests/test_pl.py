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
