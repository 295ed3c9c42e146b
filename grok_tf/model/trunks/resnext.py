"""ResNeXt backbones built from grouped convolutions (torchvision layout).

GrokNet (Bell et al., KDD 2020) uses a ResNeXt-101 32x4d trunk. This module
builds it, and any other ResNeXt, as a Keras functional model whose layout
matches torchvision / timm exactly: a 7x7/2 stem and a 3x3/2 max pool, four
stages of bottleneck blocks, the stride on the grouped 3x3 convolution
("ResNet v1.5"), and a 1x1 conv + BN projection shortcut whenever the shape
changes. Padding is explicit and symmetric (as in PyTorch), so feature map
sizes equal torchvision's for every input size, odd ones included.

The trunk takes float32 RGB images in [0, 255] and normalises them with the
ImageNet mean / std inside the model (a `keras.layers.Normalization` with
fixed statistics, so `.keras` save/load needs no custom objects).

Reference:
    Xie, Girshick, Dollar, Tu, He. "Aggregated Residual Transformations for
    Deep Neural Networks". CVPR 2017. https://arxiv.org/abs/1611.05431
"""

from collections.abc import Sequence

import keras

from grok_tf.model.trunks.registry import register_trunk

#: ImageNet RGB mean on the [0, 255] scale (torchvision's 0.485, 0.456, 0.406).
IMAGENET_MEAN_255 = (0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0)
#: ImageNet RGB std on the [0, 255] scale (torchvision's 0.229, 0.224, 0.225).
IMAGENET_STD_255 = (0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0)

#: Bottleneck expansion: a block's output width is 4x its `planes`.
EXPANSION = 4
#: Batch-norm epsilon and momentum of torchvision (its momentum 0.1 is
#: Keras' 0.9: Keras weights the running statistic, PyTorch the new batch).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def imagenet_normalization(name="imagenet_normalization"):
    """Returns a layer mapping [0, 255] RGB to ImageNet-standardised RGB.

    The layer computes `(x - 255 * mean) / (255 * std)` per channel with the
    torchvision ImageNet statistics. It is a plain `keras.layers.Normalization`
    with fixed mean and variance, so it has no weights and serialises without
    custom objects.

    Args:
        name: Layer name.

    Returns:
        A `keras.layers.Normalization` layer.

    Example:
        >>> layer = imagenet_normalization()
        >>> y = layer(keras.ops.full((1, 2, 2, 3), 255.0))
    """
    return keras.layers.Normalization(
        axis=-1,
        mean=list(IMAGENET_MEAN_255),
        variance=[s * s for s in IMAGENET_STD_255],
        name=name,
    )


