"""A searchable store of binary product hashes (GrokNet's exact-product search).

GrokNet compresses each embedding to a 256-bit hash and finds the same
product by the Hamming distance between hashes (the number of differing
bits, lower is closer). `HashIndex` keeps the packed hashes in a faiss
binary index of one of the kinds of `grok_tf.search.index_kinds` (`flat`:
exhaustive and exact; `ivf`, `hnsw`: approximate and much faster on large
catalogues) and, beside it, the product id and image path of every item,
keyed by the item's position (the order of `add`), in two
`grok_tf.search.string_column.StringColumn`s: about 30 bytes an item for
typical ids and paths, memory-mapped when loaded.

Ties: results are ordered by Hamming distance, then by position, lowest
first (the same rule as `grok_tf.evaluation.retrieval_metrics`). For a
`flat` index, of the items tied at the k-th distance, those added first
are returned: faiss does not promise an order among equal distances, so
`search_arrays` enforces the rule itself. An approximate index orders what
it found by the same rule.

Hasher fingerprint: codes are only comparable with codes of the same
hasher (model + Catalyzer). An index records the SHA-256 fingerprint of
the hasher that made its codes (`hasher_fingerprint`); `check_hasher`, and
`load(..., hasher=...)`, refuse another one, or an index that records
none, with a one-line message naming both fingerprints (first 12 hex
digits) and the index directory.

Codes are packed by the caller (see
`grok_tf.compression.binary_codes.pack_bits`): `uint8 [n, bits // 8]`,
bit j in byte j // 8 at position j % 8 from the least significant bit
(`np.packbits(bits, axis=1, bitorder="little")`).

On disk an index is a directory, written atomically by `HashIndex.save`
(a sibling temporary directory renamed into place):

- `index.faiss`: the codes (`faiss.write_index_binary`);
- `index.json`: `{"format", "version": 3, "bits", "hasher", "count",
  "settings"}`, `hasher` the fingerprint (64 hex digits) or null,
  `settings` the index kind and its settings (`index_kinds`);
- `ids.offsets.npy`, `ids.data.npy`, `paths.offsets.npy`,
  `paths.data.npy`: the ids and paths (`StringColumn`).

Versions 1 and 2 (an `items.json` of JSON lists; version 1 without
`hasher`, written before fingerprints) still load, as `flat` indexes. A
version 1 index can be searched with codes (`search`), but `check_hasher`
refuses it, so `grok_tf.search.product_search.search_index` and `grok-tf
search` ask for the index to be rebuilt.

Reference:
    Bell, Liu, Alsheikh, Tao, Sun, Taneja, Shrivastava, Brown, Tosio,
    Prasad, Srinivasan, Buchanan, Yadav, Ghosh, Hsu, Tsai, Dave, Sharma,
    Reed, Lofgren. "GrokNet: Unified Computer Vision Model Trunk and
    Embeddings For Commerce", KDD 2020.
"""

import hashlib
import json
import os
import re
from pathlib import Path

import faiss
import numpy as np

from grok_tf.io.atomic_files import atomic_directory
from grok_tf.search.index_kinds import check_settings
from grok_tf.search.index_kinds import index_kind
from grok_tf.search.index_kinds import make_faiss_index
from grok_tf.search.string_column import StringColumn

INDEX_FILE = "index.faiss"
META_FILE = "index.json"
ITEMS_FILE = "items.json"  # versions 1 and 2
SHARDS_FILE = "shards.json"  # a sharded index (grok_tf.search.sharded_index)
COLUMNS = ("ids", "paths")
FILES = (
    INDEX_FILE,
    META_FILE,
    *(f"{c}.{part}.npy" for c in COLUMNS for part in ("offsets", "data")),
)
FORMAT = "grok_tf.HashIndex"
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # 1: no hasher fingerprint; 1, 2: items.json
FLAT = {"kind": "flat"}
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
# Extra neighbours asked of faiss beyond k, so that items tied with the
# k-th distance are usually all in its answer (no second pass needed).
_EXTRA = 16
# Queries per second-pass range search: bounds its result memory when
# very many items are tied (at most this many rows of `len(index)` hits).
_RANGE_QUERIES = 16


