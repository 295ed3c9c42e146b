"""The GrokNet model: one trunk, GeM pooling, every head and the embedding.

    image [S, S, 3] in [0, 255]
      -> trunk (own normalisation) -> feature map [h, w, C]
      -> GeMPooling (learnable p, float32; or average pooling,
         `model.pooling`) -> `features` [C]
           -> softmax heads: Dense -> logits (float32)
           -> Dense(C -> embedding_size) -> L2 normalisation -> `embedding`
                -> ArcFace heads: cosines to class centres

Each head's layers come from its type (`HeadType.output`,
`grok_tf.model.heads`); a training-only type (pairwise) adds none here.

`build_groknet` returns the full model, whose outputs are a dict: every
head's logits under the head's name, `features` and `embedding`. Training
uses `training_model`, the same layers with only the outputs that carry a
loss (Keras wants a label for every output it computes a metric on); it
is built by `grok_tf.training.training_model`.
"""

import keras

from grok_tf.model.layers import GeMPooling
from grok_tf.model.trunks import build_trunk


def build_groknet(spec):
    """Builds the full GrokNet model described by a resolved spec.

    Args:
        spec: a `Spec` whose head vocabularies are resolved.

    Returns:
        A functional `keras.Model` named `groknet`: input `image`
        `[None, S, S, 3]`, outputs `{head: logits, "features": ...,
        "embedding": ...}`.

    Example (not run: needs the demo spec's generated catalogue):

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
    features = pooling_layer(m)(trunk(image))
    projection = keras.layers.Dense(
        m.embedding_size, dtype="float32", name="embedding_projection"
    )(features)
    embedding = keras.layers.UnitNormalization(
        axis=-1, dtype="float32", name="embedding"
    )(projection)
    outputs = {}
    for head in spec.heads:
        output = head.kind.output(head, features, embedding)
        if output is not None:
            outputs[head.name] = output
    outputs["embedding"] = embedding
    outputs["features"] = keras.layers.Identity(name="features")(features)
    return keras.Model(image, outputs, name="groknet")


def pooling_layer(model_spec):
    """The global pooling `model.pooling` names, computing in float32.

    `gem`: GeM with p initialised to `gem_p`, learned unless
    `learn_gem_p: false`; `average`: plain global average pooling (GeM at
    p = 1), the trunk's usual pooling, to measure what GeM brings.
    """
    if model_spec.pooling == "average":
        return keras.layers.GlobalAveragePooling2D(
            dtype="float32", name="average_pooling"
        )
    return GeMPooling(
        p=model_spec.gem_p,
        trainable_p=model_spec.learn_gem_p,
        name="gem_pooling",
    )


def synchronize_batch_norm(model):
    """Makes every BatchNormalization of `model` use all-replica statistics.

    Under a distribution strategy each replica then normalises with the
    mean and variance of the global batch, so N replicas compute what one
    device computes on the whole batch (Keras's `synchronized=True`).
    """
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
