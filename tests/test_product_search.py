"""Compress a run, index real grocery photos, search them (API and CLI)."""

import json
import shutil

import numpy as np
import pytest

from grok_tf.binary_codes import hamming_distances
from grok_tf.compression import compress_run
from grok_tf.compression import load_hashers
from grok_tf.evaluation import evaluate_run
from grok_tf.hash_index import HashIndex
from grok_tf.product_search import ProductHasher
from grok_tf.product_search import build_index
from grok_tf.product_search import embed_images
from grok_tf.product_search import read_image_refs
from grok_tf.product_search import search_index
from tests.test_cli import grok_tf


def test_read_image_refs_from_a_list_and_a_folder(tmp_path):
    (tmp_path / "a/b").mkdir(parents=True)
    for name in ("a/x.jpg", "a/b/y.PNG", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    paths, ids = read_image_refs(tmp_path / "a")
    assert paths == [str(tmp_path / "a/b/y.PNG"), str(tmp_path / "a/x.jpg")]
    assert ids == ["b/y", "x"]
    listing = tmp_path / "list.txt"
    listing.write_text("# photos\na/x.jpg, sku-1, 7\n\n/abs/z.jpg\n")
    paths, ids = read_image_refs(listing)
    assert paths == [str(tmp_path / "a/x.jpg"), "/abs/z.jpg"]
    assert ids == ["sku-1", "/abs/z.jpg"]
    with pytest.raises(FileNotFoundError, match="no such image folder"):
        read_image_refs(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image"):
        read_image_refs(tmp_path / "empty")


def test_compress_writes_every_hasher(compressed_run):
    summary = json.loads(
        (compressed_run / "hashes/compression.json").read_text()
    )
    assert summary["bits"] == 64 and summary["split"] == "train"
    assert summary["images"] == 264  # train.txt[:10%]
    hashers = load_hashers(compressed_run)
    assert sorted(hashers) == ["catalyzer", "itq", "lsh"]
    x = np.random.default_rng(0).normal(size=(5, 400)).astype("float32")
    for name, hasher in hashers.items():
        codes = hasher(x)
        assert codes.dtype == np.uint8 and codes.shape == (5, 8), name


def test_evaluate_reports_hashes_beside_the_float_embedding(compressed_run):
    entry = evaluate_run(compressed_run)["retrieval"]["product"]
    assert entry["bytes_per_item"] == {
        "float": 1600,
        "catalyzer": 8,
        "lsh": 8,
        "itq": 8,
    }
    for search in ("photo_to_photo", "photo_to_catalogue"):
        assert sorted(entry[search]) == ["catalyzer", "float", "itq", "lsh"]
        for metrics in entry[search].values():
            assert 0.0 <= metrics["recall@1"] <= metrics["recall@10"] <= 1.0


def test_an_indexed_photo_finds_itself_and_bad_photos_are_flagged(
    compressed_run, grocery_photos, tmp_path
):
    listing, paths = grocery_photos
    hasher = ProductHasher(compressed_run)
    index, skipped = build_index(hasher, listing, tmp_path / "index")
    assert skipped == [str(tmp_path / "broken.jpg")]
    assert len(index) == len(paths)
    reopened = HashIndex.load(tmp_path / "index")
    queries = [paths[3], paths[10], str(tmp_path / "broken.jpg")]
    results = search_index(hasher, reopened, queries, k=4)
    assert [r["valid"] for r in results] == [True, True, False]
    assert results[2]["results"] == []
    codes, _ = hasher.hash(queries[:2])
    all_codes, _ = hasher.hash(paths)
    for result, code in zip(results[:2], codes, strict=True):
        best = result["results"][0]
        assert best["path"] == result["image"] and best["distance"] == 0
        # The distances are the true Hamming distances, nearest first.
        truth = np.sort(hamming_distances(code[None], all_codes)[0])[:4]
        assert [r["distance"] for r in result["results"]] == truth.tolist()


def test_embed_images_flags_unreadable_files(compressed_run, tmp_path):
    hasher = ProductHasher(compressed_run)
    (tmp_path / "empty.jpg").write_bytes(b"")
    embeddings, valid = embed_images(
        hasher.model,
        [str(tmp_path / "empty.jpg"), str(tmp_path / "missing.jpg")],
        hasher.spec.model.input_size,
    )
    assert valid.tolist() == [False, False]
    assert embeddings.shape == (2, 400) and not embeddings.any()


def test_index_and_search_commands(compressed_run, grocery_photos, tmp_path):
    listing, paths = grocery_photos
    index = tmp_path / "cli_index"
    result = grok_tf(
        "index", "--run", compressed_run, "--images", listing, "--out", index
    )
    assert result.returncode == 0, result.stderr
    assert f"indexed {len(paths)} images (1 skipped)" in result.stdout
    assert "skipped unreadable image" in result.stderr
    result = grok_tf(
        "search", "--run", compressed_run, "--index", index, paths[5], "-k", "3"
    )
    assert result.returncode == 0, result.stderr
    (found,) = json.loads(result.stdout)
    assert found["valid"] and len(found["results"]) == 3
    assert found["results"][0] == {
        "id": "0",  # the first label of val.txt: the product's class id
        "path": paths[5],
        "distance": 0,
    }
    result = grok_tf("search", "--run", compressed_run, "--index", tmp_path)
    assert result.returncode == 2  # no IMAGE: argparse usage error


@pytest.fixture
def grocery_photos(grok_data, tmp_path):
    """A list of 24 real grocery photos, plus one broken file."""
    root = grok_data / "grocery"
    lines = (root / "val.txt").read_text().splitlines()[:24]
    paths = [str(root / line.split(",")[0]) for line in lines]
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    listing = tmp_path / "photos.txt"
    listing.write_text(
        "\n".join(
            [
                f"{p},{line.split(',')[1]}"
                for p, line in zip(paths, lines, strict=True)
            ]
            + [f"{tmp_path / 'broken.jpg'}, 0"]
        )
        + "\n"
    )
    return listing, paths


@pytest.fixture(scope="module")
def compressed_run(grocery_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("compressed") / "run"
    shutil.copytree(grocery_run, run)
    compress_run(run, bits=64, epochs=2, verbose=0)
    return run
