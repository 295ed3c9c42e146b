"""One shared harness for every custom layer and loss of grok_tf.

`run_layer_test` and `run_loss_test` check, in one call, what every
component must satisfy (after keras-hub's `run_layer_test`):

1. config round trip: `from_config(get_config())` gives the same config,
   and the registered name deserialises to the class;
2. weights: once built, the numbers of trainable and non-trainable weights
   and of seed generators are those the caller states;
3. dtypes: the eager and the symbolic outputs have the stated dtype under
   the default policy and under `mixed_float16`; where a component
   promises float32 outputs (GeM, the cosine classifier, every loss), its
   mixed-precision outputs also equal the float32 ones on the same inputs
   (it computes in float32, not in float16 cast up), and no variable is
   float16;
4. a `fit` step on a tiny model changes the weights and stays finite;
5. `.keras` save/load gives the same predictions (and the same loss);
6. under `MirroredStrategy` on 2 logical CPU devices, the loss and one SGD
   step equal the single-device ones on the same batch.
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from grok_tf.training.distribution import replica_strategy

TOLERANCE = 1e-5
#: float16 keeps about 3 decimal digits.
HALF_TOLERANCE = 1e-2


def two_replica_strategy():
    """`MirroredStrategy` over the two logical CPUs made by conftest."""
    assert len(tf.config.list_logical_devices("CPU")) >= 2, "see conftest"
    return replica_strategy(2)


@contextlib.contextmanager
def global_dtype_policy(name):
    """Sets Keras's global dtype policy for the block, then restores it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def check_config_round_trip(obj):
    config = obj.get_config()
    clone = type(obj).from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(obj)
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is type(obj)
    assert revived.get_config() == config
    return clone


def seed_generators(obj):
    """The distinct `keras.random.SeedGenerator`s of a layer or model."""
    found = {}
    for layer in obj._flatten_layers(include_self=True, recursive=True):
        for generator in layer._seed_generators:
            found[id(generator)] = generator
    return list(found.values())


def check_weight_counts(obj, trainable, non_trainable, seeds=0):
    """Asserts the numbers of weights and seed generators of a built object.

    Args:
        obj: a built layer or model.
        trainable: expected `len(obj.trainable_weights)`.
        non_trainable: expected `len(obj.non_trainable_weights)`.
        seeds: expected number of seed generators.
    """
    assert obj.built, f"{obj.name} is not built"
    for kind, weights, expected in (
        ("trainable", obj.trainable_weights, trainable),
        ("non-trainable", obj.non_trainable_weights, non_trainable),
    ):
        assert len(weights) == expected, (
            f"{obj.name}: {len(weights)} {kind} weights, expected "
            f"{expected}: {[w.path for w in weights]}"
        )
    found = len(seed_generators(obj))
    assert found == seeds, f"{obj.name}: {found} seed generators, not {seeds}"


def check_output_dtypes(outputs, expected):
    """Asserts the dtype of every output (arrays, tensors or KerasTensors).

    Args:
        outputs: one output, or a dict / list of them.
        expected: one dtype name for every output, or a dict of dtype
            names keyed like `outputs`.
    """
    if isinstance(expected, str):
        expected = keras.tree.map_structure(lambda _: expected, outputs)
    keras.tree.assert_same_structure(outputs, expected)
    for path, output in keras.tree.flatten_with_path(outputs):
        want = _at(expected, path)
        got = keras.backend.standardize_dtype(output.dtype)
        assert got == want, f"output {path}: dtype {got}, expected {want}"


