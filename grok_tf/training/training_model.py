"""The model `fit` trains: GrokNet's layers with the outputs that carry a loss.

`training_model` shares every layer with the inference model of
`grok_tf.model.groknet.build_groknet`; `model_inputs` maps the batch
mixer's elements to its inputs; `compile_arguments` gives each head's loss,
weight and metrics to `model.compile`. Each head's part comes from its
type (`grok_tf.model.heads.HeadType`).
"""

from grok_tf.training.distribution import DistributedTrainingModel


def training_model(groknet, spec):
    """The layers of `groknet` with only the outputs that carry a loss.

    A head type may add inputs (`HeadType.extra_inputs`: pairwise heads take
    the batch's product ids as `<head>_ids`) and its own training output
    (`HeadType.training_output`: the pairwise per-example loss); the
    model's inputs are then a dict (see `model_inputs`).
    """
    inputs = {"image": groknet.input}
    for head in spec.heads:
        inputs.update(head.kind.extra_inputs(head))
    outputs = {
        head.name: head.kind.training_output(head, groknet, inputs)
        for head in spec.heads
    }
    if len(inputs) == 1:  # no extra inputs: the plain image model
        inputs = groknet.input
    return DistributedTrainingModel(inputs, outputs, name="groknet_training")


def model_inputs(spec):
    """Maps batch-mixer elements to what `training_model` takes.

    Each head type turns its labels and weights into the values of its
    extra inputs and its loss's target and weight
    (`HeadType.training_targets`; pairwise: the ids, a dummy target, weight
    1). Without extra inputs the images stay the model's only input.
    """

    def convert(images, labels, weights):
        inputs = {"image": images}
        labels, weights = dict(labels), dict(weights)
        for head in spec.heads:
            extra, labels[head.name], weights[head.name] = (
                head.kind.training_targets(
                    head, labels[head.name], weights[head.name]
                )
            )
            inputs.update(extra)
        return (images if len(inputs) == 1 else inputs), labels, weights

    return convert


def compile_arguments(spec):
    """`loss`, `loss_weights` and `weighted_metrics` for `model.compile`."""
    return {
        "loss": {h.name: h.kind.loss(h) for h in spec.heads},
        "loss_weights": {h.name: h.loss_weight for h in spec.heads},
        "weighted_metrics": {h.name: h.kind.metrics(h) for h in spec.heads},
    }
