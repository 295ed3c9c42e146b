"""The one inference loop: images -> a run's model -> numpy outputs.

Every stage that runs a trained model over images goes through `collect`:
evaluation, calibration and compression over the labelled splits of a
spec (`predict`, `predict_split`), index and search over image files
(`embed_images`). Images are decoded, size-checked and resized by the
same `grok_tf.data.images.EvalPreprocessor` as in the serving signature.
"""

import numpy as np
import tensorflow as tf

from grok_tf.data.batch_mixer import evaluation_batches
from grok_tf.data.images import DEFAULT_MAX_IMAGE_PIXELS
from grok_tf.data.images import CorruptImageLog
from grok_tf.data.images import EvalPreprocessor
from grok_tf.data.images import describe_skipped
from grok_tf.data.sources import read_split
from grok_tf.errors import SpecError


def collect(model, batches, keys=None, total=None, verbose=0):
    """Runs `model` over `(images, *extra)` batches; concatenates the rows.

    Args:
        model: a GrokNet inference model (outputs: a dict).
        batches: an iterable of tuples whose first item is a batch of
            images and whose other items are dicts or tensors carried
            along (labels, weights, valid flags).
        keys: the model outputs to keep (all when None).
        total: the number of images, for the progress bar.
        verbose: 1 shows a progress bar (images).

    Returns:
        A tuple: the outputs dict, then each extra item concatenated over
        the batches (dicts stay dicts), as numpy; `None` when there was no
        batch.

    Example:

    >>> import keras
    >>> x = keras.Input((2,))
    >>> model = keras.Model(x, {"y": 2 * x})
    >>> outputs, labels = collect(model, [(np.ones((3, 2)), {"a": [0, 1, 2]})])
    >>> outputs["y"].shape, labels["a"].tolist()
    ((3, 2), [0, 1, 2])
    """
    progress = None
    if verbose:
        import keras

        progress = keras.utils.Progbar(total)
    parts = None
    for images, *extra in batches:
        outputs = model(images, training=False)
        if keys is not None:
            outputs = {key: outputs[key] for key in keys}
        row = (outputs, *extra)
        if parts is None:
            parts = [_empty_like(item) for item in row]
        for store, item in zip(parts, row, strict=True):
            _append(store, item)
        if progress:
            progress.add(int(tf.shape(images)[0]))
    if parts is None:
        return None
    return tuple(_concatenate(store) for store in parts)


def predict(spec, model, splits, batch_size=64, verbose=0, augment=False):
    """Runs `model` over `Split`s of a spec, in order.

    With `augment`, every image is a random training view of it
    (`evaluation_batches(augment=True)`) instead of the evaluation crop.

    Returns:
        `(outputs, labels, weights, log)`: numpy dicts keyed by head (and
        `embedding`/`features` in `outputs`), rows concatenated over the
        splits, and the `CorruptImageLog` of skipped images.

    Raises:
        SpecError: not one image of the splits could be read.
    """
    log = CorruptImageLog(EvalPreprocessor.for_spec(spec).decoder)
    batches = evaluation_batches(spec, splits, log, batch_size, augment)
    total = sum(map(len, splits))
    collected = collect(model, batches, total=total, verbose=verbose)
    if collected is None:
        names = ", ".join(f"{s.dataset}/{s.split}" for s in splits)
        files = log.summary()["files"]
        raise SpecError(
            f"{spec.path.name}: none of the {sum(map(len, splits))} images "
            f"of {names} can be read: {describe_skipped(files)}"
        )
    return (*collected, log)


def predict_split(
    spec, model, split_name, batch_size=64, verbose=0, augment=False
):
    """`predict` over one split of every dataset that has it."""
    return predict(
        spec, model, read_splits(spec, split_name), batch_size, verbose, augment
    )


def read_splits(spec, split_name):
    """The `Split`s named `split_name` of every dataset that has one, in
    the order `predict_split` runs them.

    Raises:
        ValueError: no dataset has the split.
    """
    splits = [
        read_split(spec, d, split_name)
        for d in spec.datasets
        if split_name in d.splits
    ]
    if not splits:
        names = ", ".join(spec.split_names())
        raise ValueError(f"no dataset has a split {split_name!r} ({names})")
    return splits


def kept_refs(splits, skipped):
    """The image reference of each row `predict` returned over `splits`.

    `predict` keeps the images it could read, in the order of the splits'
    refs: these are every ref but the skipped ones (an unreadable ref is
    skipped wherever it occurs).

    Args:
        splits: the `Split`s given to `predict`.
        skipped: the refs its log recorded (`log.summary()["files"]`).

    Returns:
        A list of refs, one per output row.

    Example:

    >>> from grok_tf.data.sources import Split
    >>> split = Split("toy", "val", ["a.jpg", "b.jpg", "c.jpg"], {})
    >>> kept_refs([split], {"b.jpg": "file not found"})
    ['a.jpg', 'c.jpg']
    """
    return [ref for split in splits for ref in split.refs if ref not in skipped]


def embed_images(
    model,
    paths,
    input_size,
    batch_size=64,
    verbose=0,
    max_pixels=DEFAULT_MAX_IMAGE_PIXELS,
):
    """Embeds image files with a GrokNet inference model.

    Each photo is read, decoded and resized exactly as in evaluation. A
    photo that cannot be read or decoded gets `valid=False` and a zero
    embedding; the others are unaffected.

    Args:
        model: a model from `grok_tf.model.groknet.build_groknet` (or a
            loaded run), whose outputs include `embedding`.
        paths: image file paths.
        input_size: the model's square input size.
        batch_size: images per forward pass.
        verbose: 1 shows a progress bar.
        max_pixels: the decoder's pixel limit (`model.max_image_pixels`);
            a larger photo is flagged, not decoded.

    Returns:
        `(embeddings, valid)`: float32 `[N, d]` and bool `[N]`.
    """
    preprocessor = EvalPreprocessor(input_size, max_pixels)

    def load(path):
        return preprocessor.load_or_flag(path, tf.constant(b""))

    batches = (
        tf.data.Dataset.from_tensor_slices(tf.constant(list(paths), tf.string))
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    collected = collect(
        model, batches, ("embedding",), total=len(paths), verbose=verbose
    )
    if collected is None:
        width = int(model.get_layer("embedding").output.shape[-1])
        return np.zeros((0, width), np.float32), np.zeros((0,), bool)
    outputs, valid = collected
    embeddings = np.where(valid[:, None], outputs["embedding"], 0)
    return embeddings.astype(np.float32), valid


def _empty_like(item):
    return {} if isinstance(item, dict) else []


def _append(store, item):
    if isinstance(store, dict):
        for key, value in item.items():
            store.setdefault(key, []).append(np.asarray(value))
    else:
        store.append(np.asarray(item))


def _concatenate(store):
    if isinstance(store, dict):
        return {key: np.concatenate(values) for key, values in store.items()}
    return np.concatenate(store)