def check_fit_save_and_replicas(
    build,
    compile_kwargs,
    x,
    y,
    tmp_path,
    sample_weight=None,
    *,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights,
    expected_num_seed_generators=0,
    expected_output_dtype="float32",
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
        expected_num_trainable_weights: trainable weights of the model.
        expected_num_non_trainable_weights: its non-trainable weights.
        expected_num_seed_generators: its seed generators. Defaults to 0.
        expected_output_dtype: the dtype of every output, or a dict of
            dtypes keyed like the outputs. Defaults to "float32".
    """
    counts = (
        expected_num_trainable_weights,
        expected_num_non_trainable_weights,
        expected_num_seed_generators,
    )
    batch = len(keras.tree.flatten(x)[0])  # x may be a dict of inputs
    batch_args = {
        "batch_size": batch,
        "sample_weight": sample_weight,
        "verbose": 0,
    }
    model = build()
    check_weight_counts(model, *counts)
    check_output_dtypes(model.output, expected_output_dtype)
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
    check_weight_counts(loaded, *counts)
    predictions = model.predict(x, verbose=0)
    check_output_dtypes(predictions, expected_output_dtype)
    np.testing.assert_allclose(
        _flat(loaded.predict(x, verbose=0)),
        _flat(predictions),
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
    check_weight_counts(mirrored, *counts)
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


def check_layer_mixed_precision(layer_cls, init_kwargs, x, expected_dtype):
    """A layer built under `mixed_float16`: output dtype and values.

    The outputs must have `expected_dtype`, eager and symbolic, and equal
    those of the same layer (same weights) under float32 on the same
    inputs: to `TOLERANCE` if it promises float32 outputs (it computes in
    float32), else to `HALF_TOLERANCE`. No variable may be float16.
    """
    x = x.astype("float16")  # inputs both policies see exactly
    with global_dtype_policy("mixed_float16"):
        layer = layer_cls(**init_kwargs)
        output = layer(x)
        symbolic = layer_cls(**init_kwargs)(keras.Input(x.shape[1:]))
    check_output_dtypes(output, expected_dtype)
    check_output_dtypes(symbolic, expected_dtype)
    for weight in layer.weights:
        assert weight.dtype != "float16", f"{weight.path} is float16"
    reference = layer_cls(**init_kwargs)
    reference(x.astype("float32"))
    reference.set_weights(layer.get_weights())
    atol = TOLERANCE if expected_dtype == "float32" else HALF_TOLERANCE
    np.testing.assert_allclose(
        np.asarray(output, "float32"),
        reference(x.astype("float32")),
        atol=atol,
        rtol=atol,
    )


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    expected_output_shape,
    tmp_path,
    *,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights,
    expected_mixed_precision_dtype,
    expected_num_seed_generators=0,
    expected_output_dtype="float32",
):
    """Checks a custom layer end to end (see the module docstring).

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        input_shape: a batch shape with an even batch size.
        expected_output_shape: the output shape for that batch.
        tmp_path: pytest's `tmp_path`.
        expected_num_trainable_weights: trainable weights once built.
        expected_num_non_trainable_weights: non-trainable weights once
            built.
        expected_mixed_precision_dtype: the output dtype when the layer is
            built under the `mixed_float16` policy: "float32" for a layer
            that promises float32 outputs, else "float16".
        expected_num_seed_generators: seed generators once built.
            Defaults to 0.
        expected_output_dtype: the output dtype under the default policy.
            Defaults to "float32".
    """
    counts = (
        expected_num_trainable_weights,
        expected_num_non_trainable_weights,
        expected_num_seed_generators,
    )
    layer = layer_cls(**init_kwargs)
    check_config_round_trip(layer)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 2.0, input_shape).astype("float32")
    output = layer(x)
    assert tuple(output.shape) == tuple(expected_output_shape)
    check_output_dtypes(output, expected_output_dtype)
    check_weight_counts(layer, *counts)
    symbolic = layer_cls(**init_kwargs)(keras.Input(input_shape[1:]))
    assert tuple(symbolic.shape[1:]) == tuple(expected_output_shape[1:])
    check_output_dtypes(symbolic, expected_output_dtype)
    check_layer_mixed_precision(
        layer_cls, init_kwargs, x, expected_mixed_precision_dtype
    )

    def build():
        inputs = keras.Input(input_shape[1:])
        hidden = layer_cls(**init_kwargs)(inputs)
        hidden = keras.layers.Flatten()(hidden)
        outputs = keras.layers.Dense(2, kernel_initializer="ones")(hidden)
        return keras.Model(inputs, outputs)

    def compile_kwargs():
        return {"optimizer": keras.optimizers.SGD(0.05), "loss": "mse"}

    y = rng.normal(size=(input_shape[0], 2)).astype("float32")
    check_fit_save_and_replicas(
        build,
        compile_kwargs,
        x,
        y,
        tmp_path,
        expected_num_trainable_weights=expected_num_trainable_weights + 2,
        expected_num_non_trainable_weights=expected_num_non_trainable_weights,
        expected_num_seed_generators=expected_num_seed_generators,
    )


def check_loss_dtypes(loss_cls, init_kwargs, y_true, y_pred):
    """A loss's values are float32 under both policies, computed in float32.

    The reduced loss is a float32 scalar and the per-example losses
    (`reduction=None`) float32 `[batch]`; with the `mixed_float16` policy
    and float16 predictions, the per-example losses are float32 and equal
    the float32 ones on the same values.
    """
    y_pred = y_pred.astype("float16")  # values both policies see exactly
    wide = y_pred.astype("float32")
    reduced = loss_cls(**init_kwargs)(y_true, wide)
    assert tuple(reduced.shape) == ()
    assert np.isfinite(reduced)
    check_output_dtypes(reduced, "float32")
    per_example = {**init_kwargs, "reduction": None}
    values = loss_cls(**per_example)(y_true, wide)
    assert tuple(values.shape) == (len(y_true),)
    check_output_dtypes(values, "float32")
    with global_dtype_policy("mixed_float16"):
        mixed = loss_cls(**per_example)(y_true, tf.constant(y_pred))
    check_output_dtypes(mixed, "float32")
    np.testing.assert_allclose(mixed, values, rtol=TOLERANCE, atol=1e-6)


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
    # In [-1, 1]: valid logits and valid cosines alike.
    y_pred = rng.uniform(-1.0, 1.0, (len(y_true), width)).astype("float32")
    check_loss_dtypes(loss_cls, init_kwargs, y_true, y_pred)

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

    check_fit_save_and_replicas(
        build,
        compile_kwargs,
        x,
        y_true,
        tmp_path,
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
    )


def _at(structure, path):
    for key in path:
        structure = structure[key]
    return structure


def _flat(values):
    if isinstance(values, dict):
        return np.concatenate([np.ravel(values[k]) for k in sorted(values)])
    return np.ravel(values)
