"""`softmax`: one class per image, Dense logits on the trunk features."""

import keras

from grok_tf.model.heads.base import HeadType
from grok_tf.model.heads.registry import register_head_type


@register_head_type
class SoftmaxHead(HeadType):
    """Dense logits on the GeM features; sparse cross-entropy.

    Label -1 (an image its datasets do not label) is ignored, and the loss
    is the mean over the labelled images.
    """

    name = "softmax"

    def output(self, head, features, embedding):
        return keras.layers.Dense(
            head.num_classes, dtype="float32", name=head.name
        )(features)

    def loss(self, head):
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True,
            ignore_class=-1,
            reduction="mean_with_sample_weight",
        )
