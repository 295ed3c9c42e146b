"""Generalised-mean (GeM) pooling with a learnable exponent."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="grok_tf")
class GeMPooling(keras.layers.Layer):
    """Generalised-mean pooling over the spatial axes of a feature map.

    For each channel, `f = (mean_{h,w} max(x, eps)^p)^(1/p)`: `p = 1` is
    average pooling and `p -> inf` approaches max pooling. GrokNet replaces
    the trunk's average pooling with GeM and learns `p` (initialised to 3).

    The mean of powers is computed in the log domain,
    `f = exp((logsumexp(p * log x) - log(h * w)) / p)`, so large `p` or large
    activations neither overflow nor underflow. The layer always computes in
    float32 (x**p overflows float16), whatever the global dtype policy;
    keep `p` out of weight decay (see `grok_tf.training.fit`).

    Args:
        p: initial exponent, > 0. Defaults to 3.
        epsilon: activations are clipped below at this value (GeM needs
            positive inputs). Defaults to 1e-6.
        trainable_p: whether `p` is learned. Defaults to True.
        **kwargs: forwarded to `keras.layers.Layer`.

    Call arguments:
        inputs: feature map `[batch, height, width, channels]`.

    Returns:
        `[batch, channels]` pooled features, float32.

    Example:

    >>> import numpy as np
    >>> x = np.ones((2, 7, 7, 2048), "float32")
    >>> tuple(GeMPooling(p=3.0)(x).shape)
    (2, 2048)

    Reference:
        Radenović, Tolias, Chum, "Fine-tuning CNN Image Retrieval with No
        Human Annotation", TPAMI 2018; Bell et al., "GrokNet: Unified
        Computer Vision Model Trunk and Embeddings For Commerce", KDD 2020.
    """

    def __init__(self, p=3.0, epsilon=1e-6, trainable_p=True, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if p <= 0:
            raise ValueError(f"GeMPooling: p must be positive, got {p}")
        self.initial_p = float(p)
        self.epsilon = float(epsilon)
        self.trainable_p = bool(trainable_p)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        self.p = self.add_weight(
            name="p",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_p),
            trainable=self.trainable_p,
            dtype="float32",
        )

    def call(self, inputs):
        x = ops.maximum(ops.cast(inputs, "float32"), self.epsilon)
        shape = ops.shape(x)
        x = ops.reshape(x, (shape[0], -1, shape[-1]))
        count = ops.cast(ops.shape(x)[1], "float32")
        log_mean = ops.logsumexp(self.p * ops.log(x), axis=1) - ops.log(count)
        return ops.exp(log_mean / self.p)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "p": self.initial_p,
                "epsilon": self.epsilon,
                "trainable_p": self.trainable_p,
            }
        )
        return config
