import keras
import numpy as np
import pytest
import tensorflow as tf

from grok_tf.calibration.layer import IsotonicCalibration
from grok_tf.calibration.table import CalibrationTable
from grok_tf.calibration.table import fit_isotonic
from tests.harness import check_config_round_trip
from tests.harness import check_fit_save_and_replicas
from tests.helpers import SKLEARN_TOLERANCE
from tests.helpers import adversarial_head
from tests.helpers import random_head
from tests.helpers import sklearn_models
from tests.helpers import sklearn_predict


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

    check_fit_save_and_replicas(
        build,
        compile_kwargs,
        x,
        y,
        tmp_path,
        expected_num_trainable_weights=2,  # the Dense layer
        # the table (x, y thresholds and lengths) is never trained
        expected_num_non_trainable_weights=3,
    )
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    restored = loaded.layers[-1]
    np.testing.assert_array_equal(restored.x_thresholds.numpy(), table.x)
    np.testing.assert_array_equal(restored.y_thresholds.numpy(), table.y)
    np.testing.assert_array_equal(restored.lengths.numpy(), table.lengths)
