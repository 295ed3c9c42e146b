import dataclasses

import keras
import numpy as np
import pytest

from grok_tf.data.batch_mixer import training_batches
from grok_tf.data.images import CorruptImageLog
from grok_tf.model.groknet import build_groknet
from grok_tf.model.layers import CosineClassifier
from grok_tf.model.layers import GeMPooling
from grok_tf.training.fit import make_optimizer
from grok_tf.training.fit import no_decay_variables
from grok_tf.training.training_model import compile_arguments
from grok_tf.training.training_model import training_model
from tests.helpers import two_dataset_spec


@pytest.fixture
def toy(tmp_path):
    return two_dataset_spec(tmp_path)


def test_outputs_shapes_and_normalised_embedding(toy):
    spec, _ = toy
    model = build_groknet(spec)
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3))
    out = model(x.astype("float32"))
    assert sorted(out) == ["colour", "embedding", "features", "shape", "tags"]
    assert out["colour"].shape == (3, 3) and out["tags"].shape == (3, 3)
    assert out["embedding"].shape == (3, 400)
    for name in ("colour", "shape", "tags", "embedding"):
        assert out[name].dtype == "float32"
    np.testing.assert_allclose(
        np.linalg.norm(out["embedding"], axis=-1), 1.0, rtol=1e-5
    )
    gem = model.get_layer("gem_pooling")
    assert isinstance(gem, GeMPooling) and float(gem.p.numpy()) == 3.0


def test_average_pooling_is_the_mean_of_the_trunks_feature_map(toy):
    spec, _ = toy
    spec = dataclasses.replace(
        spec, model=dataclasses.replace(spec.model, pooling="average")
    )
    model = build_groknet(spec)
    assert not any(isinstance(layer, GeMPooling) for layer in model.layers)
    trunk = model.layers[1]
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3))
    x = x.astype("float32")
    expected = np.asarray(trunk(x)).mean(axis=(1, 2))
    features = np.asarray(model(x)["features"])
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_gem_p_stays_fixed_when_not_learned(toy):
    spec, _ = toy
    fixed = dataclasses.replace(
        spec, model=dataclasses.replace(spec.model, learn_gem_p=False)
    )
    learned = build_groknet(spec).get_layer("gem_pooling")
    gem = build_groknet(fixed).get_layer("gem_pooling")
    assert any(v is learned.p for v in learned.trainable_variables)
    assert not gem.trainable_variables and float(gem.p.numpy()) == 3.0


def test_training_model_shares_layers_and_keeps_head_outputs(toy):
    spec, _ = toy
    groknet = build_groknet(spec)
    model = training_model(groknet, spec)
    assert sorted(model.output) == ["colour", "shape", "tags"]
    assert model.get_layer("colour") is groknet.get_layer("colour")


def test_gem_p_biases_and_norms_are_excluded_from_weight_decay(toy):
    spec, _ = toy
    model = build_groknet(spec)
    skipped = {id(v) for v in no_decay_variables(model)}
    assert id(model.get_layer("gem_pooling").p) in skipped
    assert id(model.get_layer("colour").bias) in skipped
    assert id(model.get_layer("colour").kernel) not in skipped
    optimizer = make_optimizer(model, spec.training)
    optimizer.build(model.trainable_variables)
    assert not optimizer._use_weight_decay(model.get_layer("gem_pooling").p)
    assert optimizer._use_weight_decay(model.get_layer("colour").kernel)


def fit_one_batch(build, spec, splits, epochs=15):
    """Losses on one mixed batch before and after `epochs` steps on it.

    `build() -> model` runs after seeding, so the start is reproducible.
    """
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3), **compile_arguments(spec)
    )
    images, labels, weights = next(
        iter(training_batches(spec, splits, CorruptImageLog()))
    )
    data = {"x": images, "y": labels, "sample_weight": weights, "verbose": 0}
    before = model.evaluate(**data, return_dict=True)
    model.fit(**data, epochs=epochs, batch_size=len(images))
    return before, model.evaluate(**data, return_dict=True)


def test_fit_steps_lower_the_loss_with_masked_heads(toy):
    spec, splits = toy
    before, after = fit_one_batch(
        lambda: training_model(build_groknet(spec), spec), spec, splits
    )
    assert np.isfinite(after["loss"])
    assert after["loss"] < 0.7 * before["loss"]


def test_softmax_head_loss_is_the_mean_over_labelled_rows(toy):
    spec, _ = toy
    losses = compile_arguments(spec)["loss"]
    logits = np.log(
        np.array(
            [[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]], "float32"
        )
    )
    labels = np.array([0, 1, -1])
    weights = np.array([1.0, 1.0, 0.0], "float32")
    got = losses["colour"](labels, logits, sample_weight=weights)
    np.testing.assert_allclose(got, -(np.log(0.5) + np.log(0.8)) / 2, rtol=1e-5)


def test_arcface_heads_read_the_embedding_and_train(tmp_path):
    spec, splits = two_dataset_spec(tmp_path)
    heads = [
        dataclasses.replace(
            h, type="arcface", options={"scale": 16.0, "margin": 0.3}
        )
        if h.name == "colour"
        else dataclasses.replace(
            h, type="multilabel_arcface", options={"scale": 16.0, "margin": 0.3}
        )
        if h.name == "tags"
        else h
        for h in spec.heads
    ]
    spec = spec.replace_heads(heads)
    groknet = build_groknet(spec)
    cos = groknet.get_layer("colour")
    assert isinstance(cos, CosineClassifier)
    assert cos.input.name == groknet.get_layer("embedding").output.name
    before, after = fit_one_batch(
        lambda: training_model(groknet, spec), spec, splits
    )
    for head in ("colour", "tags"):
        assert after[f"{head}_loss"] < 0.7 * before[f"{head}_loss"]
