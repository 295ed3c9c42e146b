import numpy as np

from grok_tf.model.layers import CosineClassifier
from tests.harness import run_layer_test


def test_cosines_match_numpy():
    layer = CosineClassifier(4)
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    got = np.asarray(layer(x))
    w = layer.centres.numpy()
    expected = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (
        w / np.linalg.norm(w, axis=0, keepdims=True)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(got).max() <= 1.0 + 1e-6


def test_scale_of_the_input_does_not_matter():
    layer = CosineClassifier(3)
    x = np.random.default_rng(1).normal(size=(2, 5)).astype("float32")
    # The centres are random, so a cosine can sit near 0: compare absolutely.
    np.testing.assert_allclose(layer(x), layer(7.0 * x), atol=1e-6)


def test_layer_harness(tmp_path):
    run_layer_test(
        CosineClassifier,
        {"num_classes": 3},
        (4, 5),
        (4, 3),
        tmp_path,
        expected_num_trainable_weights=1,  # the class centres
        expected_num_non_trainable_weights=0,
        expected_mixed_precision_dtype="float32",  # "Always float32"
    )
