"""`multilabel_arcface`: several classes per image, ArcFace on each."""

from grok_tf.model.heads.arcface import ArcFaceHead
from grok_tf.model.heads.registry import register_head_type
from grok_tf.model.losses import MultiLabelArcFaceLoss


@register_head_type
class MultiLabelArcFaceHead(ArcFaceHead):
    """`CosineClassifier` on the embedding; `MultiLabelArcFaceLoss` (the
    margin on every positive, the target spread over them)."""

    name = "multilabel_arcface"
    multilabel = True
    identity = False

    def loss(self, head):
        return MultiLabelArcFaceLoss(**head.options)
