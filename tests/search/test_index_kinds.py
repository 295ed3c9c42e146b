import json

import numpy as np
import pytest

from grok_tf.search.hash_index import HashIndex
from grok_tf.search.index_kinds import FLAT_UP_TO
from grok_tf.search.index_kinds import check_settings
from grok_tf.search.index_kinds import default_settings
from grok_tf.search.index_kinds import kind_names


def clustered_codes(n, seed=0, clusters=40, flips=0.08):
    """Codes near `clusters` random centres: each bit flipped w.p. `flips`."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2, (clusters, 256), dtype=np.uint8)
    bits = centres[rng.integers(0, clusters, n)]
    bits ^= (rng.random(bits.shape) < flips).astype(np.uint8)
    return np.packbits(bits, axis=1, bitorder="little")


def built(settings, codes):
    index = HashIndex(settings=settings)
    index.add(codes, [f"sku-{i}" for i in range(len(codes))])
    return index


def test_defaults_follow_the_catalogue_size():
    assert kind_names() == ["flat", "ivf", "hnsw"]
    assert default_settings(FLAT_UP_TO) == {"kind": "flat"}
    assert default_settings(10**6) == {
        "kind": "ivf",
        "nlist": 1024,
        "nprobe": 128,
    }
    assert default_settings(10**7)["nlist"] == 4096
    # Small catalogues keep at least 39 codes a list.
    assert default_settings(1000, "ivf") == {
        "kind": "ivf",
        "nlist": 16,
        "nprobe": 8,
    }
    assert default_settings(10, "ivf")["nlist"] == 1
    assert default_settings(10, "hnsw", efSearch=7, M=None)["efSearch"] == 7


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"kind": "lsh"}, "kind must be one of flat, ivf, hnsw, got 'lsh'"),
        ("flat", "kind must be one of"),
        (
            {"kind": "flat", "nprobe": 3},
            "a flat index takes no settings, not nprobe",
        ),
        (
            {"kind": "ivf", "nlist": 4},
            "setting nprobe must be a positive integer",
        ),
        ({"kind": "ivf", "nlist": 4, "nprobe": 0}, "nprobe must be positive"),
        (
            {"kind": "ivf", "nlist": True, "nprobe": 1},
            "nlist must be a positive",
        ),
        ({"kind": "hnsw", "M": 8, "efSearch": 8}, "efConstruction must be"),
    ],
)
def test_bad_settings_are_refused_with_one_line(settings, match):
    with pytest.raises(ValueError, match=match) as refused:
        check_settings(settings, "index.json")
    assert str(refused.value).startswith("index.json: ")
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "kind, exhaustive",
    [("ivf", {"nprobe": 10**6}), ("hnsw", {"efSearch": 2000})],
)
def test_approximate_kinds_find_the_exact_distances_when_exhaustive(
    kind, exhaustive
):
    codes = clustered_codes(3000)
    queries = clustered_codes(50, seed=1)
    exact = built(None, codes).search_arrays(queries, 10)[0]

    index = built(default_settings(len(codes), kind), codes)
    defaults = index.search_arrays(queries, 10)[0]
    index.tune(**exhaustive)
    distances, positions = index.search_arrays(queries, 10)

    np.testing.assert_array_equal(distances, exact)
    assert (np.diff(distances, axis=1) >= 0).all()
    # Ties are ordered by position within what was found.
    tied = np.diff(distances, axis=1) == 0
    assert (np.diff(positions, axis=1)[tied] > 0).all()
    # At the default settings, recall (tie-aware) on clustered codes.
    assert np.mean(defaults <= exact[:, -1:]) >= 0.9


def test_settings_are_stored_and_search_settings_tuned(tmp_path):
    codes = clustered_codes(2000)
    index = built(default_settings(len(codes), "ivf", nlist=32), codes)
    index.tune(nprobe=5)
    assert index._index.nprobe == 5
    with pytest.raises(
        ValueError, match="nlist cannot change after it is built"
    ):
        index.tune(nlist=8)
    with pytest.raises(ValueError, match="search settings are none"):
        HashIndex().tune(nprobe=2)
    index.save(tmp_path / "ivf")

    meta = json.loads((tmp_path / "ivf" / "index.json").read_text())
    assert meta["settings"] == {"kind": "ivf", "nlist": 32, "nprobe": 5}
    loaded = HashIndex.load(tmp_path / "ivf")
    assert loaded.settings == meta["settings"] and loaded._index.nprobe == 5
    assert loaded._index.nlist == 32 and not loaded.exact
    queries = codes[:20]
    assert loaded.search(queries, 4) == index.search(queries, 4)


def test_a_memory_mapped_index_is_read_only(tmp_path):
    codes = clustered_codes(500)
    built(None, codes[:300]).save(tmp_path / "flat")

    mapped = HashIndex.load(tmp_path / "flat")
    with pytest.raises(ValueError, match="loaded memory-mapped, read-only"):
        mapped.add(codes[300:], ["x"] * 200)
    writable = HashIndex.load(tmp_path / "flat", mmap=False)
    writable.add(codes[300:], ["x"] * 200)
    assert len(writable) == 500
    assert writable.search(codes[400:401], 1)[0][0]["id"] == "x"


def test_an_ivf_index_needs_enough_codes_and_copies_its_centres():
    codes = clustered_codes(2000)
    with pytest.raises(ValueError, match="nlist=64 lists needs at least 64"):
        built(default_settings(10**5, "ivf", nlist=64), codes[:10])

    index = built(default_settings(len(codes), "ivf"), codes)
    copy = index.empty_copy()
    assert len(copy) == 0 and copy._index.is_trained
    assert copy.settings == index.settings
    copy.add(codes, [str(i) for i in range(len(codes))])
    same = copy.search_arrays(codes[:30], 5), index.search_arrays(codes[:30], 5)
    np.testing.assert_array_equal(same[0][0], same[1][0])


def test_items_an_approximate_index_misses_are_marked_and_dropped():
    # Two far-apart clusters, one list each: probing one list finds only
    # the 5 codes of its cluster.
    codes = clustered_codes(10, clusters=2, flips=0.0)
    index = built({"kind": "ivf", "nlist": 2, "nprobe": 1}, codes)
    cluster = np.flatnonzero((codes == codes[0]).all(1))

    distances, positions = index.search_arrays(codes[:1], 10)

    found = positions[0] >= 0
    assert sorted(positions[0][found]) == sorted(cluster)
    assert (positions[0][~found] == -1).all()
    assert (distances[0][~found] == 257).all()
    assert len(index.search(codes[:1], 10)[0]) == len(cluster)


def test_load_refuses_a_file_of_another_kind(tmp_path):
    codes = clustered_codes(300)
    built(None, codes).save(tmp_path / "ix")
    meta_path = tmp_path / "ix" / "index.json"
    meta = json.loads(meta_path.read_text())
    meta["settings"] = {"kind": "ivf", "nlist": 4, "nprobe": 1}
    meta_path.write_text(json.dumps(meta))

    with pytest.raises(
        ValueError, match="holds a IndexBinaryFlat, not the IndexBinaryIVF"
    ):
        HashIndex.load(tmp_path / "ix")
    meta["settings"] = {"kind": "ivf"}
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="index.json: ivf setting nlist must"):
        HashIndex.load(tmp_path / "ix")
