"""Compress a run, index real grocery photos, search them (API and CLI)."""

import json
import shutil

import numpy as np
import pytest

from grok_tf.compression.binary_codes import hamming_distances
from grok_tf.compression.compress import compress_run
from grok_tf.compression.compress import load_hasher
from grok_tf.compression.compress import load_hashers
from grok_tf.compression.hashers.catalyzer import CatalyzerHasher
from grok_tf.compression.hashers.catalyzer import build_catalyzer
from grok_tf.evaluation.evaluate import evaluate_run
from grok_tf.inference import embed_images
from grok_tf.search.hash_index import HashIndex
from grok_tf.search.hash_index import hasher_fingerprint
from grok_tf.search.product_search import ProductHasher
from grok_tf.search.product_search import build_index
from grok_tf.search.product_search import read_image_refs
from grok_tf.search.product_search import search_index
from tests.helpers import grok_tf
from tests.search.test_hash_index import as_old_version


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
    assert list(hashers) == ["catalyzer", "lsh", "itq"]
    assert summary["hashers"] == list(hashers)
    x = np.random.default_rng(0).normal(size=(5, 400)).astype("float32")
    for name, hasher in hashers.items():
        codes = hasher.codes(x)
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
    hasher, grocery_photos, tmp_path
):
    listing, paths = grocery_photos
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
        truth = hamming_distances(code[None], all_codes)[0]
        # The photo's own code: distance 0 (near-duplicates may share it).
        assert truth[paths.index(result["image"])] == 0
        # The promised order: distance, then the order of indexing.
        expected = ranked_by_rule(truth)[:4]
        assert [r["path"] for r in result["results"]] == [
            paths[i] for i in expected
        ]
        assert [r["distance"] for r in result["results"]] == (
            truth[expected].tolist()
        )


