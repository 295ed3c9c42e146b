"""Stage 6b, compression: the 400-d embedding -> a 256-bit product hash.

- `compress.compress_run`: embeds a split, fits every registered hasher,
  measures them on the val split, writes `RUN_DIR/hashes/`;
- `stored`: `load_hashers` / `load_hasher` / `best_hasher` read them;
- `hashers/`: the `Hasher` base and registry, the Catalyzer (served in the
  SavedModel by default) and the LSH / ITQ baselines;
- `binary_codes`: sign bits, faiss-order packing, Hamming distances;
- `neighbors`: exact k-nearest neighbours (the Catalyzer's mining).

Example (not run: needs a trained run in runs/demo):

>>> from grok_tf.compression import compress_run
>>> compress_run("runs/demo", bits=256)["images"]  # doctest: +SKIP
"""

from grok_tf.lazy_exports import lazy_exports

_EXPORTS = {
    "Hasher": "grok_tf.compression.hashers",
    "HasherFitError": "grok_tf.compression.hashers",
    "compress_run": "grok_tf.compression.compress",
    "hasher_class": "grok_tf.compression.hashers",
    "hasher_names": "grok_tf.compression.hashers",
    "load_hasher": "grok_tf.compression.stored",
    "load_hashers": "grok_tf.compression.stored",
    "best_hasher": "grok_tf.compression.stored",
    "register_hasher": "grok_tf.compression.hashers",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
