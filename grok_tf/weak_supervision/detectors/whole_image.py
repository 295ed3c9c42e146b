"""The whole photo as the one detection: pseudo-labelling without a model."""

import numpy as np

from grok_tf.weak_supervision.detectors.base import Detection
from grok_tf.weak_supervision.detectors.base import Detector
from grok_tf.weak_supervision.detectors.base import check_image
from grok_tf.weak_supervision.detectors.base import register_detector

#: The label of the whole-image detection.
WHOLE_IMAGE_LABEL = "image"


@register_detector
class WholeImageDetector(Detector):
    """One detection per photo: the whole of it, `(0, 0, 1, 1)`, score 1.

    For photos that show one product (catalogue shots, close-ups), and as
    the baseline a real detector must beat. No option applies: not
    `min_score`, `classes` (any names are accepted, none is checked) or
    `padding`, nor `min_box_size` or `max_boxes` — a photo smaller than
    `min_box_size` still gives its one detection. `make_detector("whole")`
    builds it.

    Args:
        options: accepted for the common interface, and ignored.

    Example:

    >>> photo = np.zeros((20, 30, 3), np.uint8)
    >>> WholeImageDetector().detect(photo)
    [Detection(box=(0.0, 0.0, 1.0, 1.0), score=1.0, label='image')]
    """

    name = "whole"

    def raw_detections(
        self, image: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The whole image: boxes `[[0, 0, 1, 1]]`, scores `[1]`, `image`."""
        check_image(image)
        return (
            np.array([[0.0, 0.0, 1.0, 1.0]]),
            np.array([1.0]),
            [WHOLE_IMAGE_LABEL],
        )

    def detect(self, image: np.ndarray) -> list[Detection]:
        """`[Detection((0, 0, 1, 1), 1.0, "image")]`, whatever the options.

        Raises:
            ValueError: `image` is not uint8 `[H, W, 3]`.
        """
        check_image(image)
        return [Detection((0.0, 0.0, 1.0, 1.0), 1.0, WHOLE_IMAGE_LABEL)]
