"""The object-detector family: a uint8 photo -> filtered detections, by name.

A `Detector` implements one method, `raw_detections`: every box the model
proposes for a uint8 `[H, W, 3]` photo, with its score and class name.
`detect` turns those into the `Detection`s pseudo-labelling uses, by the
same rules for every detector (`DetectorOptions`):

1. boxes are clipped to the image ([0, 1]); a box with no area or a
   non-finite coordinate or score is dropped;
2. a box is kept when its score is at least `min_score`, its class is one
   of `classes` (all when None) and its shorter side, in pixels of the
   photo as given, is at least `min_box_size`;
3. the kept boxes are sorted by score, highest first (ties: by box, then
   by name), and the first `max_boxes` taken;
4. each side of a box then moves out by `padding` times the box's height
   (top, bottom) or width (left, right), clipped to the image.

`crop` cuts a detection's pixels out of the photo. Detectors are
registered by `name` (`register_detector`) and built from a short text by
`make_detector`: `whole`, `tflite:PATH`, `saved_model:PATH`, or the
`usage` of a kind a user registered.

A new kind is a short subclass, registered before `make_detector` runs:

    @register_detector
    class SlidingWindows(Detector):
        name = "windows"
        def raw_detections(self, image):
            ...  # boxes [n, 4], scores [n], labels (n names)
"""

import abc
import dataclasses
import math
from pathlib import Path
from typing import Any
from typing import ClassVar

import numpy as np

from grok_tf.io.text_files import read_lines
from grok_tf.registry import ClassRegistry

#: A box edge this close (in pixels) to a pixel boundary counts as on it,
#: so float noise (0.29 * 100 = 28.999999999999996) adds no pixel to a crop.
PIXEL_TOLERANCE = 1e-6
#: Label-map lines that name no class (COCO's unused ids in `labelmap.txt`).
UNUSED_LABEL = "???"


def _check_number(field: str, value: Any, minimum: float | None) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (minimum is None or value >= minimum)
    )
    if not ok:
        bound = "" if minimum is None else f" >= {minimum}"
        raise ValueError(
            f"DetectorOptions.{field} must be a finite number{bound}, "
            f"got {value!r}"
        )


def _check_integer(field: str, value: Any, minimum: int) -> None:
    if (
        not isinstance(value, int | np.integer)
        or isinstance(value, bool)
        or value < minimum
    ):
        raise ValueError(
            f"DetectorOptions.{field} must be an integer >= {minimum}, "
            f"got {value!r}"
        )


@dataclasses.dataclass(frozen=True)
class DetectorOptions:
    """Which of a detector's boxes become detections (see `Detector.detect`).

    Args:
        min_score: the lowest score kept (inclusive).
        classes: the class names kept; None keeps every class. A detector
            with a label map refuses a name it does not know.
        min_box_size: the shortest side a kept box may have, in pixels of
            the image as given (before padding).
        max_boxes: the most detections per image, highest scores first.
        padding: each side of a kept box moves out by this fraction of the
            box's height (top, bottom) or width (left, right); the result
            is clipped to the image.

    Raises:
        ValueError: a field out of range, naming it.

    Example:

    >>> DetectorOptions(classes=["apple", "orange"]).classes
    ('apple', 'orange')
    >>> DetectorOptions(max_boxes=0)
    Traceback (most recent call last):
    ValueError: DetectorOptions.max_boxes must be an integer >= 1, got 0
    """

    min_score: float = 0.3
    classes: tuple[str, ...] | None = None
    min_box_size: int = 32
    max_boxes: int = 5
    padding: float = 0.1

    def __post_init__(self) -> None:
        _check_number("min_score", self.min_score, None)
        _check_number("padding", self.padding, 0)
        _check_integer("min_box_size", self.min_box_size, 0)
        _check_integer("max_boxes", self.max_boxes, 1)
        if self.classes is not None:
            classes = self.classes
            if isinstance(classes, str) or not all(
                isinstance(name, str) and name for name in classes
            ):
                raise ValueError(
                    "DetectorOptions.classes must be a sequence of class "
                    f"names (non-empty strings) or None, got {classes!r}"
                )
            if not classes:
                raise ValueError(
                    "DetectorOptions.classes names no class; use None to "
                    "keep every class"
                )
            object.__setattr__(self, "classes", tuple(classes))


#: The options a detector uses when given none.
DEFAULT_OPTIONS = DetectorOptions()


@dataclasses.dataclass(frozen=True)
class Detection:
    """One object found in a photo.

    Attributes:
        box: `(ymin, xmin, ymax, xmax)`, normalised to [0, 1] by the
            photo's height and width, after padding and clipping.
        score: the detector's confidence.
        label: the class name (`"image"` for the whole image).
    """

    box: tuple[float, float, float, float]
    score: float
    label: str


