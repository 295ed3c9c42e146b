"""The model `fit` trains: GrokNet's layers with the outputs that carry a loss.

`training_model` shares every layer with the inference model of
`grok_tf.model.groknet.build_groknet`; `model_inputs` maps the batch
mixer's elements to its inputs; `compile_arguments` gives each head's loss,
weight and metrics to `model.compile`.
"""

import keras
import tensorflow as tf

from grok_tf.model.heads import head_loss
from grok_tf.model.heads import head_metrics
from grok_tf.model.heads import pairwise_output
from grok_tf.training.distribution import DistributedTrainingModel


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
