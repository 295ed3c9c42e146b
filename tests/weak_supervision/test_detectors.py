"""Object detectors: the option rules, crops, the registry and each kind.

The rules of `Detector.detect` are checked on a scripted detector whose
raw boxes are given, against hand-computed boxes; the TFLite SSD on a real
grocery photo (skipped without the shared models folder, `GROK_MODELS`);
the SavedModel adapter on tiny SavedModels built here, whose one real
detection is the bounding box of the bright pixels.
"""

import os
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from grok_tf.weak_supervision.detectors import Detection
from grok_tf.weak_supervision.detectors import Detector
from grok_tf.weak_supervision.detectors import DetectorOptions
from grok_tf.weak_supervision.detectors import ObjectDetectionAPIDetector
from grok_tf.weak_supervision.detectors import TFLiteSSDDetector
from grok_tf.weak_supervision.detectors import WholeImageDetector
from grok_tf.weak_supervision.detectors import crop
from grok_tf.weak_supervision.detectors import detector_class
from grok_tf.weak_supervision.detectors import detector_names
from grok_tf.weak_supervision.detectors import make_detector
from grok_tf.weak_supervision.detectors import register_detector
from grok_tf.weak_supervision.detectors import unregister_detector
from grok_tf.weak_supervision.detectors.base import DEFAULT_OPTIONS
from grok_tf.weak_supervision.detectors.object_detection_api import (
    parse_label_map,
)
from grok_tf.weak_supervision.detectors.object_detection_api import (
    read_label_map,
)
from grok_tf.weak_supervision.detectors.tflite_ssd import ssd_outputs

REPO = Path(__file__).resolve().parents[2]
FORMS = "accepted forms: whole, tflite:PATH, saved_model:PATH"
#: 128 x 256: box sides in pixels are exact binary fractions.
IMAGE = np.zeros((128, 256, 3), np.uint8)
ALL = {"min_score": 0.0, "min_box_size": 0, "padding": 0.0, "max_boxes": 99}


def shared_models():
    """`GROK_MODELS`; else `models/` beside `GROK_DATA`'s datasets folder
    (the shared folder holds both); else `../shared/models` beside the
    repository (as `GROK_DATA` is found in tests/conftest.py)."""
    if "GROK_MODELS" in os.environ:
        return Path(os.environ["GROK_MODELS"])
    if "GROK_DATA" in os.environ:
        return Path(os.environ["GROK_DATA"]).parent / "models"
    return REPO.parent / "shared/models"


class Scripted(Detector):
    """Returns the raw detections it was given, whatever the image."""

    name = "scripted"

    def __init__(self, boxes, scores, labels, names=None, **options):
        self.raw = (np.array(boxes, float), np.array(scores, float), labels)
        self.names = names
        super().__init__(DetectorOptions(**{**ALL, **options}))

    def class_names(self):
        return self.names

    def raw_detections(self, image):
        return self.raw


def boxes_of(detections):
    return [d.box for d in detections]


# The rules of detect(), on scripted raw detections.


def test_min_score_is_inclusive():
    box = [0.0, 0.0, 1.0, 1.0]
    detector = Scripted([box] * 3, [0.29, 0.3, 0.9], ["a"] * 3, min_score=0.3)
    assert [d.score for d in detector.detect(IMAGE)] == [0.9, 0.3]


def test_classes_keep_only_the_named_classes():
    boxes = [[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0]]
    labels = ["apple", "pear", "apple"]
    detector = Scripted(boxes, [0.5, 0.9, 0.7], labels, classes=("apple",))
    found = detector.detect(IMAGE)
    assert [(d.label, d.box) for d in found] == [
        ("apple", (0.0, 0.5, 0.5, 1.0)),
        ("apple", (0.0, 0.0, 0.5, 0.5)),
    ]


def test_a_class_the_label_map_lacks_is_refused_listing_the_valid_ones():
    with pytest.raises(ValueError) as error:
        Scripted([], [], [], names=("pear", "apple"), classes=("apple", "kiwi"))
    assert str(error.value) == (
        "Scripted: unknown classes 'kiwi'; valid classes: apple, pear"
    )
    # Without a label map any name goes: the detector cannot check it.
    assert Scripted([], [], [], classes=("kiwi",)).detect(IMAGE) == []


