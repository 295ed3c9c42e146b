"""One shared harness for every custom layer and loss of grok_tf.

`run_layer_test` and `run_loss_test` check, in one call, what every
component must satisfy (after keras-hub's `run_layer_test`):

1. config round trip: `from_config(get_config())` gives the same config,
   and the registered name deserialises to the class;
2. a `fit` step on a tiny model changes the weights and stays finite;
3. `.keras` save/load gives the same predictions (and the same loss);
4. under `MirroredStrategy` on 2 logical CPU devices, the loss and one SGD
   step equal the single-device ones on the same batch.
"""

import keras
import numpy as np
import tensorflow as tf

from grok_tf.training.distribution import replica_strategy

TOLERANCE = 1e-5


def two_replica_strategy():
    """`MirroredStrategy` over the two logical CPUs made by conftest."""
    assert len(tf.config.list_logical_devices("CPU")) >= 2, "see conftest"
    return replica_strategy(2)


def check_config_round_trip(obj):
    config = obj.get_config()
    clone = type(obj).from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(obj)
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is type(obj)
    assert revived.get_config() == config
    return clone


def check_fit_save_and_replicas(
    build, compile_kwargs, x, y, tmp_path, sample_weight=None
):
    """Fit step, `.keras` round trip and 2-replica equivalence of a model.

    Args:
        build: `fn() -> keras.Model`, uncompiled, deterministic structure.
        compile_kwargs: `fn() -> dict` for `compile` (fresh objects per
            call: optimizer and loss must be created inside each strategy).
        x, y: one batch (even size, split evenly across two replicas); x
            may be a dict of inputs.
        tmp_path: where to save the `.keras` file.
        sample_weight: optional per-output sample weights for the batch.
    """
    batch = len(keras.tree.flatten(x)[0])  # x may be a dict of inputs
    batch_args = {
        "batch_size": batch,
        "sample_weight": sample_weight,
        "verbose": 0,
    }
    model = build()
    initial = [np.array(w) for w in model.get_weights()]
    model.compile(**compile_kwargs())
    loss_before = model.evaluate(x, y, return_dict=True, **batch_args)
    logged = model.fit(x, y, epochs=1, shuffle=False, **batch_args).history
    trained = [np.array(w) for w in model.get_weights()]
    assert all(np.isfinite(w).all() for w in trained)
    assert any(
        not np.allclose(a, b) for a, b in zip(initial, trained, strict=True)
    ), "a fit step changed no weight"

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        _flat(loaded.predict(x, verbose=0)),
        _flat(model.predict(x, verbose=0)),
        atol=TOLERANCE,
    )
    np.testing.assert_allclose(
        loaded.evaluate(x, y, **batch_args),
        model.evaluate(x, y, **batch_args),
        rtol=TOLERANCE,
    )

    with two_replica_strategy().scope():
        mirrored = build()
        mirrored.set_weights(initial)
        mirrored.compile(**compile_kwargs())
    mirrored_loss = mirrored.evaluate(x, y, return_dict=True, **batch_args)
    mirrored_logged = mirrored.fit(
        x, y, epochs=1, shuffle=False, **batch_args
    ).history
    # Every loss (total and per output), as computed and as logged by fit.
    for name, value in loss_before.items():
        np.testing.assert_allclose(
            mirrored_loss[name], value, rtol=TOLERANCE, err_msg=name
        )
    for name, values in logged.items():
        np.testing.assert_allclose(
            mirrored_logged[name], values, rtol=TOLERANCE, err_msg=name
        )
    # The same step: gradients equal to the tolerance (SGD, same start).
    for a, b in zip(mirrored.get_weights(), trained, strict=True):
        np.testing.assert_allclose(a, b, atol=TOLERANCE)


def run_layer_test(
    layer_cls, init_kwargs, input_shape, expected_output_shape, tmp_path
):
    """Checks a custom layer end to end (see the module docstring).

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_shape: a batch shape with an even batch size.
        expected_output_shape: the output shape for that batch.
        tmp_path: pytest's `tmp_path`.
    """
    layer = layer_cls(**init_kwargs)
    check_config_round_trip(layer)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 2.0, input_shape).astype("float32")
    assert tuple(layer(x).shape) == tuple(expected_output_shape)
    symbolic = layer_cls(**init_kwargs)(keras.Input(input_shape[1:]))
    assert tuple(symbolic.shape[1:]) == tuple(expected_output_shape[1:])

    def build():
        inputs = keras.Input(input_shape[1:])
        hidden = layer_cls(**init_kwargs)(inputs)
        hidden = keras.layers.Flatten()(hidden)
        outputs = keras.layers.Dense(2, kernel_initializer="ones")(hidden)
        return keras.Model(inputs, outputs)

    def compile_kwargs():
        return {"optimizer": keras.optimizers.SGD(0.05), "loss": "mse"}

    y = rng.normal(size=(input_shape[0], 2)).astype("float32")
    check_fit_save_and_replicas(build, compile_kwargs, x, y, tmp_path)


def run_loss_test(loss_cls, init_kwargs, y_true, tmp_path, features=6):
    """Checks a custom loss end to end (see the module docstring).

    Args:
        loss_cls: the loss class.
        init_kwargs: constructor arguments.
        y_true: one batch of labels (even batch size); the model predicts
            `y_true.shape[1:]` logits from random features.
        tmp_path: pytest's `tmp_path`.
        features: input width of the tiny model.
    """
    loss = loss_cls(**init_kwargs)
    check_config_round_trip(loss)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(y_true), features)).astype("float32")
    width = int(np.prod(y_true.shape[1:])) if y_true.ndim > 1 else 3

    def build():
        inputs = keras.Input((features,))
        seed = keras.initializers.GlorotUniform(seed=1)
        outputs = keras.layers.Dense(width, kernel_initializer=seed)(inputs)
        return keras.Model(inputs, outputs)

    def compile_kwargs():
        return {
            "optimizer": keras.optimizers.SGD(0.1),
            "loss": loss_cls(**init_kwargs),
        }

    check_fit_save_and_replicas(build, compile_kwargs, x, y_true, tmp_path)


def _flat(values):
    if isinstance(values, dict):
        return np.concatenate([np.ravel(values[k]) for k in sorted(values)])
    return np.ravel(values)
