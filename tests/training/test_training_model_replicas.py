"""The full GrokNet model: 2 replicas train exactly as 1 on the whole batch.

Softmax heads, ArcFace, multi-label ArcFace and the cross-replica pairwise
loss together, on a trunk with synchronized batch norm; two datasets per
batch with masked heads. The global batch is laid out as the distributed
pipeline lays it out: each half is one replica's share of every dataset.
"""

import keras
import numpy as np

from grok_tf.model.groknet import build_groknet
from grok_tf.training.training_model import compile_arguments
from grok_tf.training.training_model import training_model
from tests.harness import check_fit_save_and_replicas
from tests.helpers import all_losses_spec
from tests.helpers import one_replica_batches


def test_two_replicas_equal_one_for_every_loss(tmp_path):
    spec, _ = all_losses_spec(tmp_path)
    x, y, sw = one_replica_batches(tmp_path, replicas=2)
    assert np.isin(y["colour"][:2], [0, 1, 2]).all() and y["colour"][2] == -1

    def build():
        keras.utils.set_random_seed(1)
        return training_model(build_groknet(spec), spec)

    def compile_kwargs():
        return {
            "optimizer": keras.optimizers.SGD(0.05),
            **compile_arguments(spec),
        }

    check_fit_save_and_replicas(
        build,
        compile_kwargs,
        x,
        y,
        tmp_path,
        sw,
        # small_cnn: 8 convolutions and their batch norms (kernel, gamma,
        # beta); GeM's p; the embedding's kernel and bias; softmax heads
        # colour, shape, tags (kernel, bias); ArcFace centres of product
        # and tag_query; the pairwise loss's learned beta.
        expected_num_trainable_weights=8 * 3 + 1 + 2 + 3 * 2 + 2 + 1,
        # the batch norms' moving mean and variance
        expected_num_non_trainable_weights=8 * 2,
    )
