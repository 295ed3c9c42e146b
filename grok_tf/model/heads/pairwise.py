"""`pairwise`: product ids, the double-margin loss on the embedding."""

import keras
import tensorflow as tf

from grok_tf.model.heads.base import HeadOptionError
from grok_tf.model.heads.base import HeadType
from grok_tf.model.heads.registry import register_head_type
from grok_tf.model.layers import CrossReplicaPairwiseLoss
from grok_tf.model.losses import PerExampleLoss


@register_head_type
class PairwiseHead(HeadType):
    """`CrossReplicaPairwiseLoss` on the embedding and the batch's ids.

    Training only: the training model takes the product ids as a second
    input `<head>_ids` and outputs the per-example loss over all replicas,
    compiled with `PerExampleLoss` (a dummy target, weight 1). No output
    at inference, nothing served. Options: margins `alpha` < `beta`,
    `learn_beta`, `distance_weighted` sampling, `chunk_size` (null: none).
    """

    name = "pairwise"
    options = {
        "alpha": 0.2,
        "beta": 1.2,
        "learn_beta": False,
        "distance_weighted": False,
        "chunk_size": 1024,
    }
    identity = True
    served = False
    # Scored over every pair of the global batch: ids, not sample weights.
    sample_weighted = False

    def check_options(self, options):
        if options["alpha"] <= 0:
            raise HeadOptionError(
                "alpha", f"must be positive, got {options['alpha']}"
            )
        if options["beta"] <= options["alpha"]:
            raise HeadOptionError("beta", "must be larger than alpha")

    def output(self, head, features, embedding):
        return None

    def loss(self, head):
        return PerExampleLoss()

    def metrics(self, head):
        return []

    def extra_inputs(self, head):
        name = f"{head.name}_ids"
        return {name: keras.Input((), dtype="int32", name=name)}

    def training_output(self, head, groknet, inputs):
        layer = CrossReplicaPairwiseLoss(**head.options, name=head.name)
        embedding = groknet.output["embedding"]
        return layer([embedding, inputs[f"{head.name}_ids"]])

    def training_targets(self, head, labels, weights):
        ids = {f"{head.name}_ids": labels}
        return ids, tf.zeros(tf.shape(labels)), tf.ones(tf.shape(weights))
