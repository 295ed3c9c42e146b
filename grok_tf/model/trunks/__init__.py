"""Trunk backbones of GrokNet: image in [0, 255] -> spatial feature map.

Use `build_trunk(name, input_shape, weights)`; `TRUNKS` lists the names.

Example:
    >>> from grok_tf.model.trunks import build_trunk
    >>> trunk = build_trunk("small_cnn", (64, 64, 3))
    >>> trunk.output.shape[-1]
    256
"""

from grok_tf.model.trunks.keras_applications import CaffePreprocessing
from grok_tf.model.trunks.registry import TRUNK_BUILDERS
from grok_tf.model.trunks.registry import TRUNKS
from grok_tf.model.trunks.registry import build_trunk

__all__ = ["TRUNKS", "TRUNK_BUILDERS", "CaffePreprocessing", "build_trunk"]
