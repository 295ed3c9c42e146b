import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from grok_tf.calibration.metrics import brier_score
from grok_tf.calibration.metrics import expected_calibration_error
from grok_tf.calibration.metrics import reliability_bins


def binned_ece_loop(confidence, outcome, bins):
    """Guo et al.'s ECE, one bin at a time (bins (lo, hi], 0 in the first)."""
    total = 0.0
    edges = np.linspace(0, 1, bins + 1)
    for b in range(bins):
        lo, hi = edges[b], edges[b + 1]
        members = (confidence > lo) & (confidence <= hi)
        if b == 0:
            members |= confidence <= lo
        if members.any():
            gap = outcome[members].mean() - confidence[members].mean()
            total += members.sum() * abs(gap)
    return total / len(confidence)


def test_ece_top_label_hand_case():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.95, 0.05]])
    labels = np.array([0, 1, 1, 0])
    # bins of 0.5: (0, .5] empty, (.5, 1] holds all: conf 0.8375, acc 0.75.
    assert expected_calibration_error(p, labels, bins=2) == pytest.approx(
        0.0875
    )
    # 10 bins: 0.9/0.95 -> (.8,.9],(.9,1]; 0.8 -> (.7,.8]; 0.7 -> (.6,.7].
    expected = (0.1 + 0.05 + 0.8 + 0.3) / 4
    assert expected_calibration_error(p, labels, bins=10) == pytest.approx(
        expected
    )
    one_hot = np.eye(2)[labels]
    assert expected_calibration_error(p, one_hot, bins=10) == pytest.approx(
        expected
    )


def test_ece_multilabel_hand_case_and_weights():
    p = np.array([[0.2, 0.9], [0.6, 0.4]])
    y = np.array([[0, 1], [1, 1]])
    # 2 bins over 4 pairs: [0, .5] has 0.2 (y 0), 0.4 (y 1): |0.5 - 0.3|;
    # (.5, 1] has 0.9 (1), 0.6 (1): |1 - 0.75|. ECE = (2*0.2 + 2*0.25)/4.
    ece = expected_calibration_error(p, y, bins=2, multilabel=True)
    assert ece == pytest.approx(0.225)
    zero_weighted = expected_calibration_error(
        np.vstack([p, [[0.1, 0.1]]]),
        np.vstack([y, [[1, 1]]]),
        bins=2,
        weights=[1, 1, 0],
        multilabel=True,
    )
    assert zero_weighted == pytest.approx(0.225)
    assert expected_calibration_error(p, y, weights=[0, 0]) is None


def test_ece_equals_a_per_bin_loop_and_edges_are_right_closed():
    rng = np.random.default_rng(11)
    p = rng.dirichlet(np.ones(6) * 0.3, size=500)
    labels = rng.integers(0, 6, 500)
    top = p.argmax(1)
    loop = binned_ece_loop(p.max(1), (top == labels).astype(float), 15)
    assert expected_calibration_error(p, labels) == pytest.approx(loop)
    flat = binned_ece_loop(p.ravel(), np.eye(6)[labels].ravel(), 15)
    assert expected_calibration_error(
        p, labels, multilabel=True
    ) == pytest.approx(flat)
    edges = reliability_bins(
        np.array([[0.0, 0.5, 1.0, 0.25]]), np.zeros((1, 4)), 4, None, True
    )
    np.testing.assert_array_equal(edges.weight, [2, 1, 0, 1])  # 0 and .25


def test_brier_hand_case_and_binary_equals_sklearn():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    # Row 1: .3^2 + .2^2 + .1^2 = .14; row 2 (label 1): .01 + .81 + .64.
    assert brier_score(p, np.array([0, 1])) == pytest.approx(0.8)
    assert brier_score(p, np.array([0, 1]), weights=[3, 1]) == pytest.approx(
        (3 * 0.14 + 1.46) / 4
    )
    rng = np.random.default_rng(12)
    q = rng.uniform(size=(100, 1))
    y = (rng.uniform(size=(100, 1)) < q).astype(int)
    assert brier_score(q, y) == pytest.approx(
        brier_score_loss(y[:, 0], q[:, 0])
    )
