"""Image decoding, training augmentation and evaluation preprocessing.

Images enter the model as float32 RGB in [0, 255]; each trunk carries its
own normalisation. One `ImageDecoder` turns encoded bytes into pixels for
training, evaluation, product search and the serving signature alike.
Evaluation, calibration, compression, search and the serving signature
then share one `EvalPreprocessor`: a JPEG decoded at the smallest DCT
scale that still covers the evaluation crop, then one resampling
(`resize_for_eval`) to the model's input.

No image costs more memory than the user allows: the decoder reads width
and height from the header first (JPEG, PNG, GIF, BMP, WebP), refuses an
image that would decode to more than `max_pixels` (a small PNG declaring
50,000 x 50,000 is refused, never decoded), and decodes a large JPEG at
1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) when its shorter side stays
at least twice the model's input size (training, whose random crops
zoom in) or the evaluation crop (`EvalPreprocessor`).

Training reads files through `ImageDecoder.load_or_flag`, which never
raises: a missing, truncated, oversized or non-image file comes back
flagged, is dropped from the stream and recorded in a `CorruptImageLog`
(`keep_or_record`), so one bad photo never stops an epoch, a file found
unreadable is not read again in the same run, and the user learns which
files were skipped, and why.
"""

import collections
import dataclasses

import tensorflow as tf

from grok_tf.spec.schema import ModelSpec

