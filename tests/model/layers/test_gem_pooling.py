import keras
import numpy as np
import pytest
import tensorflow as tf

from grok_tf.model.layers import GeMPooling
from tests.harness import run_layer_test


def gem_reference(x, p, eps=1e-6):
    x = np.maximum(x.astype(np.float64), eps)
    return np.mean(x**p, axis=(1, 2)) ** (1.0 / p)


def test_matches_numpy_reference():
    x = np.random.default_rng(1).uniform(0, 3, (3, 5, 4, 7)).astype("float32")
    out = GeMPooling(p=3.0)(x)
    np.testing.assert_allclose(out, gem_reference(x, 3.0), rtol=1e-5)


def test_p_one_is_average_pooling():
    x = np.random.default_rng(2).uniform(0, 5, (2, 6, 6, 4)).astype("float32")
    np.testing.assert_allclose(
        GeMPooling(p=1.0)(x), x.mean(axis=(1, 2)), rtol=1e-5
    )


def test_large_p_approaches_max_pooling():
    x = np.random.default_rng(3).uniform(0, 5, (2, 6, 6, 4)).astype("float32")
    peak = x.max(axis=(1, 2))
    gap = np.abs(np.asarray(GeMPooling(p=200.0)(x)) - peak) / peak
    # (1/36)^(1/200) = 0.982: GeM with p=200 is within 2% of the max.
    assert gap.max() < 0.02
    assert np.abs(np.asarray(GeMPooling(p=3.0)(x)) - peak).max() > 0.1


def test_stable_where_direct_power_overflows():
    x = np.full((1, 2, 2, 3), 60.0, "float32")  # 60**30 overflows float32
    np.testing.assert_allclose(GeMPooling(p=30.0)(x), 60.0, rtol=1e-5)


def test_gradient_with_respect_to_p_is_finite_and_matches_numpy():
    x = np.random.default_rng(4).uniform(0, 2, (2, 4, 4, 3)).astype("float32")
    layer = GeMPooling(p=3.0)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(layer(x))
    (grad,) = tape.gradient(total, [layer.p])
    h = 1e-3
    numeric = (
        gem_reference(x, 3.0 + h).sum() - gem_reference(x, 3.0 - h).sum()
    ) / (2 * h)
    assert np.isfinite(grad.numpy())
    np.testing.assert_allclose(grad.numpy(), numeric, rtol=1e-3)


def test_computes_in_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = GeMPooling()
        out = layer(np.full((1, 2, 2, 3), 60.0, "float16"))
        assert out.dtype == "float32"
        np.testing.assert_allclose(out, 60.0, rtol=1e-4)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_rejects_non_positive_p():
    with pytest.raises(ValueError, match="p must be positive"):
        GeMPooling(p=0.0)


def test_layer_harness(tmp_path):
    run_layer_test(
        GeMPooling,
        {"p": 2.5},
        input_shape=(4, 3, 3, 5),
        expected_output_shape=(4, 5),
        tmp_path=tmp_path,
        expected_num_trainable_weights=1,  # p
        expected_num_non_trainable_weights=0,
        expected_mixed_precision_dtype="float32",  # x**p overflows float16
    )


def test_frozen_p_is_a_non_trainable_weight(tmp_path):
    run_layer_test(
        GeMPooling,
        {"p": 2.5, "trainable_p": False},
        input_shape=(4, 3, 3, 5),
        expected_output_shape=(4, 5),
        tmp_path=tmp_path,
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=1,
        expected_mixed_precision_dtype="float32",
    )