def test_min_box_size_is_the_shorter_side_in_pixels_of_the_image_given():
    boxes = [
        [0.0, 0.0, 0.25, 0.125],  # 32 x 32 px: kept
        [0.0, 0.0, 0.2421875, 0.5],  # 31 px tall: dropped
        [0.0, 0.0, 0.5, 0.12109375],  # 31 px wide: dropped
    ]
    found = Scripted(boxes, [0.3, 0.9, 0.8], ["a"] * 3, min_box_size=32)
    assert boxes_of(found.detect(IMAGE)) == [(0.0, 0.0, 0.25, 0.125)]
    # The same boxes on an image twice as large are all 62 px or more.
    large = np.zeros((256, 512, 3), np.uint8)
    assert len(found.detect(large)) == 3


def test_size_is_measured_before_padding():
    box = [0.0, 0.0, 0.234375, 0.5]  # 30 px tall, 36 px once padded by 0.1
    found = Scripted([box], [0.9], ["a"], min_box_size=32, padding=0.1)
    assert found.detect(IMAGE) == []


def test_boxes_are_clipped_first_and_empty_or_nan_ones_dropped():
    boxes = [
        [-0.25, 0.0, 0.125, 0.5],  # clipped to 16 px tall
        [0.5, 0.5, 0.5, 0.75],  # no height
        [0.5, 0.75, 0.75, 0.5],  # xmax < xmin
        [np.nan, 0.0, 0.5, 0.5],
        [0.0, 0.0, 0.5, 0.5],  # NaN score
    ]
    scores = [0.5, 0.9, 0.9, 0.9, np.nan]
    found = Scripted(boxes, scores, ["a"] * 5).detect(IMAGE)
    assert boxes_of(found) == [(0.0, 0.0, 0.125, 0.5)]
    too_small = Scripted(boxes, scores, ["a"] * 5, min_box_size=17)
    assert too_small.detect(IMAGE) == []


def test_highest_scores_first_ties_by_box_then_max_boxes():
    boxes = [
        [0.0, 0.0, 0.5, 0.5],
        [0.5, 0.0, 1.0, 0.5],
        [0.0, 0.5, 0.5, 1.0],
        [0.25, 0.0, 0.75, 0.5],
        [0.5, 0.5, 1.0, 1.0],
    ]
    scores = [0.5, 0.9, 0.7, 0.9, 0.6]
    labels = ["a", "b", "c", "d", "e"]
    found = Scripted(boxes, scores, labels, max_boxes=3).detect(IMAGE)
    assert [(d.label, d.score) for d in found] == [
        ("d", 0.9),  # tie at 0.9: ymin 0.25 before 0.5
        ("b", 0.9),
        ("c", 0.7),
    ]
    everything = Scripted(boxes, scores, labels).detect(IMAGE)
    assert [d.label for d in everything] == ["d", "b", "c", "e", "a"]


def test_padding_grows_each_side_by_the_box_size_then_clips():
    boxes = [[0.25, 0.5, 0.75, 0.625], [0.0625, 0.875, 0.5, 1.0]]
    found = Scripted(boxes, [0.9, 0.8], ["a", "b"], padding=0.1).detect(IMAGE)
    # Box 1: height 0.5 -> 0.05 a side; width 0.125 -> 0.0125 a side.
    np.testing.assert_allclose(found[0].box, (0.2, 0.4875, 0.8, 0.6375))
    # Box 2: height 0.4375 -> 0.04375; width 0.125 -> 0.0125; xmax clipped.
    np.testing.assert_allclose(found[1].box, (0.01875, 0.8625, 0.54375, 1.0))
    half = Scripted(boxes[1:], [0.8], ["b"], padding=0.5).detect(IMAGE)
    assert half[0].box == (0.0, 0.8125, 0.71875, 1.0)  # exact: binary


def test_detections_are_plain_python_values():
    found = Scripted([[0.0, 0.0, 0.5, 0.5]], [0.75], ["a"]).detect(IMAGE)[0]
    assert found == Detection((0.0, 0.0, 0.5, 0.5), 0.75, "a")
    assert all(type(v) is float for v in (*found.box, found.score))


