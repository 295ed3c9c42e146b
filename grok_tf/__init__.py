"""grok_tf: GrokNet (Bell et al., KDD 2020) in TensorFlow / Keras 3.

The flow, one module per concept:

    spec.py (data specs) -> sources.py (readers) -> batch_mixer.py
    (multi-dataset tf.data) -> groknet.py (trunks/ + layers/gem_pooling.py
    + heads.py) -> losses/ -> training.py (model.fit, distribution.py)
    -> evaluation.py (retrieval_metrics.py)
    -> calibration.py (isotonic, per head) and compression.py (catalyzer.py,
    binary_codes.py, hash_baselines.py: 256-bit hashes) -> serving.py (the
    TF Serving SavedModel); product_search.py + hash_index.py search hashes.

`synthetic_catalog.py` generates the embedded default dataset; `cli.py` is
the `grok-tf` command. Importing `grok_tf` is light: TensorFlow loads when a
public name below is first used.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "GeMPooling": "grok_tf.layers",
    "CosineClassifier": "grok_tf.layers",
    "CrossReplicaPairwiseLoss": "grok_tf.layers",
    "MultiLabelSoftmaxCrossEntropy": "grok_tf.losses",
    "ArcFaceLoss": "grok_tf.losses",
    "MultiLabelArcFaceLoss": "grok_tf.losses",
    "PerExampleLoss": "grok_tf.losses",
    "load_spec": "grok_tf.spec",
    "build_groknet": "grok_tf.groknet",
    "train": "grok_tf.training",
    "evaluate_run": "grok_tf.evaluation",
    "generate_synthetic_catalog": "grok_tf.synthetic_catalog",
    "mine_query_tags": "grok_tf.query_mining",
    "Catalyzer": "grok_tf.catalyzer",
    "train_catalyzer": "grok_tf.catalyzer",
    "compress_run": "grok_tf.compression",
    "pack_bits": "grok_tf.binary_codes",
    "HashIndex": "grok_tf.hash_index",
    "ProductHasher": "grok_tf.product_search",
    "build_index": "grok_tf.product_search",
    "search_index": "grok_tf.product_search",
    "IsotonicCalibration": "grok_tf.calibration",
    "calibrate_run": "grok_tf.calibration",
    "export_run": "grok_tf.serving",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'grok_tf' has no attribute {name!r}")
