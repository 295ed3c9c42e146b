"""Stage 3, the model: trunk -> GeM -> features -> heads and embedding.

- `groknet.build_groknet`: the inference model of a resolved spec;
- `heads/`: one `HeadType` per head type (its options, output layer,
  loss, metrics, probabilities), registered by name;
- `layers/`, `losses/`: GeM pooling, cosine classifier, the pairwise
  layer; multi-label softmax, ArcFace, multi-label ArcFace, the pairwise
  double-margin loss;
- `trunks/`: the backbones, by name; `pretrained/`: converters of
  published weights into those trunks.

Importing this package registers every custom Keras object, so a saved
`.keras` GrokNet loads, and every pretrained-weights provider
(`pretrained/` registers into `trunks.pretrained_weights`), so a trunk
built with `weights="imagenet"` finds its converter.
"""

from grok_tf.model import heads
from grok_tf.model import layers
from grok_tf.model import losses
from grok_tf.model import pretrained
from grok_tf.model import trunks
from grok_tf.model.groknet import build_groknet

__all__ = [
    "build_groknet",
    "heads",
    "layers",
    "losses",
    "pretrained",
    "trunks",
]
