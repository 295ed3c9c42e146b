"""GrokNet's multi-label softmax loss."""

import keras
from keras import ops


def spread_cross_entropy(logits, positives):
    """`-sum_c (y_c / sum(y)) log softmax(logits)_c` per row; 0 when y = 0.

    A multi-hot y puts `1/|P|` on each positive; label weights (a query log
    weighted by interactions) spread the target in proportion to them.

    Args:
        logits: float32 `[batch, classes]`.
        positives: float32 `[batch, classes]` multi-hot, or weights >= 0.

    Returns:
        float32 `[batch]`.
    """
    count = ops.sum(positives, axis=-1, keepdims=True)
    target = ops.divide_no_nan(positives, count)
    return -ops.sum(target * ops.log_softmax(logits, axis=-1), axis=-1)


@keras.saving.register_keras_serializable(package="grok_tf")
class MultiLabelSoftmaxCrossEntropy(keras.losses.Loss):
    """Softmax cross-entropy against a target spread over the positives.

    For logits `z` and a multi-hot label `y` with positive set `P`, the
    target puts `1/|P|` on every positive class:

        loss = - sum_{c in P} (1 / |P|) * log softmax(z)_c

    Rows without any positive label have loss 0; give them sample weight 0
    (the batch mixer does) so the default reduction, a mean over weighted
    rows, ignores them. Computed in float32 from logits.

    Args:
        reduction: Keras loss reduction. Defaults to
            `"mean_with_sample_weight"`: the mean over labelled rows.
        name: the loss name.
        **kwargs: forwarded to `keras.losses.Loss`.

    Call arguments:
        y_true: multi-hot labels `[batch, classes]`, or label weights >= 0
            (the target is then `y / sum(y)`).
        y_pred: logits `[batch, classes]`.

    Returns:
        The reduced loss; `call` gives per-example values `[batch]`.

    Example:

    >>> import numpy as np
    >>> loss = MultiLabelSoftmaxCrossEntropy(reduction=None)
    >>> y = np.array([[1.0, 1.0, 0.0]])
    >>> z = np.log(np.array([[0.25, 0.25, 0.5]]))
    >>> float(loss(y, z)[0])  # -(0.5 log 0.25 + 0.5 log 0.25)
    1.3862943649291992

    Reference:
        Mahajan et al., "Exploring the Limits of Weakly Supervised
        Pretraining", ECCV 2018; Bell et al., GrokNet, KDD 2020.
    """

    def __init__(
        self,
        reduction="mean_with_sample_weight",
        name="multilabel_softmax_cross_entropy",
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)

    def call(self, y_true, y_pred):
        return spread_cross_entropy(
            ops.cast(y_pred, "float32"), ops.cast(y_true, "float32")
        )
