"""Calibration (ECE, reliability table and diagram) and seed agreement of transferred labels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mudata
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import sctransfer as st

mudata.set_options(pull_on_update=False)

# Hand-worked case, 2 bins: (0, 0.5] (0 included) and (0.5, 1].
#   cell        0     1     2     3     4     5
#   true        T     T     T     B     B     B
#   pred        T     T     B     B     T     T
#   confidence  0.9   0.95  0.85  0.3   0.35  0.5   (0.5 lies on an edge: the lower bin)
#   correct     yes   yes   no    yes   no    no
# bin 0: cells 3, 4, 5 -> accuracy 1/3, mean confidence 1.15/3 = 0.38333, gap 0.05
# bin 1: cells 0, 1, 2 -> accuracy 2/3, mean confidence 0.9, gap 0.23333
# ECE = 3/6 * 0.05 + 3/6 * 0.23333 = 0.141667 (= 17/120)
TRUE = ["T", "T", "T", "B", "B", "B"]
PRED = ["T", "T", "B", "B", "T", "T"]
CONF = [0.9, 0.95, 0.85, 0.3, 0.35, 0.5]
ECE_2_BINS = 17 / 120

# Hand-worked case, the default 15 bins of width 1/15:
#   confidence 0.1 (wrong)          -> bin 1  (0.0667, 0.1333]: accuracy 0,   confidence 0.1,  gap 0.1
#   confidence 0.55 (right, wrong)  -> bin 8  (0.5333, 0.6]:    accuracy 0.5, confidence 0.55, gap 0.05
#   confidence 0.95 (right)         -> bin 14 (0.9333, 1]:      accuracy 1,   confidence 0.95, gap 0.05
# ECE = 1/4 * 0.1 + 2/4 * 0.05 + 1/4 * 0.05 = 0.0625
TRUE_15 = ["A", "A", "B", "C"]
PRED_15 = ["B", "A", "A", "C"]
CONF_15 = [0.1, 0.55, 0.55, 0.95]
ECE_15_BINS = 0.0625


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------------------------------------------------
# expected_calibration_error / reliability_table
# ----------------------------------------------------------------------------------------------------------------------
def test_ece_hand_computed():
    assert st.metrics.expected_calibration_error(TRUE, PRED, CONF, n_bins=2) == pytest.approx(ECE_2_BINS)
    assert st.metrics.expected_calibration_error(TRUE_15, PRED_15, CONF_15) == pytest.approx(ECE_15_BINS)
    # one bin: |accuracy - mean confidence| over all cells = |3/6 - 3.85/6|
    assert st.metrics.expected_calibration_error(TRUE, PRED, CONF, n_bins=1) == pytest.approx(0.85 / 6)
    # inputs as Series with any index, categoricals and numpy arrays give the same
    index = [f"c{i}" for i in range(6)][::-1]
    same = st.metrics.expected_calibration_error(
        pd.Series(pd.Categorical(TRUE), index=index), np.array(PRED), pd.Series(CONF, dtype=np.float32), n_bins=2
    )
    assert same == pytest.approx(ECE_2_BINS)


def test_labels_compare_as_the_same_number_whatever_their_type():
    """1, 1.0 and np.int64(1) are one label (a truth column read as float, predictions as int)."""
    truth, predicted = [1, 2, 3], np.array([1.0, 2.0, 4.0])
    assert st.metrics.expected_calibration_error(truth, predicted, [1.0, 1.0, 0.0]) == 0
    assert st.metrics.seed_agreement([truth, predicted]) == pytest.approx(2 / 3)
    assert st.metrics.accuracy(pd.Series(truth, dtype="Int64"), predicted) == pytest.approx(2 / 3)
    assert st.metrics.accuracy(pd.Categorical([1.0, 2.0]), np.array([1, 2], dtype=np.int64)) == 1
    assert st.metrics.accuracy([1, 2.5], [1, 2.5], known_types=[1.0]) == 1
    # text labels are left as they are
    assert st.metrics.seed_agreement([["1.0", "A"], ["1", "A"]]) == 0.5


def test_ece_extremes():
    # confident and right, or unsure (0) and wrong: perfectly calibrated
    assert st.metrics.expected_calibration_error(["A", "B"], ["A", "B"], [1.0, 1.0]) == 0
    assert st.metrics.expected_calibration_error(["A", "B"], ["B", "A"], [0.0, 0.0]) == 0
    # confident and wrong: the worst case
    assert st.metrics.expected_calibration_error(["A", "B"], ["B", "A"], [1.0, 1.0]) == 1


def test_reliability_table_hand_computed():
    table = st.metrics.reliability_table(TRUE, PRED, CONF, n_bins=2)
    assert list(table.columns) == ["bin_lower", "bin_upper", "n_cells", "accuracy", "mean_confidence"]
    assert table.index.name == "bin"
    np.testing.assert_allclose(table["bin_lower"], [0, 0.5])
    np.testing.assert_allclose(table["bin_upper"], [0.5, 1])
    assert table["n_cells"].tolist() == [3, 3]
    assert table["n_cells"].dtype == np.int64
    np.testing.assert_allclose(table["accuracy"], [1 / 3, 2 / 3])
    np.testing.assert_allclose(table["mean_confidence"], [1.15 / 3, 0.9])

    table = st.metrics.reliability_table(TRUE_15, PRED_15, CONF_15)
    assert len(table) == 15
    np.testing.assert_allclose(table["bin_upper"], np.arange(1, 16) / 15)
    assert table["n_cells"].tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1]
    filled = table["n_cells"] > 0
    np.testing.assert_allclose(table.loc[filled, "accuracy"], [0, 0.5, 1])
    np.testing.assert_allclose(table.loc[filled, "mean_confidence"], [0.1, 0.55, 0.95])
    assert table.loc[~filled, ["accuracy", "mean_confidence"]].isna().all().all()


def test_missing_values_are_left_out(caplog):
    # cells left unlabelled (NaN label and confidence), one with a missing truth, one with only a NaN confidence
    truth = [*TRUE, "T", np.nan, "B"]
    pred = [*PRED, np.nan, "T", "B"]
    conf = [*CONF, np.nan, 0.2, np.nan]
    with caplog.at_level("INFO", logger="sctransfer.metrics._calibration"):
        ece = st.metrics.expected_calibration_error(truth, pred, conf, n_bins=2)
    assert ece == pytest.approx(ECE_2_BINS)
    assert "Leaving out 3 of 9 cells" in caplog.text
    assert st.metrics.reliability_table(truth, pred, conf, n_bins=2)["n_cells"].sum() == 6
    assert st.metrics.expected_calibration_error(
        pd.Series(truth, dtype="category"), pd.Series(pred, dtype="category"), pd.Series(conf), n_bins=2
    ) == pytest.approx(ECE_2_BINS)


def test_ece_bad_input():
    with pytest.raises(ValueError, match=r"one value per cell each; lengths: \{'truth': 6, 'predicted': 5"):
        st.metrics.expected_calibration_error(TRUE, PRED[:5], CONF)
    with pytest.raises(ValueError, match=r"'confidence': 5"):
        st.metrics.reliability_table(TRUE, PRED, CONF[:5])
    with pytest.raises(ValueError, match=r"confidence must lie in \[0, 1\]: 2 value\(s\) outside, from -0.1 to 1.2"):
        st.metrics.expected_calibration_error(TRUE, PRED, [1.2, 0.9, 0.5, -0.1, 0.3, 0.3])
    with pytest.raises(ValueError, match=r"outside, from inf to inf"):
        st.metrics.expected_calibration_error(TRUE, PRED, [np.inf, 0.9, 0.5, 0.1, 0.3, 0.3])
    for n_bins in (0, -3, 2.5, True, None):
        with pytest.raises(ValueError, match="n_bins must be a positive integer"):
            st.metrics.expected_calibration_error(TRUE, PRED, CONF, n_bins=n_bins)
    with pytest.raises(ValueError, match="None of the 2 cells has a true label, a prediction and a confidence"):
        st.metrics.expected_calibration_error(["A", np.nan], [np.nan, "A"], [0.5, 0.5])
    with pytest.raises(ValueError, match="truth must be one-dimensional"):
        st.metrics.expected_calibration_error("T", "T", [0.5])
    with pytest.raises(ValueError, match="confidence must be one-dimensional"):
        st.metrics.expected_calibration_error(TRUE, PRED, np.full((6, 2), 0.5))
    with pytest.raises(TypeError, match=r"confidence must hold numbers"):
        st.metrics.expected_calibration_error(TRUE, PRED, ["high"] * 6)


# ----------------------------------------------------------------------------------------------------------------------
# seed_agreement
# ----------------------------------------------------------------------------------------------------------------------
def test_seed_agreement_hand_computed():
    # run 0 vs 1: cells 0, 1 agree (2/3); 0 vs 2: cell 0 (1/3); 1 vs 2: cells 0, 2 (2/3); mean 5/9
    runs = [["T", "B", "B"], ["T", "B", "T"], ["T", "T", "T"]]
    assert st.metrics.seed_agreement(runs) == pytest.approx(5 / 9)
    assert st.metrics.seed_agreement(runs[:2]) == pytest.approx(2 / 3)
    assert st.metrics.seed_agreement([runs[0], runs[0]]) == 1
    # a DataFrame with one column per run, categoricals, Series with equal indexes and a 2-D array give the same
    frame = pd.DataFrame({f"seed{i}": pd.Categorical(run) for i, run in enumerate(runs)})
    assert st.metrics.seed_agreement(frame) == pytest.approx(5 / 9)
    assert st.metrics.seed_agreement([frame[c] for c in frame.columns]) == pytest.approx(5 / 9)
    assert st.metrics.seed_agreement(np.array(runs)) == pytest.approx(5 / 9)


def test_seed_agreement_leaves_out_cells_missing_in_any_run():
    # cell 2 is unlabelled in run 1, cell 3 in all runs: cells 0, 1 count; pairs agree on 1/2, 1/2, 2/2
    runs = [["T", "B", "B", None], ["T", "T", np.nan, None], ["T", "T", "T", np.nan]]
    assert st.metrics.seed_agreement(runs) == pytest.approx(2 / 3)


def test_seed_agreement_bad_input():
    for runs in ([], [["T", "B"]]):
        with pytest.raises(ValueError, match=f"at least two runs, got {len(runs)}"):
            st.metrics.seed_agreement(runs)
    with pytest.raises(ValueError, match=r"Every run must label the same cells; the runs have \[2, 3\] labels"):
        st.metrics.seed_agreement([["T", "B"], ["T", "B", "B"]])
    a = pd.Series(["T", "B"], index=["x", "y"])
    with pytest.raises(ValueError, match=r"labels_by_seed\[1\] has another index than labels_by_seed\[0\]"):
        st.metrics.seed_agreement([a, a[::-1]])
    with pytest.raises(ValueError, match=r"labels_by_seed\[0\] must be one-dimensional"):
        st.metrics.seed_agreement(["TB", "TB"])
    with pytest.raises(TypeError, match="must be a sequence of label arrays"):
        st.metrics.seed_agreement("TB")
    with pytest.raises(ValueError, match="None of the 2 cells is labelled in every run"):
        st.metrics.seed_agreement([["T", None], [None, "B"]])


# ----------------------------------------------------------------------------------------------------------------------
# label_transfer_report includes the ECE
# ----------------------------------------------------------------------------------------------------------------------
def _mdata(truth, pred, confidence=None, *, prefix="sctransfer") -> mudata.MuData:
    n = len(truth)
    obs = pd.DataFrame({"cell_type": truth, f"{prefix}_label": pred}, index=[f"atac_{i}" for i in range(n)])
    if confidence is not None:
        obs[f"{prefix}_confidence"] = np.asarray(confidence, dtype=np.float32)
    rna = AnnData(
        np.ones((2, 2), dtype=np.float32),
        obs=pd.DataFrame(index=["rna_0", "rna_1"]),
        var=pd.DataFrame(index=["g1", "g2"]),
    )
    atac = AnnData(np.ones((n, 2), dtype=np.float32), obs=obs, var=pd.DataFrame(index=["chr1:1-2", "chr1:3-4"]))
    return mudata.MuData({"rna": rna, "atac": atac})


def test_report_ece():
    # a cell with a missing truth is left out of every figure, the ECE included
    mdata = _mdata([*TRUE, np.nan], [*PRED, "T"], [*CONF, 0.1])
    report = st.metrics.label_transfer_report(mdata, "cell_type")
    assert report["ece"] == pytest.approx(st.metrics.expected_calibration_error(TRUE, PRED, CONF))
    assert report["accuracy"] == pytest.approx(3 / 6)  # existing outputs unchanged
    assert report["n_cells"] == 6
    # closed set: only cells of reference types count (here the B cells 3, 4, 5: bin 4 holds 0.3,
    # bin 5 holds 0.35, bin 7 holds 0.5, accuracies 1, 0, 0 -> ECE (0.7 + 0.35 + 0.5) / 3)
    closed = st.metrics.label_transfer_report(mdata, "cell_type", reference_types=["B"])
    assert closed["ece"] == pytest.approx(1.55 / 3)
    assert closed["n_cells"] == 3
    # without reference_types, the reference types label_transfer recorded in uns are used
    mdata.uns["sctransfer"] = {"reference_types": ["B"]}
    recorded = st.metrics.label_transfer_report(mdata, "cell_type")
    assert (recorded["ece"], recorded["n_cells"]) == (closed["ece"], closed["n_cells"])
    assert recorded["n_not_in_reference"] == 3
    # the confidence column follows pred_key, or is named
    other = _mdata(TRUE, PRED, CONF, prefix="run2")
    assert st.metrics.label_transfer_report(other, "cell_type", pred_key="run2_label")["ece"] == pytest.approx(
        st.metrics.expected_calibration_error(TRUE, PRED, CONF)
    )
    other["atac"].obs["score"] = np.ones(6)
    named = st.metrics.label_transfer_report(other, "cell_type", pred_key="run2_label", confidence_key="score")
    assert named["ece"] == pytest.approx(0.5)  # all in the last bin: |3/6 - 1|


def test_report_without_confidence():
    report = st.metrics.label_transfer_report(_mdata(TRUE, PRED), "cell_type")
    assert report["ece"] is None
    assert report["accuracy"] == pytest.approx(3 / 6)
    with pytest.raises(KeyError, match=r"Column 'score' not found in mdata\['atac'\]\.obs"):
        st.metrics.label_transfer_report(_mdata(TRUE, PRED), "cell_type", confidence_key="score")


# ----------------------------------------------------------------------------------------------------------------------
# pl.reliability_diagram
# ----------------------------------------------------------------------------------------------------------------------
def _bars(ax: Axes) -> list:
    return [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]


def test_reliability_diagram_draws_the_table(tmp_path):
    mdata = _mdata([*TRUE_15, np.nan], [*PRED_15, "A"], [*CONF_15, 0.3])
    ax = st.pl.reliability_diagram(mdata, "cell_type", show=False)
    assert isinstance(ax, Axes)
    ax.figure.savefig(tmp_path / "reliability.png")
    assert (tmp_path / "reliability.png").stat().st_size > 0

    table = st.metrics.reliability_table(TRUE_15, PRED_15, CONF_15)
    filled = table[table["n_cells"] > 0]
    bars = _bars(ax)
    assert len(bars) == 3  # one bar per non-empty bin
    np.testing.assert_allclose([b.get_height() for b in bars], filled["accuracy"])
    np.testing.assert_allclose([b.get_x() for b in bars], filled["bin_lower"])
    np.testing.assert_allclose([b.get_width() for b in bars], 1 / 15)
    lines = {line.get_label(): line for line in ax.lines}
    np.testing.assert_allclose(lines["perfect calibration"].get_xydata(), [[0, 0], [1, 1]])
    np.testing.assert_allclose(lines["mean confidence"].get_xdata(), filled["mean_confidence"])
    np.testing.assert_allclose(lines["mean confidence"].get_ydata(), filled["accuracy"])
    obs = mdata["atac"].obs
    ece = st.metrics.expected_calibration_error(obs["cell_type"], obs["sctransfer_label"], obs["sctransfer_confidence"])
    assert ece == pytest.approx(ECE_15_BINS)
    assert ax.get_title() == f"ECE {ece:.3f} (4 cells)"
    assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1)

    # the cell counts on the Axes below, sharing the confidence axis
    assert len(ax.figure.axes) == 2
    counts_ax = ax.figure.axes[1]
    assert [b.get_height() for b in _bars(counts_ax)] == [1, 2, 1]
    assert counts_ax.get_ylabel() == "cells"
    assert counts_ax.get_xlabel() == "confidence (sctransfer_confidence)"
    assert counts_ax.get_shared_x_axes().joined(ax, counts_ax)


def test_reliability_diagram_n_bins_ax_and_return_fig():
    mdata = _mdata(TRUE, PRED, CONF, prefix="run2")
    fig = st.pl.reliability_diagram(mdata, "cell_type", key_added="run2", n_bins=2, title="run 2", return_fig=True)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    np.testing.assert_allclose([b.get_height() for b in _bars(ax)], [1 / 3, 2 / 3])
    assert ax.get_title() == "run 2"

    fig, given = plt.subplots()
    out = st.pl.reliability_diagram(mdata["atac"], "cell_type", key_added="run2", n_bins=2, ax=given, show=False)
    assert out is given
    assert len(fig.axes) == 2  # the counts take space from the given Axes
    assert given.get_title() == f"ECE {ECE_2_BINS:.3f} (6 cells)"


def test_reliability_diagram_missing_columns():
    mdata = _mdata(TRUE, PRED, CONF)
    with pytest.raises(KeyError, match=r"Column 'truth' not found in mdata\['atac'\]\.obs"):
        st.pl.reliability_diagram(mdata, "truth")
    with pytest.raises(KeyError, match=r"'other_label' not found .* Run sctransfer.tl.label_transfer first"):
        st.pl.reliability_diagram(mdata, "cell_type", key_added="other")
    with pytest.raises(KeyError, match=r"'sctransfer_confidence' not found in adata\.obs"):
        st.pl.reliability_diagram(_mdata(TRUE, PRED)["atac"], "cell_type")
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        st.pl.reliability_diagram(mdata, "cell_type", n_bins=0)


# ----------------------------------------------------------------------------------------------------------------------
# real data: label transfer on a small MOp split
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mop_transferred() -> mudata.MuData:
    mdata = st.datasets.mop_label_transfer(rna_libraries=("09A",), atac_libraries=("09G",))
    truth = mdata["atac"].obs.pop("cell_type")
    mdata.update()
    st.tl.label_transfer(mdata, labels_key="cell_type", annotation="mm10", max_steps=100)
    mdata["atac"].obs["cell_type"] = truth
    return mdata


def test_mop_ece_and_diagram(mop_transferred):
    obs = mop_transferred["atac"].obs
    direct = st.metrics.expected_calibration_error(
        obs["cell_type"], obs["sctransfer_label"], obs["sctransfer_confidence"]
    )
    assert 0 < direct < 1
    report = st.metrics.label_transfer_report(mop_transferred, "cell_type")
    assert report["ece"] == pytest.approx(direct)
    # the ECE is the gap between the mean confidence and the accuracy when everything is in one bin, and never less
    one_bin = abs(report["accuracy"] - obs["sctransfer_confidence"].mean())
    assert st.metrics.expected_calibration_error(
        obs["cell_type"], obs["sctransfer_label"], obs["sctransfer_confidence"], n_bins=1
    ) == pytest.approx(one_bin, abs=1e-6)
    assert direct >= one_bin - 1e-6

    table = st.metrics.reliability_table(obs["cell_type"], obs["sctransfer_label"], obs["sctransfer_confidence"])
    assert table["n_cells"].sum() == len(obs)
    ax = st.pl.reliability_diagram(mop_transferred, "cell_type", show=False)
    filled = table[table["n_cells"] > 0]
    np.testing.assert_allclose([b.get_height() for b in _bars(ax)], filled["accuracy"])
    np.testing.assert_array_equal([b.get_height() for b in _bars(ax.figure.axes[1])], filled["n_cells"])
    assert ax.get_title() == f"ECE {direct:.3f} ({len(obs):,} cells)"


# ----------------------------------------------------------------------------------------------------------------------
# CI floor: calibration and seed stability of the defaults on a small MOp split (RNA 09A -> ATAC 09G, 809 cells)
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def three_seeds() -> tuple[np.ndarray, list[pd.DataFrame], float]:
    """Labels, confidence and the ensemble-only ECE of label_transfer with random_state 0, 1, 2 (150 steps each)."""
    base = st.datasets.mop_label_transfer(rna_libraries=("09A",), atac_libraries=("09G",))
    truth = base["atac"].obs.pop("cell_type").astype(str).to_numpy()
    base.update()
    st.pp.gene_activity(base, "mm10", genes=base["rna"].var_names)
    st.pp.peak_neighbors(base)
    runs, ensemble_ece = [], None
    for seed in (0, 1, 2):
        mdata = base.copy()
        model = st.tl.label_transfer(
            mdata,
            labels_key="cell_type",
            max_steps=150,
            random_state=seed,
            return_model=True,
            train_kwargs={"enable_progress_bar": False},
        )
        runs.append(mdata["atac"].obs[["sctransfer_label", "sctransfer_confidence"]].copy())
        if seed == 0:
            ensemble = model.transfer(model.adata, self_training=False)
            ensemble_ece = st.metrics.expected_calibration_error(truth, ensemble.labels, ensemble.confidence)
    return truth, runs, ensemble_ece


def test_mop_confidence_is_calibrated_and_labels_are_seed_stable(three_seeds):
    """Floors set on the first self-training step (ECE 0.042-0.057, agreement 0.957); the current one gives ECE
    0.054 at seed 0 (docs/benchmarks.md has the full splits)."""
    truth, runs, ensemble_ece = three_seeds
    eces = [
        st.metrics.expected_calibration_error(truth, run["sctransfer_label"], run["sctransfer_confidence"])
        for run in runs
    ]
    assert np.mean(eces) <= 0.08 and max(eces) <= 0.10, eces
    # the self-training step is what calibrates: the ensemble alone is further off on the same run
    assert ensemble_ece > eces[0] + 0.02, (ensemble_ece, eces[0])
    agreement = st.metrics.seed_agreement([run["sctransfer_label"] for run in runs])
    assert agreement >= 0.93, agreement


# ----------------------------------------------------------------------------------------------------------------------
# robustness of the self-training step: types missing from the reference, a reference short of the main query type
# ----------------------------------------------------------------------------------------------------------------------
def _transfer_both_ways(reference_keep) -> tuple[np.ndarray, np.ndarray, st.model.TransferResult, ...]:
    """RNA 09A (cells where ``reference_keep(types)``) -> ATAC 09G, 150 steps: truth, types, self-trained, ensemble."""
    mdata = st.datasets.mop_label_transfer(rna_libraries=("09A",), atac_libraries=("09G",))
    truth = mdata["atac"].obs.pop("cell_type").astype(str).to_numpy()
    mdata.mod["rna"] = mdata["rna"][reference_keep(mdata["rna"].obs["cell_type"].astype(str).to_numpy())].copy()
    mdata.update()
    model = st.tl.label_transfer(
        mdata,
        labels_key="cell_type",
        annotation="mm10",
        max_steps=150,
        return_model=True,
        train_kwargs={"enable_progress_bar": False},
    )
    return truth, model.label_categories_, model.transfer(model.adata), model.transfer(model.adata, self_training=False)


def test_mop_self_training_does_not_make_novel_cells_confident():
    """Astro and Oligo missing from the reference: their ATAC cells teach nothing to the self-training.

    Measured (seed 0): their mean confidence 0.30 (ensemble) -> 0.39 (self-trained; 0.50 when they taught their
    own pseudo-labels); known cells' ECE 0.143 -> 0.053 (0.085).
    """
    truth, types, refined, ensemble = _transfer_both_ways(lambda types: ~np.isin(types, ["Astro", "Oligo"]))
    novel = ~np.isin(truth, types)
    assert novel.sum() > 30
    rise = refined.confidence[novel].mean() - ensemble.confidence[novel].mean()
    assert rise < 0.15, rise
    known = ~novel
    ece = st.metrics.expected_calibration_error(truth[known], refined.labels[known], refined.confidence[known])
    assert ece <= 0.08, ece


def test_mop_self_training_with_a_reference_short_of_the_main_type():
    """Only 15 reference cells of L2/3 (about 40% of the query): the self-training must not turn the ensemble's
    unsure calls of those cells into confident ones (ECE measured 0.073 ensemble, 0.134 self-trained; 0.226 when
    the query's own pseudo-label mix was taken as a prior and types not learned were ruled out)."""

    def short_of_l23(types):
        keep = np.ones(len(types), dtype=bool)
        keep[np.flatnonzero(types == "L2/3")[15:]] = False
        return keep

    truth, _, refined, ensemble = _transfer_both_ways(short_of_l23)
    ece = st.metrics.expected_calibration_error(truth, refined.labels, refined.confidence)
    assert ece <= 0.18, ece