def test_raw_detections_of_the_wrong_shapes_are_one_line_errors():
    bad = Scripted([[0.0, 0.0, 1.0, 1.0]], [0.5, 0.6], ["a"])
    with pytest.raises(ValueError, match=r"boxes \[1, 4\], scores \[2\]"):
        bad.detect(IMAGE)
    not_names = Scripted([[0.0, 0.0, 1.0, 1.0]], [0.5], [3])
    with pytest.raises(ValueError, match="labels that are not all strings"):
        not_names.detect(IMAGE)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((8, 8, 3), np.float32),
        np.zeros((8, 8), np.uint8),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((0, 8, 3), np.uint8),
    ],
)
def test_an_image_not_uint8_rgb_is_refused(image):
    with pytest.raises(ValueError, match=r"expected a uint8 RGB image"):
        Scripted([], [], []).detect(image)
    with pytest.raises(ValueError, match=r"expected a uint8 RGB image"):
        WholeImageDetector().detect(image)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("min_score", float("nan"), "min_score must be a finite number"),
        ("min_score", "0.5", "min_score must be a finite number"),
        ("padding", -0.1, "padding must be a finite number >= 0"),
        ("min_box_size", -1, "min_box_size must be an integer >= 0"),
        ("min_box_size", 3.5, "min_box_size must be an integer >= 0"),
        ("max_boxes", 0, "max_boxes must be an integer >= 1"),
        ("max_boxes", True, "max_boxes must be an integer >= 1"),
        ("classes", "apple", "classes must be a sequence of class names"),
        ("classes", ("apple", ""), "classes must be a sequence of class"),
        ("classes", (), "classes names no class; use None"),
    ],
)
def test_options_out_of_range_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=f"^DetectorOptions.{message}"):
        DetectorOptions(**{field: value})


def test_options_take_classes_as_any_sequence_and_keep_a_tuple():
    options = DetectorOptions(classes=["apple", "pear"])
    assert options.classes == ("apple", "pear")
    assert hash(options) == hash(DetectorOptions(classes=("apple", "pear")))


# crop


def test_crop_rounds_box_edges_outwards():
    image = np.arange(10 * 20 * 3, dtype=np.int64).reshape(10, 20, 3)
    image = (image % 251).astype(np.uint8)
    box = (0.25, 0.1, 0.55, 0.33)  # rows 2.5 .. 5.5, columns 2.0 .. 6.6
    np.testing.assert_array_equal(
        crop(image, Detection(box, 0.9, "a")), image[2:6, 2:7]
    )
    # Float noise adds no row or column: on 100 px, 0.29 is 28.999999999999996
    # and 0.14 is 14.000000000000002 pixels.
    large = np.random.default_rng(1).integers(0, 256, (100, 100, 3), np.uint8)
    noisy = Detection((0.29, 0.07, 0.57, 0.14), 0.9, "a")
    np.testing.assert_array_equal(crop(large, noisy), large[29:57, 7:14])


@pytest.mark.parametrize(
    "box, rows, columns",
    [
        ((0.5, 0.5, 0.5, 0.5), (5, 6), (10, 11)),  # a point: its pixel
        ((1.0, 1.0, 1.0, 1.0), (9, 10), (19, 20)),  # the far corner
        ((0.0, 0.0, 0.01, 0.01), (0, 1), (0, 1)),  # under a pixel
        ((0.0, 0.0, 1.0, 1.0), (0, 10), (0, 20)),
    ],
)
def test_crop_is_at_least_one_pixel(box, rows, columns):
    image = np.random.default_rng(0).integers(0, 256, (10, 20, 3), np.uint8)
    np.testing.assert_array_equal(
        crop(image, Detection(box, 1.0, "a")),
        image[slice(*rows), slice(*columns)],
    )


@pytest.mark.parametrize(
    "box", [(0.5, 0.0, 0.4, 1.0), (-0.1, 0.0, 1.0, 1.0), (0, 0, 1, np.nan)]
)
def test_crop_refuses_a_box_outside_the_image(box):
    with pytest.raises(ValueError, match="crop: the box must be"):
        crop(IMAGE, Detection(box, 1.0, "a"))


