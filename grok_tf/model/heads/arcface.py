"""`arcface`: product ids, cosine classifier on the embedding."""

import math

from grok_tf.model.heads.base import HeadOptionError
from grok_tf.model.heads.base import HeadType
from grok_tf.model.heads.registry import register_head_type
from grok_tf.model.layers import CosineClassifier
from grok_tf.model.losses import ArcFaceLoss


@register_head_type
class ArcFaceHead(HeadType):
    """`CosineClassifier` on the embedding; `ArcFaceLoss`.

    Options: `scale` s of the logits `s * cos` and angular `margin` m
    (radians, below pi/2). Labels are product ids (`identity`).
    """

    name = "arcface"
    options = {"scale": 64.0, "margin": 0.5}
    identity = True

    def check_options(self, options):
        if options["scale"] <= 0:
            raise HeadOptionError(
                "scale", f"must be positive, got {options['scale']}"
            )
        if options["margin"] < 0:
            raise HeadOptionError(
                "margin", f"must not be negative, got {options['margin']}"
            )
        if options["margin"] >= math.pi / 2:
            raise HeadOptionError("margin", "must be below pi/2 (radians)")

    def output(self, head, features, embedding):
        return CosineClassifier(head.num_classes, name=head.name)(embedding)

    def loss(self, head):
        return ArcFaceLoss(**head.options)

    def logits(self, head, output):
        return head.options["scale"] * output
