import mudata
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import f1_score

import sctransfer as st

mudata.set_options(pull_on_update=False)

# Hand-worked example used throughout:
#   cell   0  1  2  3  4        5
#   true   T  T  T  B  B        NK
#   pred   T  T  B  B  Unknown  T
# correct: cells 0, 1, 3.
TRUE = ["T", "T", "T", "B", "B", "NK"]
PRED = ["T", "T", "B", "B", "Unknown", "T"]


def _mdata(truth, pred) -> mudata.MuData:
    n = len(truth)
    rna = AnnData(
        np.ones((4, 3), dtype=np.float32),
        obs=pd.DataFrame(index=[f"rna_{i}" for i in range(4)]),
        var=pd.DataFrame(index=["g1", "g2", "g3"]),
    )
    atac = AnnData(
        np.ones((n, 2), dtype=np.float32),
        obs=pd.DataFrame({"cell_type": truth, "sctransfer_label": pred}, index=[f"atac_{i}" for i in range(n)]),
        var=pd.DataFrame(index=["chr1:100-200", "chr1:300-400"]),
    )
    return mudata.MuData({"rna": rna, "atac": atac})


def test_accuracy_hand_computed():
    assert st.metrics.accuracy(TRUE, PRED) == pytest.approx(3 / 6)
    # closed set: NK (cell 5) is not a known type -> 3 correct of 5
    assert st.metrics.accuracy(TRUE, PRED, known_types=["T", "B"]) == pytest.approx(3 / 5)
    # known types absent from the truth do not matter
    assert st.metrics.accuracy(TRUE, PRED, known_types={"T", "B", "Mono"}) == pytest.approx(3 / 5)


def test_accuracy_categorical_and_series_are_positional():
    true = pd.Series(pd.Categorical(["a", "b", "c"], categories=["c", "b", "a"]), index=["x", "y", "z"])
    pred = pd.Series(["a", "b", "a"], index=["z", "y", "x"])  # different index: matched by position
    assert st.metrics.accuracy(true, pred) == pytest.approx(2 / 3)


def test_macro_f1_hand_computed():
    # T: TP 2, FN 1 (cell 2), FP 1 (cell 5)   -> 4 / 6
    # B: TP 1, FN 1 (cell 4 "Unknown"), FP 1 (cell 2) -> 2 / 4
    # NK: TP 0, FN 1, FP 0                    -> 0
    # "Unknown" has no true cells: not averaged.
    assert st.metrics.macro_f1(TRUE, PRED) == pytest.approx((4 / 6 + 2 / 4 + 0) / 3)
    # closed set on T, B: cell 5 dropped, so T loses its false positive -> T: 4 / 5, B: 2 / 4
    assert st.metrics.macro_f1(TRUE, PRED, known_types=["T", "B"]) == pytest.approx((4 / 5 + 2 / 4) / 2)


def test_macro_f1_perfect_and_all_wrong():
    assert st.metrics.macro_f1(["a", "b"], ["a", "b"]) == 1.0
    assert st.metrics.macro_f1(["a", "b"], ["Unknown", "Unknown"]) == 0.0


def test_macro_f1_matches_sklearn_definition():
    rng = np.random.default_rng(0)
    true = rng.choice(["a", "b", "c", "d"], size=200)
    pred = rng.choice(["a", "b", "c", "Unknown"], size=200)
    expected = f1_score(true, pred, average="macro", labels=np.unique(true))
    assert st.metrics.macro_f1(true, pred) == pytest.approx(expected)


def test_per_type_recall_hand_computed():
    table = st.metrics.per_type_recall(TRUE, PRED)
    assert list(table.index) == ["B", "NK", "T"]
    assert table.index.name == "true_label"
    assert list(table.columns) == ["n_cells", "n_correct", "recall"]
    assert table["n_cells"].tolist() == [2, 1, 3]
    assert table["n_correct"].tolist() == [1, 0, 2]
    np.testing.assert_allclose(table["recall"], [1 / 2, 0, 2 / 3])


def test_per_type_recall_keeps_category_order_of_present_types():
    true = pd.Categorical(["b", "a", "a"], categories=["b", "unused", "a"])
    table = st.metrics.per_type_recall(true, ["b", "a", "b"])
    assert list(table.index) == ["b", "a"]
    np.testing.assert_allclose(table["recall"], [1.0, 0.5])


def test_confusion_matrix_counts_hand_computed():
    cm = st.metrics.confusion_matrix(TRUE, PRED)
    assert list(cm.index) == ["B", "NK", "T"]
    assert list(cm.columns) == ["B", "NK", "T", "Unknown"]
    assert cm.index.name == "true"
    assert cm.columns.name == "predicted"
    expected = [
        [1, 0, 0, 1],  # B: one B, one Unknown
        [0, 0, 1, 0],  # NK: called T
        [1, 0, 2, 0],  # T: one B, two T
    ]
    assert cm.to_numpy().tolist() == expected
    assert cm.to_numpy().dtype == np.int64