def test_a_detected_box_crops_to_its_padded_pixels():
    box = [0.25, 0.25, 0.5, 0.5]  # rows 32..64, columns 64..128
    found = Scripted([box], [0.9], ["a"], padding=0.25).detect(IMAGE)
    # Padded by 8 rows and 16 columns a side.
    assert crop(IMAGE, found[0]).shape == (48, 96, 3)


# The whole image


def test_whole_image_detector_ignores_every_option():
    options = DetectorOptions(
        min_score=0.99,
        classes=("apple",),
        min_box_size=1000,
        max_boxes=1,
        padding=0.5,
    )
    detector = make_detector("whole", options)
    assert type(detector) is WholeImageDetector
    assert detector.options is options
    tiny = np.full((3, 5, 3), 7, np.uint8)
    assert detector.detect(tiny) == [
        Detection((0.0, 0.0, 1.0, 1.0), 1.0, "image")
    ]
    np.testing.assert_array_equal(crop(tiny, detector.detect(tiny)[0]), tiny)
    boxes, scores, labels = detector.raw_detections(tiny)
    assert boxes.tolist() == [[0.0, 0.0, 1.0, 1.0]]
    assert (scores.tolist(), labels) == ([1.0], ["image"])


# make_detector and the registry


def test_built_in_detectors_are_registered_in_order():
    assert detector_names()[:3] == ["whole", "tflite", "saved_model"]
    assert [detector_class(n) for n in detector_names()[:3]] == [
        WholeImageDetector,
        TFLiteSSDDetector,
        ObjectDetectionAPIDetector,
    ]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "unknown kind ''"),
        ("wholes", "unknown kind 'wholes'"),
        ("Whole", "unknown kind 'Whole'"),
        ("tflite", "'tflite' needs a path: tflite:PATH"),
        ("tflite:", "'tflite' needs a path: tflite:PATH"),
        ("saved_model:", "'saved_model' needs a folder: saved_model:PATH"),
        ("whole:x", "'whole' takes no ':' argument"),
        ("whole:", "'whole' takes no ':' argument"),
        ("tflite:/no/such.tflite", "no such file or folder: /no/such.tflite"),
        ("saved_model:/no/such", "no such folder: /no/such"),
    ],
)
def test_a_bad_detector_text_is_one_line_naming_it_and_the_forms(text, problem):
    with pytest.raises(ValueError) as error:
        make_detector(text)
    assert str(error.value) == f"detector {text!r}: {problem}; {FORMS}"


def test_a_detector_text_that_is_no_text_is_refused():
    with pytest.raises(ValueError, match=f"detector None: not a text; {FORMS}"):
        make_detector(None)


def test_folders_that_are_not_models_are_refused(tmp_path):
    at = re.escape(str(tmp_path))
    (tmp_path / "a.tflite").write_bytes(b"")
    (tmp_path / "b.tflite").write_bytes(b"")
    with pytest.raises(ValueError, match="holds 2 .tflite files, expected"):
        make_detector(f"tflite:{tmp_path}")
    (tmp_path / "b.tflite").unlink()
    with pytest.raises(ValueError, match=f"folder {at} has no labelmap.txt"):
        make_detector(f"tflite:{tmp_path}")
    with pytest.raises(ValueError, match=f"folder {at} holds no saved_model"):
        make_detector(f"saved_model:{tmp_path}")
    with pytest.raises(ValueError, match=f"SavedModel {at}: no saved_model"):
        ObjectDetectionAPIDetector(tmp_path)


@pytest.mark.parametrize(
    "data", [b"", b"not a flatbuffer" * 64, b"TFL3" + bytes(200)]
)
def test_a_corrupt_tflite_file_is_a_one_line_error_naming_it(tmp_path, data):
    path = tmp_path / "model.tflite"
    path.write_bytes(data)
    (tmp_path / "labelmap.txt").write_text("person\n")
    with pytest.raises(ValueError) as error:
        make_detector(f"tflite:{tmp_path}")
    message = str(error.value)
    assert message.startswith(f"TFLite model {path}: not a TensorFlow Lite")
    assert "\n" not in message
    missing = re.escape(f"TFLite model {path}.x: no such file")
    with pytest.raises(ValueError, match=missing):
        TFLiteSSDDetector(f"{path}.x")


