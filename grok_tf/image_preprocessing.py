"""Image decoding, training augmentation and evaluation resizing.

Images enter the model as float32 RGB in [0, 255]; each trunk carries its
own normalisation. The same `decode_image` and `resize_for_eval` serve
training, evaluation and (later) the serving signature.

Training reads files through `load_image_or_flag`, which never raises: a
missing, truncated or non-image file comes back flagged, is dropped from the
stream and recorded in a `CorruptImageLog` (`keep_or_record`), so one bad
photo never stops an epoch and the user learns which files were skipped.
"""

import os

import tensorflow as tf

EVAL_CROP_FRACTION = 0.875


def decode_image(data):
    """Decodes JPEG/PNG/GIF/BMP bytes to a uint8 RGB image [H, W, 3]."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


class CorruptImageLog:
    """Counts images that could not be read or decoded, by reference.

    Recorded in the graph: a `MutableHashTable` of reference -> times
    skipped, updated by `keep_or_record` inside tf.data's threads. No
    Python runs there: a tf.data thread running Python (`py_function`) can
    deadlock interpreter exit while an iterator is alive. The reason of each
    file (not found, empty, corrupt) is worked out when `summary` is read.

    Example:

    >>> log = CorruptImageLog()
    >>> log.record("no/such.jpg")
    >>> log.count, log.summary()["files"]
    (1, {'no/such.jpg': 'file not found'})
    """

    def __init__(self):
        with tf.init_scope(), tf.device("/CPU:0"):
            self._table = tf.lookup.experimental.MutableHashTable(
                tf.string, tf.int64, default_value=0
            )

    def record_op(self, ref):
        """Graph op: counts one skip of `ref`; returns False (drop it)."""
        count = self._table.lookup(ref)
        with tf.control_dependencies([self._table.insert(ref, count + 1)]):
            return tf.constant(False)

    def record(self, ref):
        """Counts one skip of `ref` (eagerly)."""
        self.record_op(tf.constant(ref))

    @property
    def count(self):
        """Skips recorded, all references together."""
        return int(tf.reduce_sum(self._table.export()[1]))

    def summary(self):
        """`{"skipped": events, "files": {ref: reason}}`."""
        refs, counts = self._table.export()
        names = sorted(r.decode("utf-8", "replace") for r in refs.numpy())
        return {
            "skipped": int(tf.reduce_sum(counts)),
            "files": {name: _reason(name) for name in names},
        }


def _reason(name):
    if name.startswith("tfds:"):
        return "undecodable image bytes"
    if not os.path.exists(name):
        return "file not found"
    if os.path.getsize(name) == 0:
        return "empty file"
    return "corrupt, truncated or not an image"


def load_image_or_flag(ref, data):
    """Reads and decodes one image in the graph, without ever raising.

    The decode runs inside a one-element `tf.data` pipeline with
    `ignore_errors()`, followed by a flagged placeholder: when reading or
    decoding fails, the placeholder is what comes out. Pure graph, so it is
    safe in parallel tf.data maps (no Python in the hot path).

    Args:
        ref: string tensor, the image file path (or a tfds reference).
        data: string tensor, the encoded bytes; empty to read `ref`.

    Returns:
        `(image, ok)`: uint8 [H, W, 3] (1x1 black when not ok) and a bool.
    """

    def attempt(ref, data):
        encoded = tf.cond(
            tf.strings.length(data) > 0,
            lambda: data,
            lambda: tf.io.read_file(ref),
        )
        return decode_image(encoded)

    return _guarded(attempt, ref, data)


def decode_image_or_flag(data):
    """Decodes encoded image bytes in the graph, without ever raising.

    The serving signature's decoder: like `load_image_or_flag`, but never
    reads a file; empty, truncated and non-image bytes come back flagged.

    Args:
        data: string tensor, JPEG/PNG/GIF/BMP bytes.

    Returns:
        `(image, ok)`: uint8 [H, W, 3] (1x1 black when not ok) and a bool.
    """
    return _guarded(decode_image, data)


def _guarded(attempt, *args):
    """`(attempt(*args), True)`, or a 1x1 black image and False on error."""
    tried = tf.data.Dataset.from_tensors(args).map(
        lambda *a: (attempt(*a), tf.constant(True))
    )
    fallback = tf.data.Dataset.from_tensors(
        (tf.zeros([1, 1, 3], tf.uint8), tf.constant(False))
    )
    first = tried.ignore_errors().concatenate(fallback).take(1)
    image, ok = first.get_single_element()
    image.set_shape([None, None, 3])
    return image, ok


def keep_or_record(ref, ok, log):
    """`ok`; when false, counts `ref` in `log` (a graph op, no Python)."""
    return tf.cond(ok, lambda: tf.constant(True), lambda: log.record_op(ref))


def resize_for_eval(image, size):
    """Resizes the shorter side to `size / 0.875` and centre-crops `size`.

    Args:
        image: uint8 or float image [H, W, 3].
        size: the square output size.

    Returns:
        float32 [size, size, 3] in [0, 255].
    """
    image = tf.cast(image, tf.float32)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = (size / EVAL_CROP_FRACTION) / tf.reduce_min(shape)
    new = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), size)
    image = tf.image.resize(image, new, antialias=True)
    top = (new[0] - size) // 2
    left = (new[1] - size) // 2
    image = image[top : top + size, left : left + size]
    image.set_shape([size, size, 3])
    return tf.clip_by_value(image, 0.0, 255.0)


def augment_for_training(image, size, training_spec):
    """Random resized crop, horizontal flip and colour jitter.

    Args:
        image: uint8 image [H, W, 3].
        size: the square output size.
        training_spec: a `TrainingSpec` (crop_area, flip, brightness,
            contrast, saturation, hue).

    Returns:
        float32 [size, size, 3] in [0, 255].
    """
    t = training_spec
    begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.zeros([1, 0, 4]),
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=t.crop_area,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_size)
    image = tf.image.resize(
        tf.cast(image, tf.float32) / 255.0, [size, size], antialias=True
    )
    if t.flip:
        image = tf.image.random_flip_left_right(image)
    if t.brightness:
        image = tf.image.random_brightness(image, t.brightness)
    if t.contrast:
        image = tf.image.random_contrast(image, 1 - t.contrast, 1 + t.contrast)
    if t.saturation:
        image = tf.image.random_saturation(
            image, 1 - t.saturation, 1 + t.saturation
        )
    if t.hue:
        image = tf.image.random_hue(image, t.hue)
    image = tf.clip_by_value(image, 0.0, 1.0) * 255.0
    image.set_shape([size, size, 3])
    return image
