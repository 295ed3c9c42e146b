"""A hash index made of shards: catalogues beyond one machine's memory.

A sharded index is a directory of `HashIndex` shards (`shard-00000/`,
`shard-00001/`, ...) and a `shards.json` listing them. It is built shard
by shard (`ShardedIndexWriter`: only the shard being filled is in memory),
searched shard by shard with each shard's top k merged (the idea of
faiss's `IndexShards`, in NumPy so that the merge keeps the tie rule), and
its shards are memory-mapped when loaded.

An item's position is its position in the whole index: the items of
`shard-00000` first, then those of `shard-00001`, and so on, in the order
they were added. With `flat` shards the search is exact and returns what
one `flat` `HashIndex` of the same items returns, ties included
(Hamming distance, then position). `ivf` shards share the centres of the
first shard's training, so each query probes the same lists everywhere.

`open_index` opens either kind of index directory.

Example:

>>> import tempfile
>>> rng = np.random.default_rng(0)
>>> codes = rng.integers(0, 256, (5, 32), dtype=np.uint8)
>>> folder = Path(tempfile.mkdtemp()) / "index"
>>> with ShardedIndexWriter(folder, shard_size=2) as writer:
...     writer.add(codes, ["a", "b", "c", "d", "e"])
>>> index = open_index(folder)
>>> len(index), index.shard_counts
(5, [2, 2, 1])
>>> index.search(codes[3:4], k=1)
[[{'id': 'd', 'path': '', 'distance': 0}]]
"""

import json
from pathlib import Path

import numpy as np

from grok_tf.io.atomic_files import atomic_directory
from grok_tf.search.hash_index import SHARDS_FILE
from grok_tf.search.hash_index import HashIndex
from grok_tf.search.hash_index import SearchableIndex
from grok_tf.search.hash_index import check_replaceable

FORMAT = "grok_tf.ShardedHashIndex"
VERSION = 1
_SHARD_NAME = "shard-{:05d}"


class ShardedIndex(SearchableIndex):
    """Shards of a hash index searched as one (load it with `load`).

    Args:
        shards: the `HashIndex` shards, in order; same bits and hasher.
        directory: where they were loaded from, or None.

    Ties: Hamming distance ascending, then position in the whole index.
    """

    def __init__(self, shards, directory=None):
        if not shards:
            raise ValueError("a sharded index needs at least one shard")
        self._shards = list(shards)
        self._bits = self._shards[0].bits
        self._hasher = self._shards[0].hasher
        self._directory = directory
        self._version = 3  # shards are written by this version
        counts = [len(shard) for shard in self._shards]
        self._starts = np.cumsum([0, *counts])

    def __len__(self):
        return int(self._starts[-1])

    def __repr__(self):
        return (
            f"ShardedIndex(bits={self.bits}, items={len(self)}, "
            f"shards={len(self._shards)}, kind={self.settings['kind']})"
        )

    @property
    def shards(self):
        """The `HashIndex` shards, in order."""
        return list(self._shards)

    @property
    def shard_counts(self):
        """The number of items in each shard."""
        return [len(shard) for shard in self._shards]

    @property
    def settings(self):
        """The first shard's kind and settings (every shard has the same)."""
        return self._shards[0].settings

    @property
    def exact(self):
        """Whether search returns the exact top k (`flat` shards)."""
        return self._shards[0].exact

    def tune(self, **settings):
        """Changes the search settings of every shard (`HashIndex.tune`)."""
        for shard in self._shards:
            shard.tune(**settings)

    def _search(self, codes, k):
        """Each shard's k nearest, merged (see `search_arrays`).

        Positions are positions in the whole index.
        """
        found_d, found_p = [], []
        for shard, start in zip(self._shards, self._starts, strict=False):
            if len(shard):
                distances, positions = shard.search_arrays(codes, k)
                found_d.append(distances)
                found_p.append(np.where(positions >= 0, positions + start, -1))
        distances = np.concatenate(found_d, axis=1)
        positions = np.concatenate(found_p, axis=1)
        # Positions of items not found (-1) sort after every real one.
        last = np.where(positions < 0, np.iinfo(np.int64).max, positions)
        order = np.lexsort((last, distances), axis=1)[:, :k]
        return (
            np.take_along_axis(distances, order, axis=1),
            np.take_along_axis(positions, order, axis=1),
        )

    def items(self, positions):
        """`(ids, paths)`: lists of the items at (whole-index) `positions`."""
        positions = np.asarray(positions, np.int64)
        shard_of = np.searchsorted(self._starts, positions, side="right") - 1
        ids, paths = [None] * len(positions), [None] * len(positions)
        for number in np.unique(shard_of):
            rows = np.flatnonzero(shard_of == number)
            local = positions[rows] - self._starts[number]
            shard_ids, shard_paths = self._shards[number].items(local)
            for row, id_, path in zip(
                rows, shard_ids, shard_paths, strict=True
            ):
                ids[row], paths[row] = id_, path
        return ids, paths

    @classmethod
    def load(cls, directory, hasher=None, mmap=True):
        """Reads a sharded index written by `ShardedIndexWriter`.

        Args:
            directory: the index directory (with `shards.json`).
            hasher: optional fingerprint the index must have been built
                with (`check_hasher`).
            mmap: memory-map every shard (`HashIndex.load`).

        Raises:
            FileNotFoundError: a file or shard is missing.
            ValueError: `shards.json` is not valid, or disagrees with the
                shards (names, counts, bits, hasher, kind); the message
                names the file.
        """
        directory = Path(directory)
        path = directory / SHARDS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"sharded index file {path} is missing")
        try:
            meta = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} file")
        if meta.get("version") != VERSION or type(meta["version"]) is not int:
            raise ValueError(
                f"{path} has format version {meta.get('version')!r}; this "
                f"grok_tf reads version {VERSION}"
            )
        listed = meta.get("shards")
        if not isinstance(listed, list) or not listed:
            raise ValueError(f"{path}: 'shards' must be a non-empty list")
        shards = []
        for number, entry in enumerate(listed):
            name = _SHARD_NAME.format(number)
            if not isinstance(entry, dict) or entry.get("name") != name:
                raise ValueError(f"{path}: shard {number} must be named {name}")
            shard = HashIndex.load(directory / name, mmap=mmap)
            if len(shard) != entry.get("count"):
                raise ValueError(
                    f"{path} lists {entry.get('count')!r} items in {name}, "
                    f"which holds {len(shard)}"
                )
            first = shards[0] if shards else shard
            if (shard.bits, shard.hasher, shard.settings["kind"]) != (
                first.bits,
                first.hasher,
                first.settings["kind"],
            ):
                raise ValueError(
                    f"{directory / name} differs from shard 0 in bits, "
                    "hasher or index kind"
                )
            shards.append(shard)
        index = cls(shards, directory)
        if hasher is not None:
            index.check_hasher(hasher)
        return index


