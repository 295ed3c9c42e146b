"""GrokNet's losses."""

from grok_tf.losses.arcface import ArcFaceLoss
from grok_tf.losses.multilabel_arcface import MultiLabelArcFaceLoss
from grok_tf.losses.multilabel_softmax import MultiLabelSoftmaxCrossEntropy

__all__ = [
    "ArcFaceLoss",
    "MultiLabelArcFaceLoss",
    "MultiLabelSoftmaxCrossEntropy",
]
