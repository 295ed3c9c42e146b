import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from grok_tf.calibration import calibrate as calibration
from grok_tf.calibration.calibrate import CalibrationTable
from grok_tf.calibration.calibrate import IsotonicCalibration
from grok_tf.calibration.calibrate import brier_score
from grok_tf.calibration.calibrate import expected_calibration_error
from grok_tf.calibration.calibrate import fit_isotonic
from grok_tf.calibration.calibrate import reliability_bins
from grok_tf.calibration.calibrate import reliability_diagram
from tests.harness import check_config_round_trip
from tests.harness import check_fit_save_and_replicas

SKLEARN_TOLERANCE = 1e-6  # float32 output; the interpolation is float64


def sklearn_models(scores, targets, weights=None):
    return [
        IsotonicRegression(
            y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip"
        ).fit(scores[:, c], targets[:, c], sample_weight=weights)
        for c in range(scores.shape[1])
    ]


def sklearn_predict(models, queries):
    queries = np.asarray(queries, dtype=np.float64)
    return np.stack(
        [m.predict(queries[:, c]) for c, m in enumerate(models)], axis=1
    )


def random_head(rows=400, columns=5, seed=0):
    """float32-representable scores and targets drawn as P(y=1|s) = s^2."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(size=(rows, columns)).astype("float32")
    targets = (rng.uniform(size=scores.shape) < scores**2).astype("int64")
    return scores.astype(np.float64), targets


def adversarial_head():
    """Ties on a 0.05 grid, flat runs, a one- and a two-threshold column."""
    scores, targets = random_head(rows=300, columns=4, seed=1)
    scores = np.round(scores * 20) / 20  # many tied scores per value
    scores[:, 2] = 0.5  # one unique score: a one-threshold column
    targets[:3, 2], targets[3:6, 2] = 1, 0
    scores[:, 3] = np.where(np.arange(300) % 2, 0.25, 0.75)  # two values
    return scores, targets


def adversarial_queries(table):
    """Every threshold, its float32 neighbours, and far outside both ends."""
    columns = []
    for c, n in enumerate(table.lengths):
        x = table.x[c, :n].astype("float32")
        columns.append(
            np.concatenate(
                [
                    x,
                    np.nextafter(x, np.float32(np.inf)),
                    np.nextafter(x, np.float32(-np.inf)),
                    (x[:-1] + x[1:]) / 2,
                    np.float32([-1e6, -1.0, -1e-9, 0.0, 1.0, 2.0, 1e6]),
                ]
            )
        )
    width = max(len(c) for c in columns)
    return np.stack(
        [np.resize(c, width) for c in columns], axis=1
    )  # [width, C]


def assert_matches_sklearn(scores, targets):
    table = fit_isotonic(scores, targets)
    models = sklearn_models(scores, targets)
    for queries in (
        np.random.default_rng(2).uniform(-0.3, 1.3, (500, scores.shape[1])),
        adversarial_queries(table),
    ):
        queries = queries.astype("float32")
        expected = sklearn_predict(models, queries)
        np.testing.assert_array_equal(table.predict(queries), expected)
        layer = IsotonicCalibration.from_table(table)
        got = np.asarray(layer(queries))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=SKLEARN_TOLERANCE)
        exact = IsotonicCalibration.from_table(table, dtype="float64")
        np.testing.assert_allclose(exact(queries), expected, rtol=0, atol=1e-15)
    return table


def test_layer_and_table_equal_sklearn_on_random_scores():
    table = assert_matches_sklearn(*random_head())
    assert table.fitted.all() and table.lengths.min() > 5


def test_layer_and_table_equal_sklearn_on_adversarial_scores():
    scores, targets = adversarial_head()
    table = assert_matches_sklearn(scores, targets)
    assert table.lengths[2] == 1 and table.lengths[3] == 2
    assert table.fitted.all()
    # Flat runs: some consecutive thresholds share a y value.
    assert (np.diff(table.y[0, : table.lengths[0]]) == 0).any()
    # The padding repeats the last threshold up to T = max length + 1.
    assert table.num_thresholds == table.lengths.max() + 1
    for c, n in enumerate(table.lengths):
        assert (table.x[c, n:] == table.x[c, n - 1]).all()
        assert (table.y[c, n:] == table.y[c, n - 1]).all()


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


def test_batch_zero_and_unknown_batch_in_a_tf_function():
    scores, targets = random_head()
    table = fit_isotonic(scores, targets)
    layer = IsotonicCalibration.from_table(table)
    assert tuple(layer(np.zeros((0, 5), "float32")).shape) == (0, 5)
    serve = tf.function(
        layer.call,
        input_signature=[tf.TensorSpec([None, 5], tf.float32)],
        autograph=False,
    )
    for rows in (0, 1, 7):
        queries = np.random.default_rng(rows).uniform(size=(rows, 5))
        queries = queries.astype("float32")
        np.testing.assert_allclose(
            serve(queries), table.predict(queries), atol=SKLEARN_TOLERANCE
        )


def test_saved_model_keeps_tables_in_variables(tmp_path):
    rng = np.random.default_rng(8)
    xs = [np.sort(rng.uniform(size=2000)) for _ in range(20)]
    ys = [np.sort(rng.uniform(size=2000)) for _ in range(20)]
    table = CalibrationTable.from_thresholds(xs, ys)  # 2 x 320 kB tables
    inputs = keras.Input((20,))
    model = keras.Model(inputs, IsotonicCalibration.from_table(table)(inputs))
    model.export(tmp_path / "1", format="tf_saved_model", verbose=False)
    assert (tmp_path / "1/saved_model.pb").stat().st_size < 200_000
    served = tf.saved_model.load(str(tmp_path / "1"))
    for rows in (0, 3):
        queries = rng.uniform(-0.1, 1.1, (rows, 20)).astype("float32")
        np.testing.assert_allclose(
            served.serve(queries), table.predict(queries), atol=1e-6
        )


def test_gradients_are_the_slopes_and_finite():
    table = CalibrationTable.from_thresholds(
        [[0.0, 0.5, 1.0], [0.4]], [[0.0, 0.2, 1.0], [0.3]]
    )
    layer = IsotonicCalibration.from_table(table)
    scores = tf.constant([[0.25, 0.1], [0.75, 0.4], [1.5, 0.9]])
    with tf.GradientTape() as tape:
        tape.watch(scores)
        total = tf.reduce_sum(layer(scores))
    grad = tape.gradient(total, scores).numpy()
    np.testing.assert_allclose(grad[:, 0], [0.4, 1.6, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(grad[:, 1], 0.0)  # constant column


def test_unset_layer_is_the_identity_and_shapes_are_checked():
    layer = IsotonicCalibration(num_columns=2, num_thresholds=4)
    queries = np.array([[-0.5, 0.3], [0.6, 1.5]], "float32")
    np.testing.assert_allclose(layer(queries), np.clip(queries, 0, 1))
    with pytest.raises(ValueError, match="does not fit"):
        layer.set_table(CalibrationTable.identity(3))
    with pytest.raises(ValueError):
        layer(np.zeros((1, 3), "float32"))


def test_tables_stay_float64_under_mixed_precision():
    table = fit_isotonic(*random_head())
    queries = np.random.default_rng(9).uniform(size=(50, 5)).astype("float32")
    expected = table.predict(queries)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = IsotonicCalibration.from_table(table)
        out = layer(queries)
        # A float16 compute dtype must not autocast the float64 tables.
        half = IsotonicCalibration.from_table(table, dtype="mixed_float16")
        out_half = half(queries.astype("float16"))
        expected_half = table.predict(queries.astype("float16"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == "float32" and layer.x_thresholds.dtype == "float64"
    np.testing.assert_allclose(out, expected, atol=SKLEARN_TOLERANCE)
    assert out_half.dtype == "float16"
    np.testing.assert_allclose(out_half, expected_half, atol=1e-3)


def test_layer_harness(tmp_path):
    check_config_round_trip(IsotonicCalibration(3, 5))
    # Strictly increasing pieces, so gradients reach the Dense layer.
    table = CalibrationTable.from_thresholds(
        [[0.0, 0.3, 0.6, 1.0], [0.0, 1.0], [0.1, 0.2, 0.9]],
        [[0.0, 0.2, 0.7, 1.0], [0.1, 0.9], [0.0, 0.5, 0.8]],
    )
    rng = np.random.default_rng(10)
    x = rng.normal(size=(8, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 8)]

    def build():
        inputs = keras.Input((4,))
        seed = keras.initializers.GlorotUniform(seed=1)
        probabilities = keras.layers.Dense(
            3, activation="softmax", kernel_initializer=seed
        )(inputs)
        outputs = IsotonicCalibration.from_table(table)(probabilities)
        return keras.Model(inputs, outputs)

    def compile_kwargs():
        return {"optimizer": keras.optimizers.SGD(0.5), "loss": "mse"}

    check_fit_save_and_replicas(build, compile_kwargs, x, y, tmp_path)
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    restored = loaded.layers[-1]
    np.testing.assert_array_equal(restored.x_thresholds.numpy(), table.x)
    np.testing.assert_array_equal(restored.y_thresholds.numpy(), table.y)
    np.testing.assert_array_equal(restored.lengths.numpy(), table.lengths)


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


def test_reliability_diagram_writes_a_png_atomically(tmp_path):
    rng = np.random.default_rng(13)
    before = rng.dirichlet(np.ones(4) * 0.2, size=300)
    labels = rng.integers(0, 4, 300)
    after = fit_isotonic(before, labels).predict(before)
    path = tmp_path / "plots" / "category.png"
    path.parent.mkdir()
    path.write_bytes(b"stale")
    written = reliability_diagram(before, after, labels, path, "category")
    assert written == path
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    assert [p.name for p in path.parent.iterdir()] == ["category.png"]


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


def test_docstring_examples():
    result = doctest.testmod(calibration)
    assert result.attempted > 0 and result.failed == 0
