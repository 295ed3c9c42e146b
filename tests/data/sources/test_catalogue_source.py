"""The `catalogue` source and id heads fed from several product spaces."""

import copy
import re

import numpy as np
import pytest

from grok_tf.data.sources import read_catalogue
from grok_tf.data.sources import read_split
from grok_tf.data.sources import resolve_vocabularies
from grok_tf.errors import SpecError
from grok_tf.spec.loader import load_spec
from grok_tf.training import train
from tests.helpers import COLOURS
from tests.helpers import make_colour_dataset
from tests.helpers import write_colour_list
from tests.helpers import write_image
from tests.helpers import write_spec


@pytest.fixture
def raw(tmp_path):
    """`toy` (colour = product id, with a catalogue of 3 shots), `other`
    (its own products 0..2), and `toy_shots`, toy's catalogue as a dataset.
    `product` (ArcFace) is toy's; `pairs` (pairwise) takes both spaces."""
    raw = make_colour_dataset(tmp_path / "data")
    root = tmp_path / "data"
    rows = ["shot,product,colour"]
    for c, (colour, rgb) in enumerate(COLOURS.items()):
        write_image(root / f"shots/{colour}.jpg", rgb, seed=50 + c)
        rows.append(f"/shots/{colour}.jpg,{c},{colour}")
    (root / "shots.csv").write_text("\n".join(rows) + "\n")
    write_colour_list(root / "other", "train.txt", per_class=2, seed=7)
    raw["heads"] += [
        {"name": "product", "type": "arcface", "classes": "inferred"},
        {"name": "pairs", "type": "pairwise", "classes": "inferred"},
    ]
    toy = raw["datasets"][0]
    toy["feeds"].update(product=0, pairs=0)
    toy["catalogue"] = {
        "file": "shots.csv",
        "image": "shot",
        "id": "product",
        "head": "product",
    }
    other = {
        "name": "other",
        "source": "image_list",
        "root": "data/other",
        "splits": {"train": "train.txt"},
        "images_per_batch": 2,
        "feeds": {"pairs": 0},
    }
    shots = {
        "name": "toy_shots",
        "source": "catalogue",
        "of": "toy",
        "images_per_batch": 2,
        "feeds": {"product": "product", "pairs": "product", "colour": "colour"},
        "augmentation": {"crop_area": [0.3, 1.0]},
    }
    raw["datasets"] += [other, shots]
    return raw


def _load(tmp_path, raw):
    return resolve_vocabularies(load_spec(write_spec(tmp_path, raw)))


def test_ids_of_different_spaces_stay_apart(tmp_path, raw):
    spec = _load(tmp_path, raw)
    # `product` is fed from toy's space only (toy and its catalogue).
    assert spec.head("product").classes == ("0", "1", "2")
    assert spec.head("pairs").classes == (
        "toy/0", "toy/1", "toy/2", "other/0", "other/1", "other/2",
    )  # fmt: skip
    toy, other, shots = (read_split(spec, d, "train") for d in spec.datasets)
    np.testing.assert_array_equal(toy.labels["pairs"], toy.labels["product"])
    np.testing.assert_array_equal(other.labels["pairs"], [3, 3, 4, 4, 5, 5])
    # The catalogue shots are toy's products: the same ids in both heads.
    np.testing.assert_array_equal(shots.labels["product"], [0, 1, 2])
    np.testing.assert_array_equal(shots.labels["pairs"], [0, 1, 2])
    np.testing.assert_array_equal(shots.labels["colour"], [0, 1, 2])
    assert [r.rsplit("/", 2)[-2:] for r in shots.refs] == [
        ["shots", f"{c}.jpg"] for c in COLOURS
    ]
    catalogue = read_catalogue(spec, spec.datasets[0])
    assert catalogue.refs == shots.refs
    np.testing.assert_array_equal(catalogue.labels["product"], [0, 1, 2])


def test_declared_classes_of_a_spaced_head_are_named_by_space(tmp_path, raw):
    raw["heads"][-1]["classes"] = ["toy/0", "toy/1", "toy/2", "other/0"]
    spec = _load(tmp_path, raw)
    with pytest.raises(
        SpecError, match=r"train.txt:3: head 'pairs': unknown class 'other/1'"
    ):
        read_split(spec, spec.datasets[1], "train")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"of": "nope"}, "datasets[2].of: no dataset 'nope' in the spec"),
        ({"of": "other"}, "dataset 'other' names no `catalogue:` to train on"),
        ({"of": 3}, "datasets[2].of: must name a dataset of the spec"),
        (
            {"splits": {"train": "train.txt"}},
            "datasets[2].splits.train: a catalogue dataset's split is "
            "'catalogue'",
        ),
        ({"root": "data"}, "datasets[2].root: unknown key"),
    ],
)
def test_catalogue_dataset_mistakes(tmp_path, raw, change, message):
    raw = copy.deepcopy(raw)
    raw["datasets"][2].update(change)
    with pytest.raises(SpecError, match=re.escape(message)):
        load_spec(write_spec(tmp_path, raw))


def test_a_feed_column_not_in_the_catalogue_is_named(tmp_path, raw):
    raw["datasets"][2]["feeds"]["colour"] = "hue"
    with pytest.raises(
        SpecError,
        match=r"datasets.toy_shots.feeds: column 'hue' not in shots.csv",
    ):
        _load(tmp_path, raw)  # read when inferring the ids' classes


def test_a_slice_of_the_catalogue(tmp_path, raw):
    raw["datasets"][2]["splits"] = {"train": "catalogue[1:]"}
    spec = _load(tmp_path, raw)
    shots = read_split(spec, spec.datasets[2], "train")
    np.testing.assert_array_equal(shots.labels["product"], [1, 2])


def test_trains_with_catalogue_images_and_spaced_ids(tmp_path, raw):
    spec_path = write_spec(tmp_path, raw)
    history = train(spec_path, tmp_path / "run", epochs=1, steps_per_epoch=2)
    assert np.isfinite(history["pairs_loss"]).all()
    assert np.isfinite(history["product_loss"]).all()
