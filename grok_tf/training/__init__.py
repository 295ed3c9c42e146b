"""Stage 4, training: `model.fit` into a run directory, on 1..N devices.

- `fit.train`: spec -> data -> GrokNet -> a run directory (`run_dir`);
- `training_model`: the outputs that carry a loss, the compile arguments;
- `distribution`: MirroredStrategy and MultiWorkerMirroredStrategy.

Example (not run: trains a model):

>>> from grok_tf.training import train
>>> train("data_specs/demo.yaml", "runs/demo", epochs=1)  # doctest: +SKIP
"""

from grok_tf.training.fit import train

__all__ = ["train"]
