"""Stage 6a, calibration: isotonic maps per head, in the served graph.

Example:

>>> from grok_tf.calibration import calibrate_run
>>> calibrate_run("runs/demo")["heads"]["category"]["ece"]  # doctest: +SKIP
"""

from grok_tf.calibration.calibrate import IsotonicCalibration
from grok_tf.calibration.calibrate import calibrate_run
from grok_tf.calibration.calibrate import load_calibration

__all__ = ["IsotonicCalibration", "calibrate_run", "load_calibration"]
