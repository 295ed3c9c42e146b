"""GrokNet's losses."""

from grok_tf.model.losses.arcface import ArcFaceLoss
from grok_tf.model.losses.multilabel_arcface import MultiLabelArcFaceLoss
from grok_tf.model.losses.multilabel_softmax import (
    MultiLabelSoftmaxCrossEntropy,
)
from grok_tf.model.losses.pairwise_double_margin import DistanceWeightedSampling
from grok_tf.model.losses.pairwise_double_margin import PerExampleLoss
from grok_tf.model.losses.pairwise_double_margin import (
    pairwise_double_margin_sums,
)

__all__ = [
    "ArcFaceLoss",
    "DistanceWeightedSampling",
    "MultiLabelArcFaceLoss",
    "MultiLabelSoftmaxCrossEntropy",
    "PerExampleLoss",
    "pairwise_double_margin_sums",
]
