"""TensorFlow Lite SSD detectors (`tflite:PATH`), run by LiteRT.

Models exported for TensorFlow Lite with the built-in post-processing op
(`TFLite_Detection_PostProcess`), such as Google's SSD-MobileNet v1 on
COCO: a uint8 `[1, h, w, 3]` input and four outputs, in this order,

- boxes `[1, N, 4]`: `(ymin, xmin, ymax, xmax)`, normalised;
- class ids `[1, N]` (floats holding integers): line `id` (from 0) of the
  label map `labelmap.txt`, whose `???` lines are COCO's unused ids;
- scores `[1, N]`;
- count `[1]`: how many of the N rows are detections (optional).

The boxes are found by their shape, the count by its size, and of the two
`[1, N]` outputs the first is the class ids and the second the scores (the
op's order); a model whose class ids are not whole numbers is refused, as
it follows another order. The photo is resized to the input's size, read
from the model (bilinear, the aspect ratio not kept), as the model was
trained. LiteRT (`ai-edge-litert`) runs the model: TensorFlow's own
`tf.lite.Interpreter` is deprecated.
"""

from pathlib import Path
from typing import Any

import numpy as np

from grok_tf.weak_supervision.detectors.base import DEFAULT_OPTIONS
from grok_tf.weak_supervision.detectors.base import Detector
from grok_tf.weak_supervision.detectors.base import DetectorOptions
from grok_tf.weak_supervision.detectors.base import check_image
from grok_tf.weak_supervision.detectors.base import label_for
from grok_tf.weak_supervision.detectors.base import read_label_lines
from grok_tf.weak_supervision.detectors.base import register_detector
from grok_tf.weak_supervision.detectors.base import resize_image

#: The label map `tflite:PATH` finds beside the model (or in the folder).
LABEL_MAP = "labelmap.txt"


