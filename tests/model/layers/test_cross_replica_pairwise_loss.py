import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from grok_tf.model.layers.cross_replica_pairwise_loss import (
    CrossReplicaPairwiseLoss,
)
from grok_tf.model.losses.pairwise_double_margin import PerExampleLoss
from tests.harness import TOLERANCE
from tests.harness import check_config_round_trip
from tests.harness import check_fit_save_and_replicas
from tests.harness import two_replica_strategy
from tests.helpers import numpy_pair_losses

DIM = 6
# Two replicas take rows 0-5 and 6-11: every id has rows in both halves
# (positive pairs cross the replicas), rows without an id in both too.
IDS = np.array([0, 1, 2, 3, -1, 4, 0, 1, 2, 3, 4, -1])


def batch(seed=0):
    """Features with the id in the last column.

    The harness sizes batches with `len(x)`, which counts a dict's keys,
    so the model takes one array and splits the id column off.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(IDS), DIM + 1)).astype("float32")
    x[:, DIM] = IDS
    return x


def build_model(**layer_kwargs):
    features = keras.Input((DIM + 1,))
    dense = keras.layers.Dense(
        DIM, kernel_initializer=keras.initializers.GlorotUniform(seed=1)
    )
    embeddings = keras.layers.UnitNormalization()(dense(features[:, :DIM]))
    ids = ops.cast(features[:, DIM], "int32")
    loss = CrossReplicaPairwiseLoss(**layer_kwargs)([embeddings, ids])
    return keras.Model(features, loss)


def compile_kwargs():
    return {"optimizer": keras.optimizers.SGD(0.5), "loss": PerExampleLoss()}


def test_outputs_average_to_the_mean_over_active_pairs():
    x = batch()[:, :DIM]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    out = CrossReplicaPairwiseLoss(chunk_size=5)([x, IDS]).numpy()
    pairs = numpy_pair_losses(x, IDS, x, IDS, 1.2)
    active = (pairs > 0).sum()
    np.testing.assert_allclose(out, len(x) * pairs.sum(1) / active, rtol=1e-5)
    np.testing.assert_allclose(out.mean(), pairs.sum() / active, rtol=1e-5)


def test_no_active_pair_gives_zero():
    x = tf.constant(np.eye(4, dtype="float32"))
    layer = CrossReplicaPairwiseLoss(learn_beta=True)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_mean(layer([x, np.arange(4)]))
    gradients = tape.gradient(total, [x, layer.beta])
    assert total.numpy() == 0.0
    assert all(np.isfinite(g.numpy()).all() for g in gradients)


def test_config_round_trip_and_symbolic_call():
    layer = CrossReplicaPairwiseLoss(
        alpha=0.1,
        beta=1.0,
        learn_beta=True,
        distance_weighted=True,
        negatives_per_anchor=3,
        chunk_size=None,
        seed=7,
    )
    check_config_round_trip(layer)
    embeddings, ids = keras.Input((DIM,)), keras.Input((), dtype="int32")
    assert tuple(layer([embeddings, ids]).shape) == (None,)
    assert [w.name for w in layer.trainable_weights] == ["beta"]
    assert [w.name for w in layer.non_trainable_weights] == ["sampling_step"]
    fixed = CrossReplicaPairwiseLoss()
    fixed.build([(None, DIM), (None,)])
    assert fixed.trainable_weights == [] and len(fixed.weights) == 1


def test_computes_in_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        x = np.eye(3, dtype="float16")
        assert (
            CrossReplicaPairwiseLoss()([x, np.array([0, 0, 1])]).dtype
            == "float32"
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        CrossReplicaPairwiseLoss(alpha=-0.1)
    with pytest.raises(ValueError, match="chunk_size"):
        CrossReplicaPairwiseLoss(chunk_size=0)
    with pytest.raises(ValueError, match="negatives_per_anchor"):
        CrossReplicaPairwiseLoss(distance_weighted=True, negatives_per_anchor=0)


@pytest.mark.parametrize(
    "layer_kwargs, trainable, non_trainable",
    [
        # Dense kernel and bias, learned beta.
        ({"learn_beta": True, "chunk_size": 4}, 3, 0),
        # Dense kernel and bias; fixed beta and the sampling step.
        (
            {
                "distance_weighted": True,
                "negatives_per_anchor": 2,
                "chunk_size": 5,
            },
            2,
            2,
        ),
    ],
    ids=["all_pairs", "distance_weighted"],
)
def test_fit_save_and_two_replicas_equal_one(
    layer_kwargs, trainable, non_trainable, tmp_path
):
    # Loss, logged loss and one SGD step (including beta) under two
    # replicas equal one device on the concatenated batch.
    x, y = batch(), np.zeros(len(IDS), "float32")
    check_fit_save_and_replicas(
        lambda: build_model(**layer_kwargs),
        compile_kwargs,
        x,
        y,
        tmp_path,
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=non_trainable,
    )


def test_two_replicas_give_the_same_per_example_losses():
    x = batch(1)
    single = build_model(chunk_size=2)
    weights = single.get_weights()
    with two_replica_strategy().scope():
        mirrored = build_model(chunk_size=2)
        mirrored.set_weights(weights)
    np.testing.assert_allclose(
        mirrored.predict(x, batch_size=len(x), verbose=0),
        single.predict(x, batch_size=len(x), verbose=0),
        atol=TOLERANCE,
    )


def test_logged_loss_is_the_global_mean_under_two_replicas():
    # Keras logs mean_i(out_i) per replica, averaged over the replicas per
    # step (and batch-weighted at the end of an epoch): both are the mean
    # over the active pairs of the global batch.
    x, y = batch(2), np.zeros(len(IDS), "float32")
    with two_replica_strategy().scope():
        model = build_model(chunk_size=3)
        model.compile(**compile_kwargs())
    kernel, bias = model.get_weights()[:2]
    e = x[:, :DIM] @ kernel + bias
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    pairs = numpy_pair_losses(e, IDS, e, IDS, 1.2)
    expected = pairs.sum() / (pairs > 0).sum()
    logged = model.evaluate(x, y, batch_size=len(x), verbose=0)
    history = model.fit(x, y, batch_size=len(x), verbose=0).history
    np.testing.assert_allclose(logged, expected, rtol=1e-5)
    np.testing.assert_allclose(history["loss"][0], expected, rtol=1e-5)


def test_sampling_step_advances_once_per_training_step():
    model = build_model(distance_weighted=True)
    model.compile(**compile_kwargs())
    x, y = batch(), np.zeros(len(IDS), "float32")
    step = model.layers[-1].sampling_step
    model.evaluate(x, y, batch_size=len(x), verbose=0)
    assert int(step.numpy()) == 0
    model.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0)
    assert int(step.numpy()) == 4


def test_uneven_replica_shares_give_the_exact_gradient():
    # Keras's fit fails on uneven per-replica batches on this stack, but a
    # custom loop with Keras's scaling (mean over the local batch, divided
    # by the number of replicas, gradients summed) gets the global mean's
    # gradient because out_i = n * R * S_i / A.
    rng = np.random.default_rng(4)
    x = rng.normal(size=(7, DIM)).astype("float32")
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.array([0, 1, 2, 0, 1, 2, -1])
    parts = [(x[:5], ids[:5]), (x[5:], ids[5:])]  # 5 and 2 rows
    strategy = two_replica_strategy()
    with strategy.scope():
        layer = CrossReplicaPairwiseLoss(learn_beta=True, chunk_size=2)
        layer.build([(None, DIM), (None,)])

    def step(inputs):
        embeddings, part_ids = inputs
        with tf.GradientTape() as tape:
            tape.watch(embeddings)
            loss = tf.reduce_mean(layer([embeddings, part_ids])) / 2
        d_embeddings, d_beta = tape.gradient(loss, [embeddings, layer.beta])
        return loss, d_embeddings, d_beta

    per_replica = strategy.experimental_distribute_values_from_function(
        lambda context: tuple(
            map(tf.constant, parts[context.replica_id_in_sync_group])
        )
    )
    run = tf.function(lambda inputs: strategy.run(step, args=(inputs,)))
    losses, d_embeddings, d_beta = run(per_replica)
    local = strategy.experimental_local_results

    reference = CrossReplicaPairwiseLoss(learn_beta=True)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_mean(reference([xt, ids]))
    want_x, want_beta = tape.gradient(loss, [xt, reference.beta])

    pairs = numpy_pair_losses(x, ids, x, ids, 1.2)
    np.testing.assert_allclose(
        sum(local(losses)), pairs.sum() / (pairs > 0).sum(), rtol=1e-5
    )
    np.testing.assert_allclose(loss, pairs.sum() / (pairs > 0).sum(), rtol=1e-5)
    np.testing.assert_allclose(
        np.concatenate(local(d_embeddings)), want_x, atol=TOLERANCE
    )
    np.testing.assert_allclose(sum(local(d_beta)), want_beta, atol=TOLERANCE)