class ShardedIndexWriter:
    """Builds a sharded index shard by shard; a context manager.

    Items go to the current shard until it holds `shard_size`; it is then
    written into the (hidden, partial) output folder and freed. Leaving
    the `with` block writes `shards.json` and publishes the folder
    atomically; an exception leaves any previous index untouched.

    Args:
        directory: the index directory to write (replaced if it holds an
            index; anything else is refused).
        bits: code length.
        hasher: the fingerprint of the hasher making the codes, or None.
        settings: each shard's kind and settings
            (`grok_tf.search.index_kinds.default_settings` for a shard of
            `shard_size` items). An `ivf` index trains on the codes of
            the first `add` (give it at least a shard's worth); every
            shard shares those centres.
        shard_size: items per shard (the last may hold fewer).

    Example: see the module.
    """

    def __init__(
        self, directory, bits=256, hasher=None, settings=None, shard_size=10**6
    ):
        if isinstance(shard_size, bool) or not isinstance(
            shard_size, int | np.integer
        ):
            raise ValueError(
                f"shard_size must be an integer, got {shard_size!r}"
            )
        if shard_size < 1:
            raise ValueError(f"shard_size must be positive, got {shard_size}")
        self.directory = Path(directory)
        self.shard_size = int(shard_size)
        self._template = HashIndex(bits, hasher, settings)
        self._trained = False
        self._current = None
        self._counts = []
        self._context = None
        self._partial = None

    def __enter__(self):
        check_replaceable(self.directory)
        self._context = atomic_directory(self.directory)
        self._partial = self._context.__enter__()
        return self

    def __exit__(self, kind, error, trace):
        try:
            if error is None:
                if self._current is not None and len(self._current):
                    self._flush()
                if not self._counts:  # no item: one empty shard
                    self._current = self._template.empty_copy()
                    self._flush()
                self._write_meta()
        except BaseException as failure:
            self._context.__exit__(type(failure), failure, None)
            raise
        return self._context.__exit__(kind, error, trace)

    def add(self, codes, ids, paths=None):
        """Appends items (`HashIndex.add`), starting new shards as needed."""
        codes = self._template.check_codes(codes)
        ids = list(ids)
        paths = [""] * len(codes) if paths is None else list(paths)
        start = 0
        while start < len(codes):
            if self._current is None:
                self._current = self._template.empty_copy()
            room = self.shard_size - len(self._current)
            end = min(len(codes), start + room)
            if not self._trained and not self._template.exact:
                # The first codes train the centres every shard shares.
                self._template.train(codes[start:end])
                self._current = self._template.empty_copy()
                self._trained = True
            self._current.add(
                codes[start:end], ids[start:end], paths[start:end]
            )
            start = end
            if len(self._current) == self.shard_size:
                self._flush()

    def _flush(self):
        folder = self._partial / _SHARD_NAME.format(len(self._counts))
        folder.mkdir()
        self._current.write_files(folder)
        self._counts.append(len(self._current))
        self._current = None

    def _write_meta(self):
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "bits": self._template.bits,
            "hasher": self._template.hasher,
            "count": int(sum(self._counts)),
            "shards": [
                {"name": _SHARD_NAME.format(number), "count": count}
                for number, count in enumerate(self._counts)
            ],
        }
        (self._partial / SHARDS_FILE).write_text(json.dumps(meta) + "\n")


def open_index(directory, hasher=None, mmap=True):
    """Opens a `HashIndex` or a `ShardedIndex` directory, memory-mapped.

    Args:
        directory: an index directory (`index.json` or an older
            `items.json`: one index; `shards.json`: shards).
        hasher: optional fingerprint the index must have been built with.
        mmap: memory-map the files rather than read them.
    """
    if (Path(directory) / SHARDS_FILE).is_file():
        return ShardedIndex.load(directory, hasher, mmap)
    return HashIndex.load(directory, hasher, mmap)