def test_a_kind_registered_from_outside_is_built_by_make_detector():
    @register_detector
    class Grid(Detector):
        name = "test_grid"
        usage = "test_grid:N"

        def __init__(self, n, options=DEFAULT_OPTIONS):
            self.n = n
            super().__init__(options)

        @classmethod
        def parse_argument(cls, argument):
            if not (argument or "").isdigit():
                raise ValueError(f"N must be a number, got {argument!r}")
            return {"n": int(argument)}

        def raw_detections(self, image):
            edges = np.linspace(0.0, 1.0, self.n + 1)
            boxes = [
                [a, 0.0, b, 1.0] for a, b in zip(edges, edges[1:], strict=False)
            ]
            return np.array(boxes), np.ones(self.n), ["cell"] * self.n

    try:
        options = DetectorOptions(min_box_size=0, padding=0.0)
        detector = make_detector("test_grid:4", options)
        assert [d.box for d in detector.detect(IMAGE)] == [
            (0.0, 0.0, 0.25, 1.0),
            (0.25, 0.0, 0.5, 1.0),
            (0.5, 0.0, 0.75, 1.0),
            (0.75, 0.0, 1.0, 1.0),
        ]
        with pytest.raises(ValueError) as error:
            make_detector("test_grid:x")
        assert str(error.value) == (
            "detector 'test_grid:x': N must be a number, got 'x'; "
            f"{FORMS}, test_grid:N"
        )
        assert register_detector(Grid) is Grid  # the same class: no-op

        class Other(Grid):
            pass

        with pytest.raises(ValueError, match="name 'test_grid' of .*Other"):
            register_detector(Other)
    finally:
        assert unregister_detector("test_grid") is Grid
    assert "test_grid" not in detector_names()


def test_register_detector_refuses_what_is_no_detector():
    class Abstract(Detector):
        name = "test_abstract"

    class Named(WholeImageDetector):
        name = "Bad-Name"

    with pytest.raises(TypeError, match="is not a Detector subclass"):
        register_detector(int)
    with pytest.raises(TypeError, match="does not implement raw_detections"):
        register_detector(Abstract)
    with pytest.raises(ValueError, match="must be lowercase letters"):
        register_detector(Named)
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        unregister_detector("nope")


# TensorFlow Lite SSD on a real photo


@pytest.fixture(scope="module")
def ssd_folder():
    folder = shared_models() / "ssd_mobilenet_v1"
    if not (folder / "ssd_mobilenet_v1.tflite").is_file():
        pytest.skip(f"SSD model not found in {folder} (set GROK_MODELS)")
    return folder


@pytest.fixture(scope="module")
def oranges(grok_data):
    """A grocery photo of oranges (348 x 348), where the SSD finds many."""
    path = grok_data / "grocery/val/Fruit/Orange/Orange_003.jpg"
    return tf.io.decode_jpeg(tf.io.read_file(str(path))).numpy()


def test_tflite_ssd_finds_the_oranges_of_a_grocery_photo(ssd_folder, oranges):
    options = DetectorOptions(classes=("orange",), min_score=0.5)
    detector = make_detector(f"tflite:{ssd_folder}", options)
    assert type(detector) is TFLiteSSDDetector
    assert detector.input_size == (300, 300)  # read from the model
    found = detector.detect(oranges)
    assert 3 <= len(found) <= options.max_boxes
    assert {d.label for d in found} == {"orange"}
    scores = [d.score for d in found]
    assert scores == sorted(scores, reverse=True)
    assert min(scores) >= 0.5 and max(scores) > 0.6
    for d in found:
        ymin, xmin, ymax, xmax = d.box
        assert 0.0 <= ymin < ymax <= 1.0 and 0.0 <= xmin < xmax <= 1.0
        assert min(crop(oranges, d).shape[:2]) >= 32


