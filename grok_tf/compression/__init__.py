"""Stage 6b, compression: the 400-d embedding -> a 256-bit product hash.

- `compress.compress_run`: embeds a split, fits every hasher, writes
  `RUN_DIR/hashes/`;
- `hashers/`: the Catalyzer (shipped in the SavedModel) and the LSH / ITQ
  baselines;
- `binary_codes`: sign bits, faiss-order packing, Hamming distances.

Example:

>>> from grok_tf.compression import compress_run
>>> compress_run("runs/demo", bits=256)["images"]  # doctest: +SKIP
"""

from grok_tf.compression.compress import compress_run
from grok_tf.compression.compress import load_hashers

__all__ = ["compress_run", "load_hashers"]