class SearchableIndex:
    """What every hash index offers: bits, hasher checks, id lookup.

    Subclasses (`HashIndex`, `grok_tf.search.sharded_index.ShardedIndex`)
    set `_bits`, `_hasher`, `_directory`, `_version` and implement
    `__len__`, `_search(codes, k)` (checked codes, 1 <= k <= len) and
    `items(positions)`.
    """

    @property
    def bits(self):
        """The hash length in bits."""
        return self._bits

    @property
    def directory(self):
        """The directory it was loaded from or last saved to, or None."""
        return self._directory

    @property
    def hasher(self):
        """The fingerprint of the hasher that made the codes, or None."""
        return self._hasher

    def check_hasher(self, fingerprint):
        """Refuses codes of any hasher but the one that made the index.

        Args:
            fingerprint: the fingerprint of the hasher about to make query
                codes (`hasher_fingerprint`).

        Raises:
            ValueError: the index was built with another hasher, or
                records none (an index written before fingerprints, or
                built without one); the one-line message names the index
                directory and both fingerprints (short form).
        """
        where = (
            f"hash index {self._directory}"
            if self._directory is not None
            else "the hash index"
        )
        if self._hasher is None:
            written = (
                f"format version {self._version}, written before hasher "
                "fingerprints"
                if self._version < 2
                else "built without a hasher fingerprint"
            )
            raise ValueError(
                f"{where} records no hasher fingerprint ({written}), so "
                "its codes cannot be checked against this hasher "
                f"({short_fingerprint(fingerprint)}): rebuild it with "
                "`grok-tf index`"
            )
        if fingerprint != self._hasher:
            raise ValueError(
                f"{where} was built with hasher "
                f"{short_fingerprint(self._hasher)}, not this hasher "
                f"{short_fingerprint(fingerprint)}: search it with the run "
                "that built it, or rebuild it with `grok-tf index`"
            )

    def search_arrays(self, codes, k=10):
        """The k nearest items of each query, as arrays.

        Order: Hamming distance ascending, then position (the order of
        `add`), lowest first. For an exact (`flat`) index, of the items
        tied at the k-th distance, the lowest positions are returned, so
        the answer is a function of the codes alone, whatever order faiss
        returns equal distances in. An approximate index returns what it
        found, in that order; a query for which it found fewer than k
        items gets position -1 and distance `bits + 1` in the remaining
        places.

        Args:
            codes: `uint8 [q, bits // 8]` packed query hashes.
            k: neighbours per query, a positive integer; clipped to
                `len(self)`.

        Returns:
            `(distances, positions)`: int32 and int64 arrays of shape
            `[q, min(k, len(self))]`, the Hamming distances and the items'
            positions in the index, in the order above.
        """
        codes = self.check_codes(codes, "codes")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        k = min(int(k), len(self))
        if k == 0 or len(codes) == 0:
            shape = (len(codes), k)
            return np.zeros(shape, np.int32), np.zeros(shape, np.int64)
        return self._search(codes, k)

    def search(self, codes, k=10):
        """The k nearest items of each query, with their ids and paths.

        Args:
            codes: `uint8 [q, bits // 8]` packed query hashes.
            k: neighbours per query, a positive integer; clipped to
                `len(self)` (an empty index gives empty lists).

        Returns:
            One list per query of `{"id", "path", "distance"}` dicts,
            Hamming distance ascending, then position (the order of
            `add`), lowest first; see `search_arrays`. An approximate
            index may find fewer than k items.
        """
        distances, positions = self.search_arrays(codes, k)
        found = positions >= 0
        ids, paths = self.items(positions[found])
        ids, paths = iter(ids), iter(paths)
        return [
            [
                {"id": next(ids), "path": next(paths), "distance": int(d)}
                for d in row_d[row_found].tolist()
            ]
            for row_d, row_found in zip(distances, found, strict=True)
        ]

    def check_codes(self, codes, name="codes"):
        """`codes` as a C-contiguous array, if they fit; else ValueError."""
        codes = np.asarray(codes)
        width = self.bits // 8
        if codes.dtype != np.uint8:
            raise ValueError(
                f"{name} must be uint8 packed hashes (np.packbits(bits, "
                f"axis=1, bitorder='little')), got dtype {codes.dtype}"
            )
        if codes.ndim != 2 or codes.shape[1] != width:
            raise ValueError(
                f"{name} must have shape [n, {width}] for {self.bits}-bit "
                f"hashes, got shape {codes.shape}"
            )
        return np.ascontiguousarray(codes)


