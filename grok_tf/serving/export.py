"""The TF Serving SavedModel: one signature, every GrokNet output.

`grok-tf export` writes a trained, calibrated and compressed run as a
SavedModel version that TF Serving loads as is. Its two signatures return,
for every image of a batch:

- `<head>_probabilities` float32 `[N, C]`: the head's calibrated
  probabilities (`grok_tf.calibration.calibrate`), one per class;
- `<head>_top_k_labels` string `[N, k]` and `<head>_top_k_scores` float32
  `[N, k]`: the k most probable classes by calibrated probability (ties,
  where an isotonic map is flat, broken by the model's own scores);
- `embedding` float32 `[N, 400]`, the L2-normalised product embedding;
- `hash` uint8 `[N, 32]`, the 256-bit hash of the run's hasher (the
  Catalyzer unless `export_run(..., hasher=...)` names another), packed as
  faiss packs it (`grok_tf.compression.binary_codes`);
- `valid` bool `[N]`: false for an image that could not be decoded; its
  other outputs are zeros (labels empty) and the rest of the batch is
  unaffected.

`serving_default` takes `image_bytes` (tf.string `[N]`, JPEG/PNG/GIF/BMP),
decoded and resized in the graph, the images of a request in parallel, by
the `EvalPreprocessor` evaluation uses (`grok_tf.data.images`: a large
JPEG decoded at 1/2, 1/4 or 1/8 scale, then one resampling of the centre
crop), so a photo served scores as it scored in `grok-tf evaluate`;
`serving_images` takes float32 RGB images `[N, H, W, 3]` in [0, 255],
decoded photos of any size, resized the same way (`resize_for_eval`: the
centre 0.875 of the shorter side resampled to S x S; an image already
S x S is cropped too, exactly as a photo of that size would be);
non-finite images are flagged invalid. A batch of 0 images returns empty
outputs. Label vocabularies are constants of the graph; calibration tables
and all weights are variables.

A version is written aside and renamed into `MODEL_DIR/<next integer>/`,
its number taken at that rename so that concurrent exports each publish
their own, with TF Serving warm-up requests in `assets.extra/` and a
`models.config` example beside the versions (`export_run`).
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from grok_tf.calibration.layer import IsotonicCalibration
from grok_tf.data.images import EvalPreprocessor
from grok_tf.data.images import resize_for_eval
from grok_tf.io.atomic_files import integer_version

IMAGE_BYTES = "image_bytes"
IMAGES = "images"
DEFAULT_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "serving_images"


class ServingFunctions:
    """The computation behind both signatures, from a run's parts.

    Args:
        spec: the run's resolved `Spec` (heads, vocabularies, input size).
        model: the GrokNet inference model (`grok_tf.run_dir.load_run`).
        hasher: a fitted `Hasher` with `tf_codes`, e.g. the Catalyzer
            (`grok_tf.compression.compress.load_hasher`).
        tables: head name -> `CalibrationTable` (`load_calibration`).
        top_k: labels returned per head (clipped to the head's classes).

    Example (not run: needs a trained run's parts):

    >>> functions = ServingFunctions(spec, model, hasher, tables)
    ... # doctest: +SKIP
    >>> functions.from_bytes(tf.constant([jpeg_bytes]))["valid"]
    ... # doctest: +SKIP
    <tf.Tensor: shape=(1,), dtype=bool, numpy=array([ True])>
    """

    def __init__(self, spec, model, hasher, tables, top_k=5):
        self.spec = spec
        self.model = model
        if not hasher.servable:
            raise ValueError(
                f"the {hasher.name} hasher has no TF graph (tf_codes): it "
                "cannot be served in the SavedModel"
            )
        self.hasher = hasher
        self.heads = [h for h in spec.heads if h.kind.served]
        missing = [h.name for h in self.heads if h.name not in tables]
        if missing:
            raise ValueError(
                f"no calibration table for head(s) {', '.join(missing)}: "
                "calibrate the run again"
            )
        self.calibrators = {
            h.name: IsotonicCalibration.from_table(
                tables[h.name], name=f"{h.name}_calibration"
            )
            for h in self.heads
        }
        self.top_k = {h.name: min(top_k, h.num_classes) for h in self.heads}
        self.size = spec.model.input_size
        self.preprocessor = EvalPreprocessor.for_spec(spec)

    def trackables(self):
        """The Keras objects an `ExportArchive` must track."""
        return [
            self.model,
            *self.hasher.trackables(),
            *self.calibrators.values(),
        ]

    def from_bytes(self, image_bytes):
        """`serving_default`: encoded images -> outputs (see the module)."""
        return self.outputs(*self.preprocessor.batch_or_flag(image_bytes))

    def from_images(self, images):
        """`serving_images`: float RGB images [N, H, W, 3] -> outputs."""
        images = tf.convert_to_tensor(images, tf.float32)
        resized = resize_for_eval(images, self.size)  # one size: one op
        finite = tf.reduce_all(tf.math.is_finite(images), axis=[1, 2, 3])
        return self.outputs(
            tf.where(finite[:, None, None, None], resized, 0.0), finite
        )

    def outputs(self, images, valid):
        """Every output for resized images `[N, S, S, 3]` and `valid` [N]."""
        # oneDNN's Conv2D fails on an empty batch: run the model on one
        # black image then, and slice the outputs back to 0 rows.
        count = tf.shape(images)[0]
        padded = tf.cond(
            count > 0,
            lambda: images,
            lambda: tf.zeros([1, self.size, self.size, 3], tf.float32),
        )
        raw = self.model(padded, training=False)
        raw = {name: value[:count] for name, value in raw.items()}
        outputs = {}
        for head in self.heads:
            probabilities = head.kind.probabilities(head, raw[head.name])
            calibrated = self.calibrators[head.name](probabilities)
            top = top_k_calibrated(
                calibrated, probabilities, self.top_k[head.name]
            )
            vocabulary = tf.constant(list(head.classes), tf.string)
            labels = tf.gather(vocabulary, top)
            scores = tf.gather(calibrated, top, batch_dims=1)
            outputs[f"{head.name}_probabilities"] = calibrated
            outputs[f"{head.name}_top_k_labels"] = tf.where(
                valid[:, None], labels, ""
            )
            outputs[f"{head.name}_top_k_scores"] = scores
        embedding = tf.cast(raw["embedding"], tf.float32)
        outputs["embedding"] = embedding
        outputs["hash"] = self.hasher.tf_codes(embedding)
        outputs = {
            name: value
            if value.dtype == tf.string
            else _zero_invalid(value, valid)
            for name, value in outputs.items()
        }
        outputs["valid"] = valid
        return outputs


def top_k_calibrated(calibrated, probabilities, k):
    """Indices `[N, k]` of the k best classes by calibrated probability.

    Ties (isotonic maps are flat in places) go to the class the model
    itself scores higher: a stable sort by the model's probabilities, then
    a stable sort of that order by the calibrated ones.
    """
    by_model = tf.argsort(
        probabilities, axis=-1, direction="DESCENDING", stable=True
    )
    in_model_order = tf.gather(calibrated, by_model, batch_dims=1)
    order = tf.argsort(
        in_model_order, axis=-1, direction="DESCENDING", stable=True
    )
    return tf.gather(by_model, order[:, :k], batch_dims=1)


def _zero_invalid(value, valid):
    shape = tf.concat(
        [tf.shape(valid), tf.ones([tf.rank(value) - 1], tf.int32)], 0
    )
    return tf.where(tf.reshape(valid, shape), value, tf.zeros_like(value))


# Input of each signature; the TensorSpec name is the request's input key.
INPUT_SIGNATURES = {
    DEFAULT_SIGNATURE: [tf.TensorSpec([None], tf.string, name=IMAGE_BYTES)],
    IMAGES_SIGNATURE: [
        tf.TensorSpec([None, None, None, 3], tf.float32, name=IMAGES)
    ],
}
WARMUP_FILE = "tf_serving_warmup_requests"


def export_run(run_dir, model_dir, top_k=5, name=None, hasher="catalyzer"):
    """`grok-tf export`: writes the next SavedModel version of a run.

    The run must be trained, calibrated (`grok-tf calibrate`) and
    compressed (`grok-tf compress`). The version is written to a hidden
    sibling directory (TF Serving only loads integer names) and renamed to
    `MODEL_DIR/<v>` once complete, `v` one more than the newest version at
    that moment (`grok_tf.io.atomic_files.write_next_version`): an interrupted
    export never leaves a partial version to load (the next export removes
    what a killed one left), and concurrent exports into one `MODEL_DIR`
    each publish their own version.

    Args:
        run_dir: the run directory.
        model_dir: the model's base path (e.g. `saved_models/grocery`).
        top_k: labels per head in the outputs.
        name: the model name in the warm-up requests and `models.config`
            (defaults to the folder name of `model_dir`).
        hasher: the run's hasher behind the `hash` output (any with
            `tf_codes`). Defaults to the Catalyzer, as in the paper.

    Returns:
        The `Path` of the new version.

    Example (not run: needs a trained run in runs/demo):

    >>> export_run("runs/demo", "saved_models/demo")  # doctest: +SKIP
    PosixPath('saved_models/demo/1')
    """
    import keras

    from grok_tf.calibration.calibrate import load_calibration
    from grok_tf.compression.stored import load_hasher
    from grok_tf.io.atomic_files import write_atomically
    from grok_tf.io.atomic_files import write_next_version
    from grok_tf.run_dir import load_run

    spec, model = load_run(run_dir)
    functions = ServingFunctions(
        spec,
        model,
        load_hasher(run_dir, hasher),
        load_calibration(run_dir),
        top_k,
    )
    archive = keras.export.ExportArchive()
    for trackable in functions.trackables():
        archive.track(trackable)
    endpoints = {
        DEFAULT_SIGNATURE: functions.from_bytes,
        IMAGES_SIGNATURE: functions.from_images,
    }
    for signature, fn in endpoints.items():
        archive.add_endpoint(signature, fn, INPUT_SIGNATURES[signature])
    model_dir = Path(model_dir)
    name = name or model_dir.name

    def write(partial):
        archive.write_out(str(partial), verbose=False)
        warmup = partial / "assets.extra" / WARMUP_FILE
        warmup.parent.mkdir()
        write_warmup_requests(warmup, name)

    version = write_next_version(model_dir, write)
    config = MODELS_CONFIG.format(name=name, path=model_dir.resolve())
    write_atomically(
        model_dir / "models.config", lambda f: f.write(config.encode())
    )
    return version


MODELS_CONFIG = """model_config_list {{
  config {{
    name: "{name}"
    base_path: "{path}"
    model_platform: "tensorflow"
  }}
}}
"""


def versions(model_dir):
    """The integer versions under a model directory, ascending.

    Folders named by ASCII digits, as TF Serving reads them
    (`grok_tf.io.atomic_files.integer_version`); anything else is ignored.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    found = (
        integer_version(p.name) if p.is_dir() else None
        for p in model_dir.iterdir()
    )
    return sorted(v for v in found if v is not None)


def latest_version(model_dir):
    """The newest version directory of `model_dir`.

    Raises:
        FileNotFoundError: no version has been exported there.
    """
    found = versions(model_dir)
    if not found:
        raise FileNotFoundError(
            f"{model_dir}: no exported version (run `grok-tf export`)"
        )
    return Path(model_dir) / str(found[-1])


def write_warmup_requests(path, model_name, count=3):
    """TF Serving warm-up: `PredictionLog` records of small JPEG batches.

    TF Serving replays `assets.extra/tf_serving_warmup_requests` at load
    time, so the first real request does not pay for graph warm-up.
    """
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    with tf.io.TFRecordWriter(str(path)) as writer:
        for batch in range(1, count + 1):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = DEFAULT_SIGNATURE
            images = [example_jpeg(seed=batch * 10 + i) for i in range(batch)]
            request.inputs[IMAGE_BYTES].CopyFrom(tf.make_tensor_proto(images))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def example_jpeg(size=64, seed=0):
    """JPEG bytes of a random image (warm-up requests, tests, docs)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return tf.io.encode_jpeg(pixels).numpy()


def predict_images(model_dir, paths, signature=DEFAULT_SIGNATURE):
    """`grok-tf predict`: the newest exported version on image files.

    Only TensorFlow is needed to run the SavedModel: this is what a client
    of the exported model sees. Files are sent as bytes; a missing file is
    sent as an empty string, so it comes back `valid: false` like any
    undecodable image.

    Args:
        model_dir: the model's base path (its versions are subfolders).
        paths: image files.
        signature: the signature to call.

    Returns:
        One JSON-ready dict per image: `image`, `valid`, per head a list
        of `{"label", "score"}` (best first, calibrated scores), `hash`
        (64 hex digits) and the `version` used.

    Example (not run: needs an exported SavedModel):

    >>> predict_images("saved_models/demo", ["a.jpg"])[0]["category"][0]
    ... # doctest: +SKIP
    {'label': 'mug', 'score': 0.91}
    """
    version = latest_version(model_dir)
    loaded = tf.saved_model.load(str(version))
    data = [Path(p).read_bytes() if Path(p).is_file() else b"" for p in paths]
    outputs = loaded.signatures[signature](
        **{IMAGE_BYTES: tf.constant(data, tf.string)}
    )
    outputs = {name: value.numpy() for name, value in outputs.items()}
    heads = [
        name.removesuffix("_top_k_labels")
        for name in sorted(outputs)
        if name.endswith("_top_k_labels")
    ]
    results = []
    for i, path in enumerate(paths):
        valid = bool(outputs["valid"][i])
        result = {"image": str(path), "valid": valid, "version": version.name}
        for head in heads:
            labels = outputs[f"{head}_top_k_labels"][i]
            scores = outputs[f"{head}_top_k_scores"][i]
            result[head] = [
                {"label": label.decode(), "score": round(float(score), 4)}
                for label, score in zip(labels, scores, strict=True)
                if valid
            ]
        result["hash"] = outputs["hash"][i].tobytes().hex() if valid else None
        results.append(result)
    return results
