"""Stage 6b, compression: the 400-d embedding -> a 256-bit product hash.

- `compress.compress_run`: embeds a split, fits every registered hasher,
  writes `RUN_DIR/hashes/`; `load_hashers` / `load_hasher` read them;
- `hashers/`: the `Hasher` base and registry, the Catalyzer (served in the
  SavedModel by default) and the LSH / ITQ baselines;
- `binary_codes`: sign bits, faiss-order packing, Hamming distances;
- `neighbors`: exact k-nearest neighbours (the Catalyzer's mining).

Example (not run: needs a trained run in runs/demo):

>>> from grok_tf.compression import compress_run
>>> compress_run("runs/demo", bits=256)["images"]  # doctest: +SKIP
"""

from grok_tf.compression.compress import compress_run
from grok_tf.compression.compress import load_hasher
from grok_tf.compression.compress import load_hashers
from grok_tf.compression.hashers import Hasher
from grok_tf.compression.hashers import HasherFitError
from grok_tf.compression.hashers import hasher_class
from grok_tf.compression.hashers import hasher_names
from grok_tf.compression.hashers import register_hasher

__all__ = [
    "Hasher",
    "HasherFitError",
    "compress_run",
    "hasher_class",
    "hasher_names",
    "load_hasher",
    "load_hashers",
    "register_hasher",
]