EVAL_CROP_FRACTION = 0.875
#: Most pixels (width x height, after JPEG scaling) one image may decode to:
#: `model.max_image_pixels` of a spec. 40 M pixels are 120 MB of RGB.
DEFAULT_MAX_IMAGE_PIXELS = ModelSpec.max_image_pixels
#: JPEG scale denominators libjpeg decodes directly; 1 is full size.
JPEG_SCALES = (1, 2, 4, 8)
#: The formats TensorFlow decodes and `image_header_size` reads.
FORMATS = "JPEG, PNG, GIF, BMP or WebP"
#: Bytes of a file read to tell why it could not be decoded.
_PREFIX_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class ImageDecoder:
    """Encoded image bytes -> uint8 RGB pixels, within a memory budget.

    The one decoder of grok_tf: training, evaluation, product search and
    the serving signature all decode through it, so one file gives the same
    pixels everywhere.

    Args:
        size: the model's input size. A JPEG is decoded at the largest of
            1/2, 1/4 and 1/8 scale that keeps its shorter side at least
            `headroom * size` (no visible loss after the resize to `size`,
            a fraction of the memory and time). None decodes every image
            at full size.
        max_pixels: the most pixels one image may decode to (after JPEG
            scaling); a larger image is refused from its header alone.
        headroom: the shorter side a scaled JPEG keeps, in multiples of
            `size`: 2 for training (its random crops zoom in: detail to
            spare), `1 / EVAL_CROP_FRACTION` for evaluation and serving
            (`EvalPreprocessor`: the centre crop then only shrinks).

    Example:

    >>> decoder = ImageDecoder(size=64)
    >>> jpeg = tf.io.encode_jpeg(tf.zeros([1200, 800, 3], tf.uint8))
    >>> decoder.decode(jpeg).shape  # 1/4 scale: 200 >= 2 * 64
    TensorShape([300, 200, 3])
    >>> image, ok = decoder.decode_or_flag(tf.constant(b"not an image"))
    >>> bool(ok), image.shape
    (False, TensorShape([1, 1, 3]))
    """

    size: int | None = None
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    headroom: float = 2.0

    @classmethod
    def for_spec(cls, spec):
        """The decoder of a spec's model: its input size and pixel limit."""
        return cls(spec.model.input_size, spec.model.max_image_pixels)

    def decode(self, data):
        """Decodes bytes to uint8 `[H, W, 3]`.

        Raises:
            tf.errors.InvalidArgumentError: the bytes are not a JPEG, PNG,
                GIF, BMP or WebP image, are corrupt or truncated, or would
                decode to more than `max_pixels` pixels.
        """
        data = tf.convert_to_tensor(data, tf.string)
        height, _, step, pixels = self._decoded_size(data)
        checks = [
            tf.debugging.assert_positive(
                height, message=f"not a {FORMATS} image, or a cut header"
            ),
            tf.debugging.assert_less_equal(
                pixels,
                tf.constant(self.max_pixels, tf.int64),
                message=f"image exceeds max_image_pixels={self.max_pixels}",
            ),
        ]
        with tf.control_dependencies(checks):
            image = tf.switch_case(
                step,
                [lambda: _decode_full(data)]
                + [
                    lambda s=s: tf.io.decode_jpeg(data, channels=3, ratio=s)
                    for s in JPEG_SCALES[1:]
                ],
            )
        image.set_shape([None, None, 3])
        return image

    def decode_or_flag(self, data):
        """`(image, ok)`: `decode(data)`, or a 1x1 black image and False.

        Never raises: the serving signature's decoder, where one broken
        image must not fail the batch.
        """
        return _guarded(self.decode, data)

    def load_or_flag(self, ref, data, log=None):
        """Reads (when `data` is empty) and decodes one image, never raising.

        Args:
            ref: string tensor, the image file path (or a tfds reference).
            data: string tensor, the encoded bytes; empty to read `ref`.
            log: optional `CorruptImageLog`: a `ref` it has already
                recorded is flagged without being read or decoded again.

        Returns:
            `(image, ok)`: uint8 `[H, W, 3]` (1x1 black when not ok), bool.
        """

        def attempt(ref, data):
            encoded = tf.cond(
                tf.strings.length(data) > 0,
                lambda: data,
                lambda: tf.io.read_file(ref),
            )
            return self.decode(encoded)

        if log is None:
            return _guarded(attempt, ref, data)
        return tf.cond(
            log.seen_op(ref), _flagged, lambda: _guarded(attempt, ref, data)
        )

    def failure_reason(self, ref):
        """Why `ref` could not be decoded, in a few words (for reports)."""
        if ref.startswith("tfds:"):
            return "undecodable image bytes"
        try:
            with open(ref, "rb") as f:
                prefix = f.read(_PREFIX_BYTES)
        except FileNotFoundError:
            return "file not found"
        except IsADirectoryError:
            return "a directory, not an image file"
        except OSError as error:
            return f"cannot be read ({error.strerror or error})"
        if not prefix:
            return "empty file"
        try:
            height, width, step, pixels = self._decoded_size(
                tf.constant(prefix)
            )
        except tf.errors.InvalidArgumentError:  # libjpeg refused its header
            return "corrupt or truncated"
        if height <= 0 and _is_jpeg(prefix):
            return "corrupt or truncated"  # a JPEG without a frame header
        if height <= 0:
            return f"not a {FORMATS} image"
        if pixels > self.max_pixels:
            size = f"{int(width)}x{int(height)}"
            if pixels == height * width and step:
                how = f"{size} progressive JPEG holds {int(pixels):,} pixels"
            else:
                scale = f" at 1/{JPEG_SCALES[int(step)]} scale" if step else ""
                how = f"{size} decodes to {int(pixels):,} pixels{scale}"
            return (
                f"too large: {how}, above max_image_pixels={self.max_pixels:,}"
            )
        return "corrupt or truncated"

    def _decoded_size(self, data):
        """`(height, width, step, pixels)`: the header's size, the index in
        JPEG_SCALES to decode at, and the pixels the decode holds at once.

        A progressive JPEG holds its whole frame (coefficients of every
        pixel) while it decodes, whatever the scale: it counts in full.
        """
        height, width, progressive = _header(data)
        step = tf.constant(0, tf.int32)
        if self.size is not None:
            shorter = tf.minimum(height, width)
            least = self.headroom * self.size
            for i, scale in enumerate(JPEG_SCALES[1:], start=1):
                fits = tf.cast(_ceil_div(shorter, scale), tf.float64) >= least
                step = tf.where(fits, tf.constant(i, tf.int32), step)
            step = tf.where(_is_jpeg(data), step, 0)
        scale = tf.gather(tf.constant(JPEG_SCALES, tf.int64), step)
        scale = tf.where(progressive, tf.constant(1, tf.int64), scale)
        pixels = _ceil_div(height, scale) * _ceil_div(width, scale)
        return height, width, step, pixels


