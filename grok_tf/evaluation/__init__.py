"""Stage 5, evaluation: per-head top-1 / mAP and retrieval of a finished run.

- `evaluate.evaluate_run`: the report of `grok-tf evaluate`;
- `classification_metrics`, `retrieval_metrics`: the metric functions
  (head types use the former for their own metric).

`evaluate_run` is imported on first use, so that a head type importing a
metric does not import the whole stage.

Example (not run: needs a trained run in runs/demo):

>>> from grok_tf.evaluation import evaluate_run
>>> evaluate_run("runs/demo")["heads"]["category"]  # doctest: +SKIP
"""

from grok_tf.lazy_exports import lazy_exports

__all__ = ["evaluate_run"]
__getattr__, __dir__ = lazy_exports(
    __name__, {"evaluate_run": "grok_tf.evaluation.evaluate"}
)