def test_tflite_detect_applies_the_options_to_its_raw_outputs(
    ssd_folder, oranges
):
    """detect() on the model's real outputs = the rules in numpy."""
    detector = make_detector(f"tflite:{ssd_folder / 'ssd_mobilenet_v1.tflite'}")
    assert detector.label_map == ssd_folder / "labelmap.txt"  # found beside
    boxes, scores, labels = detector.raw_detections(oranges)
    assert boxes.shape == (10, 4) and scores.shape == (10,)
    assert set(labels) <= set(detector.class_names())
    clipped = np.clip(boxes, 0.0, 1.0)
    size = 348 * np.minimum(
        clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    )
    keep = np.flatnonzero((scores >= 0.3) & (size >= 32))
    top = keep[np.argsort(-scores[keep], kind="stable")][:5]
    h = (clipped[top, 2] - clipped[top, 0])[:, None] * 0.1
    w = (clipped[top, 3] - clipped[top, 1])[:, None] * 0.1
    expected = np.clip(clipped[top] + np.hstack([-h, -w, h, w]), 0.0, 1.0)
    found = detector.detect(oranges)
    assert len(found) == min(5, len(keep)) > 0
    np.testing.assert_allclose(boxes_of(found), expected, atol=1e-12)
    assert [d.label for d in found] == [labels[i] for i in top]
    np.testing.assert_allclose([d.score for d in found], scores[top])


def test_tflite_ids_outside_the_label_map_are_labelled_class_id(
    ssd_folder, oranges, tmp_path
):
    lines = (ssd_folder / "labelmap.txt").read_text().splitlines()
    short = tmp_path / "first_50.txt"
    short.write_text("\n".join(lines[:50]) + "\n")
    model = ssd_folder / "ssd_mobilenet_v1.tflite"
    detector = TFLiteSSDDetector(model, short, num_threads=1)
    _, _, labels = detector.raw_detections(oranges)
    assert "class 54" in labels  # orange: line 55 of the full map
    with pytest.raises(ValueError) as error:
        TFLiteSSDDetector(model, short, DetectorOptions(classes=("orange",)))
    assert str(error.value).startswith(
        f"TFLite model {model}: unknown classes 'orange'; valid classes: "
        "airplane, backpack, baseball bat, baseball glove, "
    )
    unlabelled = TFLiteSSDDetector(model)
    assert unlabelled.class_names() is None
    assert "class 54" in unlabelled.raw_detections(oranges)[2]


@pytest.mark.parametrize(
    "shapes",
    [
        [[1, 10, 4], [1, 10], [1]],  # one [1, N] output
        [[1, 10, 4], [1, 10], [1, 10], [1], [1]],
        [[1, 10, 4], [1, 10], [1, 9], [1]],  # N differs
        [[1, 10, 4], [1, 10, 4], [1, 10], [1, 10]],
    ],
)
def test_outputs_that_are_not_an_ssds_are_refused(shapes):
    details = [{"index": i, "shape": np.array(s)} for i, s in enumerate(shapes)]
    with pytest.raises(ValueError, match=r"m.tflite: outputs of shapes \["):
        ssd_outputs(details, "m.tflite")


def test_ssd_outputs_follow_the_post_process_order_without_count():
    shapes = [[1, 7, 4], [1, 7], [1, 7]]
    details = [{"index": 10 + i, "shape": s} for i, s in enumerate(shapes)]
    assert ssd_outputs(details, "") == {
        "boxes": 10,
        "classes": 11,
        "scores": 12,
    }


# TF Object Detection API SavedModels, tiny ones built here


PBTXT = """\
# The classes of the bright-box model.
item {
  name: "/m/bright"
  id: 1
  display_name: "bright"
  keypoints { id: 7 label: "corner" }
}
item {
  id: 2
  name: 'frame'  # no display_name: the name
}
"""


