"""The tfds source, offline: `tfds.testing.mock_data` serves the examples.

The fake examples carry real PNG bytes (the source asks tfds for encoded
images) and random `ClassLabel` ids; builders, features and class names are
tfds's own, so `catalog_tfds.yaml` is read exactly as with the real data.
"""

import io

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from grok_tf.data.batch_mixer import training_batches
from grok_tf.data.images import CorruptImageLog
from grok_tf.data.sources import read_split
from grok_tf.data.sources import resolve_vocabularies
from grok_tf.spec.loader import load_spec
from tests.conftest import SPECS

EXAMPLES = 8


def _png(seed):
    pixels = np.random.default_rng(seed).integers(0, 255, (20, 30, 3))
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def fake_as_dataset(self, split, decoders=None, read_config=None, **kwargs):
    columns = {
        "tfds_id": [f"{self.name}-{split}__{i}" for i in range(EXAMPLES)]
    }
    for key, feature in self.info.features.items():
        if isinstance(feature, tfds.features.ClassLabel):
            columns[key] = [
                (7 * i) % feature.num_classes for i in range(EXAMPLES)
            ]
        elif isinstance(feature, tfds.features.Image):
            columns[key] = [_png(i) for i in range(EXAMPLES)]
    return tf.data.Dataset.from_tensor_slices(columns)


@pytest.fixture
def mocked_tfds():
    with tfds.testing.mock_data(as_dataset_fn=fake_as_dataset):
        yield


def test_catalog_spec_reads_tfds_names_labels_and_bytes(mocked_tfds):
    spec = resolve_vocabularies(load_spec(SPECS / "catalog_tfds.yaml"))
    categories = spec.head("product_category").classes
    assert len(categories) == 12 and "bicycle" in categories
    assert spec.head("car_model").num_classes == 196
    split = read_split(spec, spec.datasets[1], "val")
    assert len(split) == EXAMPLES
    assert split.refs[0] == "tfds:cars196/cars196-test__0"
    np.testing.assert_array_equal(
        split.labels["car_model"], [(7 * i) % 196 for i in range(EXAMPLES)]
    )
    ref, data = next(iter(split.image_stream()))
    assert ref.numpy().decode() == split.refs[0]
    assert data.numpy().startswith(b"\x89PNG")


def test_tfds_examples_flow_through_the_batch_mixer(mocked_tfds):
    spec = resolve_vocabularies(load_spec(SPECS / "catalog_tfds.yaml"))
    spec = spec.__class__(
        **{
            **spec.__dict__,
            "model": spec.model.__class__(trunk="small_cnn", input_size=32),
        }
    )
    splits = {d.name: read_split(spec, d, "train") for d in spec.datasets}
    log = CorruptImageLog()
    images, labels, weights = next(iter(training_batches(spec, splits, log)))
    assert images.shape == (64, 32, 32, 3)
    np.testing.assert_array_equal(weights["product_category"][:32], 1)
    np.testing.assert_array_equal(weights["product_category"][32:], 0)
    np.testing.assert_array_equal(weights["car_model"][32:], 1)
    assert log.count == 0