def decode_image(data):
    """Decodes JPEG/PNG/GIF/BMP/WebP bytes to uint8 RGB `[H, W, 3]`.

    Full size, within `DEFAULT_MAX_IMAGE_PIXELS`: `ImageDecoder().decode`.
    """
    return ImageDecoder().decode(data)


def image_header_size(data):
    """`(height, width)` int64 scalars read from an image's header.

    JPEG sizes come from libjpeg's header reader, once the bytes are known
    to hold the whole header; PNG (IHDR), GIF (logical screen), BMP (info
    header) and WebP (VP8, VP8L or VP8X chunk) sizes from their fixed
    header fields, as TensorFlow's decoders read them. Nothing is decoded.

    Args:
        data: string tensor, the encoded image (or at least its first
            bytes: the whole header).

    Returns:
        `(height, width)`, both -1 when the bytes are none of those formats
        or a JPEG cut before its first scan.

    Raises:
        tf.errors.InvalidArgumentError: a JPEG whose header libjpeg rejects.

    Example:

    >>> png = tf.io.encode_png(tf.zeros([3, 5, 3], tf.uint8))
    >>> [int(v) for v in image_header_size(png)]
    [3, 5]
    """
    height, width, _ = _header(data)
    return height, width


def _header(data):
    """`(height, width, progressive)` of `image_header_size`, `progressive`
    true for a progressive (or lossless, hierarchical) JPEG. Only the
    branch of the image's kind runs: every op costs per image in tf.data.
    """
    data = tf.convert_to_tensor(data, tf.string)
    return tf.cond(
        _is_jpeg(data),
        lambda: _jpeg_header(data),
        lambda: _fixed_header(data),
    )


def _fixed_header(data):
    """`(height, width, False)` from the fixed header fields of a PNG, GIF,
    BMP or WebP, `(-1, -1, False)` for other bytes."""
    head = _leading_bytes(data, 32)

    def starts(offset, signature):
        expected = tf.constant(list(signature), tf.int64)
        return tf.reduce_all(head[offset : offset + len(signature)] == expected)

    def little(offset, count):
        return sum(head[offset + i] * 256**i for i in range(count))

    def big(offset, count):
        return sum(
            head[offset + i] * 256 ** (count - 1 - i) for i in range(count)
        )

    def signed32(value):
        return tf.abs(tf.where(value >= 2**31, value - 2**32, value))

    webp = starts(0, b"RIFF") & starts(8, b"WEBP")
    # VP8L packs width - 1 and height - 1 in 14 bits each from byte 21.
    vp8l_width = 1 + head[21] + (head[22] % 64) * 256
    vp8l_height = 1 + head[22] // 64 + head[23] * 4 + (head[24] % 16) * 1024
    known = [  # (is this format, height, width)
        (starts(0, b"\x89PNG\r\n\x1a\n"), big(20, 4), big(16, 4)),
        (starts(0, b"GIF8"), little(8, 2), little(6, 2)),
        (starts(0, b"BM"), signed32(little(22, 4)), signed32(little(18, 4))),
        (
            webp & starts(12, b"VP8 "),
            little(28, 2) % 16384,  # 14 bits; the top two are scaling
            little(26, 2) % 16384,
        ),
        (
            webp & starts(12, b"VP8L"),
            vp8l_height,
            vp8l_width,
        ),
        (webp & starts(12, b"VP8X"), 1 + little(27, 3), 1 + little(24, 3)),
    ]
    height = width = tf.constant(-1, tf.int64)
    for found, h, w in known:
        height = tf.where(found, h, height)
        width = tf.where(found, w, width)
    return height, width, tf.constant(False)


