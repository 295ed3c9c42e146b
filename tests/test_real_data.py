"""The shipped specs on the real datasets in `../shared/datasets`."""

import pytest

from grok_tf.data.sources import read_catalogue
from grok_tf.data.sources import read_split
from grok_tf.data.sources import resolve_vocabularies
from grok_tf.evaluation.evaluate import evaluate_run
from grok_tf.spec.loader import load_spec
from grok_tf.training.fit import train
from tests.conftest import SPECS


def test_grocery_spec_reads_the_real_dataset(grok_data):
    spec = resolve_vocabularies(load_spec(SPECS / "grocery.yaml"))
    sizes = {h.name: h.num_classes for h in spec.heads}
    assert sizes == {
        "fine_class": 81,
        "coarse_class": 43,
        "top_group": 3,
        "product": 81,
        "queries": 257,  # tags mined from the product texts
    }
    assert spec.head("fine_class").classes[1] == "Granny-Smith"
    train_split = read_split(spec, spec.datasets[0], "train")
    assert len(train_split) == 2640
    assert len(read_split(spec, spec.datasets[0], "val")) == 296
    groups = spec.head("top_group").classes
    for ref, group in zip(
        train_split.refs, train_split.labels["top_group"], strict=True
    ):
        assert f"/train/{groups[group]}/" in ref


def test_grocery_catalogue_has_one_image_per_product(grok_data):
    spec = resolve_vocabularies(load_spec(SPECS / "grocery.yaml"))
    catalogue = read_catalogue(spec, spec.datasets[0])
    assert len(catalogue) == 81
    assert list(catalogue.labels["product"]) == list(range(81))
    assert catalogue.refs[1].endswith("Granny-Smith_Iconic.jpg")


def test_clothing_spec_reads_both_datasets(grok_data):
    spec = resolve_vocabularies(load_spec(SPECS / "clothing.yaml"))
    assert spec.head("clothing_type").num_classes == 10
    assert spec.head("garment_tags").num_classes == 56
    small, tags = spec.datasets
    assert len(read_split(spec, small, "train")) == 3068
    assert len(read_split(spec, small, "val")) == 341
    train_tags = read_split(spec, tags, "train")
    val_tags = read_split(spec, tags, "val")
    assert len(train_tags) + len(val_tags) == 2096
    assert len(val_tags) == 210
    assert not set(train_tags.refs) & set(val_tags.refs)
    per_image = (train_tags.labels["garment_tags"] >= 0).sum(1)
    assert per_image.min() >= 1 and 5 < per_image.mean() < 6.2


@pytest.mark.parametrize("name", ["grocery.yaml", "clothing.yaml"])
def test_a_few_training_steps_on_real_data(tmp_path, grok_data, name):
    run = tmp_path / "run"
    history = train(SPECS / name, run, epochs=1, steps_per_epoch=3, verbose=0)
    assert all(v == v for v in history["loss"])  # not NaN
    report = evaluate_run(run)
    for head in report["heads"].values():
        assert head["examples"] > 0 and 0.0 <= head["value"] <= 1.0
    if name == "grocery.yaml":
        retrieval = report["retrieval"]["product"]
        photos = retrieval["photo_to_photo"]["float"]
        assert photos["queries"] + photos["queries_without_match"] == 296
        catalogue = retrieval["photo_to_catalogue"]["float"]
        assert catalogue["queries"] == 296  # every product has its image
        for metrics in (photos, catalogue):
            assert 0.0 <= metrics["recall@1"] <= metrics["recall@10"] <= 1.0
            assert 0.0 <= metrics["map@r"] <= 1.0
