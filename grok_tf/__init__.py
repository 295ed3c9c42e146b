"""grok_tf: GrokNet (Bell et al., KDD 2020) in TensorFlow / Keras 3.

The folders follow the flow, each stage reading what the one before wrote:

    spec/ (the YAML data spec) -> data/ (sources/, images, batch_mixer,
    query_mining, synthetic/) -> model/ (groknet: trunks/ + GeM + heads/ +
    the embedding; layers/, losses/, pretrained/) -> training/ (model.fit
    into a run directory: run_dir.py) -> evaluation/ -> calibration/ and
    compression/ (hashers/: 256-bit product hashes) -> search/ and serving/
    (the TF Serving SavedModel). inference.py is the one loop that runs a
    trained model over images; io/ holds atomic writes and text inputs.

Head types, dataset sources, trunks and hashers are each an abstract base
with a registry (`register_head_type`, `register_source`, `register_trunk`,
`register_hasher`). `cli.py` is the `grok-tf` command. Importing `grok_tf`
is light: TensorFlow loads when a public name below is first used. The
module paths of grok_tf 0.1 still import (`moved_modules`).
"""

from grok_tf import moved_modules
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
    "open_index": "grok_tf.search",
    "search_index": "grok_tf.search",
    "IsotonicCalibration": "grok_tf.calibration",
    "calibrate_run": "grok_tf.calibration",
    "export_run": "grok_tf.serving",
}

__all__ = [*_PUBLIC, "__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
moved_modules.install()  # grok_tf 0.1 module paths still import
