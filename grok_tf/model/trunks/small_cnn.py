"""A small, fast convolutional trunk for unit tests and CPU demos.

The GrokNet trunk (ResNeXt-101 32x4d, 44M parameters) is far too slow to
train on a laptop CPU. `small_cnn` keeps the same contract (float32 RGB in
[0, 255] in, final spatial feature map out, ImageNet normalisation inside
the model) at about 0.59M parameters and a few tens of milliseconds per
training step of 32 images of 64x64 on two CPU cores.

Architecture (VGG-like, conv 3x3 + BN + ReLU throughout, stride 2 at the
start of every stage, "same" padding so any input size works)::

    stage   layers                      width   output for 64x64
    1       conv s2                       16      32x32
    2       conv s2, conv                 32      16x16
    3       conv s2, conv                 64       8x8
    4       conv s2, conv                128       4x4
    5       conv s2                      256       2x2

The output width is 256 and the output stride 32: an H x W input gives a
ceil(H / 32) x ceil(W / 32) x 256 map. Plain convolutions are used on
purpose: on CPU, TensorFlow's depthwise convolutions and XLA's convolution
backward passes are slower than oneDNN's dense 3x3 convolutions at these
sizes.

Reference:
    Simonyan, Zisserman. "Very Deep Convolutional Networks for Large-Scale
    Image Recognition". ICLR 2015 (3x3 conv stacks).
    Ioffe, Szegedy. "Batch Normalization". ICML 2015.
"""

from collections.abc import Sequence

import keras

from grok_tf.model.trunks.registry import register_trunk
from grok_tf.model.trunks.resnext import imagenet_normalization

#: Default stage widths; the last one is the trunk's output width.
DEFAULT_WIDTHS = (16, 32, 64, 128, 256)
#: Default number of conv-BN-ReLU layers per stage (the first is strided).
DEFAULT_DEPTHS = (1, 2, 2, 2, 1)
#: Batch-norm momentum: 0.9 (not Keras' 0.99) so the moving statistics are
#: usable after the few hundred steps of a CPU demo.
BN_MOMENTUM = 0.9


@register_trunk("small_cnn")
def small_cnn(
    input_shape: tuple[int, int, int] = (64, 64, 3),
    widths: Sequence[int] = DEFAULT_WIDTHS,
    depths: Sequence[int] = DEFAULT_DEPTHS,
    include_preprocessing: bool = True,
    weights: str | None = None,
    name: str = "small_cnn",
    **kwargs,
) -> keras.Model:
    """Builds the small CNN trunk.

    Args:
        input_shape: (H, W, 3) of the float32 RGB input in [0, 255]. Any H, W
            of at least 32 works, odd sizes included.
        widths: Output channels of each stage; `widths[-1]` (256 by default)
            is the trunk's output width.
        depths: Conv-BN-ReLU layers in each stage; the first layer of every
            stage has stride 2. Same length as `widths`.
        include_preprocessing: If True (default) the model starts with an
            ImageNet mean / std normalisation of its [0, 255] input.
        weights: Must be None: the small CNN has no pretrained weights.
        name: Model name.
        **kwargs: Forwarded to `keras.Model`.

    Returns:
        A `keras.Model` mapping [B, H, W, 3] images to the feature map
        [B, ceil(H / 2**n), ceil(W / 2**n), widths[-1]] with n = len(widths),
        i.e. [B, 2, 2, 256] for a 64x64 input with the defaults. About 0.59M
        parameters with the defaults.

    Raises:
        ValueError: If `weights` is not None, or `widths` and `depths`
            differ in length or contain a non-positive entry.

    Example:
        >>> trunk = small_cnn(input_shape=(64, 64, 3))
        >>> trunk.output.shape
        (None, 2, 2, 256)

    Reference:
        Simonyan, Zisserman. "Very Deep Convolutional Networks for
        Large-Scale Image Recognition". ICLR 2015.
    """
    if weights is not None:
        raise ValueError(
            f"No pretrained weights are available for '{name}' (got "
            f"weights={weights!r}): small_cnn is a test / demo trunk that is "
            "always trained from scratch. Use weights=None (`weights: null` "
            "in a config)."
        )
    if len(widths) != len(depths) or not widths:
        raise ValueError(
            f"`widths` {tuple(widths)} and `depths` {tuple(depths)} must be "
            "non-empty and of the same length."
        )
    if min(widths) < 1 or min(depths) < 1:
        raise ValueError(
            f"`widths` {tuple(widths)} and `depths` {tuple(depths)} must be "
            "positive."
        )

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    if include_preprocessing:
        x = imagenet_normalization()(x)
    for stage, (width, depth) in enumerate(
        zip(widths, depths, strict=True), start=1
    ):
        for layer in range(1, depth + 1):
            prefix = f"stage{stage}_conv{layer}"
            x = keras.layers.Conv2D(
                width,
                3,
                strides=2 if layer == 1 else 1,
                padding="same",
                use_bias=False,
                kernel_initializer="he_normal",
                name=prefix,
            )(x)
            x = keras.layers.BatchNormalization(
                momentum=BN_MOMENTUM, name=f"{prefix}_bn"
            )(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
    return keras.Model(inputs, x, name=name, **kwargs)
