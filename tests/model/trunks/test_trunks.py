"""Tests of the trunk backbones: registry, shapes, counts, preprocessing, I/O.

Parameter counts are checked against the published numbers: ResNeXt-101
32x4d 44.18M and ResNeXt-50 32x4d 25.03M (timm / torchvision, counting the
trainable parameters: conv kernels, BN gamma / beta, classifier), ResNet-50
25.6M and EfficientNetV2-B0 7.2M (Keras Applications table, with the
1000-class top).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from grok_tf.model.trunks import TRUNK_BUILDERS
from grok_tf.model.trunks import CaffePreprocessing
from grok_tf.model.trunks import build_trunk
from grok_tf.model.trunks import register_trunk
from grok_tf.model.trunks import trunk_names
from grok_tf.model.trunks import unregister_trunk
from grok_tf.model.trunks.resnext import IMAGENET_MEAN_255
from grok_tf.model.trunks.resnext import resnext50_32x4d
from grok_tf.model.trunks.resnext import resnext101_32x4d
from tests.helpers import images
from tests.helpers import n_trainable

WIDTHS = {
    "resnext101_32x4d": 2048,
    "resnet50": 2048,
    "efficientnetv2b0": 1280,
    "small_cnn": 256,
    "efficientnet_lite0": 1280,
}

_CACHE = {}


def trunk(name, size):
    """Builds (once per session) the trunk `name` for size x size inputs."""
    key = (name, size)
    if key not in _CACHE:
        _CACHE[key] = build_trunk(name, (size, size, 3))
    return _CACHE[key]


def test_trunk_names():
    assert set(trunk_names()) == {
        "resnext101_32x4d",
        "resnet50",
        "efficientnetv2b0",
        "small_cnn",
        "efficientnet_lite0",
    }
    assert trunk_names() == tuple(TRUNK_BUILDERS)


def test_unknown_trunk_lists_accepted_names():
    with pytest.raises(ValueError, match="resnet9000") as info:
        build_trunk("resnet9000", (64, 64, 3))
    for name in trunk_names():
        assert name in str(info.value)


@pytest.mark.parametrize(
    "shape, message",
    [((64, 64, 1), "RGB"), ((31, 64, 3), "at least 32"), ((64, 64), "RGB")],
)
def test_bad_input_shape(shape, message):
    with pytest.raises(ValueError, match=message):
        build_trunk("small_cnn", shape)


def test_bad_weights_value():
    with pytest.raises(ValueError, match="None or 'imagenet'"):
        build_trunk("resnet50", (64, 64, 3), weights="imagenet21k")


@pytest.mark.parametrize("name", ["small_cnn", "resnext101_32x4d"])
def test_imagenet_weights_unavailable(name):
    with pytest.raises(ValueError, match="weights: null") as info:
        build_trunk(name, (64, 64, 3), weights="imagenet")
    assert name in str(info.value)
    assert "No pretrained weights" in str(info.value)


def test_imagenet_download_failure_is_explained(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no route to host")

    # keras.applications fetch their weights through this function.
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline)
    with pytest.raises(RuntimeError) as info:
        build_trunk("resnet50", (64, 64, 3), weights="imagenet")
    message = str(info.value)
    assert "ImageNet weights" in message
    assert "'resnet50'" in message
    assert "weights: null" in message
    assert "URL fetch failure" in message


@pytest.mark.parametrize("name", trunk_names())
@pytest.mark.parametrize("size, spatial", [(64, 2), (75, 3)])
def test_output_shape(name, size, spatial):
    model = trunk(name, size)
    assert model.name == name
    assert tuple(model.input.shape) == (None, size, size, 3)
    expected = (None, spatial, spatial, WIDTHS[name])
    assert tuple(model.output.shape) == expected
    out = model.predict(images(2, size, size), verbose=0)
    assert out.shape == (2, *expected[1:])
    assert np.isfinite(out).all()


@pytest.mark.parametrize(
    "height, width, out_hw", [(32, 32, (1, 1)), (97, 40, (4, 2))]
)
def test_small_cnn_any_size(height, width, out_hw):
    model = build_trunk("small_cnn", (height, width, 3))
    out = model(images(1, height, width))
    assert tuple(out.shape) == (1, *out_hw, 256)


def test_resnext_feature_sizes_match_torchvision():
    # torchvision: conv 7/2 p3, max pool 3/2 p1, then 3x3 convs s2 p1.
    def conv_out(n, k, s, p):
        return (n + 2 * p - k) // s + 1

    for size in (32, 75, 97):
        n = conv_out(conv_out(size, 7, 2, 3), 3, 2, 1)
        for _ in range(3):
            n = conv_out(n, 3, 2, 1)
        model = resnext50_32x4d((size, size, 3))
        assert tuple(model.output.shape) == (None, n, n, 2048)


def test_resnext101_32x4d_parameter_count():
    model = resnext101_32x4d(include_top=True, classes=1000)
    trainable = n_trainable(model)
    assert abs(trainable - 44.18e6) / 44.18e6 < 0.005
    assert trainable == 44_177_704  # timm's exact count
    # count_params() also holds BN moving mean / variance (2 per channel).
    bn_channels = sum(
        layer.gamma.shape[0]
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    assert model.count_params() == trainable + 2 * bn_channels
    # Without the top: everything but Dense(2048 -> 1000).
    assert n_trainable(trunk("resnext101_32x4d", 64)) == (
        trainable - (2048 * 1000 + 1000)
    )


def test_resnext50_32x4d_parameter_count():
    trainable = n_trainable(resnext50_32x4d(include_top=True))
    assert abs(trainable - 25.03e6) / 25.03e6 < 0.005
    assert trainable == 25_028_904


def test_resnext_grouped_bottleneck_widths():
    model = trunk("resnext101_32x4d", 64)
    blocks = {}
    for stage, inner, out, n_blocks in [
        (1, 128, 256, 3),
        (2, 256, 512, 4),
        (3, 512, 1024, 23),
        (4, 1024, 2048, 3),
    ]:
        conv = model.get_layer(f"stage{stage}_block1_2_conv")
        assert conv.groups == 32
        assert conv.filters == inner
        assert conv.kernel_size == (3, 3)
        assert conv.strides == ((1, 1) if stage == 1 else (2, 2))
        assert model.get_layer(f"stage{stage}_block1_3_conv").filters == out
        assert model.get_layer(f"stage{stage}_block1_proj_conv").filters == out
        blocks[stage] = n_blocks
        model.get_layer(f"stage{stage}_block{n_blocks}_add")
        with pytest.raises(ValueError):
            model.get_layer(f"stage{stage}_block{n_blocks + 1}_add")
    bn = model.get_layer("stem_bn")
    assert bn.epsilon == pytest.approx(1e-5)


@pytest.mark.parametrize(
    "name, published_with_top",
    [("resnet50", 25.6e6), ("efficientnetv2b0", 7.2e6)],
)
def test_keras_application_parameter_counts(name, published_with_top):
    model = trunk(name, 64)
    top = WIDTHS[name] * 1000 + 1000
    total = model.count_params() + top
    assert abs(total - published_with_top) / published_with_top < 0.005


def test_small_cnn_is_small():
    model = trunk("small_cnn", 64)
    assert 0.3e6 <= model.count_params() <= 1e6


def test_imagenet_normalisation_inside_resnext_and_small_cnn():
    for name in ("small_cnn", "resnext101_32x4d"):
        layer = trunk(name, 64).get_layer("imagenet_normalization")
        mean_image = np.broadcast_to(
            np.asarray(IMAGENET_MEAN_255, "float32"), (1, 4, 4, 3)
        )
        np.testing.assert_allclose(layer(mean_image), 0.0, atol=1e-5)
        white = np.full((1, 1, 1, 3), 255.0, "float32")
        np.testing.assert_allclose(
            np.asarray(layer(white)).ravel(),
            [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225],
            rtol=1e-5,
        )


def test_caffe_preprocessing_matches_keras():
    x = images(2, 5, 7)
    expected = keras.applications.resnet50.preprocess_input(x.copy())
    layer = CaffePreprocessing()
    np.testing.assert_allclose(layer(x), expected, atol=1e-4)
    clone = CaffePreprocessing.from_config(layer.get_config())
    np.testing.assert_allclose(clone(x), expected, atol=1e-4)
    assert trunk("resnet50", 64).layers[1].__class__ is CaffePreprocessing


def test_efficientnet_uses_its_own_preprocessing():
    model = trunk("efficientnetv2b0", 64)
    kinds = [type(layer).__name__ for layer in model.layers[1:3]]
    assert kinds == ["Rescaling", "Normalization"]


def test_small_cnn_gradients_reach_every_weight():
    model = trunk("small_cnn", 64)
    x = tf.constant(images(4, 64, 64))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x, training=True)))
    grads = tape.gradient(loss, model.trainable_weights)
    assert len(grads) == len(model.trainable_weights)
    for weight, grad in zip(model.trainable_weights, grads, strict=True):
        assert grad is not None, weight.path
        assert float(tf.reduce_max(tf.abs(grad))) > 0, weight.path


@pytest.mark.parametrize("name", ["small_cnn", "resnet50"])
def test_keras_save_load_round_trip(name, tmp_path):
    model = trunk(name, 64)
    x = images(2, 64, 64, seed=1)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.name == name
    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def texture_images(n, size=64, seed=0):
    """Stripes (0), dots (1) and checks (2) in random colours, period 6-10."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    labels = rng.integers(0, 3, n)
    x = np.empty((n, size, size, 3), "float32")
    for i, label in enumerate(labels):
        period = int(rng.integers(6, 11))
        u = xx + rng.integers(0, period)
        v = yy + rng.integers(0, period)
        if label == 0:
            pattern = (u if rng.random() < 0.5 else v) % period < period / 2
        elif label == 1:
            radius2 = (u % period - period / 2) ** 2 + (
                v % period - period / 2
            ) ** 2
            pattern = radius2 < (period / 4) ** 2
        else:
            pattern = (u // (period // 2) + v // (period // 2)) % 2 == 0
        foreground, background = rng.uniform(0, 255, (2, 3))
        noise = rng.normal(0, 8, (size, size, 3))
        x[i] = np.where(pattern[..., None], foreground, background) + noise
    return np.clip(x, 0, 255), labels


def test_small_cnn_learns_texture():
    keras.utils.set_random_seed(0)
    x_train, y_train = texture_images(960, seed=0)
    x_test, y_test = texture_images(150, seed=1)
    features = build_trunk("small_cnn", (64, 64, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(features.output)
    model = keras.Model(features.input, keras.layers.Dense(3)(pooled))
    model.compile(
        keras.optimizers.Adam(3e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False,
    )
    model.fit(x_train, y_train, batch_size=32, epochs=4, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy > 0.75  # chance is 1/3; typically ~0.9


def tiny_trunk(input_shape, weights=None):
    image = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, strides=8, padding="same")(image)
    return keras.Model(image, x, name="tiny")


@pytest.fixture
def tiny_registered():
    register_trunk("tiny")(tiny_trunk)
    yield
    unregister_trunk("tiny")


def test_registered_trunk_is_a_spec_choice_and_builds_groknet(
    tiny_registered, tmp_path
):
    from grok_tf.data.sources import resolve_vocabularies
    from grok_tf.model import build_groknet
    from grok_tf.spec import load_spec
    from tests.helpers import make_colour_dataset
    from tests.helpers import write_spec

    raw = make_colour_dataset(tmp_path / "data")
    raw["model"] = {"trunk": "tiny", "input_size": 32, "embedding_size": 8}
    spec = resolve_vocabularies(load_spec(write_spec(tmp_path, raw)))
    model = build_groknet(spec)
    assert model.get_layer("tiny").output.shape[-1] == 8
    assert model.output["embedding"].shape == (None, 8)


def test_register_trunk_refuses_a_taken_name(tiny_registered):
    with pytest.raises(ValueError, match="'small_cnn' is already registered"):
        register_trunk("small_cnn")(tiny_trunk)
    assert TRUNK_BUILDERS["small_cnn"] is not tiny_trunk


def test_unknown_trunk_in_a_spec_lists_registered_names(
    tiny_registered, tmp_path
):
    from grok_tf.errors import SpecError
    from grok_tf.spec import load_spec
    from tests.helpers import make_colour_dataset
    from tests.helpers import write_spec

    raw = make_colour_dataset(tmp_path / "data")
    raw["model"]["trunk"] = "tinny"
    with pytest.raises(SpecError, match="unknown trunk 'tinny'.*tiny"):
        load_spec(write_spec(tmp_path, raw))
