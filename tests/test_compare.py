"""`grok-tf compare`: deriving single-task specs, then unified vs single.

The derivation tests parse every derived spec (no training); one test runs
the whole comparison on a tiny two-dataset spec and checks its numbers
against `evaluate_run` of each run directory, then reruns it and checks
that nothing is retrained.
"""

import copy
import json

import pytest
import yaml
from PIL import Image

from grok_tf.cli import main
from grok_tf.compare import compare
from grok_tf.compare import comparison_rows
from grok_tf.compare import comparison_specs
from grok_tf.compare import derive_single_task
from grok_tf.compare import vertical_of
from grok_tf.errors import SpecError
from grok_tf.evaluation.evaluate import evaluate_run
from grok_tf.run_dir import load_run_spec
from tests.helpers import make_colour_dataset
from tests.helpers import write_spec


def _catalogue(data, **head):
    """A catalogue CSV of two training images, ids in the colour column."""
    (data / "catalogue.csv").write_text(
        "image,id\nimages/train.txt_red_0.jpg,0\n"
        "images/train.txt_blue_0.jpg,2\n"
    )
    return {"file": "catalogue.csv", "image": "image", "id": "id", **head}


def _four_head_spec(tmp_path):
    """`colours` feeds colour + product (ArcFace) + pairs (pairwise) and
    names a catalogue of product ids; `shapes` feeds shape + colour."""
    raw = make_colour_dataset(tmp_path / "data")
    colours_file = {"file": "data/colours.txt"}
    raw["heads"] += [
        {"name": "product", "type": "arcface", "classes": colours_file},
        {"name": "pairs", "type": "pairwise", "classes": colours_file},
    ]
    colours = raw["datasets"][0]
    shapes = copy.deepcopy(colours)
    colours.update(
        name="colours",
        feeds={"colour": 0, "product": 0, "pairs": 0},
        catalogue=_catalogue(tmp_path / "data", head="product"),
    )
    shapes.update(name="shapes", feeds={"shape": 1, "colour": 0})
    raw["datasets"].append(shapes)
    return raw, write_spec(tmp_path, raw)


def _layout(specs):
    """`run -> (heads, {dataset: (feeds, catalogue head or None)})`."""
    return {
        run: (
            [h.name for h in spec.heads],
            {
                d.name: (
                    sorted(d.feeds),
                    d.options.get("catalogue", {}).get("head"),
                )
                for d in spec.datasets
            },
        )
        for run, spec in specs.items()
    }


def test_by_dataset_keeps_each_dataset_with_the_heads_it_feeds(tmp_path):
    raw, path = _four_head_spec(tmp_path)
    specs, skipped = comparison_specs(path, by="dataset")
    assert skipped == {}
    assert _layout(specs) == {
        "unified": (
            ["colour", "shape", "product", "pairs"],
            {
                "colours": (["colour", "pairs", "product"], "product"),
                "shapes": (["colour", "shape"], None),
            },
        ),
        "single/colours": (
            ["colour", "product", "pairs"],
            {"colours": (["colour", "pairs", "product"], "product")},
        ),
        "single/shapes": (
            ["colour", "shape"],
            {"shapes": (["colour", "shape"], None)},
        ),
    }
    # Parsed against the original spec's path: same roots, same settings,
    # and the recorded text parses back to the same spec.
    unified = specs["unified"]
    for spec in specs.values():
        assert spec.path == path
        assert spec.model == unified.model
        assert spec.training == unified.training
        assert yaml.safe_load(spec.text)["model"] == raw["model"]
        for dataset in spec.datasets:
            twin = next(d for d in unified.datasets if d.name == dataset.name)
            assert dataset.root == twin.root == (tmp_path / "data")
            assert dataset.images_per_batch == twin.images_per_batch


def test_by_head_restricts_feeds_and_drops_catalogues_of_dropped_heads(
    tmp_path,
):
    _, path = _four_head_spec(tmp_path)
    specs, skipped = comparison_specs(path, by="head")
    assert skipped == {}
    layout = _layout(specs)
    del layout["unified"]
    assert layout == {
        "single/colour": (
            ["colour"],
            {"colours": (["colour"], None), "shapes": (["colour"], None)},
        ),
        "single/shape": (["shape"], {"shapes": (["shape"], None)}),
        "single/product": (
            ["product"],
            {"colours": (["product"], "product")},
        ),
        # The catalogue names the product head: not kept with pairs alone.
        "single/pairs": (["pairs"], {"colours": (["pairs"], None)}),
    }


