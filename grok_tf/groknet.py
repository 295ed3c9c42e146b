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

from grok_tf.heads import head_loss
from grok_tf.heads import head_metrics
from grok_tf.heads import head_output
from grok_tf.layers import GeMPooling
from grok_tf.spec import IMPLEMENTED_HEAD_TYPES
from grok_tf.spec import SpecError
from grok_tf.trunks import build_trunk


def build_groknet(spec):
    """Builds the full GrokNet model described by a resolved spec.

    Args:
        spec: a `Spec` whose head vocabularies are resolved.

    Returns:
        A functional `keras.Model` named `groknet`: input `image`
        `[None, S, S, 3]`, outputs `{head: logits, "features": ...,
        "embedding": ...}`.

    Raises:
        SpecError: for a head type that is not implemented yet.

    Example:

    >>> spec = resolve_vocabularies(load_spec("demo.yaml"))  # doctest: +SKIP
    >>> model = build_groknet(spec)  # doctest: +SKIP
    >>> sorted(model.output)  # doctest: +SKIP
    ['category', 'colour', 'embedding', 'features', 'pattern', 'queries']
    """
    for i, head in enumerate(spec.heads):
        if head.type not in IMPLEMENTED_HEAD_TYPES:
            raise SpecError(
                spec.where(f"heads[{i}].type")
                + f": head type {head.type!r} is accepted by the spec format "
                "but not implemented yet"
            )
    m = spec.model
    size = m.input_size
    image = keras.Input((size, size, 3), name="image")
    trunk = build_trunk(m.trunk, (size, size, 3), weights=m.weights)
    features = GeMPooling(p=m.gem_p, name="gem_pooling")(trunk(image))
    projection = keras.layers.Dense(
        m.embedding_size, dtype="float32", name="embedding_projection"
    )(features)
    embedding = keras.layers.UnitNormalization(
        axis=-1, dtype="float32", name="embedding"
    )(projection)
    outputs = {h.name: head_output(h, features, embedding) for h in spec.heads}
    outputs["embedding"] = embedding
    outputs["features"] = keras.layers.Identity(name="features")(features)
    return keras.Model(image, outputs, name="groknet")


def training_model(groknet, spec):
    """The layers of `groknet` with only the head outputs that carry a loss."""
    outputs = {h.name: groknet.get_layer(h.name).output for h in spec.heads}
    return keras.Model(groknet.input, outputs, name="groknet_training")


def compile_arguments(spec):
    """`loss`, `loss_weights` and `weighted_metrics` for `model.compile`."""
    return {
        "loss": {h.name: head_loss(h) for h in spec.heads},
        "loss_weights": {h.name: h.loss_weight for h in spec.heads},
        "weighted_metrics": {h.name: head_metrics(h) for h in spec.heads},
    }
