"""A source registered from outside the package, used end to end.

`json_list` reads `[{"image": path, "labels": [label, ...]}, ...]` files:
feed column K is the K-th label, a class name or a list of names.
"""

import json
import math

import numpy as np
import pytest

from grok_tf.data.sources import DatasetSource
from grok_tf.data.sources import collect_tokens
from grok_tf.data.sources import read_split
from grok_tf.data.sources import register_source
from grok_tf.data.sources import resolve_vocabularies
from grok_tf.data.sources import source_names
from grok_tf.data.sources import unregister_source
from grok_tf.errors import SpecError
from grok_tf.io.text_files import dataset_path
from grok_tf.spec.loader import load_spec
from grok_tf.training import train
from tests.helpers import COLOURS
from tests.helpers import write_image
from tests.helpers import write_spec


class JsonListSource(DatasetSource):
    """Images and labels in a JSON list of `{"image", "labels"}` records."""

    name = "json_list"

    def read(self, spec, dataset, ref, who):
        path = dataset.root / ref
        records = json.loads(path.read_text())
        if not isinstance(records, list):
            raise SpecError(f"{who}: {path.name} is not a JSON list")

        def rows():
            for i, record in enumerate(records):
                origin = f"{path}[{i}]"
                yield dataset_path(record["image"], origin), origin, record

        def label_of(record, column, origin):
            labels = record["labels"]
            if not isinstance(column, int) or not 0 <= column < len(labels):
                raise SpecError(f"{origin}: no label {column!r}")
            value = labels[column]
            return tuple(value) if isinstance(value, list) else (value,)

        return collect_tokens(spec, dataset, rows(), label_of)


@pytest.fixture
def json_list(request):
    """`json_list` registered for one test, unregistered after it."""
    register_source(JsonListSource)
    request.addfinalizer(lambda: unregister_source("json_list"))
    return JsonListSource


def _write_json_dataset(root):
    """Train/val JSON lists of coloured squares, with a multi-label tag."""
    for split, per_class in (("train", 4), ("val", 2)):
        records = []
        for c, (colour, rgb) in enumerate(COLOURS.items()):
            for k in range(per_class):
                image = f"images/{split}_{colour}_{k}.jpg"
                write_image(root / image, rgb, seed=c * 10 + k)
                tags = ["bright"] + (["warm"] if colour == "red" else [])
                records.append({"image": image, "labels": [colour, tags]})
        (root / f"{split}.json").write_text(json.dumps(records))
    return {
        "model": {"trunk": "small_cnn", "input_size": 32},
        "heads": [
            {"name": "colour", "type": "softmax", "classes": "inferred"},
            {
                "name": "tags",
                "type": "multilabel_softmax",
                "classes": "inferred",
            },
        ],
        "datasets": [
            {
                "name": "toy",
                "source": "json_list",
                "root": "data",
                "splits": {"train": "train.json", "val": "val.json"},
                "images_per_batch": 4,
                "feeds": {"colour": 0, "tags": 1},
            }
        ],
    }


def test_a_registered_source_loads_reads_and_trains(tmp_path, json_list):
    spec_path = write_spec(tmp_path, _write_json_dataset(tmp_path / "data"))
    spec = resolve_vocabularies(load_spec(spec_path))
    assert spec.datasets[0].source == "json_list"
    assert spec.head("colour").classes == ("blue", "green", "red")
    assert spec.head("tags").classes == ("bright", "warm")
    val = read_split(spec, spec.datasets[0], "val")
    assert len(val) == 6
    assert val.refs[0] == str(tmp_path / "data/images/val_red_0.jpg")
    np.testing.assert_array_equal(val.labels["colour"], [2, 2, 1, 1, 0, 0])
    np.testing.assert_array_equal(
        val.labels["tags"], [[0, 1], [0, 1], [0, -1], [0, -1], [0, -1], [0, -1]]
    )
    history = train(
        spec_path, tmp_path / "run", epochs=1, steps_per_epoch=2, verbose=0
    )
    assert len(history["loss"]) == 1 and math.isfinite(history["loss"][0])


def test_its_declarations_are_checked_when_the_spec_loads(tmp_path, json_list):
    raw = _write_json_dataset(tmp_path / "data")
    raw["datasets"][0]["splits"]["test"] = "test.json"
    with pytest.raises(SpecError, match="splits.test: split file not found"):
        load_spec(write_spec(tmp_path, raw))
    del raw["datasets"][0]["splits"]["test"]
    raw["datasets"][0]["catalogue"] = {"file": "c.csv", "image": "i", "id": "p"}
    with pytest.raises(SpecError, match=r"datasets\[0\].catalogue: unknown"):
        load_spec(write_spec(tmp_path, raw))


def test_an_unregistered_source_is_an_unknown_source(tmp_path):
    assert "json_list" not in source_names()  # the fixture cleaned up
    raw = _write_json_dataset(tmp_path / "data")
    with pytest.raises(SpecError, match="unknown source 'json_list'"):
        load_spec(write_spec(tmp_path, raw))
