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

from grok_tf.lazy_exports import lazy_exports

__version__ = "0.1.0"

_PUBLIC = {
    "GeMPooling": "grok_tf.model.layers",
    "CosineClassifier": "grok_tf.model.layers",
    "CrossReplicaPairwiseLoss": "grok_tf.model.layers",
    "MultiLabelSoftmaxCrossEntropy": "grok_tf.model.losses",
    "ArcFaceLoss": "grok_tf.model.losses",
    "MultiLabelArcFaceLoss": "grok_tf.model.losses",
    "PerExampleLoss": "grok_tf.model.losses",
    "load_spec": "grok_tf.spec",
    "build_groknet": "grok_tf.model",
    "train": "grok_tf.training",
    "evaluate_run": "grok_tf.evaluation",
    "generate_synthetic_catalog": "grok_tf.data.synthetic",
    "mine_query_tags": "grok_tf.data.query_mining",
    "Catalyzer": "grok_tf.compression.hashers.catalyzer.layer",
    "train_catalyzer": "grok_tf.compression.hashers.catalyzer.training",
    "compress_run": "grok_tf.compression",
    "pack_bits": "grok_tf.compression.binary_codes",
    "HashIndex": "grok_tf.search",
    "ProductHasher": "grok_tf.search",
    "build_index": "grok_tf.search",
    "search_index": "grok_tf.search",
    "IsotonicCalibration": "grok_tf.calibration",
    "calibrate_run": "grok_tf.calibration",
    "export_run": "grok_tf.serving",
}

__all__ = [*_PUBLIC, "__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