def _jpeg_header(data):
    """`(height, width, progressive)` of a JPEG whose header is whole, else
    `(-1, -1, False)`.

    libjpeg prints to stderr on its own when it reads a header that is cut
    short, whatever TF's log level, so it is only asked for the size
    (`tf.image.extract_jpeg_shape`) once the bytes hold a start-of-scan
    marker (`FF DA`), which follows the whole header. `progressive` is true
    when any non-sequential start-of-frame marker (not SOF0, SOF1, SOF9)
    occurs in the bytes: entropy-coded data never holds one (its `FF`
    bytes are stuffed), so the only false alarms are marker-like bytes in
    metadata, which make the image count in full against the pixel budget:
    the safe side. Vectorised over the bytes: no loop in the graph.
    """
    raw = tf.io.decode_raw(data, tf.uint8)
    marker = tf.boolean_mask(raw[1:], raw[:-1] == 0xFF)
    scan = tf.reduce_any(marker == 0xDA)
    frame = (marker >= 0xC0) & (marker <= 0xCF)
    for kind in (0xC0, 0xC1, 0xC4, 0xC8, 0xC9, 0xCC):  # sequential, DHT,
        frame &= marker != kind  # JPG extension, DAC
    progressive = tf.reduce_any(frame)

    def size():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0], shape[1]

    unknown = tf.constant(-1, tf.int64)
    height, width = tf.cond(scan, size, lambda: (unknown, unknown))
    return height, width, scan & progressive


class CorruptImageLog:
    """Counts images that could not be read or decoded, by reference.

    Recorded in the graph: a `MutableHashTable` of reference -> times
    skipped, updated by `keep_or_record` inside tf.data's threads. No
    Python runs there: a tf.data thread running Python (`py_function`) can
    deadlock interpreter exit while an iterator is alive. The reason of each
    file (not found, empty, too large, corrupt) is worked out by the
    `decoder` when `summary` is read.

    Args:
        decoder: the `ImageDecoder` whose failures are recorded (its pixel
            limit explains refusals); a default one when None.

    Example:

    >>> log = CorruptImageLog()
    >>> log.record("no/such.jpg")
    >>> log.count, log.summary()["files"]
    (1, {'no/such.jpg': 'file not found'})
    """

    def __init__(self, decoder=None):
        self.decoder = decoder or ImageDecoder()
        with tf.init_scope(), tf.device("/CPU:0"):
            self._table = tf.lookup.experimental.MutableHashTable(
                tf.string, tf.int64, default_value=0
            )

    def record_op(self, ref):
        """Graph op: counts one skip of `ref`; returns False (drop it)."""
        count = self._table.lookup(ref)
        with tf.control_dependencies([self._table.insert(ref, count + 1)]):
            return tf.constant(False)

    def seen_op(self, ref):
        """Graph op: whether `ref` has been recorded already."""
        return self._table.lookup(ref) > 0

    def record(self, ref):
        """Counts one skip of `ref` (eagerly)."""
        self.record_op(tf.constant(ref))

    @property
    def count(self):
        """Skips recorded, all references together."""
        return int(tf.reduce_sum(self._table.export()[1]))

    def summary(self):
        """`{"skipped": events, "files": {ref: reason}, "reasons": {kind:
        files}}`, the kind being a reason's words before any colon."""
        refs, counts = self._table.export()
        names = sorted(r.decode("utf-8", "replace") for r in refs.numpy())
        files = {name: self.decoder.failure_reason(name) for name in names}
        return {
            "skipped": int(tf.reduce_sum(counts)),
            "files": files,
            "reasons": reason_counts(files),
        }


def reason_counts(files):
    """`{kind: files}` of `{ref: reason}`, a kind being the reason's words
    before any colon ("too large", "file not found"), most frequent first.
    """
    kinds = collections.Counter(r.split(":")[0] for r in files.values())
    return dict(kinds.most_common())


def describe_skipped(files, shown=3):
    """One bounded line about unreadable files `{ref: reason}`.

    >>> describe_skipped({"a.jpg": "empty file", "b.jpg": "empty file"})
    '2 files (2 empty file), e.g. a.jpg: empty file; b.jpg: empty file'
    """
    counts = ", ".join(f"{n} {k}" for k, n in reason_counts(files).items())
    examples = "; ".join(f"{k}: {v}" for k, v in list(files.items())[:shown])
    more = f" (+{len(files) - shown} more)" if len(files) > shown else ""
    return f"{len(files)} files ({counts}), e.g. {examples}{more}"


def keep_or_record(ref, ok, log):
    """`ok`; when false, counts `ref` in `log` (a graph op, no Python)."""
    return tf.cond(ok, lambda: tf.constant(True), lambda: log.record_op(ref))


