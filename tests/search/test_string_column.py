import numpy as np
import pytest

from grok_tf.search.string_column import StringColumn

STRINGS = ["sku-1", "", "épicerie/ü.jpg", "a,b\n", "\udcff raw byte", "z" * 70]


def test_strings_round_trip_in_memory_and_on_disk(tmp_path):
    column = StringColumn.from_strings(iter(STRINGS))  # a generator works

    assert list(column) == STRINGS and len(column) == len(STRINGS)
    assert column.take([5, 0, 0]) == [STRINGS[5], STRINGS[0], STRINGS[0]]
    encoded = [s.encode("utf-8", "surrogateescape") for s in STRINGS]
    assert (
        column.offsets.tolist() == np.cumsum([0, *map(len, encoded)]).tolist()
    )
    assert column.nbytes == 4 * (len(STRINGS) + 1) + sum(map(len, encoded))

    column.save(tmp_path, "ids")
    for mmap in (True, False):
        loaded = StringColumn.load(tmp_path, "ids", len(STRINGS), mmap=mmap)
        assert list(loaded) == STRINGS
        assert isinstance(loaded.data, np.memmap) == mmap


def test_concatenate_keeps_order_and_offsets():
    parts = [STRINGS[:2], [], STRINGS[2:]]
    column = StringColumn.concatenate(
        StringColumn.from_strings(p) for p in parts
    )

    assert list(column) == STRINGS
    assert (
        column.offsets.tolist()
        == StringColumn.from_strings(STRINGS).offsets.tolist()
    )
    assert list(StringColumn.concatenate([])) == []


def test_offsets_are_4_bytes_until_the_text_passes_4_gib():
    # Only offsets are built here: 4 GiB of text is not.
    from grok_tf.search.string_column import _narrowed

    assert _narrowed(np.array([0, 2**32 - 1], np.uint64)).dtype == np.uint32
    wide = _narrowed(np.array([0, 2**32 + 5], np.uint64))
    assert wide.dtype == np.uint64 and wide.tolist() == [0, 2**32 + 5]


@pytest.mark.parametrize(
    "offsets, data, count, match",
    [
        (np.array([0, 1], np.uint32), b"ab", 1, "must run from 0 to 2"),
        (np.array([1, 2], np.uint32), b"ab", 1, "must run from 0 to 2"),
        (np.array([0, 2, 1, 2], np.uint32), b"ab", 3, "must not decrease"),
        (
            np.array([0, 2], np.uint32),
            b"ab",
            2,
            "holds 2 offsets; 2 items need 3",
        ),
        (np.array([0, 2], np.int64), b"ab", 1, "1-D uint32 or uint64 array"),
        (np.array([[0, 2]], np.uint32), b"ab", 1, "1-D uint32 or uint64 array"),
    ],
)
def test_inconsistent_files_are_refused(tmp_path, offsets, data, count, match):
    np.save(tmp_path / "ids.offsets.npy", offsets)
    np.save(tmp_path / "ids.data.npy", np.frombuffer(data, np.uint8))

    with pytest.raises(ValueError, match=match):
        StringColumn.load(tmp_path, "ids", count)


def test_pickled_or_missing_files_are_refused(tmp_path):
    np.save(tmp_path / "ids.offsets.npy", np.array([0, 1], np.uint32))
    np.save(
        tmp_path / "ids.data.npy", np.array([b"x"], object), allow_pickle=True
    )
    with pytest.raises(ValueError, match="ids.data.npy is not a valid .npy"):
        StringColumn.load(tmp_path, "ids", 1)

    (tmp_path / "ids.data.npy").unlink()
    with pytest.raises(FileNotFoundError, match="ids.data.npy is missing"):
        StringColumn.load(tmp_path, "ids", 1)