def _kernel_initializer():
    """He-normal with fan-out, as torchvision initialises ResNe(X)t convs."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def _conv_bn(x, filters, kernel_size, strides, groups, name, relu):
    """Conv (PyTorch-style symmetric padding, no bias) + BN (+ ReLU)."""
    pad = kernel_size // 2
    if pad:
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="valid",
        groups=groups,
        use_bias=False,
        kernel_initializer=_kernel_initializer(),
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn"
    )(x)
    if relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def bottleneck_block(x, planes, strides, groups, width_per_group, name):
    """One ResNeXt bottleneck block (torchvision `Bottleneck`).

    1x1 conv to the inner width, grouped 3x3 conv (carrying the stride),
    1x1 conv to `4 * planes`, each followed by BN; ReLU after the first two
    and after the residual addition. The shortcut is a strided 1x1 conv + BN
    when the spatial size or the width changes, the identity otherwise.

    Args:
        x: Input tensor [B, H, W, C].
        planes: Base width of the block; the output has `4 * planes` channels.
        strides: Stride of the grouped 3x3 convolution (1 or 2).
        groups: Cardinality, the number of groups of the 3x3 convolution.
        width_per_group: Channels per group at `planes == 64`; the inner
            width is `planes * width_per_group / 64 * groups`.
        name: Prefix of the block's layer names.

    Returns:
        The block's output tensor [B, ceil(H / strides), ceil(W / strides),
        4 * planes].

    Example:
        >>> inputs = keras.Input((56, 56, 64))
        >>> y = bottleneck_block(inputs, 64, 1, 32, 4, "block")  # 56x56x256

    Reference:
        Xie et al. "Aggregated Residual Transformations for Deep Neural
        Networks". CVPR 2017, Fig. 3(c).
    """
    width = int(planes * (width_per_group / 64.0)) * groups
    out_channels = planes * EXPANSION
    shortcut = x
    if strides != 1 or x.shape[-1] != out_channels:
        shortcut = _conv_bn(
            x, out_channels, 1, strides, 1, f"{name}_proj", relu=False
        )
    y = _conv_bn(x, width, 1, 1, 1, f"{name}_1", relu=True)
    y = _conv_bn(y, width, 3, strides, groups, f"{name}_2", relu=True)
    y = _conv_bn(y, out_channels, 1, 1, 1, f"{name}_3", relu=False)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def resnext(
    depths: Sequence[int],
    groups: int = 32,
    width_per_group: int = 4,
    input_shape: tuple[int, int, int] = (224, 224, 3),
    include_top: bool = False,
    classes: int = 1000,
    include_preprocessing: bool = True,
    weights: str | None = None,
    name: str = "resnext",
    **kwargs,
) -> keras.Model:
    """Builds a ResNeXt with the torchvision layout.

    Args:
        depths: Number of bottleneck blocks in each of the four stages, e.g.
            `(3, 4, 6, 3)` for ResNeXt-50 or `(3, 4, 23, 3)` for ResNeXt-101.
        groups: Cardinality of the grouped 3x3 convolutions.
        width_per_group: Channels per group in the first stage (the "4d" of
            "32x4d"); it doubles with every stage, like `planes`.
        input_shape: (H, W, 3) of the float32 RGB input in [0, 255]; H and W
            of at least 32.
        include_top: If True, appends global average pooling and a
            `Dense(classes)` classifier producing logits; if False the model
            returns the last feature map [B, h, w, 2048].
        classes: Number of classes of the classifier (only with
            `include_top=True`).
        include_preprocessing: If True (default) the model starts with an
            ImageNet mean / std normalisation of its [0, 255] input.
        weights: Must be None (random initialisation): no pretrained ResNeXt
            weights are available offline.
        name: Model name.
        **kwargs: Forwarded to `keras.Model`.

    Returns:
        A `keras.Model`. Without the top, the output has stride 32: an
        H x W input gives a map of ceil-halved size five times (7x7 for 224).

    Raises:
        ValueError: If `weights` is not None.

    Example:
        >>> model = resnext((3, 4, 6, 3), 32, 4, input_shape=(64, 64, 3))
        >>> model.output.shape
        (None, 2, 2, 2048)

    Reference:
        Xie et al. "Aggregated Residual Transformations for Deep Neural
        Networks". CVPR 2017. https://arxiv.org/abs/1611.05431
    """
    if weights is not None:
        raise ValueError(
            f"No pretrained weights are available for '{name}' (got "
            f"weights={weights!r}): there is no offline ImageNet checkpoint "
            "for the Keras ResNeXt. Use weights=None (`weights: null` in a "
            "config) to train from random initialisation."
        )
    if len(depths) != 4:
        raise ValueError(f"`depths` must have 4 stages, got {depths!r}.")

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    if include_preprocessing:
        x = imagenet_normalization()(x)
    x = _conv_bn(x, 64, 7, 2, 1, "stem", relu=True)
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    for stage, (depth, planes) in enumerate(
        zip(depths, (64, 128, 256, 512), strict=True), start=1
    ):
        for block in range(1, depth + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = bottleneck_block(
                x,
                planes,
                strides,
                groups,
                width_per_group,
                name=f"stage{stage}_block{block}",
            )
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(classes, name="fc")(x)
    return keras.Model(inputs, x, name=name, **kwargs)


def resnext50_32x4d(
    input_shape=(224, 224, 3), include_top=False, classes=1000, **kwargs
):
    """ResNeXt-50 32x4d: 25.03M parameters with its 1000-class top.

    Args:
        input_shape: (H, W, 3) of the float32 RGB input in [0, 255].
        include_top: Append global average pooling and `Dense(classes)`.
        classes: Number of classes of the classifier.
        **kwargs: Forwarded to `resnext` (e.g. `name`, `weights`).

    Returns:
        A `keras.Model` whose feature output has 2048 channels.

    Example:
        >>> model = resnext50_32x4d(input_shape=(64, 64, 3))

    Reference:
        Xie et al. "Aggregated Residual Transformations for Deep Neural
        Networks". CVPR 2017, Table 1.
    """
    kwargs.setdefault("name", "resnext50_32x4d")
    return resnext(
        (3, 4, 6, 3), 32, 4, input_shape, include_top, classes, **kwargs
    )


@register_trunk("resnext101_32x4d")
def resnext101_32x4d(
    input_shape=(224, 224, 3), include_top=False, classes=1000, **kwargs
):
    """ResNeXt-101 32x4d, the GrokNet trunk: 44.18M parameters with its top.

    The count 44.18M (timm's `resnext101_32x4d`, 44,177,704) is the number of
    trainable parameters: convolution kernels, BN gamma / beta and the
    classifier. Keras' `count_params()` additionally counts the BN moving
    mean / variance (non-trainable), so compare against
    `sum(keras.ops.size(w) for w in model.trainable_weights)`.

    Args:
        input_shape: (H, W, 3) of the float32 RGB input in [0, 255].
        include_top: Append global average pooling and `Dense(classes)`.
        classes: Number of classes of the classifier.
        **kwargs: Forwarded to `resnext` (e.g. `name`, `weights`).

    Returns:
        A `keras.Model` whose feature output has 2048 channels.

    Example:
        >>> trunk = resnext101_32x4d(input_shape=(224, 224, 3))
        >>> trunk.output.shape
        (None, 7, 7, 2048)

    Reference:
        Xie et al. "Aggregated Residual Transformations for Deep Neural
        Networks". CVPR 2017. Bell et al. "GrokNet: Unified Computer Vision
        Model Trunk and Embeddings For Commerce". KDD 2020.
    """
    kwargs.setdefault("name", "resnext101_32x4d")
    return resnext(
        (3, 4, 23, 3), 32, 4, input_shape, include_top, classes, **kwargs
    )
