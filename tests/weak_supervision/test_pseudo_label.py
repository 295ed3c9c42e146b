"""`grok-tf pseudo-label` on a small trained run (tests/fixtures/run_0_1_0):
nearest labelled image and distance equal a numpy computation, thresholds,
the output folder, and the list as a training dataset."""

import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest
import yaml

from grok_tf.data.sources import read_split
from grok_tf.errors import SpecError
from grok_tf.inference import embed_images
from grok_tf.run_dir import load_run
from grok_tf.spec.loader import load_spec
from grok_tf.weak_supervision.detectors import WholeImageDetector
from grok_tf.weak_supervision.detectors import make_detector
from grok_tf.weak_supervision.gallery import id_head
from grok_tf.weak_supervision.gallery import listed_gallery
from grok_tf.weak_supervision.gallery import training_gallery
from grok_tf.weak_supervision.pseudo_label import pseudo_label
from grok_tf.weak_supervision.threshold import precision_coverage
from tests.helpers import COLOURS
from tests.helpers import copy_old_run
from tests.helpers import grok_tf
from tests.helpers import write_image
from tests.helpers import write_spec


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return copy_old_run(tmp_path_factory.mktemp("old") / "old")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Six unlabelled photos and one file that is not an image."""
    folder = tmp_path_factory.mktemp("unlabelled")
    for k, rgb in enumerate(list(COLOURS.values()) * 2):
        write_image(folder / f"p{k}.jpg", rgb, size=48, seed=50 + k)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return folder


@pytest.fixture(scope="module")
def labelled(run, photos, tmp_path_factory):
    """`(out, report)`: the photos pseudo-labelled at threshold 0.05."""
    out = tmp_path_factory.mktemp("labelled") / "pseudo"
    report = pseudo_label(
        run, photos, out, make_detector("whole"), threshold=0.05
    )
    return out, report


def read_rows(out):
    with open(out / "pseudo_labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_each_crop_takes_its_nearest_labelled_product(run, photos, labelled):
    out, report = labelled
    rows = read_rows(out)
    assert report["images"] == 7 and report["crops"] == 6 == len(rows)
    assert report["unreadable"]["count"] == 1
    assert "broken.jpg" in next(iter(report["unreadable"]["files"]))
    # The reference: the run's model over the crops and its training photos
    # and catalogue images, cosine distances in numpy.
    spec, model = load_run(run)
    size = spec.model.input_size
    gallery = training_gallery(spec, spec.head("product"))
    assert len(gallery.refs) == len(read_split(spec, spec.datasets[0], "train"))
    reference, _ = embed_images(model, gallery.refs, size)
    crops, valid = embed_images(
        model, [str(out / r["image"]) for r in rows], size
    )
    assert valid.all()
    distance = 1 - crops @ reference.T
    nearest = distance.argmin(axis=1)
    classes = spec.head("product").classes
    for row, k, d in zip(rows, nearest, distance, strict=True):
        assert int(row["product_id"]) == gallery.ids[k]
        assert row["product"] == classes[gallery.ids[k]]
        assert float(row["distance"]) == pytest.approx(d[k], abs=1e-4)
        assert row["accepted"] == str(int(float(row["distance"]) <= 0.05))
        assert row["box"] == "0.00000 0.00000 1.00000 1.00000"
        assert row["source"].startswith(str(photos))
    accepted = sum(r["accepted"] == "1" for r in rows)
    assert report["accepted"] == accepted
    assert report["coverage"] == pytest.approx(accepted / 6, abs=1e-4)
    assert (out / "distances.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "report.json").read_text()) == report


def test_a_precision_chooses_the_threshold_on_labelled_crops(
    run, photos, tmp_path
):
    out = tmp_path / "pseudo"
    report = pseudo_label(
        run, photos, out, make_detector("whole"), precision=0.5
    )
    calibration = report["calibration"]
    assert calibration["split"] == "val" and calibration["photos"] == 6
    assert calibration["crops"] == 6 and calibration["reached"] >= 0.5
    assert (
        report["threshold_from"] == "precision 0.5 on crops of the 'val' split"
    )
    # No calibration crop is left among the training crops.
    assert sorted(p.name for p in (out / "crops").iterdir()) == sorted(
        r["image"].split("/")[1] for r in read_rows(out)
    )
    for row in read_rows(out):
        assert row["accepted"] == str(
            int(float(row["distance"]) <= report["threshold"])
        )


class FailingDetector(WholeImageDetector):
    """The whole image, until the third photo: then a crash."""

    calls = 0

    def detect(self, image):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("detector crashed")
        return super().detect(image)


def test_a_failure_leaves_the_previous_output(run, photos, labelled, tmp_path):
    out = tmp_path / "pseudo"
    shutil.copytree(labelled[0], out)
    before = (out / "pseudo_labels.csv").read_bytes()
    with pytest.raises(RuntimeError, match="detector crashed"):
        pseudo_label(run, photos, out, FailingDetector(), threshold=0.1)
    assert (out / "pseudo_labels.csv").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["pseudo"]


def test_an_output_folder_that_would_lose_data_is_refused(
    run, photos, tmp_path
):
    kept = tmp_path / "notes"
    kept.mkdir()
    (kept / "todo.txt").write_text("mine")
    for out, message in [
        (kept, "not empty and not an earlier pseudo-label output"),
        (run, "overlaps"),
        (photos / "out", "overlaps"),
        (run.parent, "overlaps"),
    ]:
        with pytest.raises(ValueError, match=message):
            pseudo_label(run, photos, out, make_detector("whole"), 0.1)
    assert (kept / "todo.txt").read_text() == "mine"
    assert not (photos / "out").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": 0.1, "precision": 0.9}, "not both"),
        ({"threshold": 3.0}, "threshold must be in"),
        ({"precision": 0.0}, "precision must be in"),
        ({"head": "colour"}, "'colour' is not an id head"),
    ],
)
def test_bad_settings_are_one_line_errors(
    run, photos, tmp_path, kwargs, message
):
    with pytest.raises(ValueError, match=message):
        pseudo_label(
            run, photos, tmp_path / "o", make_detector("whole"), **kwargs
        )
    assert not (tmp_path / "o").exists()


def test_the_list_trains_as_a_pseudo_labels_dataset(run, labelled, tmp_path):
    from grok_tf.training.fit import train

    out = labelled[0]
    rows = read_rows(out)
    raw = yaml.safe_load((run.parent / "spec.yaml").read_text())
    raw["datasets"].append(
        {
            "name": "pseudo",
            "source": "pseudo_labels",
            "root": str(out),
            "of": "toy",
            "images_per_batch": 2,
            "loss_weight": 0.5,
            "feeds": {"product": "product", "colour": "product_id"},
        }
    )
    spec = load_spec(write_spec(run.parent, raw, "pseudo.yaml"))
    pseudo = spec.datasets[1]
    assert pseudo.splits == {"train": "pseudo_labels.csv"}
    split = read_split(spec, pseudo, "train")
    rows_accepted = [r for r in rows if r["accepted"] == "1"]
    assert len(split) == len(rows_accepted)
    # max_distance 2: every crop, whatever was accepted.
    raw["datasets"][1]["max_distance"] = 2
    spec = load_spec(write_spec(run.parent, raw, "pseudo.yaml"))
    split = read_split(spec, spec.datasets[1], "train")
    assert len(split) == 6
    expected = [spec.head("product").classes.index(r["product"]) for r in rows]
    np.testing.assert_array_equal(split.labels["product"], expected)
    np.testing.assert_array_equal(  # colour ids 0/1 stand in for ids
        split.labels["colour"], [int(r["product_id"]) for r in rows]
    )
    # One id space: classes keep their names, no "<dataset>/" prefix.
    assert spec.head("product").classes == ("square", "disc")
    # max_distance re-thresholds without labelling again.
    cut = sorted(float(r["distance"]) for r in rows)[2]
    raw["datasets"][1]["max_distance"] = cut
    spec = load_spec(write_spec(run.parent, raw, "pseudo.yaml"))
    kept = read_split(spec, spec.datasets[1], "train")
    assert len(kept) == sum(float(r["distance"]) <= cut for r in rows)
    history = train(
        write_spec(run.parent, raw, "pseudo.yaml"), tmp_path / "run", verbose=0
    )
    assert np.isfinite(history["loss"][-1])


def test_pseudo_labels_dataset_errors(run, tmp_path):
    raw = yaml.safe_load((run.parent / "spec.yaml").read_text())
    (tmp_path / "p").mkdir()
    (tmp_path / "p/pseudo_labels.csv").write_text("image,product\n")
    raw["datasets"].append(
        {
            "name": "pseudo",
            "source": "pseudo_labels",
            "root": str(tmp_path / "p"),
            "of": "shop",
            "images_per_batch": 2,
            "feeds": {"product": "product"},
        }
    )
    with pytest.raises(
        SpecError, match=r"datasets\[1\]\.of: no dataset 'shop'"
    ):
        load_spec(write_spec(run.parent, raw, "pseudo.yaml"))


def test_cli_writes_the_list_and_names_unreadable_photos(run, photos, tmp_path):
    out = tmp_path / "pseudo"
    command = ["pseudo-label", "--run", run, "--images", photos, "--out", out]
    result = grok_tf(*command, "--threshold", "0.3")
    assert result.returncode == 0, result.stderr
    assert "broken.jpg" in result.stderr
    assert "7 photos, 6 crops" in result.stdout
    assert len(read_rows(out)) == 6
    both = grok_tf(*command, "--threshold", "0.3", "--precision", "0.9")
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_precision_coverage_against_a_hand_count():
    rows = precision_coverage([0.3, 0.1, 0.2, 0.2], [0, 1, 1, 0], [0.2])
    assert rows == [
        {"threshold": 0.2, "accepted": 3, "precision": 0.667, "coverage": 0.75}
    ]


def test_a_listed_gallery_names_products_by_id_or_name(run, photos, tmp_path):
    spec, _ = load_run(run)
    head = spec.head("product")  # classes: square, disc
    data = run.parent / "data"
    listing = tmp_path / "gallery.txt"
    listing.write_text(
        f"{data}/images/val.txt_red_0.jpg, disc\n"
        f"{data}/images/val.txt_red_1.jpg, 0\n"
    )
    gallery = listed_gallery(head, listing)
    assert gallery.ids == [1, 0] and len(gallery.refs) == 2
    folder = tmp_path / "by_product"
    write_image(folder / "disc/a.jpg", COLOURS["red"])
    write_image(folder / "square/b.jpg", COLOURS["blue"])
    assert listed_gallery(head, folder).ids == [1, 0]
    listing.write_text(f"{data}/images/val.txt_red_0.jpg, cube\n")
    with pytest.raises(ValueError, match="product 'cube' is not a class"):
        listed_gallery(head, listing)
    out = tmp_path / "pseudo"
    report = pseudo_label(
        run, photos, out, make_detector("whole"), 2.0, gallery=folder
    )
    assert report["gallery"] == {"images": 2, "catalogue_images": 0}
    rows = read_rows(out)
    # Blue photos are nearest the blue "square", red ones the red "disc".
    assert {r["product"] for r in rows if "p0" in r["source"]} == {"disc"}
    # Class names that are digits (SKUs): a label must name one.
    numbered = dataclasses.replace(head, classes=("10", "20"))
    listing.write_text(f"{data}/images/val.txt_red_0.jpg, 1\n")
    with pytest.raises(ValueError, match="product '1' is not a class"):
        listed_gallery(numbered, listing)


def test_an_id_head_of_several_datasets_products_is_refused(run):
    raw = yaml.safe_load((run.parent / "spec.yaml").read_text())
    raw["datasets"].append({**raw["datasets"][0], "name": "shop"})
    spec = load_spec(write_spec(run.parent, raw, "two_spaces.yaml"))
    with pytest.raises(ValueError, match="holds the products of toy, shop"):
        id_head(spec, "product")