class BrightBox(tf.Module):
    """A detector of the bright pixels' bounding box (id 1, score 0.9), the
    whole image (id 2, 0.4) and a row past `num_detections` (0.8)."""

    def __init__(self, shape, outputs=("detection_boxes",)):
        super().__init__()
        self.outputs = outputs
        spec = tf.TensorSpec(shape, tf.uint8, name="pixels")
        self.detect = tf.function(self._detect, input_signature=[spec])

    def _detect(self, pixels):
        bright = tf.reduce_all(pixels[0] > 200, axis=-1)
        rows = tf.where(tf.reduce_any(bright, axis=1))[:, 0]
        columns = tf.where(tf.reduce_any(bright, axis=0))[:, 0]
        size = tf.cast(tf.shape(pixels)[1:3], tf.float32)
        edges = tf.cast(
            tf.stack([rows[0], columns[0], rows[-1] + 1, columns[-1] + 1]),
            tf.float32,
        )
        box = edges / tf.concat([size, size], 0)
        boxes = tf.stack([box, [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5]])
        return {
            self.outputs[0]: boxes[tf.newaxis],
            "detection_scores": tf.constant([[0.9, 0.4, 0.8]]),
            "detection_classes": tf.constant([[1.0, 2.0, 1.0]]),
            "num_detections": tf.constant([2.0]),
        }


def save_bright_box(folder, shape, **kwargs):
    module = BrightBox(shape, **kwargs)
    tf.saved_model.save(
        module, str(folder), signatures={"serving_default": module.detect}
    )
    return folder


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved_models")
    dynamic = save_bright_box(root / "dynamic", [1, None, None, 3])
    (dynamic / "label_map.pbtxt").write_text(PBTXT)
    fixed = save_bright_box(root / "fixed", [1, 32, 32, 3])
    wrong = save_bright_box(root / "wrong", [1, None, None, 3], outputs=["b"])
    return dynamic, fixed, wrong


def bright_photo(height, width, rows, columns):
    image = np.full((height, width, 3), 40, np.uint8)
    image[slice(*rows), slice(*columns)] = 250
    return image