@register_detector
class TFLiteSSDDetector(Detector):
    """A TensorFlow Lite SSD with post-processing (see the module doc).

    Args:
        model_path: the `.tflite` file.
        label_map: a text file, line i naming class id i; blank and `???`
            lines name no class. None: labels are `class ID`.
        options: which boxes `detect` keeps.
        num_threads: LiteRT's CPU threads; None lets LiteRT choose.

    Raises:
        ValueError: one line naming the file: it is missing, not a
            TensorFlow Lite model, or its input or outputs are not those
            of an SSD (uint8 `[1, h, w, 3]` in; boxes, classes, scores,
            count out); or `options.classes` names a class the label map
            lacks.

    Example (not run: it needs the SSD model of the shared models folder):

    >>> detector = make_detector(  # doctest: +SKIP
    ...     "tflite:../shared/models/ssd_mobilenet_v1",
    ...     DetectorOptions(classes=("orange",)),
    ... )
    >>> detector.detect(photo)[0].label  # doctest: +SKIP
    'orange'
    """

    name = "tflite"
    usage = "tflite:PATH"

    def __init__(
        self,
        model_path: str | Path,
        label_map: str | Path | None = None,
        options: DetectorOptions = DEFAULT_OPTIONS,
        num_threads: int | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.label_map = None if label_map is None else Path(label_map)
        self.names = {} if label_map is None else read_label_lines(label_map, 0)
        self._interpreter = _load(self.model_path, num_threads)
        inputs = self._interpreter.get_input_details()
        if (
            len(inputs) != 1
            or len(inputs[0]["shape"]) != 4
            or inputs[0]["shape"][0] != 1
            or inputs[0]["shape"][3] != 3
            or inputs[0]["dtype"] != np.uint8
        ):
            found = [
                (list(d["shape"]), np.dtype(d["dtype"]).name) for d in inputs
            ]
            raise ValueError(
                f"{self.describe()}: input {found}; expected one uint8 "
                "[1, height, width, 3] image"
            )
        self._input = inputs[0]["index"]
        self.input_size = tuple(int(v) for v in inputs[0]["shape"][1:3])
        self._outputs = ssd_outputs(
            self._interpreter.get_output_details(), self.describe()
        )
        super().__init__(options)

    @classmethod
    def parse_argument(cls, argument: str | None) -> dict[str, Any]:
        """`PATH`: a `.tflite` file (with `labelmap.txt` beside it, if there
        is one), or a folder holding exactly one `.tflite` file and a
        `labelmap.txt`."""
        if not argument:
            raise ValueError("'tflite' needs a path: tflite:PATH")
        path = Path(argument).expanduser()
        if path.is_dir():
            models = sorted(path.glob("*.tflite"))
            if len(models) != 1:
                raise ValueError(
                    f"folder {path} holds {len(models)} .tflite files, "
                    "expected exactly one"
                )
            if not (path / LABEL_MAP).is_file():
                raise ValueError(f"folder {path} has no {LABEL_MAP}")
            return {"model_path": models[0], "label_map": path / LABEL_MAP}
        if path.is_file():
            beside = path.with_name(LABEL_MAP)
            return {
                "model_path": path,
                "label_map": beside if beside.is_file() else None,
            }
        raise ValueError(f"no such file or folder: {path}")

    def class_names(self) -> tuple[str, ...] | None:
        """The label map's names; None without a label map."""
        return None if self.label_map is None else tuple(self.names.values())

    def describe(self) -> str:
        """`TFLite model PATH`."""
        return f"TFLite model {self.model_path}"

    def raw_detections(
        self, image: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The model's `count` detections on the resized photo.

        Raises:
            ValueError: a bad image, or class ids that are not integers.
        """
        image = check_image(image)
        pixels = resize_image(image, *self.input_size)
        interpreter = self._interpreter
        interpreter.set_tensor(self._input, pixels[np.newaxis])
        interpreter.invoke()
        boxes, classes, scores = (
            interpreter.get_tensor(self._outputs[key])[0]
            for key in ("boxes", "classes", "scores")
        )
        n = len(scores)
        if "count" in self._outputs:
            count = interpreter.get_tensor(self._outputs["count"]).item()
            n = int(np.clip(count, 0, n)) if np.isfinite(count) else 0
        classes = classes[:n]
        ids = np.round(classes)
        if not (np.isfinite(classes).all() and (ids == classes).all()):
            raise ValueError(
                f"{self.describe()}: the second [1, N] output holds "
                "non-integer class ids; expected the outputs in "
                "TFLite_Detection_PostProcess order: boxes, classes, "
                "scores, count"
            )
        labels = [label_for(int(i), self.names) for i in ids]
        return boxes[:n], scores[:n], labels


def ssd_outputs(details: list[dict[str, Any]], who: str) -> dict[str, int]:
    """Tensor indices of an SSD's outputs: `boxes`, `classes`, `scores` and,
    when present, `count`.

    Args:
        details: `Interpreter.get_output_details()`, in output order.
        who: names the model in the error.

    Returns:
        `{"boxes": i, "classes": j, "scores": k[, "count": l]}`: boxes
        are the `[1, N, 4]` output, count the `[1]` one, and the two
        `[1, N]` outputs classes then scores, in their order in `details`.

    Raises:
        ValueError: the outputs are not those (the message lists shapes).

    Example:

    >>> shapes = [[1, 10], [1, 10, 4], [1], [1, 10]]
    >>> ssd_outputs([dict(index=i, shape=s) for i, s in enumerate(shapes)], "")
    {'boxes': 1, 'classes': 0, 'scores': 3, 'count': 2}
    """
    shapes = [[int(v) for v in d["shape"]] for d in details]
    boxes = [i for i, s in enumerate(shapes) if len(s) == 3 and s[2] == 4]
    rows = [i for i, s in enumerate(shapes) if len(s) == 2]
    counts = [i for i, s in enumerate(shapes) if s == [1]]
    ok = len(boxes) == 1 and len(rows) == 2 and len(counts) <= 1
    ok = ok and len(boxes) + len(rows) + len(counts) == len(shapes)
    if ok:
        n = shapes[boxes[0]][:2]
        ok = n[0] == 1 and all(shapes[i] == n for i in rows)
    if not ok:
        raise ValueError(
            f"{who}: outputs of shapes {shapes}; expected an SSD's "
            "post-processed outputs: boxes [1, N, 4], classes [1, N], "
            "scores [1, N] and count [1]"
        )
    found = {"boxes": boxes[0], "classes": rows[0], "scores": rows[1]}
    if counts:
        found["count"] = counts[0]
    return {key: int(details[i]["index"]) for key, i in found.items()}


def _load(path: Path, num_threads: int | None) -> Any:
    """A LiteRT interpreter of the model file, its tensors allocated."""
    if not path.is_file():
        raise ValueError(f"TFLite model {path}: no such file")
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error) else ""
        raise ValueError(
            f"TFLite model {path}: not a TensorFlow Lite model LiteRT can "
            f"run ({reason or type(error).__name__})"
        ) from None
    return interpreter
