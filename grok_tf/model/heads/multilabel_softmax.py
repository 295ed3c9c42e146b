"""`multilabel_softmax`: several classes per image, softmax logits."""

from grok_tf.model.heads.registry import register_head_type
from grok_tf.model.heads.softmax import SoftmaxHead
from grok_tf.model.losses import MultiLabelSoftmaxCrossEntropy


@register_head_type
class MultiLabelSoftmaxHead(SoftmaxHead):
    """Dense logits on the GeM features; `MultiLabelSoftmaxCrossEntropy`
    (the target spread evenly over the image's labels)."""

    name = "multilabel_softmax"
    multilabel = True

    def loss(self, head):
        return MultiLabelSoftmaxCrossEntropy()
