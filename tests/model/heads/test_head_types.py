"""The head-type registry and the built-in head types."""

import copy
import inspect
import math
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from grok_tf.errors import SpecError
from grok_tf.model.groknet import build_groknet
from grok_tf.model.heads import HeadOptionError
from grok_tf.model.heads import HeadType
from grok_tf.model.heads import head_type
from grok_tf.model.heads import head_type_names
from grok_tf.model.heads import register_head_type
from grok_tf.model.heads import unregister_head_type
from grok_tf.model.layers import CosineClassifier
from grok_tf.model.layers import CrossReplicaPairwiseLoss
from grok_tf.model.losses import ArcFaceLoss
from grok_tf.model.losses import MultiLabelArcFaceLoss
from grok_tf.model.losses import MultiLabelSoftmaxCrossEntropy
from grok_tf.model.losses import PerExampleLoss
from grok_tf.spec import HeadSpec
from grok_tf.spec import load_spec
from grok_tf.training.training_model import model_inputs
from grok_tf.training.training_model import training_model
from tests.helpers import make_colour_dataset
from tests.helpers import write_spec

BUILT_IN = {
    # name: (multilabel, identity, served)
    "arcface": (False, True, True),
    "multilabel_arcface": (True, False, True),
    "multilabel_softmax": (True, False, True),
    "pairwise": (False, True, False),
    "softmax": (False, False, True),
}


class Knobs(HeadType):
    """A head type with one option of every kind the spec checks."""

    name = "knobs"
    options = {"on": False, "count": 3, "rate": 0.5, "mode": "a", "any": None}

    def check_options(self, options):
        if options["rate"] >= options["count"]:
            raise HeadOptionError("rate", "must be below count")

    def output(self, head, features, embedding):
        return keras.layers.Dense(head.num_classes, name=head.name)(features)

    def loss(self, head):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture
def knobs():
    register_head_type(Knobs)
    try:
        yield head_type("knobs")
    finally:
        unregister_head_type("knobs")


@pytest.fixture
def base(tmp_path):
    return make_colour_dataset(tmp_path / "data")


def load(tmp_path, raw):
    return load_spec(write_spec(tmp_path, raw))


def test_built_in_types_and_their_label_kinds():
    assert head_type_names() == tuple(sorted(BUILT_IN))
    for name, flags in BUILT_IN.items():
        kind = head_type(name)
        assert kind.name == name
        assert (kind.multilabel, kind.identity, kind.served) == flags
    assert head_type_names(lambda t: t.multilabel) == (
        "multilabel_arcface",
        "multilabel_softmax",
    )


def test_unknown_name_is_one_line_listing_the_types():
    with pytest.raises(ValueError) as error:
        head_type("softmaxx")
    message = str(error.value)
    assert "\n" not in message and not isinstance(error.value, KeyError)
    assert message == (
        "unknown head type 'softmaxx'; choose one of arcface, "
        "multilabel_arcface, multilabel_softmax, pairwise, softmax"
    )


def test_register_refuses_duplicates_and_non_head_types(knobs):
    assert isinstance(knobs, Knobs) and "knobs" in head_type_names()
    with pytest.raises(ValueError, match="'knobs' is already registered"):
        register_head_type(Knobs)
    with pytest.raises(ValueError, match="'softmax' is already registered"):
        register_head_type(type(head_type("softmax")))
    with pytest.raises(TypeError, match="not a HeadType"):
        register_head_type(object)

    class Nameless(Knobs):
        name = "two words"

    with pytest.raises(ValueError, match="must be an identifier"):
        register_head_type(Nameless)

    class Listy(Knobs):
        name = "listy"
        options = {"sizes": [1, 2]}

    with pytest.raises(TypeError, match="option 'sizes' defaults to a list"):
        register_head_type(Listy)
    assert "listy" not in head_type_names()

    class Abstract(HeadType):
        name = "abstract"

    with pytest.raises(TypeError, match="abstract"):
        register_head_type(Abstract)


