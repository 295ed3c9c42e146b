"""Tests of `grok_tf.evaluation.figures`: the choices against plain-Python
references, the drawings' frames, `evaluate_run(figures=...)` on the
fixture run (no training) and the `--figures` option of `grok-tf evaluate`."""

import io
import json
import types
import warnings

import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image
from sklearn.metrics import balanced_accuracy_score

from grok_tf.cli import main
from grok_tf.data.sources import Split
from grok_tf.evaluation import evaluate_run
from grok_tf.evaluation import figures
from grok_tf.evaluation.figures import confusion_figure
from grok_tf.evaluation.figures import confusion_matrix
from grok_tf.evaluation.figures import load_images
from grok_tf.evaluation.figures import most_confused_classes
from grok_tf.evaluation.figures import nearest_neighbours
from grok_tf.evaluation.figures import query_rows
from grok_tf.evaluation.figures import retrieval_grid
from grok_tf.inference import predict_split
from grok_tf.run_dir import load_run
from grok_tf.spec.schema import ModelSpec
from tests.helpers import copy_old_run

PNG = b"\x89PNG\r\n\x1a\n"


def reference_neighbours(queries, query_ids, gallery, gallery_ids, k, own):
    """Sort every other gallery item by (-float32 cosine, index)."""
    unit = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    near, hits = [], []
    for q, (x, query_id) in enumerate(zip(queries, query_ids, strict=True)):
        scores = (unit @ (x / np.linalg.norm(x))).astype(np.float32)
        order = sorted(
            (j for j in range(len(gallery)) if own is None or j != own[q]),
            key=lambda j: (-scores[j], j),
        )[:k]
        near.append(order)
        hits.append([gallery_ids[j] == query_id for j in order])
    return np.array(near), np.array(hits)


def test_nearest_neighbours_match_a_sorted_reference_with_ties():
    rng = np.random.default_rng(7)
    gallery = rng.normal(size=(40, 6))
    # Exact ties: copies of rows at other indices, some before the
    # original (a query may tie with an item of lower index than itself).
    gallery[[3, 11, 25]] = gallery[20]
    gallery[30] = gallery[5]
    gallery[12] = 2.5 * gallery[13]  # same direction: the same cosine
    ids = rng.integers(0, 6, 40)
    picked = np.array([0, 5, 13, 20, 30, 39])
    for own in (picked, None):
        got = nearest_neighbours(
            gallery[picked], ids[picked], gallery, ids, k=5, self_positions=own
        )
        want = reference_neighbours(
            gallery[picked], ids[picked], gallery, ids, 5, own
        )
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    # Query 20 ties with 3, 11 and 25 at cosine 1: they come first, by
    # index, and itself never.
    near, _ = nearest_neighbours(
        gallery[[20]], ids[[20]], gallery, ids, k=3, self_positions=[20]
    )
    assert near.tolist() == [[3, 11, 25]]


def test_nearest_neighbours_of_a_gallery_smaller_than_k():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    near, hits = nearest_neighbours(
        gallery, [1, 2, 1], gallery, [1, 2, 1], k=5, self_positions=[0, 1, 2]
    )
    assert near.tolist() == [[2, 1], [2, 0], [0, 1]]
    assert hits.tolist() == [[True, False], [False, False], [True, False]]


