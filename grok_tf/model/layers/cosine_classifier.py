"""Cosine similarities to L2-normalised class centres (the ArcFace head)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="grok_tf")
class CosineClassifier(keras.layers.Layer):
    """Cosine similarity of each input to every learned class centre.

    `cos[b, c] = <x_b / |x_b|, w_c / |w_c|>`, in [-1, 1]. ArcFace and
    multi-label ArcFace turn these cosines into logits with an angular
    margin on the positive classes (see `grok_tf.model.losses.ArcFaceLoss`); at
    inference, `scale * cos` are the class logits. Always float32.

    Args:
        num_classes: number of class centres.
        centre_initializer: initializer of the `[features, classes]`
            centre matrix. Defaults to `"glorot_uniform"`.
        **kwargs: forwarded to `keras.layers.Layer`.

    Call arguments:
        inputs: `[batch, features]`, e.g. the 400-d GrokNet embedding.

    Returns:
        `[batch, num_classes]` cosines, float32.

    Example:

    >>> import numpy as np
    >>> layer = CosineClassifier(5)
    >>> cos = layer(np.random.rand(2, 8).astype("float32"))
    >>> tuple(cos.shape), bool(np.all(np.abs(cos) <= 1.0 + 1e-6))
    ((2, 5), True)

    Reference:
        Deng, Guo, Xue, Zafeiriou, "ArcFace: Additive Angular Margin Loss
        for Deep Face Recognition", CVPR 2019.
    """

    def __init__(
        self, num_classes, centre_initializer="glorot_uniform", **kwargs
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.centre_initializer = keras.initializers.get(centre_initializer)

    def build(self, input_shape):
        self.centres = self.add_weight(
            name="centres",
            shape=(input_shape[-1], self.num_classes),
            initializer=self.centre_initializer,
            dtype="float32",
        )

    def call(self, inputs):
        x = ops.normalize(ops.cast(inputs, "float32"), axis=-1)
        centres = ops.normalize(self.centres, axis=0)
        return ops.matmul(x, centres)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "centre_initializer": keras.initializers.serialize(
                    self.centre_initializer
                ),
            }
        )
        return config
