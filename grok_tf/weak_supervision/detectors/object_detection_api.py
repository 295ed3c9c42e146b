"""TensorFlow Object Detection API SavedModels (`saved_model:PATH`).

The detectors of the TF2 Object Detection API model zoo and their TF Hub
copies (SSD, Faster R-CNN, CenterNet, EfficientDet ...), exported with
`exporter_main_v2.py`: a SavedModel whose `serving_default` signature
takes one uint8 `[1, H, W, 3]` image, under whatever name its input
signature gives, and returns

- `detection_boxes` `[1, N, 4]`: `(ymin, xmin, ymax, xmax)`, normalised;
- `detection_scores` `[1, N]`;
- `detection_classes` `[1, N]`: 1-based class ids, as floats;
- `num_detections` `[1]` (optional): how many of the N rows count.

A signature with a fixed input size gets the photo resized to it
(bilinear); a dynamic one gets the photo as it is. Class names come from
an optional label map: the API's `label_map.pbtxt` (`item { id: 1
display_name: "person" }`, read with regular expressions: nothing in it is
executed) or a text file whose line i names id i + 1. An id the map lacks
is labelled `class ID`.
"""

import re
from pathlib import Path
from typing import Any

import numpy as np

from grok_tf.io.text_files import read_text
from grok_tf.weak_supervision.detectors.base import DEFAULT_OPTIONS
from grok_tf.weak_supervision.detectors.base import Detector
from grok_tf.weak_supervision.detectors.base import DetectorOptions
from grok_tf.weak_supervision.detectors.base import check_image
from grok_tf.weak_supervision.detectors.base import label_for
from grok_tf.weak_supervision.detectors.base import read_label_lines
from grok_tf.weak_supervision.detectors.base import register_detector
from grok_tf.weak_supervision.detectors.base import resize_image

#: The label maps `saved_model:PATH` looks for in PATH, in this order.
LABEL_MAPS = ("label_map.pbtxt", "labelmap.txt")
SIGNATURE = "serving_default"
BOXES = "detection_boxes"
SCORES = "detection_scores"
CLASSES = "detection_classes"
COUNT = "num_detections"

# Protobuf text format: strings (either quote), comments, braces, the rest.
_TOKEN = re.compile(
    r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|#[^\n]*|[{}]|[^"'#{}]+|."""
)
_STRING = "\0{}\0"  # a string token's stand-in in an item's text
_ITEM = re.compile(r"(?<![\w.])item\s*:?\s*$")
_ID = re.compile(r"(?<![\w.])id\s*:\s*(-?\d+)(?![\w.])")
_DISPLAY_NAME = re.compile(r"(?<![\w.])display_name\s*:\s*\0(\d+)\0")
_NAME = re.compile(r"(?<![\w.])name\s*:\s*\0(\d+)\0")
_ESCAPE = re.compile(r"\\([0-7]{1,3}|x[0-9a-fA-F]{1,2}|.)", re.S)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b"}
_ESCAPES.update({"f": "\f", "v": "\v"})


