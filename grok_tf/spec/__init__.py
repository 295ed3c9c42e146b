"""Stage 1, the data spec: the YAML file naming the model, heads and datasets.

`load_spec` reads and checks it (`loader.py`); `schema.py` holds what it
returns. Every mistake is one `SpecError` line naming the file and field.
"""

from grok_tf.data.sources.slices import apply_slice
from grok_tf.data.sources.slices import split_slice
from grok_tf.errors import SpecError
from grok_tf.spec.loader import load_spec
from grok_tf.spec.loader import parse_spec
from grok_tf.spec.schema import DatasetSpec
from grok_tf.spec.schema import HeadSpec
from grok_tf.spec.schema import ModelSpec
from grok_tf.spec.schema import Spec
from grok_tf.spec.schema import TrainingSpec

__all__ = [
    "DatasetSpec",
    "HeadSpec",
    "ModelSpec",
    "Spec",
    "SpecError",
    "TrainingSpec",
    "apply_slice",
    "load_spec",
    "parse_spec",
    "split_slice",
]
