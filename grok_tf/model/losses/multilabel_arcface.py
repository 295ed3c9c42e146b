"""Multi-label ArcFace: an image pulled toward several class centres."""

import keras
from keras import ops

from grok_tf.model.losses.arcface import ArcFaceLoss
from grok_tf.model.losses.arcface import margin_logits
from grok_tf.model.losses.multilabel_softmax import spread_cross_entropy


@keras.saving.register_keras_serializable(package="grok_tf")
class MultiLabelArcFaceLoss(ArcFaceLoss):
    """ArcFace with a margin on every positive class (GrokNet's query loss).

    For an image with positive set P (e.g. the search queries that led to
    it) and angles `theta_c = acos(cos_c)` to the class centres:

        logits_c = s * cos(theta_c + m)   if c in P
                   s * cos_c              otherwise
        loss     = - sum_{c in P} (1 / |P|) * log softmax(logits)_c

    i.e. the margin of ArcFace on every positive and the 1/|P| target of the
    multi-label softmax (`MultiLabelSoftmaxCrossEntropy`). Rows with no
    positive give 0. With one positive it equals `ArcFaceLoss`.

    Args: as `ArcFaceLoss`.

    Call arguments:
        y_true: multi-hot labels `[batch, classes]`, or label weights >= 0:
            the margin applies to every label > 0 whatever its weight, the
            target is `y / sum(y)`.
        y_pred: cosines `[batch, classes]` from `CosineClassifier`.

    Example:

    >>> import numpy as np
    >>> loss = MultiLabelArcFaceLoss(scale=1.0, margin=0.0, reduction=None)
    >>> cos = np.zeros((1, 4), "float32")
    >>> round(float(loss(np.array([[1, 1, 0, 0]]), cos)[0]), 4)  # log 4
    1.3863

    Reference:
        Bell et al., "GrokNet: Unified Computer Vision Model Trunk and
        Embeddings For Commerce", KDD 2020; Deng et al., ArcFace, CVPR 2019.
    """

    def call(self, y_true, y_pred):
        positives = ops.cast(y_true, "float32")
        logits = margin_logits(y_pred, positives, self.scale, self.margin)
        return spread_cross_entropy(logits, positives)
