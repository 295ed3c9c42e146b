import dataclasses

import numpy as np
import pytest

from grok_tf.data.batch_mixer import distributed_training_batches
from grok_tf.data.batch_mixer import evaluation_batches
from grok_tf.data.batch_mixer import training_batches
from grok_tf.data.images import FORMATS
from grok_tf.data.images import CorruptImageLog
from grok_tf.data.sources import read_split
from grok_tf.errors import SpecError
from tests.harness import two_replica_strategy
from tests.helpers import HANG_GUARD
from tests.helpers import two_dataset_spec


def check_composition(images, labels, weights, colour_rows, tag_rows):
    n = colour_rows + tag_rows
    assert images.shape == (n, 32, 32, 3)
    assert images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 255
    toy, tagged = slice(0, colour_rows), slice(colour_rows, n)
    np.testing.assert_array_equal(weights["colour"][toy], 1)
    np.testing.assert_array_equal(weights["colour"][tagged], 0)
    np.testing.assert_array_equal(labels["colour"][tagged], -1)
    assert set(labels["colour"][toy]) <= {0, 1, 2}
    np.testing.assert_array_equal(weights["tags"][toy], 0)
    np.testing.assert_array_equal(labels["tags"][toy], 0)
    np.testing.assert_array_equal(weights["tags"][tagged], 1)
    np.testing.assert_array_equal(labels["tags"][tagged].sum(-1), 2)


def test_every_batch_holds_each_datasets_share(tmp_path):
    spec, splits = two_dataset_spec(tmp_path, colour_images=4, tag_images=2)
    batches = training_batches(spec, splits, CorruptImageLog())
    for images, labels, weights in batches.take(3).as_numpy_iterator():
        check_composition(images, labels, weights, 4, 2)


def test_a_datasets_augmentation_overrides_training_for_its_images_only(
    tmp_path, monkeypatch
):
    import grok_tf.data.batch_mixer as batch_mixer

    spec, splits = two_dataset_spec(tmp_path, colour_images=4, tag_images=2)
    toy, tagged = spec.datasets
    strong = {"crop_area": (0.2, 0.5), "hue": 0.1}
    tagged = dataclasses.replace(tagged, options={"augmentation": strong})
    spec = dataclasses.replace(spec, datasets=(toy, tagged))
    seen = []
    augment = batch_mixer.augment_for_training

    def recording(image, size, training):
        seen.append(training)
        return augment(image, size, training)

    monkeypatch.setattr(batch_mixer, "augment_for_training", recording)
    batches = training_batches(spec, splits, CorruptImageLog())
    next(iter(batches))
    assert seen[0] == spec.training
    assert seen[1] == dataclasses.replace(spec.training, **strong)