def _guarded(attempt, *args):
    """`(attempt(*args), True)`, or a 1x1 black image and False on error.

    The attempt runs inside a one-element `tf.data` pipeline with
    `ignore_errors()`, followed by the flagged placeholder: when reading or
    decoding fails, the placeholder is what comes out. Pure graph, so it is
    safe in parallel tf.data maps and in a SavedModel signature.
    """
    tried = tf.data.Dataset.from_tensors(args).map(
        lambda *a: (attempt(*a), tf.constant(True))
    )
    fallback = tf.data.Dataset.from_tensors(_flagged())
    first = tried.ignore_errors().concatenate(fallback).take(1)
    image, ok = first.get_single_element()
    image.set_shape([None, None, 3])
    return image, ok


def _flagged():
    """The placeholder of an image that could not be decoded."""
    return tf.zeros([1, 1, 3], tf.uint8), tf.constant(False)


def _decode_full(data):
    return tf.io.decode_image(data, channels=3, expand_animations=False)


def _leading_bytes(data, count):
    """The first `count` bytes of `data` as int64 [count], zero-padded."""
    padded = tf.strings.join([tf.strings.substr(data, 0, count), b"\0" * count])
    raw = tf.io.decode_raw(tf.strings.substr(padded, 0, count), tf.uint8)
    return tf.cast(raw, tf.int64)


def _is_jpeg(data):
    """Whether the bytes start like a JPEG (SOI then a marker)."""
    return tf.equal(tf.strings.substr(data, 0, 3), b"\xff\xd8\xff")


def _ceil_div(value, divisor):
    return (value + divisor - 1) // divisor


def resize_for_eval(image, size):
    """Resizes the shorter side to `size / 0.875` and centre-crops `size`.

    One resampling, of the kept pixels only: the crop's `size` x `size`
    pixels of the antialiased (triangle kernel) resize are computed
    directly (`ScaleAndTranslate`, the op behind `tf.image.resize(...,
    antialias=True)`), never the whole resized image.

    Args:
        image: uint8 or float image `[H, W, 3]`, or a batch of images of
            one size `[N, H, W, 3]`.
        size: the square output size.

    Returns:
        float32 `[size, size, 3]` (or `[N, size, size, 3]`) in [0, 255].

    Example:

    >>> image = tf.random.stateless_uniform([50, 70, 3], [0, 1], 0, 255)
    >>> cropped = resize_for_eval(image, 32)  # 37 x 51, crop 32 x 32
    >>> resized = tf.image.resize(image, [37, 51], antialias=True)
    >>> float(tf.reduce_max(tf.abs(cropped - resized[2:34, 9:41]))) < 0.01
    True
    """
    image = tf.convert_to_tensor(image)
    batched = image if image.shape.rank == 4 else image[None]
    shape = tf.cast(tf.shape(batched)[1:3], tf.float32)
    scale = (size / EVAL_CROP_FRACTION) / tf.reduce_min(shape)
    new = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), size)
    corner = (new - size) // 2  # top, left of the crop in the resized image
    resized = tf.raw_ops.ScaleAndTranslate(
        images=batched,
        size=[size, size],
        scale=tf.cast(new, tf.float32) / shape,
        translation=-tf.cast(corner, tf.float32),
        kernel_type="triangle",
        antialias=True,
    )
    resized = tf.clip_by_value(resized, 0.0, 255.0)
    if image.shape.rank != 4:
        return tf.ensure_shape(resized[0], [size, size, 3])
    return tf.ensure_shape(resized, [None, size, size, 3])


