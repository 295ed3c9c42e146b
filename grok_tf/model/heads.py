"""GrokNet's heads: for each head type, its output layer, loss and metric.

- `softmax`: Dense logits on the trunk features; sparse cross-entropy,
  label -1 ignored.
- `multilabel_softmax`: Dense logits on the trunk features;
  `MultiLabelSoftmaxCrossEntropy`.
- `arcface`: `CosineClassifier` on the embedding; `ArcFaceLoss`.
- `multilabel_arcface`: `CosineClassifier` on the embedding;
  `MultiLabelArcFaceLoss`.
- `pairwise`: `CrossReplicaPairwiseLoss` on the embedding and the batch's
  product ids (a second model input, `<head>_ids`): the per-example pairwise
  double-margin loss, computed across all replicas, compiled with
  `PerExampleLoss`. It exists only in the training model.

Softmax heads read the 2048-d (trunk width) features; the ArcFace heads
train the 400-d embedding, as in GrokNet. Every loss is the mean over the
images that carry the head's label (sample weight 1), so a head fed by one
dataset is not diluted by the others' images.
"""

import keras
from keras import ops

from grok_tf.model.layers import CosineClassifier
from grok_tf.model.layers import CrossReplicaPairwiseLoss
from grok_tf.model.losses import ArcFaceLoss
from grok_tf.model.losses import MultiLabelArcFaceLoss
from grok_tf.model.losses import MultiLabelSoftmaxCrossEntropy
from grok_tf.model.losses import PerExampleLoss

ARCFACE_TYPES = ("arcface", "multilabel_arcface")


def head_output(head, features, embedding):
    """The head's inference output, named after the head (None: pairwise)."""
    if head.type == "pairwise":
        return None
    if head.type in ARCFACE_TYPES:
        return CosineClassifier(head.num_classes, name=head.name)(embedding)
    return keras.layers.Dense(
        head.num_classes, dtype="float32", name=head.name
    )(features)


def pairwise_output(head, embedding, ids):
    """The per-example pairwise loss of the training model."""
    return CrossReplicaPairwiseLoss(**head.options, name=head.name)(
        [embedding, ids]
    )


def head_loss(head):
    """The head's Keras loss (per-example, mean over weighted rows)."""
    if head.type == "softmax":
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True,
            ignore_class=-1,
            reduction="mean_with_sample_weight",
        )
    if head.type == "multilabel_softmax":
        return MultiLabelSoftmaxCrossEntropy()
    if head.type == "arcface":
        return ArcFaceLoss(**head.options)
    if head.type == "multilabel_arcface":
        return MultiLabelArcFaceLoss(**head.options)
    if head.type == "pairwise":
        return PerExampleLoss()
    raise ValueError(f"no loss for head type {head.type!r}")


def head_metrics(head):
    """Weighted metrics logged during training: top-1 for one-label heads."""
    if head.multilabel or head.type == "pairwise":
        return []
    return [keras.metrics.SparseCategoricalAccuracy("top1")]


def head_logits(head, output):
    """Class logits from the head's output (ArcFace: `scale * cos`)."""
    if head.type in ARCFACE_TYPES:
        return head.options["scale"] * output
    return output


def head_probabilities(head, output):
    """Class probabilities from the head's output: softmax of its logits.

    For multi-label heads too (the spread target of their losses makes the
    softmax share of each label its score); calibration maps these scores
    to per-class probabilities (`grok_tf.calibration.calibrate`).
    """
    return ops.softmax(ops.cast(head_logits(head, output), "float32"), axis=-1)
