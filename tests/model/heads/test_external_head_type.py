"""A head type registered from outside the package goes through every stage.

The acceptance test of the head-type registry: a sigmoid multi-label head,
declared here, is named by a spec, trained, evaluated, calibrated and
served without any change to grok_tf.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from grok_tf.calibration import calibrate_run
from grok_tf.calibration import load_calibration
from grok_tf.compression import compress_run
from grok_tf.data.images import resize_for_eval
from grok_tf.evaluation import evaluate_run
from grok_tf.model.heads import HeadType
from grok_tf.model.heads import head_type_names
from grok_tf.model.heads import register_head_type
from grok_tf.model.heads import unregister_head_type
from grok_tf.run_dir import load_run
from grok_tf.serving import export_run
from grok_tf.training import train
from grok_tf.training.training_model import compile_arguments
from tests.helpers import make_colour_dataset
from tests.helpers import write_spec

SHAPES = ("square", "disc")


# All a new head type needs: this class (18 lines) and one
# `register_head_type(SigmoidHead)` (in the fixture, so that it is
# unregistered after each test; outside tests, `@register_head_type`).
class SigmoidHead(HeadType):
    """Independent per-class sigmoids over multi-hot labels."""

    name = "sigmoid"
    multilabel = True

    def output(self, head, features, embedding):
        return keras.layers.Dense(
            head.num_classes, dtype="float32", name=head.name
        )(features)

    def loss(self, head):
        return keras.losses.BinaryCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        )

    def probabilities(self, head, output):
        return keras.ops.sigmoid(keras.ops.cast(output, "float32"))


@pytest.fixture
def sigmoid():
    register_head_type(SigmoidHead)
    try:
        yield
    finally:
        unregister_head_type("sigmoid")


def add_tag_column(root, name):
    """Appends `colour|shape` names to each line of a colour list file,
    left empty (no label) on the second image of each colour."""
    lines = []
    for line in (root / name).read_text().splitlines():
        path, colour, shape = (part.strip() for part in line.split(","))
        k = int(path.rsplit("_", 1)[1].split(".")[0])
        colour_name = path.split("_")[-2]
        tags = "" if k == 1 else f"{colour_name}|{SHAPES[int(shape)]}"
        lines.append(f"{path}, {colour}, {shape}, {tags}")
    (root / name).write_text("\n".join(lines) + "\n")


@pytest.fixture
def tagged_spec(tmp_path):
    raw = make_colour_dataset(tmp_path / "data")
    for split in ("train.txt", "val.txt"):
        add_tag_column(tmp_path / "data", split)
    raw["heads"].append(
        {"name": "tags", "type": "sigmoid", "classes": "inferred"}
    )
    raw["datasets"][0]["feeds"]["tags"] = 2
    return write_spec(tmp_path, raw)


def test_the_fixture_unregisters_the_type(sigmoid):
    assert "sigmoid" in head_type_names()


def test_no_sigmoid_outside_the_fixture():
    assert "sigmoid" not in head_type_names()


def test_loss_is_per_example_and_respects_the_label_mask(sigmoid, tagged_spec):
    from grok_tf.spec import load_spec

    spec = load_spec(tagged_spec)
    loss = compile_arguments(spec)["loss"]["tags"]
    labels = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]], "float32")
    logits = np.array([[2.0, -1, 0.5], [9, 9, 9], [0, 3, -2]], "float32")
    weights = np.array([1.0, 0.0, 1.0], "float32")
    z, y = logits[[0, 2]], labels[[0, 2]]
    per_row = np.mean(
        np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))), axis=-1
    )
    got = loss(labels, logits, sample_weight=weights)
    np.testing.assert_allclose(got, per_row.mean(), rtol=1e-5)


def test_external_head_type_trains_evaluates_calibrates_and_serves(
    sigmoid, tagged_spec, tmp_path
):
    run = tmp_path / "run"
    train(tagged_spec, run, epochs=1, steps_per_epoch=2, verbose=0)
    spec, model = load_run(run)
    head = spec.head("tags")
    assert isinstance(head.kind, SigmoidHead) and head.multilabel
    assert head.classes == ("blue", "disc", "green", "red", "square")
    assert model.output["tags"].shape == (None, 5)

    report = evaluate_run(run)["heads"]["tags"]
    # val: 2 images per colour, the second without tags; the first are
    # red|square, green|square, blue|square: 4 of the 5 classes present.
    assert report["type"] == "sigmoid" and report["metric"] == "mAP"
    assert report["examples"] == 3 and report["classes"] == 5
    assert report["chance"] == pytest.approx(6 / 12)
    assert 0 < report["value"] <= 1

    calibration = calibrate_run(run)["heads"]["tags"]
    assert calibration["metric"] == "one-vs-rest"
    assert calibration["examples"] == 3 and calibration["columns"] == 5

    compress_run(run, bits=8, epochs=1, verbose=0, hashers=["catalyzer"])
    version = export_run(run, tmp_path / "models/toy")
    loaded = tf.saved_model.load(str(version))
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3))
    images = images.astype("float32")
    served = loaded.signatures["serving_images"](images=tf.constant(images))
    probabilities = served["tags_probabilities"].numpy()
    assert probabilities.shape == (2, 5)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert served["tags_top_k_labels"].shape == (2, 5)
    # What is served is the calibration of the sigmoid of the logits.
    resized = np.stack([resize_for_eval(x, 32) for x in images])
    logits = np.asarray(model(resized, training=False)["tags"], "float64")
    table = load_calibration(run)["tags"]
    expected = table.predict(1 / (1 + np.exp(-logits)))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert not np.allclose(table.predict(softmax), expected, atol=1e-3)
