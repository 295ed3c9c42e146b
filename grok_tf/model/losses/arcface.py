"""ArcFace: softmax cross-entropy with an additive angular margin."""

import math

import keras
from keras import ops

from grok_tf.model.losses.multilabel_softmax import spread_cross_entropy

# cos(theta) is clipped to [-1 + EPS, 1 - EPS] before acos: the gradient of
# acos is infinite at +-1.
COS_EPSILON = 1e-7


def margin_logits(cosines, positives, scale, margin):
    """ArcFace logits: `s * cos(theta + m)` on positives, `s * cos` elsewhere.

    With `theta = acos(clip(cos))`. Where `theta + m` would pass pi (so the
    margin would raise the logit instead of lowering it), the positive logit
    is `s * (cos - m * sin(pi - m))`, as in the reference implementation.

    Args:
        cosines: float32 `[batch, classes]` in [-1, 1].
        positives: float32 `[batch, classes]`, > 0 on the positive classes
            (any weight), 0 elsewhere.
        scale: the logit scale s.
        margin: the angular margin m, in radians.

    Returns:
        float32 `[batch, classes]` logits.
    """
    cos = ops.clip(
        ops.cast(cosines, "float32"), -1 + COS_EPSILON, 1 - COS_EPSILON
    )
    with_margin = ops.cos(ops.arccos(cos) + margin)
    fallback = cos - margin * math.sin(math.pi - margin)
    with_margin = ops.where(
        cos > math.cos(math.pi - margin), with_margin, fallback
    )
    return scale * ops.where(positives > 0, with_margin, cos)


@keras.saving.register_keras_serializable(package="grok_tf")
class ArcFaceLoss(keras.losses.Loss):
    """ArcFace loss on cosines to class centres, one class per image.

    For the true class y with angle `theta_y = acos(cos_y)`:

        logits_c = s * cos(theta_y + m)   if c == y
                   s * cos_c              otherwise
        loss     = -log softmax(logits)_y

    Labels below 0 mean "no label" and give loss 0 (give them sample weight
    0: the default reduction is the mean over weighted rows). Computed in
    float32 (acos in float16 has infinite gradients near cos = 1).

    Args:
        scale: the logit scale s. Defaults to 64.
        margin: the additive angular margin m in radians. Defaults to 0.5.
        reduction: Keras loss reduction. Defaults to
            `"mean_with_sample_weight"`.
        name: the loss name (default: from the class name).
        **kwargs: forwarded to `keras.losses.Loss`.

    Call arguments:
        y_true: int class ids `[batch]` (-1 = unlabelled).
        y_pred: cosines `[batch, classes]` from `CosineClassifier`.

    Example:

    >>> import numpy as np
    >>> loss = ArcFaceLoss(scale=1.0, margin=0.0, reduction=None)
    >>> cos = np.array([[1.0, 0.0]], "float32")
    >>> round(float(loss(np.array([0]), cos)[0]), 4)  # -log(e/(e+1))
    0.3133

    Reference:
        Deng, Guo, Xue, Zafeiriou, "ArcFace: Additive Angular Margin Loss
        for Deep Face Recognition", CVPR 2019.
    """

    def __init__(
        self,
        scale=64.0,
        margin=0.5,
        reduction="mean_with_sample_weight",
        name=None,
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        if not 0.0 <= margin < math.pi / 2:
            raise ValueError(f"margin must be in [0, pi/2), got {margin}")
        self.scale = float(scale)
        self.margin = float(margin)

    def call(self, y_true, y_pred):
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        classes = ops.shape(y_pred)[-1]
        positives = ops.one_hot(ops.maximum(labels, 0), classes)
        positives = positives * ops.cast(labels >= 0, "float32")[:, None]
        logits = margin_logits(y_pred, positives, self.scale, self.margin)
        return spread_cross_entropy(logits, positives)

    def get_config(self):
        config = super().get_config()
        config.update({"scale": self.scale, "margin": self.margin})
        return config
