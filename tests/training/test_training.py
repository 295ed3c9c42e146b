import json

import keras
import numpy as np
import pytest

from grok_tf.errors import SpecError
from grok_tf.evaluation.evaluate import evaluate_run
from grok_tf.evaluation.evaluate import mean_average_precision
from grok_tf.evaluation.evaluate import top1_accuracy
from grok_tf.run_dir import load_run
from grok_tf.training.fit import train
from tests.helpers import make_colour_dataset
from tests.helpers import write_spec


@pytest.fixture
def toy_spec(tmp_path):
    return write_spec(tmp_path, make_colour_dataset(tmp_path / "data"))


class _Interrupt(keras.callbacks.Callback):
    """Simulates a crash (e.g. a preempted machine) after some epoch."""

    def __init__(self, after_epoch):
        super().__init__()
        self.after_epoch = after_epoch
        self.epochs_run = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs_run.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after_epoch:
            raise KeyboardInterrupt("simulated crash")


def test_run_directory_holds_everything(tmp_path, toy_spec):
    run = tmp_path / "run"
    history = train(toy_spec, run, epochs=2, steps_per_epoch=2, verbose=0)
    assert len(history["loss"]) == 2
    for name in (
        "model.keras",
        "spec.yaml",
        "run.json",
        "history.json",
        "corrupt_images.json",
    ):
        assert (run / name).is_file(), name
    assert (run / "checkpoints/epoch_002.weights.h5").is_file()
    assert any((run / "logs").rglob("*tfevents*"))
    assert json.loads((run / "history.json").read_text())["loss"] == (
        pytest.approx(history["loss"])
    )
    assert "val_colour_top1" in history
    assert toy_spec.read_text() == (run / "spec.yaml").read_text()
    spec, model = load_run(run)
    assert spec.head("colour").classes == ("red", "green", "blue")
    assert sorted(model.output) == ["colour", "embedding", "features", "shape"]


def test_interrupted_run_resumes_where_it_stopped(tmp_path, toy_spec):
    run = tmp_path / "run"
    crash = _Interrupt(after_epoch=1)
    with pytest.raises(KeyboardInterrupt):
        train(
            toy_spec,
            run,
            epochs=3,
            steps_per_epoch=2,
            callbacks=[crash],
            verbose=0,
        )
    assert crash.epochs_run == [0, 1]
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 2
    resumed = _Interrupt(after_epoch=99)
    train(
        toy_spec,
        run,
        epochs=3,
        steps_per_epoch=2,
        callbacks=[resumed],
        verbose=0,
    )
    assert resumed.epochs_run == [2]
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 3


def test_a_run_directory_refuses_another_spec(tmp_path, toy_spec):
    run = tmp_path / "run"
    train(toy_spec, run, epochs=1, steps_per_epoch=1, verbose=0)
    other = toy_spec.with_name("other.yaml")
    other.write_text(
        toy_spec.read_text().replace("steps_per_epoch: 2", "steps_per_epoch: 3")
    )
    with pytest.raises(SpecError, match="holds a run of a different spec"):
        train(other, run, epochs=1, verbose=0)


def test_two_replicas_train_and_evaluate(tmp_path, toy_spec):
    run = tmp_path / "run"
    history = train(
        toy_spec, run, epochs=1, steps_per_epoch=2, replicas=2, verbose=0
    )
    assert np.isfinite(history["loss"]).all()
    assert json.loads((run / "run.json").read_text())["replicas"] == 2
    report = evaluate_run(run)
    assert report["images"] == 6
    colour = report["heads"]["colour"]
    assert colour["metric"] == "top1" and colour["examples"] == 6
    assert 0.0 <= colour["value"] <= 1.0
    assert colour["chance"] == pytest.approx(1 / 3)


def test_top1_ignores_unlabelled_rows():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 0.0], [0.0, 1.0]])
    labels = np.array([0, 0, -1, 1])
    assert top1_accuracy(logits, labels, np.array([1, 1, 0, 1])) == (
        pytest.approx(2 / 3)
    )
    assert top1_accuracy(logits, labels, np.zeros(4)) is None


def test_mean_average_precision_hand_computed():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    s = np.array([[0.9, 0.2], [0.8, 0.7], [0.3, 0.6], [0.1, 0.9]])
    # class 0 ranking 0.9(+), 0.8(-), 0.3(+): AP = (1 + 2/3) / 2
    # class 1 ranking 0.7(+), 0.6(+), 0.2(-): AP = 1 (last row unweighted)
    w = np.array([1, 1, 1, 0])
    assert mean_average_precision(s, y, w) == pytest.approx((5 / 6 + 1) / 2)


def test_all_embedding_losses_train_on_two_replicas(tmp_path):
    raw = make_colour_dataset(tmp_path / "data")
    raw["heads"] += [
        {
            "name": "product",
            "type": "arcface",
            "classes": "inferred",
            "scale": 16.0,
        },
        {
            "name": "pairs",
            "type": "pairwise",
            "classes": "inferred",
            "learn_beta": True,
            "chunk_size": 3,
        },
        {
            "name": "shape_query",
            "type": "multilabel_arcface",
            "classes": ["square", "disc"],
            "scale": 16.0,
        },
    ]
    raw["datasets"][0]["feeds"].update(product=0, pairs=0, shape_query=1)
    spec = write_spec(tmp_path, raw)
    run = tmp_path / "run"
    history = train(
        spec, run, epochs=2, steps_per_epoch=2, replicas=2, verbose=0
    )
    for head in ("colour", "product", "pairs", "shape_query"):
        assert np.isfinite(history[f"{head}_loss"]).all(), head
    assert history["pairs_loss"][0] > 0  # random embeddings violate margins
    report = evaluate_run(run)
    assert "pairs" not in report["heads"]  # a training loss, no output
    assert report["heads"]["product"]["metric"] == "top1"
    photos = report["retrieval"]["product"]["photo_to_photo"]["float"]
    assert photos["queries"] == 6  # 3 colours x 2 val photos
    assert 0.0 <= photos["map@r"] <= 1.0
    assert report["retrieval"]["pairs"] == {"same_as": "product"}


def test_a_dataset_without_one_readable_image_fails_fast(tmp_path, toy_spec):
    for image in (tmp_path / "data/images").glob("train*.jpg"):
        image.write_bytes(image.read_bytes()[:100])  # truncated
    run = tmp_path / "run"
    with pytest.raises(SpecError) as raised:
        train(toy_spec, run, epochs=1, steps_per_epoch=1, verbose=0)
    message = str(raised.value)
    assert message.startswith("spec.yaml: dataset 'toy', split 'train': ")
    assert "none of its 12 images can be read: 12 files (12 corrupt or" in (
        message
    )
    assert "\n" not in message
    assert not run.exists()


def test_failed_data_checks_write_nothing_and_the_fix_trains(
    tmp_path, toy_spec
):
    train_list = tmp_path / "data/train.txt"
    good = train_list.read_text()
    train_list.write_text(good.replace(", 2, ", ", 7, ", 1))
    run = tmp_path / "run"
    with pytest.raises(SpecError, match=r"train.txt:9: .*class id 7 out of"):
        train(toy_spec, run, epochs=1, steps_per_epoch=1, verbose=0)
    assert not run.exists()
    train_list.write_text(good)
    train(toy_spec, run, epochs=1, steps_per_epoch=1, verbose=0)
    assert (run / "model.keras").is_file()
    for image in (tmp_path / "data/images").glob("val*.jpg"):
        image.write_bytes(b"")
    with pytest.raises(SpecError, match=r"none of the 6 images of toy/val "):
        evaluate_run(run)
