import json

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from grok_tf.calibration.calibrate import cross_fitted
from grok_tf.calibration.calibrate import load_calibration
from grok_tf.calibration.layer import IsotonicCalibration
from grok_tf.calibration.metrics import brier_score
from grok_tf.calibration.metrics import expected_calibration_error
from grok_tf.calibration.table import CalibrationTable
from grok_tf.calibration.table import fit_isotonic
from grok_tf.run_dir import CALIBRATION
from tests.helpers import SKLEARN_TOLERANCE
from tests.helpers import random_head


def overconfident_digits(seed=0):
    """softmax(3 z) of a logistic regression on 4 PCA features of digits.

    The classifier (500 images) is roughly calibrated at temperature 1;
    tripling its logits makes it overconfident. Returns the scores and
    labels of the remaining 1297 images, to split into calibration and test.
    """
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order] / 16.0, y[order]
    pca = PCA(4, random_state=0).fit(x[:500])
    classifier = LogisticRegression(C=100.0, max_iter=5000)
    classifier.fit(pca.transform(x[:500]), y[:500])
    logits = 3.0 * classifier.decision_function(pca.transform(x[500:]))
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True), y[500:]


def test_isotonic_calibration_fixes_an_overconfident_digits_classifier():
    scores, labels = overconfident_digits()
    scores = scores.astype("float32")  # fit on what the model serves
    half = len(labels) // 2
    table = fit_isotonic(scores[:half], labels[:half])
    assert table.fitted.all()
    test_scores, test_labels = scores[half:], labels[half:]
    layer = IsotonicCalibration.from_table(table)
    calibrated = np.asarray(layer(test_scores), np.float64)
    np.testing.assert_allclose(
        calibrated, table.predict(test_scores), atol=SKLEARN_TOLERANCE
    )

    accuracy = np.mean(test_scores.argmax(1) == test_labels)
    assert test_scores.max(1).mean() - accuracy > 0.08  # overconfident
    before = expected_calibration_error(test_scores, test_labels)
    after = expected_calibration_error(calibrated, test_labels)
    assert after < 0.6 * before, (before, after)  # measured 0.118 -> 0.056
    ovr_before = expected_calibration_error(
        test_scores, test_labels, multilabel=True
    )
    ovr_after = expected_calibration_error(
        calibrated, test_labels, multilabel=True
    )
    assert ovr_after < 0.6 * ovr_before, (ovr_before, ovr_after)
    assert brier_score(calibrated, test_labels) < brier_score(
        test_scores, test_labels
    )
    assert np.mean(calibrated.argmax(1) == test_labels) > accuracy - 0.03


def test_cross_fitted_rows_never_see_their_own_target():
    scores, targets = random_head(rows=240, columns=3, seed=14)
    weights = np.ones(len(scores))
    weights[::7] = 0.0  # unlabelled rows keep their scores
    calibrated = cross_fitted(scores, targets, weights)
    np.testing.assert_array_equal(
        calibrated[weights == 0], scores[weights == 0]
    )
    assert not np.allclose(calibrated[weights > 0], scores[weights > 0])
    others_moved = False
    for row in (1, 2, 50, 101, 239):
        flipped = targets.copy()
        flipped[row] = 1 - flipped[row]
        again = cross_fitted(scores, flipped, weights)
        # The row's own table never saw its target ...
        np.testing.assert_array_equal(again[row], calibrated[row])
        # ... but the other fold's table did.
        others_moved |= not np.array_equal(again, calibrated)
    assert others_moved


def test_load_calibration_reads_every_table_of_a_calibrated_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="grok-tf calibrate --run"):
        load_calibration(tmp_path)
    folder = tmp_path / CALIBRATION
    folder.mkdir()
    tables = {
        "category": fit_isotonic(*random_head(rows=200, columns=3)),
        "colour": CalibrationTable.identity(2),
    }
    for name, table in tables.items():
        table.save(folder / f"{name}.npz")
    with pytest.raises(FileNotFoundError):  # no report: not finished
        load_calibration(tmp_path)
    (folder / "report.json").write_text(json.dumps({"heads": {}}))
    loaded = load_calibration(tmp_path)
    assert sorted(loaded) == ["category", "colour"]
    for name, table in tables.items():
        np.testing.assert_array_equal(loaded[name].x, table.x)
        np.testing.assert_array_equal(loaded[name].y, table.y)
        np.testing.assert_array_equal(loaded[name].fitted, table.fitted)
