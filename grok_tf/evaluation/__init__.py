"""Stage 5, evaluation: per-head top-1 / mAP and retrieval of a finished run.

Example:

>>> from grok_tf.evaluation import evaluate_run
>>> evaluate_run("runs/demo")["heads"]["category"]  # doctest: +SKIP
"""

from grok_tf.evaluation.evaluate import evaluate_run

__all__ = ["evaluate_run"]
