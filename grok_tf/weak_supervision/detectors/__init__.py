"""Object detectors: uint8 photo -> `Detection`s, one registry.

`base` holds the interface (`Detector`, `DetectorOptions`, `Detection`,
`crop`) and the registry (`register_detector`, `detector_class`,
`detector_names`, `make_detector`); each built-in detector is one module,
registered on import, in this order: `whole_image` (`whole`), `tflite_ssd`
(`tflite:PATH`) and `object_detection_api` (`saved_model:PATH`). Importing
this package loads neither TensorFlow nor LiteRT: a detector loads them
when it is built.

Example:

>>> from grok_tf.weak_supervision.detectors import detector_names
>>> detector_names()[:3]
['whole', 'tflite', 'saved_model']
"""

from grok_tf.weak_supervision.detectors.base import Detection
from grok_tf.weak_supervision.detectors.base import Detector
from grok_tf.weak_supervision.detectors.base import DetectorOptions
from grok_tf.weak_supervision.detectors.base import crop
from grok_tf.weak_supervision.detectors.base import detector_class
from grok_tf.weak_supervision.detectors.base import detector_names
from grok_tf.weak_supervision.detectors.base import make_detector
from grok_tf.weak_supervision.detectors.base import register_detector
from grok_tf.weak_supervision.detectors.base import unregister_detector

# Import order is registration order, the order of error messages.
# isort: off
from grok_tf.weak_supervision.detectors.whole_image import WholeImageDetector
from grok_tf.weak_supervision.detectors.tflite_ssd import TFLiteSSDDetector
from grok_tf.weak_supervision.detectors.object_detection_api import (
    ObjectDetectionAPIDetector,
)

# isort: on

__all__ = [
    "Detection",
    "Detector",
    "DetectorOptions",
    "ObjectDetectionAPIDetector",
    "TFLiteSSDDetector",
    "WholeImageDetector",
    "crop",
    "detector_class",
    "detector_names",
    "make_detector",
    "register_detector",
    "unregister_detector",
]