class HashIndex(SearchableIndex):
    """Hamming-distance search over packed binary codes, with ids.

    Args:
        bits: hash length in bits, a positive multiple of 8 (256 in
            GrokNet); codes are `uint8 [n, bits // 8]`.
        hasher: the fingerprint of the hasher whose codes the index holds
            (`hasher_fingerprint`, 64 hex digits), or None when unknown.
        settings: the index kind and its settings, e.g.
            `{"kind": "ivf", "nlist": 1024, "nprobe": 16}`
            (`grok_tf.search.index_kinds.default_settings` picks them by
            catalogue size). Defaults to `{"kind": "flat"}`: exact.

    Ties are ordered by position: Hamming distance ascending, then the
    item's position (the order of `add`), lowest first.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> bits = rng.integers(0, 2, (3, 256), dtype=np.uint8)
    >>> codes = np.packbits(bits, axis=1, bitorder="little")
    >>> index = HashIndex()
    >>> index.add(codes, ["sku-1", "sku-2", "sku-3"],
    ...           ["a.jpg", "b.jpg", "c.jpg"])
    >>> len(index), index.bits, index.settings
    (3, 256, {'kind': 'flat'})
    >>> index.search(codes[1:2], k=1)
    [[{'id': 'sku-2', 'path': 'b.jpg', 'distance': 0}]]
    """

    def __init__(self, bits=256, hasher=None, settings=None):
        if (
            isinstance(bits, bool)
            or not isinstance(bits, int | np.integer)
            or bits < 8
            or bits % 8
        ):
            raise ValueError(
                f"bits must be a positive multiple of 8, got {bits!r}"
            )
        if hasher is not None and not _is_fingerprint(hasher):
            raise ValueError(
                "hasher must be a fingerprint (64 lowercase hex digits, "
                f"see hasher_fingerprint) or None, got {hasher!r}"
            )
        self._settings = check_settings(settings or FLAT, "settings")
        self._bits = int(bits)
        self._index = make_faiss_index(self._bits, self._settings)
        self._columns = {c: [] for c in COLUMNS}  # StringColumn parts
        self._hasher = hasher
        self._directory = None  # where it was loaded from or saved to
        self._version = VERSION  # the format version it was read from
        self._mapped = False  # loaded memory-mapped: read-only

    @property
    def settings(self):
        """The index kind and its settings (a copy)."""
        return dict(self._settings)

    @property
    def exact(self):
        """Whether search returns the exact top k (a `flat` index)."""
        return self._settings["kind"] == "flat"

    def __len__(self):
        return self._index.ntotal

    def __repr__(self):
        return (
            f"HashIndex(bits={self.bits}, items={len(self)}, "
            f"kind={self._settings['kind']}, "
            f"hasher={short_fingerprint(self._hasher)})"
        )

    def tune(self, **settings):
        """Changes search settings (e.g. `nprobe`, `efSearch`); None keeps.

        Raises:
            ValueError: a setting this kind does not take at search time,
                or not a positive integer.
        """
        kind = index_kind(self._settings["kind"])
        given = {k: v for k, v in settings.items() if v is not None}
        fixed = sorted(set(given) - set(kind.search_settings))
        if fixed:
            takes = ", ".join(kind.search_settings) or "none"
            raise ValueError(
                f"a {kind.name} index's search settings are {takes}; "
                f"{', '.join(fixed)} cannot change after it is built"
            )
        self._settings = check_settings({**self._settings, **given}, "tune")
        kind.apply(self._index, self._settings)

    def train(self, codes):
        """Trains an `ivf` index's lists on `codes` (others need none)."""
        codes = self.check_codes(codes)
        index_kind(self._settings["kind"]).train(self._index, codes)

    def add(self, codes, ids, paths=None):
        """Appends items; their positions continue from `len(self)`.

        An untrained `ivf` index first trains on these codes.

        Args:
            codes: `uint8 [n, bits // 8]` packed hashes.
            ids: `n` product ids, strings (integers are stored as `str`),
                or a `StringColumn` (no conversion: for millions of items).
            paths: `n` image paths (str or `os.PathLike`), a
                `StringColumn`, or None for "".

        Raises:
            ValueError: codes of the wrong dtype, rank or width, or ids /
                paths of the wrong length or type; the message names the
                argument; or the index was loaded memory-mapped.
        """
        if self._mapped:
            raise ValueError(
                f"hash index {self._directory} was loaded memory-mapped, "
                "read-only: load it with mmap=False to add items"
            )
        codes = self.check_codes(codes, "codes")
        if paths is None:
            paths = [""] * len(codes)
        columns = {
            "ids": _column(ids, "ids", len(codes), _id_string),
            "paths": _column(paths, "paths", len(codes), _path_string),
        }
        if len(codes) and not self._index.is_trained:
            self.train(codes)
        self._index.add(codes)
        for name, column in columns.items():
            self._columns[name].append(column)

    def column(self, name):
        """The `StringColumn` of `"ids"` or `"paths"`, all items."""
        parts = self._columns[name]
        if len(parts) != 1:
            parts[:] = [StringColumn.concatenate(parts)]
        return parts[0]

    def items(self, positions):
        """`(ids, paths)`: lists of the items at `positions`."""
        return (
            self.column("ids").take(positions),
            self.column("paths").take(positions),
        )

    def _search(self, codes, k):
        """`search_arrays` for checked codes and 1 <= k <= len(self).

        Cost, `flat`: one faiss search for `max(2k, k + 16)` neighbours. A
        query whose k-th distance is still shared by the last of those
        gets a second pass, a faiss range search returning every item up
        to that distance: slow only when very many items share it (e.g.
        100k identical codes: ~40 ms a query on 2 cores).
        """
        if not self.exact:
            distances, positions = self._index.search(codes, k)
            missing = positions < 0
            distances[missing] = self.bits + 1
            distances, positions = _lexsorted(distances, positions)
            return distances.astype(np.int32), positions.astype(np.int64)
        # faiss's k-selection keeps some of the items tied at the k-th
        # distance, in no promised order. Asking for more than k shows
        # whether all of them were seen: if the last distance returned is
        # beyond the k-th, every tied item is in the answer and a sort by
        # (distance, position) settles it; if not, a second pass gathers
        # every item up to the k-th distance (`_settle_ties`).
        probe = min(k + max(k, _EXTRA), len(self))
        distances, positions = self._index.search(codes, probe)
        distances, positions = _lexsorted(distances, positions)
        if probe < len(self):
            tied = np.flatnonzero(distances[:, -1] == distances[:, k - 1])
        else:
            tied = np.zeros(0, np.int64)  # faiss returned every item
        distances = distances[:, :k].astype(np.int32)
        positions = positions[:, :k].astype(np.int64)
        # Rows with the same k-th distance share one range search radius.
        radii = distances[tied, k - 1]
        for radius in np.unique(radii):
            same = tied[radii == radius]
            for start in range(0, len(same), _RANGE_QUERIES):
                rows = same[start : start + _RANGE_QUERIES]
                self._settle_ties(
                    codes, rows, int(radius), distances, positions
                )
        return distances, positions

    def _settle_ties(self, codes, rows, radius, distances, positions):
        """The exact top k of `rows`: every item within `radius`, sorted."""
        k = distances.shape[1]
        # faiss's range search keeps distances < its radius.
        lims, found_d, found_p = self._index.range_search(
            codes[rows], radius + 1
        )
        for i, row in enumerate(rows):
            row_d = found_d[lims[i] : lims[i + 1]].astype(np.int64)
            row_p = found_p[lims[i] : lims[i + 1]]
            order = np.lexsort((row_p, row_d))[:k]
            if len(order) < k:
                raise RuntimeError(
                    f"faiss found {len(order)} items within Hamming distance "
                    f"{radius} in a range search but {k} in a k-NN search"
                )
            distances[row], positions[row] = row_d[order], row_p[order]

    def save(self, directory):
        """Writes the index to `directory` atomically.

        Every file goes to a temporary directory beside `directory`, which
        is then renamed into place: an interrupted save leaves any
        previous index untouched. An existing index is replaced by
        renaming it aside, renaming the new one in, and deleting the old
        one; were the process killed between the two renames, the
        previous index survives as `.<name>.old-*` beside `directory`.

        Args:
            directory: the index directory; its parent is created if
                needed. An existing `directory` must be a saved index (or
                empty): anything else is refused rather than deleted.

        Raises:
            FileExistsError: `directory` exists and is not an index.
        """
        directory = Path(directory)
        check_replaceable(directory)
        with atomic_directory(directory) as partial:
            self.write_files(partial)
        self._directory, self._version = directory, VERSION

    def write_files(self, folder):
        """Writes the index's files into the existing `folder`, plainly.

        For writers that publish a whole folder atomically themselves
        (e.g. a shard of `grok_tf.search.sharded_index`); use `save`
        otherwise.
        """
        folder = Path(folder)
        faiss.write_index_binary(self._index, str(folder / INDEX_FILE))
        for name in COLUMNS:
            self.column(name).save(folder, name)
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "bits": self.bits,
            "hasher": self._hasher,
            "count": len(self),
            "settings": self._settings,
        }
        (folder / META_FILE).write_text(json.dumps(meta) + "\n")

    def empty_copy(self):
        """A new, empty index of the same bits, hasher and settings.

        A trained `ivf` index passes on its lists' centres, so the copy
        needs no training (shards built from one copy share them).
        """
        copy = HashIndex(self.bits, self._hasher, self._settings)
        if self._index.is_trained and not self.exact:
            copy._index = faiss.clone_binary_index(self._index)
            copy._index.reset()
            index_kind(self._settings["kind"]).apply(
                copy._index, self._settings
            )
        return copy

    @classmethod
    def load(cls, directory, hasher=None, mmap=True):
        """Reads an index written by `save` (format version 1, 2 or 3).

        Args:
            directory: the index directory.
            hasher: optional fingerprint of the hasher that will make the
                query codes; given, the index must have been built with it
                (`check_hasher`).
            mmap: memory-map the ids, the paths and (`flat`, `ivf`) the
                codes, rather than read them: a 10M-item index opens in a
                fraction of a second and shares the page cache between
                processes. A mapped index is read-only (`add` refuses);
                load with `mmap=False` to add to it.

        Returns:
            The `HashIndex`; `hasher` is None for a version 1 index.

        Raises:
            FileNotFoundError: `directory` or one of its files is missing.
            ValueError: the files are not a `HashIndex` or disagree with
                each other (bits, item counts, kind), the message naming
                the file; or `hasher` is given and the index was not built
                with it.
        """
        directory = Path(directory)
        if not directory.is_dir():
            aside = sorted(directory.parent.glob(f".{directory.name}.old-*"))
            hint = (
                f"; a previous index was left at {aside[-1]}" if aside else ""
            )
            raise FileNotFoundError(
                f"hash index directory {directory} does not exist{hint}"
            )
        index_path = directory / INDEX_FILE
        if (directory / ITEMS_FILE).is_file() and not (
            directory / META_FILE
        ).is_file():
            meta, columns = _read_items_file(directory / ITEMS_FILE)
        else:
            meta = _read_meta(directory / META_FILE)
            columns = {
                c: StringColumn.load(directory, c, meta["count"], mmap)
                for c in COLUMNS
            }
        if not index_path.is_file():
            raise FileNotFoundError(f"hash index file {index_path} is missing")
        kind = index_kind(meta["settings"]["kind"])
        flags = kind.mmap_flags if mmap else 0
        try:
            faiss_index = faiss.read_index_binary(str(index_path), flags)
        except RuntimeError as error:
            raise ValueError(
                f"{index_path} is not a faiss binary index: "
                f"{str(error).strip().splitlines()[-1]}"
            ) from None
        if not isinstance(faiss_index, kind.faiss_type):
            raise ValueError(
                f"{index_path} holds a {type(faiss_index).__name__}, "
                f"not the {kind.faiss_type.__name__} of a {kind.name} index"
            )
        where = directory / (META_FILE if meta["version"] > 2 else ITEMS_FILE)
        if faiss_index.d != meta["bits"]:
            raise ValueError(
                f"{index_path} holds {faiss_index.d}-bit codes but "
                f"{where} says bits={meta['bits']!r}"
            )
        if faiss_index.ntotal != meta["count"]:
            raise ValueError(
                f"{index_path} holds {faiss_index.ntotal} codes but "
                f"{where} lists {meta['count']} items"
            )
        index = cls(faiss_index.d, hasher=meta["hasher"])
        index._settings = meta["settings"]
        kind.apply(faiss_index, index._settings)
        index._index = faiss_index
        index._columns = {c: [columns[c]] for c in COLUMNS}
        index._directory, index._version = directory, meta["version"]
        index._mapped = mmap
        if hasher is not None:
            index.check_hasher(hasher)
        return index