def test_query_rows_take_one_row_of_each_equal_stretch():
    ids = np.where(np.arange(103) % 10 == 3, -1, np.arange(103) // 4)
    labelled = np.flatnonzero(ids >= 0)
    for seed in range(5):
        rows = query_rows(ids, count=8, seed=seed)
        assert len(rows) == 8 and (ids[rows] >= 0).all()
        offset = np.random.default_rng(seed).random()
        stretch = len(labelled) / 8
        positions = [int((i + offset) * stretch) for i in range(8)]
        assert rows.tolist() == labelled[positions].tolist()
        np.testing.assert_array_equal(rows, query_rows(ids, 8, seed))
    assert query_rows(ids, count=500).tolist() == labelled.tolist()


def test_confusion_counts_and_the_most_confused_classes():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 9, 300)
    predicted = np.where(rng.uniform(size=300) < 0.6, labels, 0)
    predicted[labels == 7] = 8  # 7 is always read as 8
    weights = (rng.uniform(size=300) < 0.9).astype("float32")
    counts = confusion_matrix(predicted, labels, weights, 10)
    want = np.zeros((10, 10), int)
    for t, p, w in zip(labels, predicted, weights, strict=True):
        want[t, p] += w > 0
    np.testing.assert_array_equal(counts, want)

    # Reference: off-diagonal cells by (-count, true, predicted), adding
    # true then predicted class, then the other classes by support.
    cells = sorted(
        (-want[t, p], t, p)
        for t in range(10)
        for p in range(10)
        if t != p and want[t, p]
    )
    for limit in (1, 2, 3, 5, 9, 12):
        chosen = []
        for _, t, p in cells:
            for c in (t, p):
                if c not in chosen and len(chosen) < limit:
                    chosen.append(c)
        support = want.sum(0) + want.sum(1)
        for c in sorted(range(10), key=lambda c: (-support[c], c)):
            if support[c] and c not in chosen and len(chosen) < limit:
                chosen.append(c)
        got = most_confused_classes(counts, limit)
        assert got.tolist() == sorted(chosen), limit
    assert 7 in most_confused_classes(counts, 2)  # the 7 -> 8 cell leads
    assert 9 not in most_confused_classes(counts, 12)  # no example


def test_a_perfect_head_shows_its_largest_classes():
    counts = np.diag([5, 0, 9, 2, 7])
    assert most_confused_classes(counts, 3).tolist() == [0, 2, 4]
    assert most_confused_classes(counts, 12).tolist() == [0, 2, 3, 4]


def colour_pixels(path, hex_colour):
    rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    pixels = np.asarray(Image.open(path).convert("RGB"))
    return int(np.all(pixels == rgb, axis=-1).sum())


def test_retrieval_grid_frames_hits_green_and_misses_red(tmp_path):
    grey = np.full((2, 16, 16, 3), 128.0)
    neighbours = np.full((2, 3, 16, 16, 3), 128.0)
    one_hit = tmp_path / "one_hit.png"
    retrieval_grid(
        grey,
        neighbours,
        [[True, False, False], [False, False, False]],
        one_hit,
        "toy",
        ["a", "b"],
        [["a", "b", "c"], ["c", "a", "c"]],
    )
    assert one_hit.read_bytes().startswith(PNG)
    assert Image.open(one_hit).size == (560, 360)  # 4 x 1.4 in, 2 x 1.5 + .6
    green = colour_pixels(one_hit, figures.HIT_COLOUR)
    red = colour_pixels(one_hit, figures.MISS_COLOUR)
    assert green > 200 and red > 4 * green  # 1 frame vs 5
    all_hits = tmp_path / "all_hits.png"
    retrieval_grid(grey, neighbours, np.ones((2, 3), bool), all_hits, "toy")
    assert colour_pixels(all_hits, figures.MISS_COLOUR) == 0
    assert colour_pixels(all_hits, figures.HIT_COLOUR) > 5 * green
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "all_hits.png",
        "one_hit.png",
    ]


def test_confusion_figure_is_a_png_sized_by_its_classes(tmp_path):
    path = tmp_path / "c.png"
    names = [f"a very long class name {i}" for i in range(8)]
    assert confusion_figure(np.eye(8, dtype=int) * 3, names, path, "t") == path
    assert path.read_bytes().startswith(PNG)
    assert Image.open(path).size == (650, 650)  # 2.5 + 0.5 x 8 inches


def test_load_images_reads_files_and_streamed_splits(tmp_path):
    def png(colour, size=(20, 30)):
        buffer = io.BytesIO()
        Image.new("RGB", size, colour).save(buffer, "PNG")
        return buffer.getvalue()

    (tmp_path / "blue.png").write_bytes(png((0, 0, 255)))
    refs = ["tfds:toy/0", "tfds:toy/1", "tfds:toy/2"]
    colours = [(255, 0, 0), (0, 255, 0), (9, 9, 9)]
    streamed = Split(
        "toy",
        "val",
        refs,
        {},
        lambda: tf.data.Dataset.from_tensor_slices(
            (refs, [png(c) for c in colours])
        ),
    )
    files = Split("files", "val", [str(tmp_path / "blue.png")], {})
    spec = types.SimpleNamespace(model=ModelSpec(input_size=12))
    wanted = [refs[1], str(tmp_path / "blue.png"), refs[0]]
    images = load_images(spec, wanted, [streamed, files])
    assert set(images) == set(wanted)
    for ref, colour in [
        (refs[0], colours[0]),
        (refs[1], colours[1]),
        (str(tmp_path / "blue.png"), (0, 0, 255)),
    ]:
        assert images[ref].shape == (12, 12, 3) and images[ref].dtype == "uint8"
        assert (images[ref] == colour).all(), ref