def test_saved_model_boxes_scores_and_labels(saved_models):
    detector = make_detector(f"saved_model:{saved_models[0]}")
    assert type(detector) is ObjectDetectionAPIDetector
    assert detector.label_map == saved_models[0] / "label_map.pbtxt"
    assert detector.input_size is None
    photo = bright_photo(60, 80, rows=(12, 30), columns=(20, 60))
    boxes, scores, labels = detector.raw_detections(photo)
    expected = [[12 / 60, 20 / 80, 30 / 60, 60 / 80], [0.0, 0.0, 1.0, 1.0]]
    np.testing.assert_allclose(boxes, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(scores, [0.9, 0.4], rtol=0, atol=1e-7)
    assert labels == ["bright", "frame"]  # the third row is past the count
    found = detector.detect(photo)  # 18 px tall < 32: the box is dropped
    assert [(d.label, d.box) for d in found] == [("frame", (0, 0, 1, 1))]


def test_saved_model_options_and_label_map_checks(saved_models):
    options = DetectorOptions(min_box_size=0, padding=0.0, classes=["bright"])
    detector = ObjectDetectionAPIDetector(
        saved_models[0], saved_models[0] / "label_map.pbtxt", options
    )
    photo = bright_photo(40, 40, rows=(10, 30), columns=(0, 20))
    found = detector.detect(photo)
    assert [d.label for d in found] == ["bright"]
    np.testing.assert_allclose(found[0].box, (0.25, 0.0, 0.75, 0.5), atol=1e-6)
    with pytest.raises(ValueError) as error:
        ObjectDetectionAPIDetector(
            saved_models[0],
            saved_models[0] / "label_map.pbtxt",
            DetectorOptions(classes=("kiwi",)),
        )
    assert str(error.value) == (
        f"SavedModel {saved_models[0]}: unknown classes 'kiwi'; valid "
        "classes: bright, frame"
    )
    unlabelled = ObjectDetectionAPIDetector(saved_models[0])
    assert unlabelled.raw_detections(photo)[2] == ["class 1", "class 2"]


def test_saved_model_with_a_fixed_input_size_gets_the_photo_resized(
    saved_models,
):
    detector = ObjectDetectionAPIDetector(saved_models[1])
    assert detector.input_size == (32, 32)
    # 64 x 96 -> 32 x 32: rows 16..48 -> 8..24, columns 24..72 -> 8..24.
    photo = bright_photo(64, 96, rows=(16, 48), columns=(24, 72))
    boxes, _, labels = detector.raw_detections(photo)
    np.testing.assert_allclose(boxes[0], [0.25, 0.25, 0.75, 0.75], atol=1e-6)
    assert labels == ["class 1", "class 2"]


def test_saved_model_without_the_outputs_is_refused(saved_models):
    with pytest.raises(ValueError) as error:
        ObjectDetectionAPIDetector(saved_models[2])
    assert str(error.value) == (
        f"SavedModel {saved_models[2]}: signature 'serving_default' has no "
        "output detection_boxes; it has b, detection_classes, "
        "detection_scores, num_detections"
    )


def test_a_corrupt_saved_model_is_a_one_line_error(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"\x08\x96\x01 not a proto")
    with pytest.raises(ValueError) as error:
        make_detector(f"saved_model:{tmp_path}")
    message = str(error.value)
    assert message.startswith(f"SavedModel {tmp_path}: TensorFlow cannot")
    assert "\n" not in message


# Label maps


def test_pbtxt_label_map_takes_display_names_and_skips_nested_blocks():
    assert parse_label_map(PBTXT) == {1: "bright", 2: "frame"}


def test_pbtxt_strings_hide_their_content_and_escapes_are_utf8():
    text = r"""
    item { id: 3 display_name: "id: 9 } {" }
    item: { display_name: 'caf\303\251 "au" lait\n' id: 4 }
    item { id: 5 name: "crème" }
    """
    assert parse_label_map(text) == {
        3: "id: 9 } {",
        4: 'café "au" lait\n',
        5: "crème",
    }


@pytest.mark.parametrize(
    "text, problem",
    [
        ("item { id: 1 }", "item 1 has no display_name or name"),
        ('item { name: "a" }', "item 1 needs exactly one id"),
        ('item { id: 1 id: 2 name: "a" }', "item 1 needs exactly one id"),
        ('item {id: 1 name: "a"} item {id: 1 name: "b"}', "item 2: id 1"),
        ('item { id: 1 name: "a" ', "unbalanced '{'"),
        ('item { id: 1 name: "a" }}', "unbalanced '}'"),
        ('item { id: 1 name: "a }', 'a string has no closing "'),
        ("# nothing", "no `item { id: ... name: ... }` found"),
        (r'item { id: 1 name: "\377" }', r'"\377" is not UTF-8'),
    ],
)
def test_a_bad_pbtxt_label_map_is_a_one_line_error(text, problem):
    with pytest.raises(ValueError) as error:
        parse_label_map(text, "map.pbtxt")
    assert str(error.value).startswith("map.pbtxt: ")
    assert problem in str(error.value)


def test_text_label_maps_name_ids_from_one_and_skip_unused_lines(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("person\n???\n\nbicycle\n")
    assert read_label_map(path) == {1: "person", 4: "bicycle"}
    with pytest.raises(ValueError, match="labels.csv: expected a .pbtxt or"):
        read_label_map(tmp_path / "labels.csv")
    with pytest.raises(ValueError, match="cannot read label map"):
        read_label_map(tmp_path / "missing.txt")


def test_boxes_with_infinite_edges_are_dropped_before_clipping():
    boxes = [[0, 0, np.inf, np.inf], [0, 0, 0.5, 0.5], [-np.inf, 0, 1, 1]]
    detector = Scripted(boxes, [0.9, 0.8, 0.7], ["a"] * 3, min_box_size=1)
    image = np.zeros((100, 100, 3), np.uint8)
    assert boxes_of(detector.detect(image)) == [(0.0, 0.0, 0.5, 0.5)]


def test_a_label_map_starting_with_background_is_read_one_based(tmp_path):
    from grok_tf.weak_supervision.detectors.base import read_label_lines

    path = tmp_path / "labelmap.txt"
    path.write_text("???\nperson\nbicycle\n???\ncar\n")
    assert read_label_lines(path, 0) == {0: "person", 1: "bicycle", 3: "car"}
    path.write_text("person\nbicycle\n???\ncar\n")
    assert read_label_lines(path, 0) == {0: "person", 1: "bicycle", 3: "car"}