def test_register_returns_its_argument_and_takes_instances():
    instance = Knobs()
    assert register_head_type(instance) is instance
    try:
        assert head_type("knobs") is instance
    finally:
        assert unregister_head_type("knobs") is instance
    assert "knobs" not in head_type_names()
    with pytest.raises(ValueError, match="unknown head type 'knobs'"):
        unregister_head_type("knobs")


def test_head_spec_kind_and_multilabel_come_from_the_registry(knobs):
    head = HeadSpec("tags", "multilabel_softmax", ("a", "b"))
    assert head.kind is head_type("multilabel_softmax") and head.multilabel
    assert not HeadSpec("x", "knobs", ("a",)).multilabel
    with pytest.raises(ValueError, match="unknown head type 'nope'"):
        assert HeadSpec("x", "nope", ("a",)).kind is None


def test_spec_names_registered_types_only_while_registered(tmp_path, base):
    raw = copy.deepcopy(base)
    raw["heads"][1]["type"] = "knobs"
    with pytest.raises(SpecError, match="unknown head type 'knobs'; choose"):
        load(tmp_path, raw)
    register_head_type(Knobs)
    try:
        spec = load(tmp_path, raw)
    finally:
        unregister_head_type("knobs")
    assert spec.head("shape").options == Knobs.options
    assert spec.head("shape").options is not Knobs.options


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("on", "yes", "heads[1].on: must be true or false, got 'yes'"),
        ("count", 0, "heads[1].count: must be a positive integer, got 0"),
        ("count", 2.5, "heads[1].count: must be an integer, got float"),
        ("rate", "fast", "heads[1].rate: must be a number, got str"),
        ("rate", True, "heads[1].rate: must be a number, got bool"),
        ("rate", 3, "heads[1].rate: must be below count"),
        ("mode", 1, "heads[1].mode: must be a string, got int"),
        ("size", 1, "heads[1].size: unknown key"),
    ],
)
def test_options_are_checked_by_the_type_of_their_default(
    tmp_path, base, knobs, key, value, message
):
    raw = copy.deepcopy(base)
    raw["heads"][1].update({"type": "knobs", key: value})
    with pytest.raises(SpecError, match=message.replace("[", r"\[")):
        load(tmp_path, raw)


def test_option_values_are_converted_and_defaults_filled(tmp_path, base, knobs):
    raw = copy.deepcopy(base)
    raw["heads"][1].update(
        {"type": "knobs", "rate": 2, "count": 4, "any": [1, "x"]}
    )
    options = load(tmp_path, raw).head("shape").options
    assert options == {
        "on": False,
        "count": 4,
        "rate": 2.0,
        "mode": "a",
        "any": [1, "x"],
    }
    assert isinstance(options["rate"], float)


def _signature_defaults(constructor, names):
    parameters = inspect.signature(constructor).parameters
    return {name: parameters[name].default for name in names}


@pytest.mark.parametrize(
    "name, constructor",
    [
        ("arcface", ArcFaceLoss),
        ("multilabel_arcface", MultiLabelArcFaceLoss),
        ("pairwise", CrossReplicaPairwiseLoss),
    ],
)
def test_option_defaults_are_the_constructors_defaults(name, constructor):
    options = head_type(name).options
    assert options and options == _signature_defaults(constructor, options)


def test_spec_defaults_reach_the_losses_and_layers(tmp_path, base):
    raw = copy.deepcopy(base)
    raw["heads"][0]["type"] = "arcface"
    raw["heads"][1]["type"] = "pairwise"
    spec = load(tmp_path, raw)
    arc, pair = spec.head("colour"), spec.head("shape")
    assert arc.options == {"scale": 64.0, "margin": 0.5}
    assert pair.options == head_type("pairwise").options
    loss = arc.kind.loss(arc)
    assert isinstance(loss, ArcFaceLoss)
    assert (loss.scale, loss.margin) == (64.0, 0.5)
    model = training_model(build_groknet(spec), spec)
    layer = model.get_layer("shape")
    assert isinstance(layer, CrossReplicaPairwiseLoss)
    got = {
        "alpha": layer.alpha,
        "beta": layer.initial_beta,
        "learn_beta": layer.learn_beta,
        "distance_weighted": layer.distance_weighted,
        "chunk_size": layer.chunk_size,
    }
    assert got == head_type("pairwise").options
    raw["heads"][0].update({"scale": 16, "margin": 0.25})
    arc = load(tmp_path, raw).head("colour")
    loss = arc.kind.loss(arc)
    assert (loss.scale, loss.margin) == (16.0, 0.25)


