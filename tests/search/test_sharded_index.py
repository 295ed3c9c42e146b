import json

import faiss
import numpy as np
import pytest

from grok_tf.search.hash_index import HashIndex
from grok_tf.search.index_kinds import default_settings
from grok_tf.search.sharded_index import ShardedIndex
from grok_tf.search.sharded_index import ShardedIndexWriter
from grok_tf.search.sharded_index import open_index
from tests.search.test_index_kinds import clustered_codes

HASHER = "ab" * 32


def tie_heavy(n=2000, seed=0):
    """Codes drawn from 150 distinct ones: many items share each distance."""
    rng = np.random.default_rng(seed)
    distinct = clustered_codes(150, seed=seed)
    codes = distinct[rng.integers(0, len(distinct), n)]
    ids = [f"sku-{i}" for i in range(n)]
    paths = [f"images/{i}.jpg" for i in range(n)]
    return codes, ids, paths


def sharded(folder, codes, ids, paths, shard_size, settings=None, adds=3):
    """A sharded index written by `adds` calls of unequal sizes."""
    cuts = np.linspace(0, len(codes), adds + 1).astype(int)
    with ShardedIndexWriter(
        folder, 256, HASHER, settings, shard_size
    ) as writer:
        for start, end in zip(cuts[:-1], cuts[1:], strict=True):
            writer.add(codes[start:end], ids[start:end], paths[start:end])
    return open_index(folder)


@pytest.mark.parametrize("k", [1, 7, 40])
def test_sharded_flat_search_equals_one_index_ties_included(tmp_path, k):
    codes, ids, paths = tie_heavy()
    one = HashIndex(hasher=HASHER)
    one.add(codes, ids, paths)
    queries = np.concatenate([codes[:20], clustered_codes(20, seed=9)])

    index = sharded(tmp_path / "ix", codes, ids, paths, shard_size=300)

    assert isinstance(index, ShardedIndex) and index.exact
    assert index.shard_counts == [300] * 6 + [200] and len(index) == 2000
    for got, want in zip(
        index.search_arrays(queries, k),
        one.search_arrays(queries, k),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)
    assert index.search(queries, k) == one.search(queries, k)
    assert sorted(p.name for p in (tmp_path / "ix").iterdir()) == [
        "shard-00000",
        "shard-00001",
        "shard-00002",
        "shard-00003",
        "shard-00004",
        "shard-00005",
        "shard-00006",
        "shards.json",
    ]


def test_ivf_shards_share_the_first_shards_centres(tmp_path):
    codes, ids, paths = tie_heavy(1500, seed=3)
    settings = default_settings(500, "ivf", nprobe=10**3)  # exhaustive

    index = sharded(tmp_path / "ix", codes, ids, paths, 500, settings, adds=1)

    centres = [
        faiss.vector_to_array(faiss.downcast_IndexBinary(s._index.quantizer).xb)
        for s in index.shards
    ]
    assert len(centres) == 3 and len(centres[0]) == 32 * 8  # 8 lists
    for other in centres[1:]:
        np.testing.assert_array_equal(other, centres[0])
    one = HashIndex(settings={"kind": "flat"})
    one.add(codes, ids)
    queries = clustered_codes(30, seed=4)
    np.testing.assert_array_equal(
        index.search_arrays(queries, 10)[0], one.search_arrays(queries, 10)[0]
    )
    index.tune(nprobe=1)
    assert all(shard._index.nprobe == 1 for shard in index.shards)


def test_a_failed_build_leaves_the_previous_index(tmp_path):
    codes, ids, paths = tie_heavy(600)
    before = sharded(tmp_path / "ix", codes, ids, paths, 250)
    expected = before.search(codes[:5], 3)

    with (
        pytest.raises(RuntimeError, match="killed"),
        ShardedIndexWriter(tmp_path / "ix", shard_size=100) as writer,
    ):
        writer.add(codes[:450], ids[:450])
        raise RuntimeError("killed")

    assert open_index(tmp_path / "ix").search(codes[:5], 3) == expected
    assert [p.name for p in tmp_path.iterdir()] == ["ix"]
    # A one-piece index is replaced by a sharded one and back.
    one = HashIndex()
    one.add(codes, ids)
    one.save(tmp_path / "ix")
    assert isinstance(open_index(tmp_path / "ix"), HashIndex)
    sharded(tmp_path / "ix", codes, ids, paths, 250)
    assert isinstance(open_index(tmp_path / "ix"), ShardedIndex)


def test_a_writer_refuses_a_folder_that_is_not_an_index(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"jpeg")
    with (
        pytest.raises(FileExistsError, match="a.jpg"),
        ShardedIndexWriter(tmp_path / "photos"),
    ):
        pass
    assert (tmp_path / "photos" / "a.jpg").read_bytes() == b"jpeg"
    with pytest.raises(ValueError, match="shard_size must be positive"):
        ShardedIndexWriter(tmp_path / "x", shard_size=0)


def test_an_empty_build_is_one_empty_shard(tmp_path):
    with ShardedIndexWriter(tmp_path / "ix", hasher=HASHER):
        pass
    index = open_index(tmp_path / "ix", hasher=HASHER)
    assert len(index) == 0 and index.shard_counts == [0]
    assert index.search(clustered_codes(2), 3) == [[], []]


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda m: m.update(version=2), "format version 2; this grok_tf reads"),
        (lambda m: m.update(shards=[]), "'shards' must be a non-empty list"),
        (lambda m: m["shards"][1].update(name="../x"), "shard 1 must be named"),
        (
            lambda m: m["shards"][0].update(count=7),
            "lists 7 items in shard-00000",
        ),
    ],
)
def test_load_checks_shards_json_against_the_shards(tmp_path, change, match):
    codes, ids, paths = tie_heavy(300)
    sharded(tmp_path / "ix", codes, ids, paths, 200)
    path = tmp_path / "ix" / "shards.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))

    with pytest.raises(ValueError, match=match):
        open_index(tmp_path / "ix")


def test_shards_of_another_hasher_or_kind_are_refused(tmp_path):
    codes, ids, paths = tie_heavy(300)
    index = sharded(tmp_path / "ix", codes, ids, paths, 200)
    with pytest.raises(ValueError, match="built with hasher ababababab"):
        index.check_hasher("cd" * 32)
    other = HashIndex(hasher="cd" * 32)
    other.add(codes[200:], ids[200:])
    other.save(tmp_path / "ix" / "shard-00001")

    with pytest.raises(ValueError, match="shard-00001 differs from shard 0"):
        open_index(tmp_path / "ix")
