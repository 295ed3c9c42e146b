"""Stage 6a, calibration: isotonic maps per head, in the served graph.

One concept per module: `table` (`CalibrationTable`, `fit_isotonic`),
`layer` (`IsotonicCalibration`, the table in the graph), `metrics` (ECE,
Brier, reliability bins), `plots` (`reliability_diagram`) and `calibrate`
(`calibrate_run`, the `grok-tf calibrate` command, and `load_calibration`).

Example (not run: needs a trained run in runs/demo):

>>> from grok_tf.calibration import calibrate_run
>>> calibrate_run("runs/demo")["heads"]["category"]["ece"]  # doctest: +SKIP
"""

from grok_tf.calibration.calibrate import calibrate_run
from grok_tf.calibration.calibrate import cross_fitted
from grok_tf.calibration.calibrate import load_calibration
from grok_tf.calibration.layer import IsotonicCalibration
from grok_tf.calibration.metrics import ReliabilityBins
from grok_tf.calibration.metrics import brier_score
from grok_tf.calibration.metrics import expected_calibration_error
from grok_tf.calibration.metrics import reliability_bins
from grok_tf.calibration.plots import reliability_diagram
from grok_tf.calibration.table import CalibrationTable
from grok_tf.calibration.table import fit_isotonic

__all__ = [
    "CalibrationTable",
    "IsotonicCalibration",
    "ReliabilityBins",
    "brier_score",
    "calibrate_run",
    "cross_fitted",
    "expected_calibration_error",
    "fit_isotonic",
    "load_calibration",
    "reliability_bins",
    "reliability_diagram",
]
