"""The full GrokNet model: 2 replicas train exactly as 1 on the whole batch.

Softmax heads, ArcFace, multi-label ArcFace and the cross-replica pairwise
loss together, on a trunk with synchronized batch norm; two datasets per
batch with masked heads. The global batch is laid out as the distributed
pipeline lays it out: each half is one replica's share of every dataset.
"""

import dataclasses

import keras
import numpy as np

from grok_tf.data.batch_mixer import training_batches
from grok_tf.data.images import CorruptImageLog
from grok_tf.data.sources import read_split
from grok_tf.model.groknet import build_groknet
from grok_tf.spec.schema import HeadSpec
from grok_tf.training.training_model import compile_arguments
from grok_tf.training.training_model import model_inputs
from grok_tf.training.training_model import training_model
from tests.harness import check_fit_save_and_replicas
from tests.data.test_batch_mixer import two_dataset_spec


def all_losses_spec(tmp_path):
    spec, _ = two_dataset_spec(tmp_path, colour_images=2, tag_images=1)
    arc = {"scale": 8.0, "margin": 0.3}
    heads = [
        *spec.heads,
        HeadSpec("product", "arcface", ("red", "green", "blue"), 1.0, arc),
        HeadSpec(
            "pairs",
            "pairwise",
            ("red", "green", "blue"),
            1.0,
            {
                "alpha": 0.2,
                "beta": 1.2,
                "learn_beta": True,
                "distance_weighted": False,
                "chunk_size": 2,
            },
        ),
        HeadSpec("tag_query", "multilabel_arcface", ("a", "b", "c"), 0.5, arc),
    ]
    datasets = list(spec.datasets)
    datasets[0] = dataclasses.replace(
        datasets[0], feeds={**datasets[0].feeds, "product": 0, "pairs": 0}
    )
    datasets[1] = dataclasses.replace(
        datasets[1], feeds={**datasets[1].feeds, "tag_query": 0}
    )
    model = dataclasses.replace(spec.model, sync_batch_norm=True)
    spec = dataclasses.replace(
        spec, heads=tuple(heads), datasets=tuple(datasets), model=model
    )
    splits = {d.name: read_split(spec, d, "train") for d in spec.datasets}
    return spec, splits


def one_replica_batches(folder, replicas):
    """`replicas` per-replica batches [2 toy | 1 tagged] side by side.

    What one device sees when each replica sees one of them: the global
    batch of the distributed pipeline, as model inputs (x, y, sample weights).
    """
    spec, splits = all_losses_spec(folder)
    batches = iter(training_batches(spec, splits, CorruptImageLog()))
    parts = [next(batches) for _ in range(replicas)]
    images, labels, weights = keras.tree.map_structure(
        lambda *a: np.concatenate(a), *parts
    )
    return keras.tree.map_structure(
        np.asarray, model_inputs(spec)(images, labels, weights)
    )


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

    check_fit_save_and_replicas(build, compile_kwargs, x, y, tmp_path, sw)
