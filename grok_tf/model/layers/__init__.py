"""Custom Keras layers of GrokNet."""

from grok_tf.model.layers.cosine_classifier import CosineClassifier
from grok_tf.model.layers.cross_replica_pairwise_loss import (
    CrossReplicaPairwiseLoss,
)
from grok_tf.model.layers.gem_pooling import GeMPooling

__all__ = ["CosineClassifier", "CrossReplicaPairwiseLoss", "GeMPooling"]
