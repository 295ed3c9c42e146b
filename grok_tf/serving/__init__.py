"""Stage 7b, serving: one TF Serving SavedModel with every output.

Example (not run: needs a trained run in runs/demo):

>>> from grok_tf.serving import export_run
>>> export_run("runs/demo", "saved_models/demo")  # doctest: +SKIP
"""

from grok_tf.serving.export import export_run
from grok_tf.serving.export import predict_images

__all__ = ["export_run", "predict_images"]