def add_catalogue(run):
    """Names a catalogue of 3 training photos for `product` (square: 0,
    disc: 1) in the run's spec."""
    folder = run.parent
    (folder / "data/catalogue.csv").write_text(
        "image,id\nimages/train.txt_red_0.jpg,0\n"
        "images/train.txt_red_1.jpg,1\nimages/train.txt_blue_0.jpg,0\n"
    )
    raw = yaml.safe_load((run / "spec.yaml").read_text())
    raw["datasets"][0]["catalogue"] = {
        "file": "catalogue.csv",
        "image": "image",
        "id": "id",
        "head": "product",
    }
    (run / "spec.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def test_evaluate_with_figures_writes_them_and_balanced_top1(tmp_path):
    run = copy_old_run(tmp_path / "old")
    add_catalogue(run)
    folder = tmp_path / "figures"
    report = evaluate_run(run, figures=folder)
    assert report["retrieval"]["product"]["photo_to_catalogue"]["float"]
    # `same` (pairwise) has the ids of `product`: one grid (and one against
    # the catalogue); `shape` and `tags` are multi-label: no confusion.
    names = [
        "product_retrieval.png",
        "product_catalogue_retrieval.png",
        "colour_confusion.png",
        "product_confusion.png",
    ]
    assert report["figures"] == [str(folder / name) for name in names]
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    sizes = {  # 6 val photos: 6 rows; 3 and 2 classes: the 4-inch minimum
        "product_retrieval.png": (840, 960),  # 1 + 5 columns
        "product_catalogue_retrieval.png": (560, 960),  # 1 + 3 columns
        "colour_confusion.png": (400, 400),
        "product_confusion.png": (400, 400),
    }
    for name, size in sizes.items():
        assert (folder / name).read_bytes().startswith(PNG)
        assert Image.open(folder / name).size == size, name
        assert (folder / name).stat().st_size > 5_000, name

    spec, model = load_run(run)
    outputs, labels, weights, _ = predict_split(spec, model, "val")
    for head in spec.heads:
        got = report["heads"].get(head.name, {})
        if head.name not in outputs or head.multilabel:
            assert "balanced_top1" not in got, head.name
            continue
        keep = weights[head.name] > 0
        with warnings.catch_warnings():  # predictions of absent classes
            warnings.simplefilter("ignore")
            want = balanced_accuracy_score(
                labels[head.name][keep],
                outputs[head.name][keep].argmax(-1),
            )
        assert got["balanced_top1"] == pytest.approx(want, abs=1e-12)


def test_the_cli_passes_figures_and_prints_their_paths(monkeypatch, capsys):
    calls = []

    def evaluate(run, **options):
        calls.append((run, options))
        return {"figures": [f"{options['figures']}/x_confusion.png"]}

    monkeypatch.setattr(
        "grok_tf.evaluation.evaluate.evaluate_run", evaluate, raising=True
    )
    assert main(["evaluate", "--run", "r", "--figures", "out/figs"]) == 0
    assert calls == [
        ("r", {"split": "val", "verbose": 0, "figures": "out/figs"})
    ]
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"figures": ["out/figs/x_confusion.png"]}
    assert main(["evaluate", "--run", "r"]) == 0
    assert calls[-1][1]["figures"] is None


def test_a_file_in_the_way_of_the_figures_fails_before_evaluating(tmp_path):
    (tmp_path / "taken").write_text("")
    for folder in (tmp_path / "taken", tmp_path / "taken/figures"):
        # Raised before the run is read: `no_run` does not exist.
        with pytest.raises(FileExistsError, match="a file is in the way"):
            evaluate_run(tmp_path / "no_run", figures=folder)