@pytest.mark.parametrize(
    "name, key, value, message",
    [
        ("arcface", "margin", math.pi / 2, "margin: must be below pi/2"),
        ("arcface", "margin", -0.1, "margin: must not be negative"),
        ("arcface", "scale", 0, "scale: must be positive, got 0"),
        ("multilabel_arcface", "scale", -2, "scale: must be positive"),
        ("pairwise", "alpha", 0, "alpha: must be positive, got 0"),
        ("pairwise", "beta", 0.2, "beta: must be larger than alpha"),
        ("pairwise", "chunk_size", -1, "chunk_size: must be a positive"),
        ("softmax", "scale", 1.0, "scale: unknown key"),
    ],
)
def test_built_in_option_rules(tmp_path, base, name, key, value, message):
    raw = copy.deepcopy(base)
    raw["heads"][0].update({"type": name, key: value})
    with pytest.raises(SpecError, match=rf"heads\[0\]\.{message}"):
        load(tmp_path, raw)


def test_chunk_size_may_be_null(tmp_path, base):
    raw = copy.deepcopy(base)
    raw["heads"][0].update({"type": "pairwise", "chunk_size": None})
    assert load(tmp_path, raw).head("colour").options["chunk_size"] is None


def test_tag_feed_and_catalogue_errors_list_the_types_that_fit(tmp_path, base):
    raw = copy.deepcopy(base)
    (tmp_path / "data/products.csv").write_text("id,name\n0,red apple\n")
    raw["datasets"][0]["feeds"]["colour"] = {
        "column": 0,
        "tags": {"file": "products.csv", "key": "id", "text": "name"},
    }
    with pytest.raises(
        SpecError,
        match=r"head 'colour' is softmax \(use multilabel_arcface or "
        r"multilabel_softmax\)",
    ):
        load(tmp_path, raw)
    raw = copy.deepcopy(base)
    (tmp_path / "data/catalogue.csv").write_text("image,id\nimages/a.jpg,0\n")
    raw["datasets"][0]["catalogue"] = {
        "file": "catalogue.csv",
        "image": "image",
        "id": "id",
    }
    with pytest.raises(SpecError, match=r"id head \(arcface, pairwise\)"):
        load(tmp_path, raw)


def test_losses_outputs_and_metrics_of_each_built_in():
    features = keras.Input((8,))
    embedding = keras.Input((4,))
    expected = {
        "softmax": keras.losses.SparseCategoricalCrossentropy,
        "multilabel_softmax": MultiLabelSoftmaxCrossEntropy,
        "arcface": ArcFaceLoss,
        "multilabel_arcface": MultiLabelArcFaceLoss,
        "pairwise": PerExampleLoss,
    }
    for name, loss_class in expected.items():
        kind = head_type(name)
        head = HeadSpec(f"h_{name}", name, ("a", "b", "c"), 1.0, kind.options)
        assert isinstance(kind.loss(head), loss_class)
        output = kind.output(head, features, embedding)
        metrics = [m.name for m in kind.metrics(head)]
        if not kind.served:
            assert output is None and metrics == []
            continue
        assert output.shape == (None, 3)
        assert metrics == ([] if kind.multilabel else ["top1"])
    head = HeadSpec("h", "arcface", ("a", "b"), 1.0, {"scale": 64.0})
    output = head_type("arcface").output(head, features, embedding)
    assert isinstance(output._keras_history.operation, CosineClassifier)