def _read_meta(path):
    """The checked `index.json` of a version 3 index, as a dict."""
    if not path.is_file():
        raise FileNotFoundError(f"hash index file {path} is missing")
    meta = _read_json(path)
    _check_version(meta, path, (3,))
    _check_fingerprint(meta.get("hasher"), path)
    count, bits = meta.get("count"), meta.get("bits")
    for name, value in (("count", count), ("bits", bits)):
        if type(value) is not int or value < 0:
            raise ValueError(
                f"{path}: {name!r} must be a non-negative integer, got "
                f"{value!r}"
            )
    meta["settings"] = check_settings(meta.get("settings"), str(path))
    return meta


def _read_items_file(path):
    """`(meta, columns)` of a version 1 or 2 index (`items.json`)."""
    items = _read_json(path)
    version = _check_version(items, path, (1, 2))
    fingerprint = items.get("hasher") if version >= 2 else None
    _check_fingerprint(fingerprint, path)
    ids, paths = items.get("ids"), items.get("paths")
    if not isinstance(ids, list) or not isinstance(paths, list):
        raise ValueError(f"{path} must hold lists 'ids' and 'paths'")
    if not all(isinstance(x, str) for x in ids + paths):
        raise ValueError(f"{path}: 'ids' and 'paths' must be strings")
    if len(ids) != len(paths):
        raise ValueError(f"{path} has {len(ids)} ids but {len(paths)} paths")
    meta = {
        "version": version,
        "bits": items.get("bits"),
        "hasher": fingerprint,
        "count": len(ids),
        "settings": dict(FLAT),
    }
    columns = {
        "ids": StringColumn.from_strings(ids),
        "paths": StringColumn.from_strings(paths),
    }
    return meta, columns


