"""Custom Keras layers of GrokNet."""

from grok_tf.layers.gem_pooling import GeMPooling

__all__ = ["GeMPooling"]
