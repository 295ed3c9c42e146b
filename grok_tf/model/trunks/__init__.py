"""Trunk backbones of GrokNet: image in [0, 255] -> spatial feature map.

Use `build_trunk(name, input_shape, weights)`; `trunk_names()` lists the
names. Each trunk's module registers its builder (`@register_trunk`);
importing this package imports the built-in ones. Converted weights come
from providers that `grok_tf.model.pretrained` registers
(`register_pretrained_weights`): trunks never import converters.

Example:
    >>> from grok_tf.model.trunks import build_trunk
    >>> trunk = build_trunk("small_cnn", (64, 64, 3))
    >>> trunk.output.shape[-1]
    256
"""

# isort: off
# The built-in trunks, in the order `trunk_names()` lists them.
from grok_tf.model.trunks import resnext  # noqa: F401
from grok_tf.model.trunks import keras_applications  # noqa: F401
from grok_tf.model.trunks import efficientnet_lite  # noqa: F401
from grok_tf.model.trunks import small_cnn  # noqa: F401

# isort: on
from grok_tf.model.trunks.keras_applications import CaffePreprocessing
from grok_tf.model.trunks.pretrained_weights import register_pretrained_weights
from grok_tf.model.trunks.pretrained_weights import (
    registered_pretrained_weights,
)
from grok_tf.model.trunks.registry import TRUNK_BUILDERS
from grok_tf.model.trunks.registry import build_trunk
from grok_tf.model.trunks.registry import register_trunk
from grok_tf.model.trunks.registry import trunk_names
from grok_tf.model.trunks.registry import unregister_trunk

__all__ = [
    "TRUNK_BUILDERS",
    "CaffePreprocessing",
    "build_trunk",
    "register_pretrained_weights",
    "register_trunk",
    "registered_pretrained_weights",
    "trunk_names",
    "unregister_trunk",
]