def test_confusion_matrix_normalisations_hand_computed():
    by_true = st.metrics.confusion_matrix(TRUE, PRED, normalize="true")
    np.testing.assert_allclose(by_true, [[1 / 2, 0, 0, 1 / 2], [0, 0, 1, 0], [1 / 3, 0, 2 / 3, 0]])
    # column sums: B 2, NK 0 (never predicted -> zeros), T 3, Unknown 1
    by_pred = st.metrics.confusion_matrix(TRUE, PRED, normalize="pred")
    np.testing.assert_allclose(by_pred, [[1 / 2, 0, 0, 1], [0, 0, 1 / 3, 0], [1 / 2, 0, 2 / 3, 0]])
    by_all = st.metrics.confusion_matrix(TRUE, PRED, normalize="all")
    np.testing.assert_allclose(by_all, np.array([[1, 0, 0, 1], [0, 0, 1, 0], [1, 0, 2, 0]]) / 6)


def test_confusion_matrix_keeps_category_orders():
    true = pd.Categorical(["T", "B", "NK", "T"], categories=["T", "B", "NK", "DC"])  # DC unused
    pred = pd.Categorical(["T", "Unknown", "Other", "B"], categories=["Unknown", "T", "B", "Other"])
    cm = st.metrics.confusion_matrix(true, pred)
    assert list(cm.index) == ["T", "B", "NK"]
    assert list(cm.columns) == ["T", "B", "NK", "Unknown", "Other"]
    assert cm.to_numpy().tolist() == [[1, 1, 0, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]]


def test_confusion_matrix_matches_sklearn():
    rng = np.random.default_rng(1)
    true = rng.choice(["a", "b", "c"], size=100)
    pred = rng.choice(["a", "b", "c"], size=100)
    cm = st.metrics.confusion_matrix(true, pred)
    np.testing.assert_array_equal(cm.to_numpy(), sk_confusion_matrix(true, pred, labels=["a", "b", "c"]))


@pytest.mark.parametrize(
    ("true", "pred", "message"),
    [
        (["a", "b"], ["a"], "differ in length: 2 vs 1"),
        ([], [], "empty"),
        (["a", None], ["a", "b"], "y_true contains 1 missing"),
        (["a", "b"], ["a", np.nan], "y_pred contains 1 missing"),
    ],
)
@pytest.mark.parametrize(
    "metric",
    [st.metrics.accuracy, st.metrics.macro_f1, st.metrics.per_type_recall, st.metrics.confusion_matrix],
)
def test_invalid_inputs(metric, true, pred, message):
    with pytest.raises(ValueError, match=message):
        metric(true, pred)


def test_known_types_errors():
    with pytest.raises(ValueError, match="None of the 6 cells has a true label among known_types"):
        st.metrics.accuracy(TRUE, PRED, known_types=["Mono"])
    with pytest.raises(TypeError, match="not a single string"):
        st.metrics.macro_f1(TRUE, PRED, known_types="T")


def test_confusion_matrix_invalid_normalize():
    with pytest.raises(ValueError, match="normalize must be one of"):
        st.metrics.confusion_matrix(TRUE, PRED, normalize="rows")


def test_label_transfer_report_mudata():
    mdata = _mdata([*TRUE, np.nan], [*PRED, "T"])
    report = st.metrics.label_transfer_report(mdata, "cell_type")
    assert report["accuracy"] == pytest.approx(3 / 6)
    assert report["macro_f1"] == pytest.approx((4 / 6 + 2 / 4) / 3)
    assert report["n_cells"] == 6
    assert report["n_missing_truth"] == 1
    assert report["n_not_in_reference"] == 0
    table = report["per_type_recall"]
    assert table["n_cells"].tolist() == [2, 1, 3]
    assert table["in_reference"].tolist() == [True, True, True]


def test_label_transfer_report_closed_set():
    mdata = _mdata([*TRUE, np.nan], [*PRED, "T"])
    report = st.metrics.label_transfer_report(mdata, "cell_type", reference_types=iter(["T", "B", "Mono"]))
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["macro_f1"] == pytest.approx((4 / 5 + 2 / 4) / 2)
    assert report["n_cells"] == 5
    assert report["n_missing_truth"] == 1
    assert report["n_not_in_reference"] == 1
    table = report["per_type_recall"]
    assert list(table.index) == ["B", "NK", "T"]
    assert table["in_reference"].tolist() == [True, False, True]


def test_label_transfer_report_anndata_and_categorical_truth():
    atac = _mdata(TRUE, PRED)["atac"].copy()
    atac.obs["cell_type"] = pd.Categorical(TRUE, categories=["NK", "T", "B"])
    report = st.metrics.label_transfer_report(atac, "cell_type")
    assert report["accuracy"] == pytest.approx(0.5)
    assert list(report["per_type_recall"].index) == ["NK", "T", "B"]


