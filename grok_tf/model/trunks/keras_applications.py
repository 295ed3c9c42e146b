"""Trunks from `keras.applications`: ResNet-50 and EfficientNetV2-B0.

Both are wrapped so that they honour the trunk contract of `grok_tf`: the
model takes float32 RGB images in [0, 255], applies its family's own input
preprocessing inside the graph, and returns the last spatial feature map
(no pooling, no classifier). The models are flat functional graphs built
from standard or registered layers, so `.keras` save / load round-trips.

* ``resnet50``: caffe-style preprocessing (RGB -> BGR, ImageNet mean pixel
  subtracted, no scaling), done by the registered `CaffePreprocessing`
  layer; output width 2048, stride 32.
* ``efficientnetv2b0``: `include_preprocessing=True`, i.e. the model's own
  `Rescaling(1/255)` + ImageNet `Normalization`; output width 1280 (the
  1x1 "top" conv, swish-activated, is part of the feature extractor),
  stride 32.

With ``weights="imagenet"`` Keras downloads the checkpoint on first use
(cached in ``~/.keras/models``). Without network access that fails; the
builders turn the failure into an error naming the trunk and suggesting
``weights: null``.

Reference:
    He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition".
    CVPR 2016. Tan, Le. "EfficientNetV2: Smaller Models and Faster
    Training". ICML 2021.
"""

from collections.abc import Callable
from collections.abc import Sequence

import keras

from grok_tf.model.trunks.registry import register_trunk

#: ImageNet mean pixel in BGR order on the [0, 255] scale, as used by
#: `keras.applications.imagenet_utils.preprocess_input(mode="caffe")`.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="grok_tf")
class CaffePreprocessing(keras.layers.Layer):
    """Caffe-style image preprocessing: RGB -> BGR, minus the mean pixel.

    Computes ``x[..., ::-1] - mean`` for channels-last RGB images in
    [0, 255], exactly like
    ``keras.applications.resnet50.preprocess_input`` (``mode="caffe"``),
    but as a serialisable layer inside the model.

    Args:
        mean: Per-channel mean to subtract, in BGR order.
        **kwargs: Forwarded to `keras.layers.Layer` (e.g. `name`).

    Returns:
        When called on [..., 3] RGB images: the [..., 3] zero-centred BGR
        images, same dtype.

    Example:
        >>> layer = CaffePreprocessing()
        >>> y = layer(keras.ops.full((1, 2, 2, 3), 128.0))

    Reference:
        Jia et al. "Caffe: Convolutional Architecture for Fast Feature
        Embedding". ACM MM 2014; He et al. "Deep Residual Learning for Image
        Recognition". CVPR 2016 (the ResNet-50 weights expect this input).
    """

    def __init__(self, mean: Sequence[float] = CAFFE_BGR_MEAN, **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)
        if len(self.mean) != 3:
            raise ValueError(f"`mean` must have 3 values, got {mean!r}.")

    def call(self, inputs):
        """Flips the channel axis and subtracts the BGR mean."""
        bgr = keras.ops.flip(inputs, axis=-1)
        mean = keras.ops.convert_to_tensor(self.mean, dtype=bgr.dtype)
        return bgr - mean

    def compute_output_shape(self, input_shape):
        """The output has the input's shape."""
        return input_shape

    def get_config(self):
        """Returns the layer config, including `mean`."""
        config = super().get_config()
        config["mean"] = list(self.mean)
        return config


def _build_application(
    trunk_name: str,
    application: Callable[..., keras.Model],
    input_shape: tuple[int, int, int],
    weights: str | None,
    preprocessing: keras.layers.Layer | None,
    **application_kwargs,
) -> keras.Model:
    """Builds `application` headless on our input, as a flat, named model."""
    if weights not in (None, "imagenet"):
        raise ValueError(
            f"Trunk '{trunk_name}' accepts weights=None or 'imagenet', got "
            f"{weights!r}."
        )
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs if preprocessing is None else preprocessing(inputs)
    try:
        base = application(
            include_top=False,
            weights=weights,
            input_tensor=x,
            input_shape=tuple(input_shape),
            **application_kwargs,
        )
    except Exception as exc:
        if weights != "imagenet":
            raise
        raise RuntimeError(
            f"Could not download the ImageNet weights of trunk "
            f"'{trunk_name}' (no internet access, or the download failed: "
            f"{exc}). Use `weights: null` (weights=None) to train from "
            "random initialisation, or place the Keras weight file in "
            "~/.keras/models/ beforehand."
        ) from exc
    return keras.Model(inputs, base.output, name=trunk_name)


@register_trunk("resnet50")
def resnet50_trunk(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    weights: str | None = None,
) -> keras.Model:
    """ResNet-50 trunk with in-model caffe preprocessing.

    Args:
        input_shape: (H, W, 3) of the float32 RGB input in [0, 255]; H and W
            of at least 32.
        weights: None (random initialisation) or "imagenet".

    Returns:
        A `keras.Model` named "resnet50" mapping [B, H, W, 3] to the
        [B, h, w, 2048] feature map of stage 5 (stride 32, post-ReLU);
        23.59M parameters (23.53M trainable).

    Raises:
        ValueError: If `weights` is neither None nor "imagenet".
        RuntimeError: If the ImageNet weights cannot be downloaded.

    Example:
        >>> trunk = resnet50_trunk((64, 64, 3))
        >>> trunk.output.shape
        (None, 2, 2, 2048)

    Reference:
        He, Zhang, Ren, Sun. "Deep Residual Learning for Image
        Recognition". CVPR 2016. https://arxiv.org/abs/1512.03385
    """
    return _build_application(
        "resnet50",
        keras.applications.ResNet50,
        input_shape,
        weights,
        CaffePreprocessing(name="caffe_preprocessing"),
    )


@register_trunk("efficientnetv2b0")
def efficientnetv2b0_trunk(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    weights: str | None = None,
) -> keras.Model:
    """EfficientNetV2-B0 trunk with its own in-model preprocessing.

    Args:
        input_shape: (H, W, 3) of the float32 RGB input in [0, 255]; H and W
            of at least 32.
        weights: None (random initialisation) or "imagenet".

    Returns:
        A `keras.Model` named "efficientnetv2b0" mapping [B, H, W, 3] to the
        [B, h, w, 1280] output of the swish-activated top conv (stride 32;
        values can be slightly negative); 5.92M parameters.

    Raises:
        ValueError: If `weights` is neither None nor "imagenet".
        RuntimeError: If the ImageNet weights cannot be downloaded.

    Example:
        >>> trunk = efficientnetv2b0_trunk((64, 64, 3))
        >>> trunk.output.shape
        (None, 2, 2, 1280)

    Reference:
        Tan, Le. "EfficientNetV2: Smaller Models and Faster Training".
        ICML 2021. https://arxiv.org/abs/2104.00298
    """
    return _build_application(
        "efficientnetv2b0",
        keras.applications.EfficientNetV2B0,
        input_shape,
        weights,
        None,
        include_preprocessing=True,
    )
