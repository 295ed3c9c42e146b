"""Head types: what each `heads[i].type` of a spec means, one file a type.

`base.HeadType` declares, in one place per type, its options and their
defaults, its kind of labels, its output layer, loss, metrics,
probabilities, training-model hooks and evaluation metric; `registry`
maps type names to them. Importing this package registers the built-ins:

- `softmax`: Dense logits on the trunk features; sparse cross-entropy,
  label -1 ignored.
- `multilabel_softmax`: Dense logits on the trunk features;
  `MultiLabelSoftmaxCrossEntropy`.
- `arcface`: `CosineClassifier` on the embedding; `ArcFaceLoss`.
- `multilabel_arcface`: `CosineClassifier` on the embedding;
  `MultiLabelArcFaceLoss`.
- `pairwise`: `CrossReplicaPairwiseLoss` on the embedding and the batch's
  product ids; training only.

Softmax heads read the trunk-wide features; the ArcFace heads train the
embedding, as in GrokNet. Every loss is the mean over the images that
carry the head's label (sample weight 1), so a head fed by one dataset is
not diluted by the others' images. A new type registers itself from
anywhere with `register_head_type`.

Example:

>>> head_type("arcface").options
{'scale': 64.0, 'margin': 0.5}
"""

from grok_tf.model.heads import arcface
from grok_tf.model.heads import multilabel_arcface
from grok_tf.model.heads import multilabel_softmax
from grok_tf.model.heads import pairwise
from grok_tf.model.heads import softmax
from grok_tf.model.heads.base import HeadOptionError
from grok_tf.model.heads.base import HeadType
from grok_tf.model.heads.registry import head_type
from grok_tf.model.heads.registry import head_type_names
from grok_tf.model.heads.registry import register_head_type
from grok_tf.model.heads.registry import unregister_head_type

__all__ = [
    "HeadOptionError",
    "HeadType",
    "arcface",
    "head_type",
    "head_type_names",
    "multilabel_arcface",
    "multilabel_softmax",
    "pairwise",
    "register_head_type",
    "softmax",
    "unregister_head_type",
]