def test_a_datasets_loss_weight_scales_the_weights_of_its_images(tmp_path):
    spec, splits = two_dataset_spec(tmp_path, colour_images=4, tag_images=2)
    toy, tagged = spec.datasets
    tagged = dataclasses.replace(tagged, loss_weight=0.25)
    spec = dataclasses.replace(spec, datasets=(toy, tagged))
    batches = training_batches(spec, splits, CorruptImageLog())
    images, labels, weights = next(batches.as_numpy_iterator())
    np.testing.assert_array_equal(weights["colour"], [1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(weights["tags"], [0, 0, 0, 0, 0.25, 0.25])
    np.testing.assert_array_equal(labels["tags"][4:].sum(-1), 2)


def test_each_replica_gets_its_share_of_each_dataset(tmp_path):
    spec, splits = two_dataset_spec(tmp_path, colour_images=4, tag_images=2)
    strategy = two_replica_strategy()
    batches = distributed_training_batches(
        strategy, spec, splits, CorruptImageLog()
    )
    images, labels, weights = next(iter(batches))
    local = strategy.experimental_local_results
    assert len(local(images)) == 2
    for i in range(2):
        check_composition(
            local(images)[i].numpy(),
            {k: local(v)[i].numpy() for k, v in labels.items()},
            {k: local(v)[i].numpy() for k, v in weights.items()},
            colour_rows=2,
            tag_rows=1,
        )


def test_share_not_divisible_by_replicas_is_a_spec_error(tmp_path):
    spec, splits = two_dataset_spec(tmp_path, colour_images=3, tag_images=2)
    with pytest.raises(SpecError, match=r"datasets\[0\].images_per_batch: 3"):
        distributed_training_batches(
            two_replica_strategy(), spec, splits, CorruptImageLog()
        )


def break_images(root):
    """Corrupts three training images and lists a missing one."""
    good = (root / "images/train.txt_red_0.jpg").read_bytes()
    (root / "images/train.txt_red_0.jpg").write_bytes(good[:60])  # truncated
    (root / "images/train.txt_red_1.jpg").write_bytes(b"\x00garbage" * 50)
    (root / "images/train.txt_red_2.jpg").write_text("not an image")
    with open(root / "train.txt", "a") as f:
        f.write("images/gone.jpg, 0, 0\n")
    return {
        "train.txt_red_0.jpg",
        "train.txt_red_1.jpg",
        "train.txt_red_2.jpg",
        "gone.jpg",
    }


def test_corrupt_images_are_skipped_and_counted(tmp_path):
    spec, _ = two_dataset_spec(tmp_path)
    broken = break_images(tmp_path / "data")
    split = read_split(spec, spec.datasets[0], "train")
    log = CorruptImageLog()
    ds = evaluation_batches(spec, [split], log, batch_size=5)
    rows = sum(len(images) for images, _, _ in ds.as_numpy_iterator())
    assert rows == len(split) - len(broken)
    summary = log.summary()
    assert summary["skipped"] == len(broken)
    assert {name.rsplit("/", 1)[-1] for name in summary["files"]} == broken

    splits = {d.name: read_split(spec, d, "train") for d in spec.datasets}
    train_log = CorruptImageLog()
    batches = training_batches(spec, splits, train_log)
    for images, labels, weights in batches.take(12).as_numpy_iterator():
        check_composition(images, labels, weights, 4, 2)
    assert train_log.count >= len(broken)
    assert set(train_log.summary()["files"]) <= set(summary["files"])


def test_skip_reasons_name_the_problem(tmp_path):
    spec, _ = two_dataset_spec(tmp_path)
    break_images(tmp_path / "data")
    (tmp_path / "data/images/train.txt_green_0.jpg").write_bytes(b"")
    split = read_split(spec, spec.datasets[0], "train")
    log = CorruptImageLog()
    for _ in evaluation_batches(spec, [split], log, batch_size=8):
        pass
    reasons = {
        k.rsplit("/", 1)[-1]: v for k, v in log.summary()["files"].items()
    }
    assert reasons["gone.jpg"] == "file not found"
    assert reasons["train.txt_green_0.jpg"] == "empty file"
    assert reasons["train.txt_red_0.jpg"] == "corrupt or truncated"
    assert reasons["train.txt_red_1.jpg"] == f"not a {FORMATS} image"
    assert reasons["train.txt_red_2.jpg"] == f"not a {FORMATS} image"


def test_a_live_iterator_does_not_hang_interpreter_exit(tmp_path):
    """tf.data threads running Python at shutdown deadlock the interpreter."""
    import subprocess
    import sys
    import textwrap

    spec, _ = two_dataset_spec(tmp_path)
    break_images(tmp_path / "data")
    script = textwrap.dedent(f"""
        from grok_tf.data.batch_mixer import training_batches
        from grok_tf.data.images import CorruptImageLog
        from grok_tf.data.sources import read_split, resolve_vocabularies
        from grok_tf.spec.loader import load_spec
        spec = resolve_vocabularies(load_spec({str(spec.path)!r}))
        splits = {{d.name: read_split(spec, d, "train") for d in spec.datasets}}
        it = iter(training_batches(spec, splits, CorruptImageLog()))
        next(it)
        print("done", flush=True)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert done.returncode == 0 and "done" in done.stdout, done.stderr[-1500:]


def test_replicas_do_not_read_the_same_shuffled_stream(tmp_path, monkeypatch):
    """One pipeline per machine feeds the replicas consecutive batches.

    Were the dataset function called once per replica with one seed, both
    replicas would see the same images in the same order.
    """
    import grok_tf.data.batch_mixer as batch_mixer

    spec, splits = two_dataset_spec(tmp_path)
    contexts = []
    original = batch_mixer.training_batches

    def spy(spec, splits, log, input_context=None):
        contexts.append(input_context.input_pipeline_id)
        return original(spec, splits, log, input_context)

    monkeypatch.setattr(batch_mixer, "training_batches", spy)
    batches = distributed_training_batches(
        two_replica_strategy(), spec, splits, CorruptImageLog()
    )
    next(iter(batches))
    assert contexts and len(contexts) == len(set(contexts))