@dataclasses.dataclass(frozen=True)
class EvalPreprocessor:
    """Encoded image -> the model's evaluation input, the same everywhere.

    Evaluation, calibration, compression and validation (`tf.data`),
    product search (`grok_tf.inference.embed_images`) and the SavedModel's
    `serving_default` signature all turn bytes into model inputs through
    one `EvalPreprocessor`, so one file gives the same outputs wherever
    it is scored:

    1. decode (`ImageDecoder` with `headroom=1 / EVAL_CROP_FRACTION`): a
       JPEG at the smallest of 1/2, 1/4, 1/8 scale whose shorter side
       still covers the crop at `size / 0.875`, i.e. scaled when it is at
       least about twice the input size; other formats at full size;
    2. `resize_for_eval`: the centre crop, resampled once to
       `size` x `size`.

    Args:
        size: the model's square input size.
        max_pixels: the decoder's pixel limit (`model.max_image_pixels`).

    Example:

    >>> prepare = EvalPreprocessor(32)
    >>> grey = tf.fill([300, 200, 3], tf.constant(9, tf.uint8))
    >>> jpeg = tf.io.encode_jpeg(grey)
    >>> prepare.decoder.decode(jpeg).shape  # 1/4: 50 >= 32 / 0.875
    TensorShape([75, 50, 3])
    >>> images, valid = prepare.batch_or_flag([jpeg, b"not an image"])
    >>> images.shape, valid.numpy().tolist()
    (TensorShape([2, 32, 32, 3]), [True, False])
    >>> float(images[0, 5, 5, 0]), float(tf.reduce_max(images[1]))
    (9.0, 0.0)
    """

    size: int
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS

    @classmethod
    def for_spec(cls, spec):
        """The preprocessor of a spec's model: input size, pixel limit."""
        return cls(spec.model.input_size, spec.model.max_image_pixels)

    @property
    def decoder(self):
        """The `ImageDecoder` of step 1."""
        return ImageDecoder(
            self.size, self.max_pixels, headroom=1 / EVAL_CROP_FRACTION
        )

    def resize(self, image):
        """Step 2: decoded pixels -> float32 `[size, size, 3]`."""
        return resize_for_eval(image, self.size)

    def __call__(self, data):
        """Encoded bytes -> float32 `[size, size, 3]`.

        Raises:
            tf.errors.InvalidArgumentError: as `ImageDecoder.decode`.
        """
        return self.resize(self.decoder.decode(data))

    def load_or_flag(self, ref, data, log=None):
        """`ImageDecoder.load_or_flag`, resized: `(image, ok)`, never
        raising; black when not ok. The tf.data form (one image)."""
        image, ok = self.decoder.load_or_flag(ref, data, log)
        return self.resize(image), ok

    def batch_or_flag(self, image_bytes, parallel=tf.data.AUTOTUNE):
        """A batch of encoded images, decoded and resized in parallel.

        The serving form: the images of a request are prepared by
        `parallel` threads of one `tf.data` map (images ignored when they
        fail), then put back in request order. Pure graph: safe in a
        SavedModel signature.

        Args:
            image_bytes: string `[N]`, encoded images.
            parallel: images prepared at once (`tf.data.AUTOTUNE`: the
                cores).

        Returns:
            `(images, valid)`: float32 `[N, size, size, 3]` and bool `[N]`;
            an image that cannot be decoded is black and not valid, and
            leaves the rest of the batch as it would be without it.
        """
        data = tf.convert_to_tensor(image_bytes, tf.string)
        count = tf.shape(data, out_type=tf.int64)[0]
        prepared = (
            tf.data.Dataset.from_tensor_slices((tf.range(count), data))
            .map(
                lambda i, d: (i, self(d)),
                num_parallel_calls=parallel,
                deterministic=False,
            )
            .ignore_errors()
            .batch(tf.maximum(count, 1))
        )
        nothing = (
            tf.zeros([0], tf.int64),
            tf.zeros([0, self.size, self.size, 3], tf.float32),
        )
        rows, images = (
            prepared.concatenate(tf.data.Dataset.from_tensors(nothing))
            .take(1)
            .get_single_element()
        )
        rows = rows[:, None]
        shape = tf.stack([count, self.size, self.size, 3])
        images = tf.scatter_nd(rows, images, shape)
        images = tf.ensure_shape(images, [None, self.size, self.size, 3])
        found = tf.ones_like(rows[:, 0], tf.int32)
        valid = tf.scatter_nd(rows, found, count[None]) > 0
        return images, valid


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
    # Resized as uint8 (the result is float32): no float copy of the crop.
    image = tf.image.resize(image, [size, size], antialias=True) / 255.0
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
