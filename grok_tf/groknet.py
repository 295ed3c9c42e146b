"""The GrokNet model: one trunk, GeM pooling, every head and the embedding.

    image [S, S, 3] in [0, 255]
      -> trunk (own normalisation) -> feature map [h, w, C]
      -> GeMPooling (learnable p, float32) -> `features` [C]
           -> softmax heads: Dense -> logits (float32)
           -> Dense(C -> embedding_size) -> L2 normalisation -> `embedding`
                -> ArcFace heads: cosines to class centres

`build_groknet` returns the full model, whose outputs are a dict: every
head's logits under the head's name, `features` and `embedding`. Training
uses `training_model`, the same layers with only the outputs that carry a
loss (Keras wants a label for every output it computes a metric on).
"""

import keras
import tensorflow as tf

from grok_tf.distribution import DistributedTrainingModel
from grok_tf.heads import head_loss
from grok_tf.heads import head_metrics
from grok_tf.heads import head_output
from grok_tf.heads import pairwise_output
from grok_tf.layers import GeMPooling
from grok_tf.trunks import build_trunk


def build_groknet(spec):
    """Builds the full GrokNet model described by a resolved spec.

    Args:
        spec: a `Spec` whose head vocabularies are resolved.

    Returns:
        A functional `keras.Model` named `groknet`: input `image`
        `[None, S, S, 3]`, outputs `{head: logits, "features": ...,
        "embedding": ...}`.

    Example:

    >>> spec = resolve_vocabularies(load_spec("demo.yaml"))  # doctest: +SKIP
    >>> model = build_groknet(spec)  # doctest: +SKIP
    >>> sorted(model.output)  # doctest: +SKIP
    ['category', 'colour', 'embedding', 'features', 'pattern', 'queries']
    """
    m = spec.model
    size = m.input_size
    image = keras.Input((size, size, 3), name="image")
    trunk = build_trunk(m.trunk, (size, size, 3), weights=m.weights)
    if m.sync_batch_norm:
        synchronize_batch_norm(trunk)
    features = GeMPooling(p=m.gem_p, name="gem_pooling")(trunk(image))
    projection = keras.layers.Dense(
        m.embedding_size, dtype="float32", name="embedding_projection"
    )(features)
    embedding = keras.layers.UnitNormalization(
        axis=-1, dtype="float32", name="embedding"
    )(projection)
    outputs = {}
    for head in spec.heads:
        output = head_output(head, features, embedding)
        if output is not None:
            outputs[head.name] = output
    outputs["embedding"] = embedding
    outputs["features"] = keras.layers.Identity(name="features")(features)
    return keras.Model(image, outputs, name="groknet")


def synchronize_batch_norm(model):
    """Makes every BatchNormalization of `model` use all-replica statistics.

    Under a distribution strategy each replica then normalises with the
    mean and variance of the global batch, so N replicas compute what one
    device computes on the whole batch (Keras's `synchronized=True`).
    """
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True


def training_model(groknet, spec):
    """The layers of `groknet` with only the outputs that carry a loss.

    Pairwise heads add an int32 input `<head>_ids` (the batch's product ids,
    -1 for none) and their per-example loss as an output; the model's inputs
    are then a dict (see `model_inputs`).
    """
    inputs = {"image": groknet.input}
    embedding = groknet.get_layer("embedding").output
    outputs = {}
    for head in spec.heads:
        if head.type == "pairwise":
            ids = keras.Input((), dtype="int32", name=f"{head.name}_ids")
            inputs[ids.name] = ids
            outputs[head.name] = pairwise_output(head, embedding, ids)
        else:
            outputs[head.name] = groknet.get_layer(head.name).output
    if len(inputs) == 1:  # no id inputs: the plain image model
        inputs = groknet.input
    return DistributedTrainingModel(inputs, outputs, name="groknet_training")


def model_inputs(spec):
    """Maps batch-mixer elements to what `training_model` takes.

    Without pairwise heads, the identity. With them, images and the
    pairwise heads' ids become a dict of inputs; the pairwise outputs get a
    dummy target (their value is the loss) and weight 1.
    """
    pairwise = [h.name for h in spec.heads if h.type == "pairwise"]

    def convert(images, labels, weights):
        if not pairwise:
            return images, labels, weights
        inputs = {"image": images}
        labels, weights = dict(labels), dict(weights)
        for name in pairwise:
            inputs[f"{name}_ids"] = labels[name]
            labels[name] = tf.zeros(tf.shape(labels[name]), tf.float32)
            weights[name] = tf.ones(tf.shape(weights[name]), tf.float32)
        return inputs, labels, weights

    return convert


def compile_arguments(spec):
    """`loss`, `loss_weights` and `weighted_metrics` for `model.compile`."""
    return {
        "loss": {h.name: head_loss(h) for h in spec.heads},
        "loss_weights": {h.name: h.loss_weight for h in spec.heads},
        "weighted_metrics": {h.name: head_metrics(h) for h in spec.heads},
    }