@register_detector
class ObjectDetectionAPIDetector(Detector):
    """A TF Object Detection API SavedModel (see the module doc).

    Args:
        model_dir: the SavedModel folder (holding `saved_model.pb`).
        label_map: a `.pbtxt` label map or a `.txt` one (line i names id
            i + 1). None: labels are `class ID`.
        options: which boxes `detect` keeps.

    Raises:
        ValueError: one line naming the folder or file: no SavedModel
            there, one TensorFlow cannot load, no `serving_default`
            signature taking one uint8 image, missing outputs, a bad label
            map, or `options.classes` naming a class the map lacks.

    Example (not run: it needs an Object Detection API SavedModel):

    >>> detector = make_detector(  # doctest: +SKIP
    ...     "saved_model:ssd_mobilenet_v2_320x320_coco17_tpu-8/saved_model"
    ... )
    >>> [d.label for d in detector.detect(photo)]  # doctest: +SKIP
    ['person', 'cup']
    """

    name = "saved_model"
    usage = "saved_model:PATH"

    def __init__(
        self,
        model_dir: str | Path,
        label_map: str | Path | None = None,
        options: DetectorOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.label_map = None if label_map is None else Path(label_map)
        self.names = {} if label_map is None else read_label_map(label_map)
        self._model, self._signature = _load(self.model_dir)
        self._input_name, self.input_size = _image_input(
            self._signature, self.describe()
        )
        outputs = self._signature.structured_outputs
        missing = [k for k in (BOXES, SCORES, CLASSES) if k not in outputs]
        if missing:
            raise ValueError(
                f"{self.describe()}: signature {SIGNATURE!r} has no output "
                f"{', '.join(missing)}; it has {', '.join(sorted(outputs))}"
            )
        super().__init__(options)

    @classmethod
    def parse_argument(cls, argument: str | None) -> dict[str, Any]:
        """`PATH`: a SavedModel folder; its label map is the first of
        `label_map.pbtxt` and `labelmap.txt` found in it, if any."""
        if not argument:
            raise ValueError("'saved_model' needs a folder: saved_model:PATH")
        path = Path(argument).expanduser()
        if not path.is_dir():
            raise ValueError(f"no such folder: {path}")
        if not (path / "saved_model.pb").is_file():
            raise ValueError(f"folder {path} holds no saved_model.pb")
        maps = [path / name for name in LABEL_MAPS if (path / name).is_file()]
        return {"model_dir": path, "label_map": maps[0] if maps else None}

    def class_names(self) -> tuple[str, ...] | None:
        """The label map's names; None without a label map."""
        return None if self.label_map is None else tuple(self.names.values())

    def describe(self) -> str:
        """`SavedModel PATH`."""
        return f"SavedModel {self.model_dir}"

    def raw_detections(
        self, image: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The model's `num_detections` detections (all N without it).

        Raises:
            ValueError: a bad image, outputs of the wrong shapes, or class
                ids that are not integers.
        """
        import tensorflow as tf

        image = check_image(image)
        if self.input_size is not None:
            image = resize_image(image, *self.input_size)
        pixels = tf.constant(image[np.newaxis])
        outputs = self._signature(**{self._input_name: pixels})
        boxes, scores, classes = (
            np.asarray(outputs[key]) for key in (BOXES, SCORES, CLASSES)
        )
        shapes = [list(a.shape) for a in (boxes, scores, classes)]
        n = boxes.shape[1] if boxes.ndim == 3 else -1
        if shapes != [[1, n, 4], [1, n], [1, n]]:
            raise ValueError(
                f"{self.describe()}: {BOXES}, {SCORES}, {CLASSES} have shapes "
                f"{shapes}; expected [1, N, 4], [1, N], [1, N]"
            )
        if COUNT in outputs:
            count = np.asarray(outputs[COUNT], np.float64).reshape(-1)
            if count.size != 1 or not np.isfinite(count[0]):
                raise ValueError(
                    f"{self.describe()}: {COUNT} is {count.tolist()}; "
                    "expected one number"
                )
            n = int(np.clip(count[0], 0, n))
        classes = classes[0, :n].astype(np.float64)
        ids = np.round(classes)
        if not (np.isfinite(classes).all() and (ids == classes).all()):
            raise ValueError(
                f"{self.describe()}: {CLASSES} holds non-integer class ids"
            )
        labels = [label_for(int(i), self.names) for i in ids]
        return boxes[0, :n], scores[0, :n], labels


def read_label_map(path: str | Path) -> dict[int, str]:
    """Class ids -> names of an Object Detection API label map.

    Args:
        path: a `.pbtxt` file (see `parse_label_map`) or a `.txt` file,
            line i naming id i + 1 (blank and `???` lines name no class).

    Raises:
        ValueError: another suffix, a file that cannot be read, or a bad
            `.pbtxt`, naming the file.
    """
    path = Path(path)
    if path.suffix == ".txt":
        return read_label_lines(path, 1)
    if path.suffix == ".pbtxt":
        return parse_label_map(read_text(path, what="label map"), str(path))
    raise ValueError(f"label map {path}: expected a .pbtxt or .txt file")


def parse_label_map(text: str, where: str = "label map") -> dict[int, str]:
    """Class ids -> names of a `StringIntLabelMap` in protobuf text format.

    Each top-level `item { ... }` gives its `id` and its `display_name`,
    else its `name`; nested blocks (`keypoints { id: 0 ... }`), comments
    and other fields are skipped. Regular expressions only: nothing in the
    file is executed.

    Args:
        text: the file's text.
        where: names the file in errors.

    Returns:
        `{id: name}` in the file's order.

    Raises:
        ValueError: unbalanced braces, no item, an item without one id or
            without a name, or an id given twice, naming `where`.

    Example:

    >>> parse_label_map('''
    ... item { name: "/m/01g317" id: 1 display_name: "person" }
    ... item { id: 53  # a comment
    ...   name: 'apple' }
    ... ''')
    {1: 'person', 53: 'apple'}
    """
    names: dict[int, str] = {}
    for number, (body, strings) in enumerate(_items(text, where), 1):
        ids = _ID.findall(body)
        named = _DISPLAY_NAME.findall(body) or _NAME.findall(body)
        if len(ids) != 1:
            raise ValueError(f"{where}: item {number} needs exactly one id")
        if not named:
            raise ValueError(
                f"{where}: item {number} has no display_name or name"
            )
        class_id = int(ids[0])
        if class_id in names:
            raise ValueError(f"{where}: item {number}: id {class_id} again")
        names[class_id] = _unquote(strings[int(named[0])], where)
    if not names:
        raise ValueError(f"{where}: no `item {{ id: ... name: ... }}` found")
    return names


def _items(text: str, where: str) -> list[tuple[str, list[str]]]:
    """`(text at depth 1, its strings)` of each top-level `item` block; a
    string is replaced by `_STRING` holding its index in the list."""
    items: list[tuple[str, list[str]]] = []
    depth, pending = 0, ""
    body: list[str] | None = None
    strings: list[str] = []
    for token in _TOKEN.findall(text):
        if token.startswith("#"):
            continue
        if token in ('"', "'"):
            raise ValueError(f"{where}: a string has no closing {token}")
        if token == "{":
            if depth == 0:
                body = [] if _ITEM.search(pending) else None
                strings, pending = [], ""
            depth += 1
        elif token == "}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"{where}: unbalanced '}}'")
            if depth == 0 and body is not None:
                items.append(("".join(body), strings))
                body = None
        elif depth == 0:
            pending += token
        elif depth == 1 and body is not None:
            if token[0] in "\"'":
                body.append(_STRING.format(len(strings)))
                strings.append(token)
            else:
                body.append(token)
    if depth:
        raise ValueError(f"{where}: unbalanced '{{'")
    return items


def _unquote(token: str, where: str) -> str:
    """A protobuf text-format string literal's value, escapes decoded;
    octal and hex escapes are bytes of UTF-8, as protobuf writes them."""
    text, pos, out, octets = token[1:-1], 0, [], bytearray()

    def flush() -> None:
        if octets:
            try:
                out.append(octets.decode("utf-8"))
            except UnicodeDecodeError:
                raise ValueError(f"{where}: {token} is not UTF-8") from None
            octets.clear()

    for match in _ESCAPE.finditer(text):
        if match.start() > pos:
            flush()
            out.append(text[pos : match.start()])
        code = match.group(1)
        if code[0] in "01234567":
            octets.append(int(code, 8) & 0xFF)
        elif code[0] == "x" and len(code) > 1:
            octets.append(int(code[1:], 16))
        else:
            flush()
            out.append(_ESCAPES.get(code, code))
        pos = match.end()
    flush()
    out.append(text[pos:])
    return "".join(out)


def _load(path: Path) -> tuple[Any, Any]:
    """The loaded SavedModel and its `serving_default` signature."""
    if not path.is_dir():
        raise ValueError(f"SavedModel {path}: no such folder")
    if not (path / "saved_model.pb").is_file():
        raise ValueError(f"SavedModel {path}: no saved_model.pb in it")
    import tensorflow as tf

    try:
        model = tf.saved_model.load(str(path))
    except Exception as error:  # any failure: this is no model we can run
        reason = str(error).strip().splitlines()
        raise ValueError(
            f"SavedModel {path}: TensorFlow cannot load it "
            f"({reason[0] if reason else type(error).__name__})"
        ) from None
    signatures = model.signatures
    if SIGNATURE not in signatures:
        raise ValueError(
            f"SavedModel {path}: no {SIGNATURE!r} signature; it has "
            f"{', '.join(signatures) or 'none'}"
        )
    return model, signatures[SIGNATURE]


def _image_input(signature: Any, who: str) -> tuple[str, tuple | None]:
    """The signature's one input name, and its fixed `(H, W)` or None."""
    args, kwargs = signature.structured_input_signature
    specs = {**{str(i): s for i, s in enumerate(args)}, **kwargs}
    described = {k: f"{s.dtype.name} {s.shape}" for k, s in specs.items()}
    if len(specs) != 1 or args:
        raise ValueError(
            f"{who}: signature {SIGNATURE!r} takes {described}; expected "
            "one uint8 [1, H, W, 3] image"
        )
    name, spec = next(iter(specs.items()))
    shape = spec.shape.as_list() if spec.shape.rank is not None else None
    if (
        spec.dtype.name != "uint8"
        or shape is None
        or len(shape) != 4
        or shape[0] not in (1, None)
        or shape[3] not in (3, None)
    ):
        raise ValueError(
            f"{who}: signature {SIGNATURE!r} takes {described}; expected "
            "one uint8 [1, H, W, 3] image"
        )
    height, width = shape[1:3]
    fixed = height is not None and width is not None
    return name, (height, width) if fixed else None