def test_probabilities_are_the_softmax_of_the_logits():
    cosines = np.array([[0.1, 0.5, -0.2], [0.9, 0.0, 0.3]], "float32")
    head = HeadSpec("h", "arcface", ("a", "b", "c"), 1.0, {"scale": 8.0})
    kind = head.kind
    np.testing.assert_allclose(kind.logits(head, cosines), 8.0 * cosines)
    expected = np.exp(8.0 * cosines)
    expected /= expected.sum(-1, keepdims=True)
    got = np.asarray(kind.probabilities(head, cosines))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    plain = HeadSpec("p", "softmax", ("a", "b", "c"))
    got = np.asarray(plain.kind.probabilities(plain, cosines))
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-6)
    assert got.dtype == np.float32


def test_evaluation_metric_is_top1_or_map_with_its_chance():
    logits = np.array([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0], [2.0, 0, 0]])
    labels = np.array([0, 2, 2, -1])
    weights = np.array([1.0, 1.0, 1.0, 0.0])
    head = HeadSpec("h", "softmax", ("a", "b", "c"))
    metric, value, chance = head.kind.evaluation_metric(
        head, logits, labels, weights
    )
    assert (metric, chance) == ("top1", 1 / 3)
    assert value == pytest.approx(2 / 3)
    tags = HeadSpec("t", "multilabel_softmax", ("a", "b", "c"))
    logits = np.array([[2.0, 1, 0], [0, 2, 1], [1, 0, 0], [0, 0, 9]])
    hot = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    metric, value, chance = tags.kind.evaluation_metric(
        tags, logits, hot, weights
    )
    # Softmax scores of a: 0.67 (+), 0.09, 0.58 (+): AP 1; of b: 0.24,
    # 0.67 (+), 0.21 (+): AP (1 + 2/3) / 2. c's only positive, row 3, has
    # weight 0: c is left out, as is row 3 from the chance (4 of 3 x 2).
    assert metric == "mAP"
    assert value == pytest.approx((1 + 5 / 6) / 2)
    assert chance == pytest.approx(4 / 6)


def test_pairwise_adds_an_ids_input_and_trains_on_its_loss(tmp_path, base):
    raw = copy.deepcopy(base)
    raw["heads"][1]["type"] = "pairwise"
    spec = load(tmp_path, raw)
    groknet = build_groknet(spec)
    assert sorted(groknet.output) == ["colour", "embedding", "features"]
    model = training_model(groknet, spec)
    assert sorted(model.input) == ["image", "shape_ids"]
    assert sorted(model.output) == ["colour", "shape"]
    images = tf.zeros([2, 32, 32, 3])
    labels = {"colour": tf.constant([0, -1]), "shape": tf.constant([1, 1])}
    weights = {"colour": tf.constant([1.0, 0.0]), "shape": tf.constant([1.0])}
    weights["shape"] = tf.constant([1.0, 0.0])
    inputs, targets, sample_weights = model_inputs(spec)(
        images, labels, weights
    )
    assert sorted(inputs) == ["image", "shape_ids"]
    np.testing.assert_array_equal(inputs["shape_ids"], [1, 1])
    np.testing.assert_array_equal(targets["shape"], [0.0, 0.0])
    np.testing.assert_array_equal(sample_weights["shape"], [1.0, 1.0])
    np.testing.assert_array_equal(sample_weights["colour"], [1.0, 0.0])
    losses = model(inputs)["shape"]
    assert losses.shape == (2,) and np.isfinite(losses).all()


def test_without_extra_inputs_the_images_are_the_only_input(tmp_path, base):
    spec = load(tmp_path, copy.deepcopy(base))
    model = training_model(build_groknet(spec), spec)
    assert not isinstance(model.input, dict)
    labels = {"colour": tf.constant([0]), "shape": tf.constant([1])}
    weights = {"colour": tf.constant([1.0]), "shape": tf.constant([1.0])}
    images = tf.zeros([1, 32, 32, 3])
    inputs, _, _ = model_inputs(spec)(images, labels, weights)
    assert inputs is images


def test_the_spec_package_does_not_import_the_model():
    code = (
        "import sys, grok_tf.spec\n"
        "bad = [m for m in sys.modules if m.startswith("
        "('grok_tf.model', 'keras', 'tensorflow'))]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
