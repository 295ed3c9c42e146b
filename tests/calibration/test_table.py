import numpy as np
import pytest

from grok_tf.calibration.table import CalibrationTable
from grok_tf.calibration.table import fit_isotonic
from tests.helpers import adversarial_head
from tests.helpers import random_head
from tests.helpers import sklearn_models
from tests.helpers import sklearn_predict


def test_one_threshold_column_is_the_observed_rate():
    scores, targets = adversarial_head()
    table = fit_isotonic(scores, targets)
    out = table.predict(np.linspace(-1, 2, 9)[:, None].repeat(4, axis=1))
    np.testing.assert_allclose(out[:, 2], targets[:, 2].mean())


def test_weights_drop_zero_rows_and_weight_the_others():
    scores, targets = random_head(rows=300, columns=3, seed=3)
    weights = np.tile([0.0, 1.0, 2.5], 100)
    table = fit_isotonic(scores, targets, weights)
    models = sklearn_models(
        scores[weights > 0], targets[weights > 0], weights[weights > 0]
    )
    queries = np.random.default_rng(4).uniform(size=(100, 3))
    np.testing.assert_array_equal(
        table.predict(queries), sklearn_predict(models, queries)
    )
    unweighted = fit_isotonic(scores, targets, (weights > 0).astype(float))
    assert not np.array_equal(
        unweighted.predict(queries), table.predict(queries)
    )


def test_integer_labels_equal_one_hot_with_unlabelled_rows_dropped():
    rng = np.random.default_rng(5)
    scores = rng.dirichlet(np.ones(4), size=200)
    labels = rng.integers(-1, 4, size=200)
    from_labels = fit_isotonic(scores, labels)
    labelled = labels >= 0
    from_one_hot = fit_isotonic(
        scores[labelled], np.eye(4, dtype=int)[labels[labelled]]
    )
    for name in ("x", "y", "lengths", "fitted"):
        np.testing.assert_array_equal(
            getattr(from_labels, name), getattr(from_one_hot, name)
        )


def test_columns_with_few_positives_share_the_pooled_calibrator():
    scores, targets = random_head(rows=100, columns=4, seed=6)
    targets[:, 1] = 0  # no positive
    targets[:, 2] = 1  # no negative
    targets[:, 3] = 0
    targets[:4, 3] = 1  # 4 positives: too few for a fit of its own
    table = fit_isotonic(scores, targets, min_positives=5)
    assert table.fitted.tolist() == [True, False, False, False]
    (pooled,) = sklearn_models(scores.reshape(-1, 1), targets.reshape(-1, 1))
    queries = np.array([[-0.5] * 4, [0.3] * 4, [0.7] * 4, [1.5] * 4])
    out = table.predict(queries)
    for c in (1, 2, 3):
        np.testing.assert_allclose(out[:, c], pooled.predict(queries[:, c]))
    (own,) = sklearn_models(scores[:, :1], targets[:, :1])
    np.testing.assert_allclose(out[:, 0], own.predict(queries[:, 0]))


def test_no_positive_anywhere_gives_the_identity():
    scores, targets = random_head(rows=100, columns=3, seed=6)
    table = fit_isotonic(scores, np.zeros_like(targets))
    assert not table.fitted.any()
    queries = np.array([[-0.5] * 3, [0.3] * 3, [0.7] * 3, [1.5] * 3])
    np.testing.assert_array_equal(
        table.predict(queries)[:, 0], [0.0, 0.3, 0.7, 1.0]
    )
    assert np.isfinite(table.x).all() and np.isfinite(table.y).all()


def test_too_few_rows_or_none_give_identity_everywhere():
    scores, targets = random_head(rows=9, columns=2, seed=7)
    targets[:2], targets[2:4] = 1, 0
    assert not fit_isotonic(scores, targets).fitted.any()  # 9 < min_rows
    fitted = fit_isotonic(scores, targets, min_rows=4, min_positives=2)
    assert fitted.fitted.all()
    masked = fit_isotonic(scores, targets, np.zeros(9), min_rows=1)
    assert not masked.fitted.any()
    empty = fit_isotonic(np.zeros((0, 3)), np.zeros((0, 3)))
    np.testing.assert_array_equal(
        empty.predict([[0.2, 0.5, 0.9]]), [[0.2, 0.5, 0.9]]
    )


def test_table_validation():
    with pytest.raises(ValueError, match="non-decreasing"):
        CalibrationTable.from_thresholds([[0.5, 0.2]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match="padding"):
        CalibrationTable(
            np.zeros((1, 2)), np.zeros((1, 2)), np.array([2]), np.ones(1, bool)
        )
    # The layer ignores `lengths`: a padding that is not the last point
    # would change its clipping range (x) or its end value (y: 0.7 at 1).
    for x, y in (
        ([0.0, 1.0, 2.0], [0.0, 0.5, 0.5]),
        ([0, 1, 1, 1], [0, 0.5, 0.7, 0.7]),
    ):
        with pytest.raises(ValueError, match="repeat the last"):
            CalibrationTable([x], [y], [2], [True])
    with pytest.raises(ValueError, match="finite"):
        fit_isotonic(np.array([[np.nan]] * 20), np.ones((20, 1)))


def test_table_save_load_round_trip(tmp_path):
    table = fit_isotonic(*adversarial_head())
    path = tmp_path / "run" / "calibration_category.npz"
    table.save(path)
    loaded = CalibrationTable.load(path)
    for name in ("x", "y", "lengths", "fitted"):
        original, restored = getattr(table, name), getattr(loaded, name)
        assert restored.dtype == original.dtype
        np.testing.assert_array_equal(restored, original)
    assert [p.name for p in path.parent.iterdir()] == [path.name]
