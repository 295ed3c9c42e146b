import json

import faiss
import numpy as np
import pytest

from grok_tf.evaluation.retrieval_metrics import rank_gallery
from grok_tf.io import atomic_files
from grok_tf.search.hash_index import FILES
from grok_tf.search.hash_index import HashIndex
from grok_tf.search.hash_index import hasher_fingerprint


def random_codes(rng, n, bits=256):
    return np.packbits(
        rng.integers(0, 2, (n, bits), dtype=np.uint8), axis=1, bitorder="little"
    )


def hamming(a, b):
    """Reference [len(a), len(b)] Hamming distances of packed codes."""
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(-1)


def catalog(n, seed=0):
    rng = np.random.default_rng(seed)
    codes = random_codes(rng, n)
    ids = [f"sku-{i}" for i in range(n)]
    paths = [f"images/{i}.jpg" for i in range(n)]
    return codes, ids, paths


def filled_index(n=300, seed=0):
    codes, ids, paths = catalog(n, seed)
    index = HashIndex()
    index.add(codes[: n // 3], ids[: n // 3], paths[: n // 3])
    index.add(codes[n // 3 :], ids[n // 3 :], paths[n // 3 :])
    return index, codes


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name[0] == ".")


def as_old_version(directory, version):
    """Rewrites a saved index as grok_tf wrote it before version 3.

    Versions 1 and 2 kept the ids and paths as JSON lists in `items.json`
    beside `index.faiss`; version 1 had no `hasher`. Returns the items.
    """
    index = HashIndex.load(directory, mmap=False)
    items = {
        "format": "grok_tf.HashIndex",
        "version": version,
        "bits": index.bits,
        "hasher": index.hasher,
        "ids": list(index.column("ids")),
        "paths": list(index.column("paths")),
    }
    if version == 1:
        del items["hasher"]
    for name in FILES:
        if name != "index.faiss":
            (directory / name).unlink()
    (directory / "items.json").write_text(json.dumps(items))
    return items


def test_search_returns_the_true_nearest_with_their_ids_and_paths():
    index, codes = filled_index()
    rng = np.random.default_rng(1)
    # Stored codes with 0-3 flipped bits, and unrelated random codes.
    queries = codes[rng.choice(len(codes), 20, replace=False)].copy()
    for query in queries[:10]:
        for bit in rng.choice(256, rng.integers(0, 4), replace=False):
            query[bit // 8] ^= np.uint8(1 << (bit % 8))
    queries[10:] = random_codes(rng, 10)
    reference = hamming(queries, codes)

    results = index.search(queries, k=7)

    assert len(results) == len(queries)
    for row, found in zip(reference, results, strict=True):
        distances = [item["distance"] for item in found]
        assert distances == np.sort(row)[:7].tolist()
        for item in found:
            position = int(item["id"].removeprefix("sku-"))
            assert item["path"] == f"images/{position}.jpg"
            assert row[position] == item["distance"]
        assert len({item["id"] for item in found}) == 7
    # The perturbed stored codes find their source first.
    assert all(found[0]["distance"] <= 3 for found in results[:10])


def test_search_arrays_match_the_numpy_reference():
    index, codes = filled_index()
    queries = random_codes(np.random.default_rng(2), 5)
    reference = hamming(queries, codes)

    distances, positions = index.search_arrays(queries, k=300)

    assert distances.dtype == np.int32 and positions.dtype == np.int64
    assert distances.shape == positions.shape == (5, 300)
    np.testing.assert_array_equal(distances, np.sort(reference, axis=1))
    np.testing.assert_array_equal(
        np.take_along_axis(reference, positions, axis=1), distances
    )
    assert all(sorted(row) == list(range(300)) for row in positions.tolist())


def test_k_larger_than_the_index_returns_every_item():
    codes, ids, paths = catalog(3)
    index = HashIndex()
    index.add(codes, ids)

    results = index.search(codes, k=10)

    assert [len(found) for found in results] == [3, 3, 3]
    assert [found[0]["id"] for found in results] == ids
    assert all(found[0]["distance"] == 0 for found in results)
    assert {item["path"] for found in results for item in found} == {""}


def test_empty_index_gives_empty_lists():
    index = HashIndex()
    queries = random_codes(np.random.default_rng(0), 2)

    assert len(index) == 0
    assert index.search(queries, k=5) == [[], []]
    distances, positions = index.search_arrays(queries, k=5)
    assert distances.shape == positions.shape == (2, 0)


def test_other_widths_and_non_contiguous_codes():
    rng = np.random.default_rng(3)
    codes = random_codes(rng, 40, bits=64)
    index = HashIndex(bits=64)
    index.add(codes[::2], range(20))  # a strided view, integer ids
    queries = np.asfortranarray(codes[1:6])

    found = index.search(queries, k=1)

    reference = hamming(queries, codes[::2])
    assert index.bits == 64 and len(index) == 20
    assert [f[0]["distance"] for f in found] == reference.min(1).tolist()
    assert [reference[i, int(f[0]["id"])] for i, f in enumerate(found)] == [
        f[0]["distance"] for f in found
    ]


def test_save_load_round_trip_gives_identical_results(tmp_path):
    index, codes = filled_index()
    queries = random_codes(np.random.default_rng(4), 8)

    index.save(tmp_path / "hashes")
    loaded = HashIndex.load(tmp_path / "hashes")

    assert len(loaded) == len(index) and loaded.bits == index.bits
    assert loaded.search(queries, k=10) == index.search(queries, k=10)
    assert sorted(p.name for p in (tmp_path / "hashes").iterdir()) == sorted(
        FILES
    )
    assert leftovers(tmp_path) == []


def test_saving_over_an_index_replaces_it(tmp_path):
    first, _ = filled_index(300, seed=0)
    second, codes = filled_index(60, seed=1)
    first.save(tmp_path / "hashes")

    second.save(tmp_path / "hashes")

    loaded = HashIndex.load(tmp_path / "hashes")
    assert len(loaded) == 60
    assert loaded.search(codes[:4], k=3) == second.search(codes[:4], k=3)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("existing", [True, False])
def test_a_failed_save_leaves_the_previous_index(
    tmp_path, monkeypatch, existing
):
    old, codes = filled_index(50)
    if existing:
        old.save(tmp_path / "hashes")
    new, _ = filled_index(80, seed=1)

    def crash(index, path):
        with open(path, "wb") as f:
            f.write(b"half an index")
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index_binary", crash)
    with pytest.raises(OSError, match="disk full"):
        new.save(tmp_path / "hashes")

    assert leftovers(tmp_path) == []
    if existing:
        loaded = HashIndex.load(tmp_path / "hashes")
        assert len(loaded) == 50
        assert loaded.search(codes, k=2) == old.search(codes, k=2)
    else:
        assert not (tmp_path / "hashes").exists()


def test_a_failed_rename_puts_the_previous_index_back(tmp_path, monkeypatch):
    old, codes = filled_index(50)
    old.save(tmp_path / "hashes")
    new, _ = filled_index(80, seed=1)
    real_replace = atomic_files.os.replace

    def replace(source, target):
        if ".partial-" in str(source):
            raise OSError("rename failed")
        real_replace(source, target)

    monkeypatch.setattr(atomic_files.os, "replace", replace)
    with pytest.raises(OSError, match="rename failed"):
        new.save(tmp_path / "hashes")

    assert len(HashIndex.load(tmp_path / "hashes")) == 50
    assert leftovers(tmp_path) == []


def test_save_refuses_to_replace_a_directory_that_is_not_an_index(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"jpeg")
    index, _ = filled_index(10)

    with pytest.raises(FileExistsError, match="cat.jpg"):
        index.save(tmp_path / "photos")

    assert (tmp_path / "photos" / "cat.jpg").read_bytes() == b"jpeg"


@pytest.mark.parametrize(
    "codes, match",
    [
        (np.zeros((2, 32), np.float32), "uint8.*float32"),
        (np.zeros((2, 256), np.uint8), r"\[n, 32\].*\(2, 256\)"),
        (np.zeros((2, 16), np.uint8), r"\[n, 32\].*\(2, 16\)"),
        (np.zeros(32, np.uint8), r"\[n, 32\].*\(32,\)"),
        (np.zeros((2, 32), bool), "uint8.*bool"),
    ],
)
def test_bad_codes_are_rejected(codes, match):
    index, _ = filled_index(10)

    with pytest.raises(ValueError, match="codes must .*" + match):
        HashIndex().add(codes, ["a"] * len(codes))
    with pytest.raises(ValueError, match="codes must .*" + match):
        index.search(codes)


def test_bad_ids_paths_bits_and_k_are_rejected():
    codes, ids, paths = catalog(4)
    index = HashIndex()

    with pytest.raises(ValueError, match="ids has 3 entries but codes has 4"):
        index.add(codes, ids[:3])
    with pytest.raises(ValueError, match="paths has 5 entries .* 4 rows"):
        index.add(codes, ids, paths + ["extra.jpg"])
    with pytest.raises(ValueError, match=r"ids\[2\] must be a string"):
        index.add(codes, ["a", "b", None, "d"])
    with pytest.raises(ValueError, match="ids must be a 1-D sequence"):
        index.add(codes[:1], "sku-1")
    with pytest.raises(ValueError, match="bits must be a positive multiple"):
        HashIndex(bits=100)
    index.add(codes, ids, paths)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(codes, k=0)
    assert len(index) == 4  # the failed adds stored nothing


def test_load_errors_name_the_missing_or_inconsistent_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        HashIndex.load(tmp_path / "nowhere")

    index, _ = filled_index(10)
    index.save(tmp_path / "hashes")
    meta_path = tmp_path / "hashes" / "index.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "count": 9}))
    with pytest.raises(
        ValueError, match="ids.offsets.npy holds 11 offsets; 9 items need 10"
    ):
        HashIndex.load(tmp_path / "hashes")
    meta_path.write_text(json.dumps(meta))
    np.save(tmp_path / "hashes" / "paths.data.npy", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="paths.offsets.npy must run from 0"):
        HashIndex.load(tmp_path / "hashes")
    np.save(tmp_path / "hashes" / "paths.data.npy", np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="paths.data.npy must hold a 1-D"):
        HashIndex.load(tmp_path / "hashes")
    (tmp_path / "hashes" / "paths.data.npy").write_bytes(b"\x93NUMPY")
    with pytest.raises(ValueError, match="paths.data.npy is not a valid"):
        HashIndex.load(tmp_path / "hashes")

    index.save(tmp_path / "hashes")
    items = as_old_version(tmp_path / "hashes", 2)
    items_path = tmp_path / "hashes" / "items.json"
    items["ids"].pop()
    items["paths"].pop()
    items_path.write_text(json.dumps(items))
    with pytest.raises(
        ValueError, match="index.faiss holds 10 codes but .*items.json lists 9"
    ):
        HashIndex.load(tmp_path / "hashes")

    (tmp_path / "hashes" / "index.faiss").unlink()
    with pytest.raises(FileNotFoundError, match="index.faiss is missing"):
        HashIndex.load(tmp_path / "hashes")


def tie_heavy_catalog(n=600, seed=5):
    """Codes drawn from 4 base codes and their 1-bit variants: many ties."""
    rng = np.random.default_rng(seed)
    base = random_codes(rng, 4)
    codes = base[rng.integers(0, 4, n)]
    flipped = rng.random(n) < 0.3
    shifts = rng.integers(0, 8, flipped.sum()).astype(np.uint8)
    codes[flipped, 0] ^= np.left_shift(np.uint8(1), shifts)
    queries = np.concatenate([base, codes[:3], random_codes(rng, 2)])
    return codes, queries


def rule_reference(queries, codes, k):
    """The documented order: distance ascending, then position ascending."""
    reference = hamming(queries, codes)
    order = np.stack(
        [np.lexsort((np.arange(len(codes)), row))[:k] for row in reference]
    )
    return np.take_along_axis(reference, order, 1), order


@pytest.mark.parametrize("k", [1, 5, 16, 100, 599, 600])
def test_ties_are_broken_by_position_with_many_equal_codes(k):
    codes, queries = tie_heavy_catalog()
    index = HashIndex()
    index.add(codes[:250], range(250))
    index.add(codes[250:], range(250, 600))
    expected_d, expected_p = rule_reference(queries, codes, k)

    distances, positions = index.search_arrays(queries, k=k)

    np.testing.assert_array_equal(distances, expected_d)
    np.testing.assert_array_equal(positions, expected_p)
    found = index.search(queries, k=k)
    assert [[int(item["id"]) for item in row] for row in found] == (
        expected_p.tolist()
    )


class TieShufflingFaiss:
    """A faiss index that returns equal distances in the least kind order.

    Its answers are valid for faiss's contract (the k smallest distances,
    ascending), but among items tied at a distance it prefers the highest
    positions and lists them last-added first; range search results come
    reversed. HashIndex must not depend on faiss's order of ties.
    """

    def __init__(self, index, codes):
        self._index, self._codes = index, codes

    def __getattr__(self, name):
        return getattr(self._index, name)

    def search(self, queries, k):
        distances = hamming(queries, self._codes)
        positions = np.arange(len(self._codes))
        order = np.stack(
            [np.lexsort((-positions, row))[:k] for row in distances]
        )
        return np.take_along_axis(distances, order, 1).astype(np.int32), order

    def range_search(self, queries, radius):
        lims, found_d, found_p = self._index.range_search(queries, radius)
        for lo, hi in zip(lims[:-1], lims[1:], strict=True):
            found_d[lo:hi] = found_d[lo:hi][::-1].copy()
            found_p[lo:hi] = found_p[lo:hi][::-1].copy()
        return lims, found_d, found_p


def test_the_tie_rule_does_not_rely_on_the_order_of_faiss():
    codes, queries = tie_heavy_catalog()
    index = HashIndex()
    index.add(codes, range(len(codes)))
    index._index = TieShufflingFaiss(index._index, codes)

    for k in (1, 5, 40, 599, 600):
        expected_d, expected_p = rule_reference(queries, codes, k)
        distances, positions = index.search_arrays(queries, k=k)
        np.testing.assert_array_equal(distances, expected_d, err_msg=str(k))
        np.testing.assert_array_equal(positions, expected_p, err_msg=str(k))


def test_search_and_retrieval_metrics_share_one_tie_rule():
    codes, queries = tie_heavy_catalog()
    index = HashIndex()
    index.add(codes, range(len(codes)))

    _, positions = index.search_arrays(queries, k=50)

    np.testing.assert_array_equal(
        positions, rank_gallery(queries, codes, metric="hamming", top=50)
    )


HASHER_A = hasher_fingerprint("catalyzer", 256, [np.ones((4, 2), np.float32)])
HASHER_B = hasher_fingerprint("catalyzer", 256, [np.zeros((4, 2), np.float32)])


def test_hasher_fingerprint_depends_on_every_part():
    weights = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3)]
    reference = hasher_fingerprint("catalyzer", 64, weights, input_size=32)
    copies = [w.copy() for w in weights]
    variants = [
        hasher_fingerprint("itq", 64, weights, input_size=32),
        hasher_fingerprint("catalyzer", 128, weights, input_size=32),
        hasher_fingerprint("catalyzer", 64, weights, input_size=64),
        hasher_fingerprint("catalyzer", 64, weights),
        hasher_fingerprint("catalyzer", 64, weights[:1], input_size=32),
        hasher_fingerprint(
            "catalyzer", 64, [weights[0].T, weights[1]], input_size=32
        ),
        hasher_fingerprint(  # the same bytes, another shape
            "catalyzer",
            64,
            [weights[0].reshape(3, 2), weights[1]],
            input_size=32,
        ),
        hasher_fingerprint(
            "catalyzer",
            64,
            [weights[0].astype(np.float64), weights[1]],
            input_size=32,
        ),
        hasher_fingerprint(
            "catalyzer",
            64,
            [weights[0], np.nextafter(weights[1], 2)],
            input_size=32,
        ),
    ]
    assert hasher_fingerprint("catalyzer", 64, copies, input_size=32) == (
        reference
    )
    # The same values in another byte order or memory layout.
    assert reference == hasher_fingerprint(
        "catalyzer",
        64,
        [np.asfortranarray(weights[0].astype(">f4")), weights[1]],
        input_size=32,
    )
    assert len(set(variants) | {reference}) == len(variants) + 1
    assert all(len(f) == 64 and int(f, 16) >= 0 for f in variants)


def test_an_index_refuses_another_hasher(tmp_path):
    codes, ids, paths = catalog(20)
    index = HashIndex(hasher=HASHER_A)
    index.add(codes, ids, paths)
    index.save(tmp_path / "shelf")

    loaded = HashIndex.load(tmp_path / "shelf")
    assert loaded.hasher == HASHER_A and loaded.directory == tmp_path / "shelf"
    loaded.check_hasher(HASHER_A)
    assert HashIndex.load(tmp_path / "shelf", hasher=HASHER_A).search(
        codes[:2], k=1
    ) == index.search(codes[:2], k=1)
    with pytest.raises(ValueError) as refused:
        HashIndex.load(tmp_path / "shelf", hasher=HASHER_B)
    message = str(refused.value)
    assert "\n" not in message
    assert str(tmp_path / "shelf") in message
    assert f"built with hasher {HASHER_A[:12]}, not this hasher " in message
    assert HASHER_B[:12] in message and HASHER_A not in message
    with pytest.raises(ValueError, match=HASHER_B[:12]):
        loaded.check_hasher(HASHER_B)
    with pytest.raises(ValueError, match="the hash index was built with"):
        HashIndex(hasher=HASHER_A).check_hasher(HASHER_B)  # never saved


def test_a_version_1_index_loads_but_no_hasher_is_trusted(tmp_path):
    codes, ids, paths = catalog(12)
    index = HashIndex()
    index.add(codes, ids, paths)
    index.save(tmp_path / "old")
    as_old_version(tmp_path / "old", 1)  # written before fingerprints

    old = HashIndex.load(tmp_path / "old")

    assert old.hasher is None and len(old) == 12
    assert old.search(codes[:3], k=2) == index.search(codes[:3], k=2)
    with pytest.raises(ValueError) as refused:
        HashIndex.load(tmp_path / "old", hasher=HASHER_A)
    message = str(refused.value)
    assert "\n" not in message and str(tmp_path / "old") in message
    assert "records no hasher fingerprint (format version 1" in message
    assert HASHER_A[:12] in message and "rebuild it" in message
    # Saved again, it is version 3 and still records no hasher.
    old.save(tmp_path / "old")
    with pytest.raises(ValueError, match="built without a hasher finger"):
        HashIndex.load(tmp_path / "old", hasher=HASHER_A)


@pytest.mark.parametrize(
    "change, match",
    [
        (
            {"version": 4},
            "format version 4; this grok_tf reads versions 1, 2, 3",
        ),
        ({"version": True}, "format version True"),
        ({"version": 2.0}, "format version 2.0"),
        ({"hasher": "abc"}, "'hasher' must be a fingerprint"),
        ({"hasher": HASHER_A.upper()}, "'hasher' must be a fingerprint"),
    ],
)
def test_bad_versions_and_fingerprints_are_rejected(tmp_path, change, match):
    index, _ = filled_index(10)
    index.save(tmp_path / "hashes")
    meta_path = tmp_path / "hashes" / "index.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, **change}))

    with pytest.raises(ValueError, match=match):
        HashIndex.load(tmp_path / "hashes")
    index.save(tmp_path / "hashes")
    items_path = tmp_path / "hashes" / "items.json"
    items = as_old_version(tmp_path / "hashes", 2)
    items_path.write_text(json.dumps({**items, **change}))
    with pytest.raises(ValueError, match=match):
        HashIndex.load(tmp_path / "hashes")
    with pytest.raises(ValueError, match="hasher must be a fingerprint"):
        HashIndex(hasher="sha256")