def _read_json(path):
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    return value


def _check_version(meta, path, versions):
    version = meta.get("version")
    if type(version) is not int or version not in versions:
        readable = ", ".join(map(str, READABLE_VERSIONS))
        raise ValueError(
            f"{path} has format version {version!r}; this grok_tf reads "
            f"versions {readable}"
            + (f" (version {version} as {META_FILE})" if version == 3 else "")
        )
    return version


def _check_fingerprint(fingerprint, path):
    if fingerprint is not None and not _is_fingerprint(fingerprint):
        raise ValueError(
            f"{path}: 'hasher' must be a fingerprint (64 lowercase hex "
            f"digits) or null, got {fingerprint!r}"
        )


def hasher_fingerprint(kind, bits, arrays, **settings):
    """The SHA-256 fingerprint of a hasher, 64 lowercase hex digits.

    It digests the hasher's kind, bit count and settings (as sorted JSON)
    and then each parameter array's dtype, shape and bytes, in order: a
    function of the values only, the same in every process and for every
    copy of a run, and different as soon as one parameter differs.

    Args:
        kind: the hasher's name, e.g. `"catalyzer"`.
        bits: its code length.
        arrays: its parameters (NumPy arrays, e.g. `model.get_weights()`),
            in a fixed order.
        **settings: other JSON values the codes depend on.

    Example:

    >>> weights = [np.eye(2, dtype="float32")]
    >>> fingerprint = hasher_fingerprint("demo", 8, weights, size=32)
    >>> len(fingerprint), short_fingerprint(fingerprint)
    (64, 'debd59f25ba6')
    >>> fingerprint == hasher_fingerprint("demo", 8, weights, size=64)
    False
    """
    digest = hashlib.sha256()
    header = {"fingerprint": 1, "kind": kind, "bits": int(bits), **settings}
    digest.update(json.dumps(header, sort_keys=True).encode() + b"\n")
    for array in arrays:
        array = np.asarray(array)  # little-endian, C order: one byte string
        array = np.ascontiguousarray(array, array.dtype.newbyteorder("<"))
        shape = json.dumps([array.dtype.str, list(array.shape)])
        digest.update(shape.encode() + b"\n")
        digest.update(array.tobytes())
    return digest.hexdigest()


