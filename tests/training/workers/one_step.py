"""One training step of the all-losses GrokNet, for the multi-worker test.

    python -m tests.training.workers.one_step BATCH.npz OUT.npz WORKDIR

with or without `TF_CONFIG` (WORKDIR: a private folder for the toy spec's
files). With several workers, worker i feeds the i-th of `num_workers`
equal parts of the batch (one replica's share of every dataset); alone, the
process feeds the whole batch. It writes the logs of one SGD step and the
weights after it.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from grok_tf.training.distribution import training_strategy  # noqa: E402


def main(batch_path, out_path, workdir):
    strategy = training_strategy(1)  # before any other TF work
    from grok_tf.model.groknet import build_groknet
    from grok_tf.training.training_model import compile_arguments
    from grok_tf.training.training_model import training_model
    from tests.helpers import all_losses_spec

    spec, _ = all_losses_spec(Path(workdir))
    arrays = np.load(batch_path, allow_pickle=True)["batch"].item()
    x, y, sw = arrays["x"], arrays["y"], arrays["sw"]
    rows = len(keras.tree.flatten(x)[0])

    def data(context):
        parts = context.num_input_pipelines
        take = rows // parts
        start = context.input_pipeline_id * take
        part = keras.tree.map_structure(
            lambda a: a[start : start + take], (x, y, sw)
        )
        return tf.data.Dataset.from_tensors(part).repeat()

    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = training_model(build_groknet(spec), spec)
        model.compile(
            optimizer=keras.optimizers.SGD(0.05), **compile_arguments(spec)
        )
    history = model.fit(
        strategy.distribute_datasets_from_function(data),
        steps_per_epoch=1,
        epochs=1,
        verbose=0,
    ).history
    np.savez(
        out_path,
        weights=np.array(model.get_weights(), dtype=object),
        logs=np.array(history, dtype=object),
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