def test_label_transfer_report_errors():
    mdata = _mdata(TRUE, PRED)
    with pytest.raises(KeyError, match=r"Column 'truth' not found in mdata\['atac'\]\.obs; available columns: "):
        st.metrics.label_transfer_report(mdata, "truth")
    unpredicted = AnnData(obs=pd.DataFrame({"cell_type": TRUE}, index=[str(i) for i in range(6)]))
    with pytest.raises(
        KeyError, match=r"'sctransfer_label' not found in adata\.obs; available columns: \['cell_type'\]"
    ):
        st.metrics.label_transfer_report(unpredicted, "cell_type")
    with pytest.raises(KeyError, match=r"Modality 'peaks' not found; the MuData has modalities \['rna', 'atac'\]"):
        st.metrics.label_transfer_report(mdata, "cell_type", atac_key="peaks")
    with pytest.raises(TypeError, match="Expected a MuData or an AnnData"):
        st.metrics.label_transfer_report(mdata["atac"].obs, "cell_type")

    no_truth = _mdata([np.nan, np.nan], ["T", "B"])
    with pytest.raises(ValueError, match="No cell in mdata\\['atac'\\].obs has a true label"):
        st.metrics.label_transfer_report(no_truth, "cell_type")
    no_pred = _mdata(["T", "B", np.nan], [np.nan, np.nan, "T"])
    with pytest.raises(ValueError, match=r"None of the 2 cells with a true label .* has a prediction"):
        st.metrics.label_transfer_report(no_pred, "cell_type")
    with pytest.raises(ValueError, match=r"None of the 2 cells with a true label .* has a prediction"):
        st.pl.confusion_matrix(no_pred, "cell_type", show=False)


def test_cells_without_prediction_are_excluded_and_counted():
    # the cells label_transfer leaves unlabelled (no counts) have a NaN prediction: left out and counted
    mdata = _mdata([*TRUE, "T", "B", np.nan], [*PRED, np.nan, np.nan, np.nan])
    report = st.metrics.label_transfer_report(mdata, "cell_type")
    assert report["accuracy"] == pytest.approx(3 / 6)
    assert report["n_cells"] == 6
    assert report["n_missing_truth"] == 1
    assert report["n_unlabelled"] == 2
    assert report["per_type_recall"]["n_cells"].tolist() == [2, 1, 3]
    ax = st.pl.confusion_matrix(mdata, "cell_type", normalize=None, show=False)
    assert ax.get_title() == "accuracy 0.500 (6 cells; 2 without a prediction left out)"
    assert ax.images[0].get_array().sum() == 6
    # the hint of metrics.confusion_matrix points to the report, which must then take these cells
    obs = mdata["atac"].obs
    with pytest.raises(ValueError, match="without a prediction and reports how many"):
        st.metrics.confusion_matrix(obs["cell_type"], obs["sctransfer_label"])
    assert st.metrics.label_transfer_report(_mdata(TRUE, PRED), "cell_type")["n_unlabelled"] == 0


def test_neighbor_mixing_two_batches_is_twice_the_other_share():
    # two tight pairs: each cell's nearest neighbour is its pair partner
    z = np.array([[1.0, 0.0], [1.0, 0.02], [0.0, 1.0], [0.02, 1.0]])
    assert st.metrics.neighbor_mixing(z, ["rna", "atac", "rna", "atac"], n_neighbors=1) == pytest.approx(2.0)
    assert st.metrics.neighbor_mixing(z, ["rna", "rna", "atac", "atac"], n_neighbors=1) == pytest.approx(0.0)
    # by hand with 3 neighbours: every cell has its partner (other) and 2 of the other pair (1 other each)
    # -> other share 2/3, random share 1/2 -> 4/3
    assert st.metrics.neighbor_mixing(z, ["rna", "atac", "rna", "atac"], n_neighbors=3) == pytest.approx(4 / 3)


def test_neighbor_mixing_random_batches_near_one_and_unbalanced_normalised():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3000, 4))
    balanced = rng.integers(0, 2, 3000).astype(str)
    assert st.metrics.neighbor_mixing(z, balanced) == pytest.approx(1.0, abs=0.03)
    unbalanced = np.where(rng.random(3000) < 0.2, "atac", "rna")  # expected other share 1 - (0.2² + 0.8²)
    assert st.metrics.neighbor_mixing(z, unbalanced, metric="euclidean") == pytest.approx(1.0, abs=0.05)
    separated = np.vstack([rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) + 50])
    assert st.metrics.neighbor_mixing(separated, ["a"] * 200 + ["b"] * 200, metric="euclidean") == 0.0


def test_neighbor_mixing_errors():
    z = np.eye(3)
    with pytest.raises(ValueError, match="single value"):
        st.metrics.neighbor_mixing(z, ["a", "a", "a"])
    for bad in (0, 2.5, True, "5"):
        with pytest.raises(ValueError, match="n_neighbors must be a positive integer"):
            st.metrics.neighbor_mixing(z, ["a", "b", "a"], n_neighbors=bad)
    with pytest.raises(ValueError, match="missing"):
        st.metrics.neighbor_mixing(z, ["a", None, "b"])
    with pytest.raises(ValueError, match="entries"):
        st.metrics.neighbor_mixing(z, ["a", "b"])