def short_fingerprint(fingerprint):
    """The first 12 hex digits of a fingerprint (for messages), or "none"."""
    return "none" if fingerprint is None else fingerprint[:12]


def _is_fingerprint(value):
    return isinstance(value, str) and _FINGERPRINT.fullmatch(value) is not None


def _lexsorted(distances, positions):
    """Each row's (distance, position) pairs sorted by distance, position."""
    order = np.lexsort((positions, distances), axis=1)
    return (
        np.take_along_axis(distances, order, axis=1),
        np.take_along_axis(positions, order, axis=1),
    )


def _column(values, name, count, convert):
    """`values` as a `StringColumn` of `count` checked strings."""
    if isinstance(values, StringColumn):
        if len(values) != count:
            raise ValueError(
                f"{name} has {len(values)} entries but codes has {count} rows"
            )
        return values
    return StringColumn.from_strings(_strings(values, name, count, convert))


def _strings(values, name, count, convert):
    if isinstance(values, str | bytes) or (
        isinstance(values, np.ndarray) and values.ndim != 1
    ):
        raise ValueError(f"{name} must be a 1-D sequence, one per code")
    values = list(values)
    if len(values) != count:
        raise ValueError(
            f"{name} has {len(values)} entries but codes has {count} rows"
        )
    strings = []
    for i, value in enumerate(values):
        string = convert(value)
        if string is None:
            raise ValueError(
                f"{name}[{i}] must be a string, got {type(value).__name__} "
                f"{value!r}"
            )
        strings.append(string)
    return strings


def _id_string(value):
    if isinstance(value, str):
        return str(value)  # a plain str, also for np.str_
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return str(int(value))
    return None


def _path_string(value):
    if isinstance(value, str | os.PathLike):
        value = os.fspath(value)
        return str(value) if isinstance(value, str) else None
    return None


def check_replaceable(directory):
    """Refuses to replace `directory` unless it is empty or an index.

    An index (one piece, sharded, or of an older version) may be replaced
    by an index of either kind; a folder holding anything else is refused
    rather than deleted.
    """
    if not directory.exists():
        return
    if not directory.is_dir():
        raise FileExistsError(
            f"{directory} exists and is not an index directory"
        )
    index_files = {*FILES, ITEMS_FILE, SHARDS_FILE}
    others = {
        p.name
        for p in directory.iterdir()
        if p.name not in index_files
        and not (p.name.startswith("shard-") and (p / META_FILE).is_file())
    }
    if others:
        raise FileExistsError(
            f"{directory} is not a hash index (it holds {sorted(others)}); "
            "refusing to replace it"
        )