def test_schedule_overrides_are_written_into_every_spec(tmp_path):
    _, path = _four_head_spec(tmp_path)
    specs, _ = comparison_specs(path, epochs=3, steps_per_epoch=7)
    for spec in specs.values():
        assert (spec.training.epochs, spec.training.steps_per_epoch) == (3, 7)
        assert yaml.safe_load(spec.text)["training"]["steps_per_epoch"] == 7


def test_catalogue_source_dataset_stays_with_the_dataset_it_is_of():
    raw = {
        "heads": [
            {"name": "product", "type": "arcface"},
            {"name": "category", "type": "softmax"},
            {"name": "colour", "type": "softmax"},
        ],
        "datasets": [
            {
                "name": "shop",
                "source": "catalogue",
                "of": "photos",
                "feeds": {"product": 0},
            },
            {
                "name": "photos",
                "source": "image_list",
                "feeds": {"product": 0, "category": 1},
                "catalogue": {"file": "c.csv", "image": "i", "id": "p"},
            },
            {
                "name": "attributes",
                "source": "image_list",
                "feeds": {"colour": 1},
            },
        ],
    }
    original = copy.deepcopy(raw)
    assert [vertical_of(d) for d in raw["datasets"]] == [
        "photos",
        "photos",
        "attributes",
    ]
    by_dataset = derive_single_task(raw, "dataset")
    assert list(by_dataset) == ["photos", "attributes"]
    photos = by_dataset["photos"]
    assert [d["name"] for d in photos["datasets"]] == ["shop", "photos"]
    assert [h["name"] for h in photos["heads"]] == ["product", "category"]
    assert "catalogue" in photos["datasets"][1]
    by_head = derive_single_task(raw, "head")
    assert [d["name"] for d in by_head["product"]["datasets"]] == [
        "shop",
        "photos",
    ]
    assert "catalogue" in by_head["product"]["datasets"][1]
    category = by_head["category"]["datasets"]
    assert category == [
        {"name": "photos", "source": "image_list", "feeds": {"category": 1}}
    ]
    assert raw == original  # the spec's own mapping is not changed


def test_unusable_single_task_models_are_skipped_with_a_reason(tmp_path):
    raw, _ = _four_head_spec(tmp_path)
    del raw["datasets"][1]["splits"]["val"]  # shapes: no val split
    path = write_spec(tmp_path, raw, "no_val.yaml")
    specs, skipped = comparison_specs(path, by="dataset")
    assert list(specs) == ["unified", "single/colours"]
    assert skipped == {
        "single/shapes": "none of its datasets has a 'val' split"
    }
    one = copy.deepcopy(raw)
    del one["datasets"][1]
    one["heads"] = [h for h in one["heads"] if h["name"] != "shape"]
    path = write_spec(tmp_path, one, "one.yaml")
    with pytest.raises(SpecError, match="same model as the unified one"):
        comparison_specs(path, by="dataset")
    with pytest.raises(SpecError, match="no dataset has a 'test' split"):
        comparison_specs(path, by="head", split="test")


def _retrieval(recall, queries):
    return {"float": {"recall@1": recall, "queries": queries}}


def test_rows_take_a_twin_heads_retrieval_and_keep_missing_values_none():
    unified = {
        "heads": {"tags": {"metric": "mAP", "value": 0.5, "examples": 10}},
        "retrieval": {
            "product": {"photo_to_photo": _retrieval(0.75, 8)},
            "pairs": {"same_as": "product"},
        },
    }
    single_pairs = {
        "heads": {},
        "retrieval": {
            "pairs": {
                "photo_to_photo": _retrieval(0.5, 8),
                "photo_to_catalogue": _retrieval(0.25, 4),
            }
        },
    }
    single_tags = {
        "heads": {"tags": {"metric": "mAP", "value": None, "examples": 0}},
        "retrieval": {},
    }
    runs = {
        "unified": {
            "heads": ["tags", "product", "pairs"],
            "evaluation": unified,
        },
        "single/pairs": {"heads": ["pairs"], "evaluation": single_pairs},
        "single/tags": {"heads": ["tags"], "evaluation": single_tags},
    }
    rows = [tuple(r.values()) for r in comparison_rows(runs)]
    assert rows == [
        (
            "pairs",
            "photo_to_photo recall@1",
            "single/pairs",
            0.75,
            0.5,
            0.25,
            8,
            8,
        ),
        (
            "pairs",
            "photo_to_catalogue recall@1",
            "single/pairs",
            None,
            0.25,
            None,
            None,
            4,
        ),
        ("tags", "mAP", "single/tags", 0.5, None, None, 10, 0),
    ]


