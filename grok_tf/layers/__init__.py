"""Custom Keras layers of GrokNet."""

from grok_tf.layers.cosine_classifier import CosineClassifier
from grok_tf.layers.cross_replica_pairwise_loss import CrossReplicaPairwiseLoss
from grok_tf.layers.gem_pooling import GeMPooling

__all__ = ["CosineClassifier", "CrossReplicaPairwiseLoss", "GeMPooling"]
