"""GrokNet's losses."""

from grok_tf.losses.multilabel_softmax import MultiLabelSoftmaxCrossEntropy

__all__ = ["MultiLabelSoftmaxCrossEntropy"]