class Detector(abc.ABC):
    """A uint8 photo -> the objects in it, as `Detection`s.

    A subclass sets `name` (its registry key), implements `raw_detections`
    and, when it takes an argument in `make_detector`'s text (a path),
    `parse_argument` and `usage`. A subclass with a label map overrides
    `class_names` and loads the map before calling `super().__init__`,
    which checks `options.classes` against it.

    Not thread-safe: a detector may hold one interpreter or model.

    Args:
        options: which boxes `detect` keeps. Defaults to `DetectorOptions()`.

    Raises:
        ValueError: `options.classes` names a class the label map lacks
            (the message lists the valid names).

    Example:

    >>> class Fixed(Detector):
    ...     name = "fixed"
    ...     def raw_detections(self, image):
    ...         boxes = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 0.6, 0.6]])
    ...         return boxes, np.array([0.9, 0.8]), ["cup", "cup"]
    >>> photo = np.zeros((100, 100, 3), np.uint8)
    >>> Fixed(DetectorOptions(padding=0.0)).detect(photo)  # 2nd: 10 px
    [Detection(box=(0.0, 0.0, 0.5, 0.5), score=0.9, label='cup')]
    """

    #: The registry key, and the text that names the kind in `make_detector`.
    name: ClassVar[str] = ""
    #: How `make_detector`'s text names the kind, e.g. `"tflite:PATH"`
    #: (shown in its errors); empty means `name` alone.
    usage: ClassVar[str] = ""

    def __init__(self, options: DetectorOptions = DEFAULT_OPTIONS) -> None:
        if not isinstance(options, DetectorOptions):
            raise TypeError(
                f"{type(self).__name__}: options must be DetectorOptions, "
                f"got {type(options).__name__}"
            )
        self.options = options
        names = self.class_names()
        if options.classes is not None and names is not None:
            valid = set(names)
            unknown = [c for c in options.classes if c not in valid]
            if unknown:
                raise ValueError(
                    f"{self.describe()}: unknown classes "
                    f"{', '.join(map(repr, unknown))}; valid classes: "
                    f"{', '.join(sorted(valid))}"
                )

    @classmethod
    def parse_argument(cls, argument: str | None) -> dict[str, Any]:
        """Constructor keyword arguments from `make_detector`'s text.

        Args:
            argument: what follows `name:` in the text, None without `:`.

        Returns:
            keyword arguments of the class's constructor (besides
            `options`). The default takes no argument and returns `{}`.

        Raises:
            ValueError: a bad argument, in one line (`make_detector` adds
                the text and the accepted forms).
        """
        if argument is not None:
            raise ValueError(f"{cls.name!r} takes no ':' argument")
        return {}

    def class_names(self) -> tuple[str, ...] | None:
        """The class names the detector can output; None: no label map."""
        return None

    def describe(self) -> str:
        """Names the detector in messages, e.g. its model file."""
        return type(self).__name__

    @abc.abstractmethod
    def raw_detections(
        self, image: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Every box the model proposes, before `options` apply.

        Args:
            image: uint8 RGB `[H, W, 3]`.

        Returns:
            `(boxes, scores, labels)`: float `[n, 4]` boxes `(ymin, xmin,
            ymax, xmax)` normalised to [0, 1], float `[n]` scores and the
            `n` class names.
        """

    def detect(self, image: np.ndarray) -> list[Detection]:
        """The detections `options` keep, best first (see the module doc).

        Args:
            image: uint8 RGB `[H, W, 3]`, H and W at least 1.

        Returns:
            at most `options.max_boxes` detections, by decreasing score,
            their boxes padded and clipped to [0, 1].

        Raises:
            ValueError: `image` is not uint8 `[H, W, 3]`, or
                `raw_detections` returned arrays of the wrong shapes.
        """
        image = check_image(image)
        boxes, scores, labels = self._checked_raw(image)
        options = self.options
        height, width = image.shape[:2]
        finite = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
        boxes = np.clip(boxes, 0.0, 1.0)
        with np.errstate(invalid="ignore"):
            sides = boxes[:, 2:] - boxes[:, :2]  # heights, widths
            pixels = np.minimum(sides[:, 0] * height, sides[:, 1] * width)
            keep = (
                finite
                & (sides > 0).all(axis=1)
                & (scores >= options.min_score)
                & (pixels >= options.min_box_size)
            )
        if options.classes is not None:
            wanted = set(options.classes)
            keep &= np.array([label in wanted for label in labels], bool)
        order = sorted(
            np.flatnonzero(keep),
            key=lambda i: (-scores[i], *boxes[i].tolist(), labels[i]),
        )
        return [
            Detection(
                box=pad_box(boxes[i].tolist(), options.padding),
                score=float(scores[i]),
                label=labels[i],
            )
            for i in order[: options.max_boxes]
        ]

    def _checked_raw(
        self, image: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        boxes, scores, labels = self.raw_detections(image)
        boxes = np.asarray(boxes, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
        labels = list(labels)
        n = len(labels)
        if n == 0 and boxes.size == 0:
            boxes = boxes.reshape(0, 4)  # e.g. np.array([]) for no box
        if boxes.shape != (n, 4) or scores.shape != (n,):
            raise ValueError(
                f"{self.describe()}: raw_detections returned boxes "
                f"{list(boxes.shape)}, scores {list(scores.shape)} and {n} "
                "labels; expected [n, 4], [n] and n"
            )
        if not all(isinstance(label, str) for label in labels):
            raise ValueError(
                f"{self.describe()}: raw_detections returned labels that "
                "are not all strings"
            )
        return boxes, scores, labels

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.options}>"


def pad_box(
    box: tuple[float, float, float, float] | list[float], padding: float
) -> tuple[float, float, float, float]:
    """Moves each side of a box out by `padding` of its size, clipped.

    Args:
        box: `(ymin, xmin, ymax, xmax)` in [0, 1].
        padding: the fraction of the box's height added above and below,
            and of its width left and right.

    Returns:
        the padded box, clipped to [0, 1].

    Example:

    >>> pad_box((0.25, 0.5, 0.75, 0.625), 0.1)
    (0.2, 0.4875, 0.8, 0.6375)
    >>> pad_box((0.0625, 0.875, 0.5, 1.0), 0.5)
    (0.0, 0.8125, 0.71875, 1.0)
    """
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    dy, dx = (ymax - ymin) * padding, (xmax - xmin) * padding
    return (
        max(0.0, ymin - dy),
        max(0.0, xmin - dx),
        min(1.0, ymax + dy),
        min(1.0, xmax + dx),
    )


def check_image(image: Any) -> np.ndarray:
    """`image` as a numpy array, if it is uint8 RGB `[H, W, 3]`, H, W >= 1.

    Raises:
        ValueError: any other dtype or shape, naming them.
    """
    array = np.asarray(image)
    if (
        array.dtype != np.uint8
        or array.ndim != 3
        or array.shape[2] != 3
        or 0 in array.shape[:2]
    ):
        raise ValueError(
            "expected a uint8 RGB image [H, W, 3] with H, W >= 1, got "
            f"{array.dtype} {list(array.shape)}"
        )
    return array


def crop(image: np.ndarray, detection: Detection) -> np.ndarray:
    """The pixels of `image` inside `detection.box`, at least 1 x 1.

    Edges are rounded outwards, the same way for every box: the top and
    left edges down, the bottom and right edges up (an edge within
    `PIXEL_TOLERANCE` pixel of a pixel boundary counts as on it), so the
    crop holds every pixel the box touches. A box thinner than a pixel
    keeps the pixel it starts in.

    Args:
        image: uint8 RGB `[H, W, 3]`.
        detection: its box normalised to `image`'s height and width.

    Returns:
        uint8 `[h, w, 3]`, a view of `image` (not a copy).

    Raises:
        ValueError: a bad image, or a box that is not `ymin <= ymax`,
            `xmin <= xmax` within [0, 1].

    Example:

    >>> image = np.zeros((10, 20, 3), np.uint8)
    >>> crop(image, Detection((0.25, 0.1, 0.55, 0.33), 0.9, "cup")).shape
    (4, 5, 3)
    """
    image = check_image(image)
    ymin, xmin, ymax, xmax = (float(v) for v in detection.box)
    if not (0.0 <= ymin <= ymax <= 1.0 and 0.0 <= xmin <= xmax <= 1.0):
        raise ValueError(
            "crop: the box must be (ymin, xmin, ymax, xmax) with ymin <= "
            f"ymax and xmin <= xmax within [0, 1], got {detection.box}"
        )
    top, bottom = _pixel_span(ymin, ymax, image.shape[0])
    left, right = _pixel_span(xmin, xmax, image.shape[1])
    return image[top:bottom, left:right]


def _pixel_span(low: float, high: float, size: int) -> tuple[int, int]:
    start = math.floor(low * size + PIXEL_TOLERANCE)
    stop = math.ceil(high * size - PIXEL_TOLERANCE)
    start = min(max(start, 0), size - 1)
    return start, min(max(stop, start + 1), size)


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 `[H, W, 3]` -> uint8 `[height, width, 3]`, for a model input.

    Bilinear (`tf.image.resize`), the aspect ratio not preserved, rounded
    to the nearest integer; the image itself when it has that size.
    """
    if image.shape[:2] == (height, width):
        return image
    import tensorflow as tf

    resized = tf.image.resize(image, (height, width), method="bilinear")
    return tf.cast(tf.round(resized), tf.uint8).numpy()


def read_label_lines(path: str | Path, first_id: int) -> dict[int, str]:
    """Class ids -> names of a label map with one name per line.

    Line i (from 0) names id `first_id + i`; blank lines and `???` lines
    name no class (their ids get `class ID` labels, see `label_for`). A
    map whose first line is `???` is the 1-based form of the same list
    (TensorFlow Lite's COCO examples ship both): its first line is
    background, and line i names id `first_id + i - 1`.

    Raises:
        ValueError: the file cannot be read or is not UTF-8, naming it.
    """
    names, shift = {}, 0
    for number, text in read_lines(path, what="label map"):
        name = text.strip()
        if number == 1 and name == UNUSED_LABEL:
            shift = 1  # a background line first: ids start on line 2
        if name and name != UNUSED_LABEL:
            names[first_id + number - 1 - shift] = name
    return names


def label_for(class_id: int, names: dict[int, str]) -> str:
    """The class name of an id, `class ID` when the label map lacks it."""
    return names.get(class_id, f"class {class_id}")


_DETECTORS = ClassRegistry(Detector, "detector")


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Class decorator: registers a `Detector` subclass under its `name`.

    Registering the same class again does nothing.

    Raises:
        TypeError: `cls` is not a concrete `Detector` subclass.
        ValueError: its `name` is malformed or taken by another class.

    Example:

    >>> @register_detector
    ... class Nothing(Detector):
    ...     name = "nothing"
    ...     def raw_detections(self, image):
    ...         return np.zeros((0, 4)), np.zeros(0), []
    >>> make_detector("nothing").detect(np.zeros((8, 8, 3), np.uint8))
    []
    >>> _ = unregister_detector("nothing")
    """
    return _DETECTORS.add(cls)


def unregister_detector(name: str) -> type[Detector]:
    """Removes a registered detector kind (e.g. a test's); returns it."""
    return _DETECTORS.remove(name)


def detector_class(name: str) -> type[Detector]:
    """The registered detector class called `name`.

    Raises:
        ValueError: no detector has that name (the message lists them).
    """
    return _DETECTORS.get(name)


def detector_names() -> list[str]:
    """The registered detectors' names, in registration order (the order
    of error messages)."""
    return _DETECTORS.names()


def detector_forms() -> str:
    """The texts `make_detector` accepts, e.g. `whole, tflite:PATH, ...`."""
    return ", ".join(cls.usage or cls.name for cls in _DETECTORS.classes())


def make_detector(
    text: str, options: DetectorOptions = DEFAULT_OPTIONS
) -> Detector:
    """The detector a short text names (a CLI flag, a spec field).

    Args:
        text: `KIND` or `KIND:ARGUMENT`, KIND a registered name: `whole`
            (the whole image), `tflite:PATH` (a `.tflite` SSD file, or a
            folder holding one and its `labelmap.txt`), `saved_model:PATH`
            (a TF Object Detection API SavedModel folder).
        options: which boxes the detector keeps.

    Returns:
        the detector, its model loaded.

    Raises:
        ValueError: an unknown kind or a bad argument, in one line naming
            the text and the accepted forms; or the detector's own error
            (a corrupt model file, an unknown class), naming the file.

    Example:

    >>> make_detector("whole")
    <WholeImageDetector 'whole' DetectorOptions(...)>
    >>> make_detector("hole")
    Traceback (most recent call last):
    ValueError: detector 'hole': unknown kind 'hole'; accepted forms: ...
    """
    if not isinstance(text, str):
        raise ValueError(
            f"detector {text!r}: not a text; accepted forms: {detector_forms()}"
        )
    kind, colon, argument = text.partition(":")
    if kind not in _DETECTORS.names():
        raise ValueError(
            f"detector {text!r}: unknown kind {kind!r}; accepted forms: "
            f"{detector_forms()}"
        )
    cls = _DETECTORS.get(kind)
    try:
        arguments = cls.parse_argument(argument if colon else None)
    except ValueError as error:
        raise ValueError(
            f"detector {text!r}: {error}; accepted forms: {detector_forms()}"
        ) from None
    return cls(options=options, **arguments)
