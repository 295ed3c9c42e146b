"""Objects of unlabelled photos, detected and cut out as image files.

`cut_crops` runs a detector (`grok_tf.weak_supervision.detectors`) over
photos and writes every detected object as a JPEG of its own, which the
run's model then embeds exactly as it embeds any photo, and which a spec
later trains on (`pseudo_labels` dataset source).
"""

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from grok_tf.data.images import DEFAULT_MAX_IMAGE_PIXELS
from grok_tf.data.images import ImageDecoder
from grok_tf.weak_supervision.detectors import crop

#: The folder of the crops, inside the output folder.
CROPS = "crops"


@dataclasses.dataclass(frozen=True)
class Crop:
    """One detected object, written as an image file.

    Attributes:
        file: the crop's JPEG, relative to the output folder
            (`crops/000012_1.jpg`: photo 12, its second object).
        source: the photo it was cut from, as given.
        box: `(ymin, xmin, ymax, xmax)` in the photo, normalised to [0, 1],
            padding included.
        score: the detector's score.
        label: the detector's class name (`image` for a whole photo).
    """

    file: str
    source: str
    box: tuple[float, float, float, float]
    score: float
    label: str


def cut_crops(
    paths,
    detector,
    folder,
    max_side=512,
    max_pixels=DEFAULT_MAX_IMAGE_PIXELS,
    prefix="",
    verbose=0,
):
    """Detects the objects of each photo and writes each one as a JPEG.

    Photos are decoded in parallel by the same `ImageDecoder` as training
    (a photo larger than `max_pixels` is refused from its header); a photo
    that cannot be read or decoded is reported, never fatal. A crop whose
    shorter side exceeds `max_side` is shrunk to it (antialiased), so no
    crop costs more disk than training can use.

    Args:
        paths: photo file paths.
        detector: a `Detector`.
        folder: the output folder; crops go to `folder/crops/`.
        max_side: the largest shorter side of a written crop, in pixels.
        max_pixels: the decoder's pixel limit (`model.max_image_pixels`).
        prefix: prepended to crop file names (to keep several calls apart
            in one folder).
        verbose: 1 shows a progress bar (photos).

    Returns:
        `(crops, unreadable)`: a list of `Crop`s in photo order, and
        `{path: reason}` of the photos that could not be decoded.

    Example (not run: needs photos and a detector):

    >>> crops, unreadable = cut_crops(  # doctest: +SKIP
    ...     ["shelf.jpg"], make_detector("whole"), "out")
    >>> crops[0].file, crops[0].box  # doctest: +SKIP
    ('crops/000000_0.jpg', (0.0, 0.0, 1.0, 1.0))
    """
    import keras

    paths = [str(p) for p in paths]
    folder = Path(folder)
    (folder / CROPS).mkdir(parents=True, exist_ok=True)
    decoder = ImageDecoder(None, max_pixels)
    decoded = (
        tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string))
        .map(
            lambda path: decoder.load_or_flag(path, tf.constant(b"")),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .prefetch(4)
    )
    progress = keras.utils.Progbar(len(paths)) if verbose and paths else None
    crops, unreadable = [], {}
    for number, (path, (image, ok)) in enumerate(
        zip(paths, decoded, strict=True)
    ):
        if progress:
            progress.add(1)
        if not ok:
            unreadable[path] = decoder.failure_reason(path)
            continue
        image = image.numpy()
        for k, detection in enumerate(detector.detect(image)):
            name = f"{CROPS}/{prefix}{number:06d}_{k}.jpg"
            pixels = _shrunk(crop(image, detection), max_side)
            jpeg = tf.io.encode_jpeg(pixels, quality=95).numpy()
            (folder / name).write_bytes(jpeg)
            crops.append(
                Crop(
                    file=name,
                    source=path,
                    box=tuple(round(float(v), 5) for v in detection.box),
                    score=round(float(detection.score), 5),
                    label=detection.label,
                )
            )
    return crops, unreadable


def _shrunk(pixels, max_side):
    """`pixels` with its shorter side at most `max_side` (antialiased)."""
    height, width = pixels.shape[:2]
    scale = max_side / min(height, width)
    if scale >= 1:
        return pixels
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    shrunk = tf.image.resize(pixels, size, antialias=True)
    return np.clip(np.round(shrunk.numpy()), 0, 255).astype(np.uint8)