def test_compare_matches_evaluate_run_and_reuses_finished_runs(
    tmp_path, capsys
):
    raw = make_colour_dataset(tmp_path / "data")
    raw["heads"] += [
        {
            "name": "product",
            "type": "arcface",
            "classes": {"file": "data/colours.txt"},
        },
        {"name": "tags", "type": "multilabel_softmax", "classes": ["a", "b"]},
    ]
    toy = raw["datasets"][0]
    toy.update(
        name="colours",
        feeds={"colour": 0, "shape": 1, "product": 0},
        catalogue=_catalogue(tmp_path / "data"),
    )
    tagged = copy.deepcopy(toy)
    del tagged["catalogue"]
    tagged.update(
        name="tagged",
        splits={"train": "train.txt"},
        images_per_batch=2,
        feeds={"tags": 1},
    )
    raw["datasets"].append(tagged)
    spec = write_spec(tmp_path, raw)
    out = tmp_path / "cmp"
    result = compare(spec, out, epochs=1, steps_per_epoch=2, verbose=0)

    saved = json.loads((out / "compare.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert sorted(saved["runs"]) == ["single/colours", "unified"]
    assert saved["skipped"] == {
        "single/tagged": "none of its datasets has a 'val' split"
    }
    assert (saved["epochs"], saved["steps_per_epoch"], saved["steps"]) == (
        1,
        2,
        2,
    )
    assert saved["spec"] == str(spec.resolve())
    single_spec = load_run_spec(out / "single/colours")
    assert [h.name for h in single_spec.heads] == ["colour", "shape", "product"]
    assert [d.name for d in single_spec.datasets] == ["colours"]
    reports = {name: evaluate_run(out / name) for name in saved["runs"]}
    for name, run in saved["runs"].items():
        assert run["evaluation"] == json.loads(json.dumps(reports[name]))
        assert run["training"]["reused"] is False
        assert run["training"]["seconds"] > 0
    unified, single = reports["unified"], reports["single/colours"]

    def recall(report, search):
        metrics = report["retrieval"]["product"][search]["float"]
        return metrics["recall@1"], metrics["queries"]

    expected = []
    for head in ("colour", "shape", "product"):
        u, s = unified["heads"][head], single["heads"][head]
        expected.append(
            (head, "top1", u["value"], s["value"], u["examples"], 6)
        )
    for search in ("photo_to_photo", "photo_to_catalogue"):
        (u, un), (s, sn) = recall(unified, search), recall(single, search)
        expected.append(("product", f"{search} recall@1", u, s, un, sn))
    rows = saved["rows"]
    assert [
        (
            r["head"],
            r["measure"],
            r["unified"],
            r["single"],
            r["unified_examples"],
            r["single_examples"],
        )
        for r in rows
    ] == expected
    assert all(r["run"] == "single/colours" for r in rows)
    for row in rows:
        assert row["difference"] == pytest.approx(
            row["unified"] - row["single"], abs=1e-12
        )
    with Image.open(out / "compare.png") as png:
        assert png.format == "PNG" and png.size[0] > 500

    # A second run reuses both models: nothing retrained, same numbers.
    models = [out / name / "model.keras" for name in saved["runs"]]
    before = [m.stat().st_mtime_ns for m in models]
    capsys.readouterr()
    argv = ["compare", "--spec", str(spec), "--out", str(out)]
    assert main([*argv, "--epochs", "1", "--steps-per-epoch", "2"]) == 0
    printed = capsys.readouterr().out
    assert [m.stat().st_mtime_ns for m in models] == before
    assert printed.count("already trained, reused") == 2
    assert "product  photo_to_catalogue recall@1  colours" in printed
    assert "skipped single/tagged: none of its datasets" in printed
    again = json.loads((out / "compare.json").read_text())
    assert again["rows"] == saved["rows"]
    for name, run in again["runs"].items():
        assert run["training"] == {
            **saved["runs"][name]["training"],
            "reused": True,
        }

    # Other settings in the same folder are refused before any training.
    assert main([*argv, "--epochs", "1", "--steps-per-epoch", "3"]) == 2
    error = capsys.readouterr().err
    assert "holds a run of other settings" in error
    assert [m.stat().st_mtime_ns for m in models] == before