def test_embed_images_flags_unreadable_files(hasher, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    embeddings, valid = embed_images(
        hasher.model,
        [str(tmp_path / "empty.jpg"), str(tmp_path / "missing.jpg")],
        hasher.spec.model.input_size,
    )
    assert valid.tolist() == [False, False]
    assert embeddings.shape == (2, 400) and not embeddings.any()


def test_index_and_search_commands(
    compressed_run, hasher, other_run, other_hasher, grocery_photos, tmp_path
):
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
    # Distance, then indexing order; the photo finds itself at distance 0
    # unless 3 photos indexed before it share its code (near-duplicates).
    ranks = [(r["distance"], paths.index(r["path"])) for r in found["results"]]
    assert ranks == sorted(ranks) and ranks[0][0] == 0
    assert (0, 5) in ranks or all(rank < (0, 5) for rank in ranks)
    # Ids: the first label of each val.txt line, the product's class id.
    lines = listing.read_text().splitlines()
    ids = {path: label.strip() for path, label in (x.split(",") for x in lines)}
    assert [r["id"] for r in found["results"]] == [
        ids[r["path"]] for r in found["results"]
    ]
    # A sharded hnsw index, searched with a queue longer than the index:
    # the exact distances again, whatever the shards and the graph.
    sharded = tmp_path / "sharded"
    result = grok_tf(
        "index", "--run", compressed_run, "--images", listing, "--out", sharded,
        "--kind", "hnsw", "--M", "8", "--shard-size", "7",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"kind": "hnsw", "M": 8, "efConstruction": 40' in result.stdout
    shards = json.loads((sharded / "shards.json").read_text())["shards"]
    assert [s["count"] for s in shards] == [7] * (len(paths) // 7) + (
        [len(paths) % 7] if len(paths) % 7 else []
    )
    result = grok_tf(
        "search", "--run", compressed_run, "--index", sharded, paths[5],
        "-k", "3", "--ef-search", "500",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (in_shards,) = json.loads(result.stdout)
    assert [r["distance"] for r in in_shards["results"]] == [
        r["distance"] for r in found["results"]
    ]
    result = grok_tf(
        "search", "--run", compressed_run, "--index", index, paths[5],
        "--nprobe", "4",
    )  # fmt: skip
    assert result.returncode == 2
    assert "a flat index's search settings are none" in result.stderr
    result = grok_tf("search", "--run", compressed_run, "--index", tmp_path)
    assert result.returncode == 2  # no IMAGE: argparse usage error
    # The run's ITQ codes are not the Catalyzer codes the index holds.
    itq = ProductHasher(compressed_run, "itq").fingerprint
    result = grok_tf(
        "search", "--run", compressed_run, "--index", index, paths[5],
        "--hasher", "itq",
    )  # fmt: skip
    assert result.returncode == 2
    assert f"not this hasher {itq[:12]}" in result.stderr

    # The index records the run's hasher, the same in every process; another
    # run's hasher of the same length is refused, in one line.
    fingerprint = json.loads((index / "index.json").read_text())["hasher"]
    assert fingerprint == hasher.fingerprint
    other = other_hasher.fingerprint
    result = grok_tf(
        "search", "--run", other_run, "--index", index, paths[5], "-k", "3"
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        f"grok-tf: error: hash index {index} was built with hasher "
        f"{fingerprint[:12]}, not this hasher {other[:12]}: search it with "
        "the run that built it, or rebuild it with `grok-tf index`"
    )


def test_another_runs_hasher_is_refused(
    compressed_run, hasher, other_hasher, tmp_path
):
    assert other_hasher.bits == hasher.bits  # the same length, but
    assert other_hasher.fingerprint != hasher.fingerprint  # another hasher
    copy = ProductHasher(shutil.copytree(compressed_run, tmp_path / "copy"))
    assert copy.fingerprint == hasher.fingerprint
    # An index of the run's codes (`build_index` records the fingerprint
    # too: see test_index_and_search_commands).
    index = HashIndex(hasher.bits, hasher=hasher.fingerprint)
    index.add(np.zeros((3, hasher.bits // 8), np.uint8), ["a", "b", "c"])
    index.save(tmp_path / "index")
    query = [str(tmp_path / "never_read.jpg")]  # refused before hashing

    for refuse in (
        lambda: search_index(
            other_hasher, HashIndex.load(index.directory), query
        ),
        lambda: HashIndex.load(index.directory, other_hasher.fingerprint),
    ):
        with pytest.raises(ValueError) as refused:
            refuse()
        message = str(refused.value)
        assert str(tmp_path / "index") in message and "\n" not in message
        assert f"built with hasher {hasher.fingerprint[:12]}" in message
        assert f"not this hasher {other_hasher.fingerprint[:12]}" in message
    # The same run's hasher (another instance, a copy of the run) is the
    # index's: accepted (searching is test_an_indexed_photo_finds_itself).
    HashIndex.load(index.directory, copy.fingerprint)

    # An index written before fingerprints: refused, asking for a rebuild.
    as_old_version(tmp_path / "index", 1)
    old = HashIndex.load(tmp_path / "index")
    with pytest.raises(ValueError, match="no hasher fingerprint.*rebuild"):
        search_index(hasher, old, query)


def test_the_catalyzer_fingerprint_is_the_one_indexes_recorded(
    compressed_run, hasher
):
    """Model weights, then the Catalyzer model's: as before the registry."""
    catalyzer = load_hasher(compressed_run).model
    model_weights = hasher.model.get_weights()
    assert hasher.hasher.name == "catalyzer" and hasher.bits == 64
    assert hasher.fingerprint == hasher_fingerprint(
        "catalyzer",
        64,
        [*model_weights, *catalyzer.get_weights()],
        input_size=32,
        model_weights=len(model_weights),
    )


def test_another_hasher_of_the_run_by_name(
    compressed_run, hasher, grocery_photos
):
    itq = ProductHasher(compressed_run, "itq")
    assert itq.bits == hasher.bits and itq.fingerprint != hasher.fingerprint
    assert ProductHasher(compressed_run, "itq").fingerprint == itq.fingerprint
    photos = grocery_photos[1][:3]
    embeddings, _ = embed_images(hasher.model, photos, 32)
    codes, valid = itq.hash(photos)
    assert valid.all()
    np.testing.assert_array_equal(
        codes, load_hasher(compressed_run, "itq").codes(embeddings)
    )
    # An index of the Catalyzer's codes refuses the run's ITQ codes.
    index = HashIndex(hasher.bits, hasher=hasher.fingerprint)
    with pytest.raises(ValueError, match="not this hasher"):
        search_index(itq, index, photos[:1])


def ranked_by_rule(distances):
    """Item positions by distance, then position: the documented tie rule."""
    return np.lexsort((np.arange(len(distances)), distances))


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


@pytest.fixture(scope="module")
def hasher(compressed_run):
    return ProductHasher(compressed_run)


@pytest.fixture(scope="module")
def other_hasher(other_run):
    return ProductHasher(other_run)


@pytest.fixture(scope="module")
def other_run(compressed_run, tmp_path_factory):
    """Another run's hasher with codes of the same length.

    A copy of `compressed_run` whose Catalyzer is another (untrained, seed
    1) one of the same shape: its codes have the same length and mean
    nothing to an index built by `compressed_run`.
    """
    run = tmp_path_factory.mktemp("other") / "run"
    shutil.copytree(compressed_run, run)
    catalyzer = load_hasher(compressed_run).model
    untrained = build_catalyzer(
        catalyzer.input_shape[-1], bits=catalyzer.output_shape[-1], seed=1
    )
    CatalyzerHasher(model=untrained).save(run / "hashes")
    return run
