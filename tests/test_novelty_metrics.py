"""Open-set metrics (AUROC, AUPR, OSCR) against hand-computed cases and sklearn."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

import sctransfer as st

TRUE = ["T", "T", "B", "NK", "B", "NK"]
KNOWN = ["T", "B"]


def test_auroc_hand_computed():
    # novel NK cells score 0.9 and 0.3; known cells 0.1, 0.4, 0.3, 0.2
    # pairs (novel > known): 0.9 beats all 4; 0.3 beats 0.1 and 0.2, ties 0.3 (half): 2.5 -> 6.5 / 8
    score = [0.1, 0.4, 0.3, 0.9, 0.2, 0.3]
    assert st.metrics.novelty_auroc(TRUE, score, known_types=KNOWN) == pytest.approx(6.5 / 8)


def test_auroc_perfect_reversed_and_constant():
    perfect = [0.0, 0.1, 0.2, 0.9, 0.3, 0.8]
    assert st.metrics.novelty_auroc(TRUE, perfect, known_types=KNOWN) == 1.0
    assert st.metrics.novelty_auroc(TRUE, -np.asarray(perfect), known_types=KNOWN) == 0.0
    assert st.metrics.novelty_auroc(TRUE, np.ones(6), known_types=KNOWN) == 0.5


def test_aupr_hand_computed():
    # ranking by score: NK(0.9) B(0.8) NK(0.3) T(0.1): precision 1, 1/2, 2/3, 1/2 at recall 1/2, 1/2, 1, 1
    assert st.metrics.novelty_aupr(["T", "B", "NK", "NK"], [0.1, 0.8, 0.9, 0.3], known_types=KNOWN) == pytest.approx(
        0.5 * 1 + 0.5 * 2 / 3
    )


def test_aupr_ties_enter_together():
    # the novel and the known cell tie at the top: precision 1/2 at recall 1
    assert st.metrics.novelty_aupr(["T", "NK", "B"], [0.5, 0.5, 0.1], known_types=KNOWN) == pytest.approx(0.5)


def test_oscr_hand_computed():
    pred = ["T", "B", "B", "T", "B", "B"]  # known cells: T ok, T wrong, B ok, B ok -> closed-set accuracy 3/4
    score = [0.1, 0.2, 0.3, 0.25, 0.5, 0.6]
    # accept by increasing score: 0.1 (correct) 0.2 (wrong) 0.25 (novel) 0.3 (correct) 0.5 (correct) 0.6 (novel)
    # CCR/FPR points: (0,0) (0,1/4) (0,1/4) (1/2,1/4) (1/2,2/4) (1/2,3/4) (1,3/4)
    # area: 1/2 * 1/4 + 1/2 * 3/4 = 1/2
    assert st.metrics.oscr(TRUE, pred, score, known_types=KNOWN) == pytest.approx(0.5)


def test_oscr_bounded_by_closed_set_accuracy():
    pred = ["T", "B", "B", "T", "B", "B"]
    perfect = [0.0, 0.1, 0.2, 0.9, 0.3, 0.8]
    closed = st.metrics.accuracy(TRUE, pred, known_types=KNOWN)
    assert st.metrics.oscr(TRUE, pred, perfect, known_types=KNOWN) == pytest.approx(closed)
    assert st.metrics.oscr(TRUE, pred, -np.asarray(perfect), known_types=KNOWN) == 0.0


def test_match_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    truth = rng.choice(["A", "B", "C", "D"], size=500)
    score = np.round(rng.normal(size=500) + (truth == "D"), 1)  # rounded: many ties
    novel = truth == "D"
    assert st.metrics.novelty_auroc(truth, score, known_types=["A", "B", "C"]) == pytest.approx(
        roc_auc_score(novel, score)
    )
    assert st.metrics.novelty_aupr(truth, score, known_types=["A", "B", "C"]) == pytest.approx(
        average_precision_score(novel, score)
    )


@pytest.mark.parametrize(
    ("truth", "score", "match"),
    [
        (["T", "B"], [0.1, 0.2], "All 2 cells are known"),
        (["NK", "NK"], [0.1, 0.2], "All 2 cells are novel"),
        (["T", "NK"], [0.1], "differ in length"),
        (["T", "NK"], [0.1, np.nan], "missing or infinite"),
        (["T", None], [0.1, 0.2], "missing value"),
    ],
)
def test_bad_input(truth, score, match):
    with pytest.raises(ValueError, match=match):
        st.metrics.novelty_auroc(truth, score, known_types=KNOWN)


def test_oscr_prediction_length_and_known_types_string():
    with pytest.raises(ValueError, match="differ in length"):
        st.metrics.oscr(["T", "NK"], ["T"], [0.1, 0.2], known_types=KNOWN)
    with pytest.raises(TypeError, match="not a single string"):
        st.metrics.oscr(["T", "NK"], ["T", "T"], [0.1, 0.2], known_types="T")
