"""A searchable store of binary product hashes (GrokNet's exact-product search).

GrokNet compresses each embedding to a 256-bit hash and finds the same
product by the Hamming distance between hashes (the number of differing
bits, lower is closer). `HashIndex` keeps the packed hashes in a
`faiss.IndexBinaryFlat` (exhaustive search, exact distances) and, beside
it, the product id and image path of every item, keyed by the item's
position in the faiss index (the order of `add`).

Ties: results are ordered by Hamming distance, then by position, lowest
first (the same rule as `grok_tf.evaluation.retrieval_metrics`). Of the
items tied at the k-th distance, those added first are returned. faiss
does not promise an order among equal distances, so `search_arrays` enforces the
rule itself.

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

On disk an index is a directory of two files, written together atomically
by `HashIndex.save` (a sibling temporary directory renamed into place):

- `index.faiss`: the codes (`faiss.write_index_binary`);
- `items.json`: `{"format", "version", "bits", "hasher", "ids", "paths"}`,
  `hasher` the fingerprint (64 hex digits) or null. Version 1 files (no
  `hasher`, written before fingerprints) still load, with `hasher` None:
  they can be searched with codes (`search`), but `check_hasher` refuses
  them, so `grok_tf.search.product_search.search_index` and `grok-tf search` ask
  for the index to be rebuilt.

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

INDEX_FILE = "index.faiss"
ITEMS_FILE = "items.json"
FORMAT = "grok_tf.HashIndex"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: no hasher fingerprint
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
# Extra neighbours asked of faiss beyond k, so that items tied with the
# k-th distance are usually all in its answer (no second pass needed).
_EXTRA = 16
# Queries per second-pass range search: bounds its result memory when
# very many items are tied (at most this many rows of `len(index)` hits).
_RANGE_QUERIES = 16


class HashIndex:
    """Exact Hamming-distance search over packed binary codes, with ids.

    Args:
        bits: hash length in bits, a positive multiple of 8 (256 in
            GrokNet); codes are `uint8 [n, bits // 8]`.
        hasher: the fingerprint of the hasher whose codes the index holds
            (`hasher_fingerprint`, 64 hex digits), or None when unknown.

    Ties are ordered by position: Hamming distance ascending, then the
    item's position (the order of `add`), lowest first.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> bits = rng.integers(0, 2, (3, 256), dtype=np.uint8)
    >>> codes = np.packbits(bits, axis=1, bitorder="little")
    >>> index = HashIndex()
    >>> index.add(codes, ["sku-1", "sku-2", "sku-3"],
    ...           ["a.jpg", "b.jpg", "c.jpg"])
    >>> len(index), index.bits
    (3, 256)
    >>> index.search(codes[1:2], k=1)
    [[{'id': 'sku-2', 'path': 'b.jpg', 'distance': 0}]]
    """

    def __init__(self, bits=256, hasher=None):
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
        self._index = faiss.IndexBinaryFlat(int(bits))
        self._ids = []
        self._paths = []
        self._hasher = hasher
        self._directory = None  # where it was loaded from or saved to
        self._version = VERSION  # the items.json version it was read from

    @property
    def bits(self):
        """The hash length in bits."""
        return self._index.d

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

    def __len__(self):
        return self._index.ntotal

    def __repr__(self):
        return (
            f"HashIndex(bits={self.bits}, items={len(self)}, "
            f"hasher={short_fingerprint(self._hasher)})"
        )

    def add(self, codes, ids, paths=None):
        """Appends items; their positions continue from `len(self)`.

        Args:
            codes: `uint8 [n, bits // 8]` packed hashes.
            ids: `n` product ids, strings (integers are stored as `str`).
            paths: `n` image paths (str or `os.PathLike`), or None for "".

        Raises:
            ValueError: codes of the wrong dtype, rank or width, or ids /
                paths of the wrong length or type; the message names the
                argument.
        """
        codes = self._check_codes(codes, "codes")
        ids = _strings(ids, "ids", len(codes), _id_string)
        if paths is None:
            paths = [""] * len(codes)
        else:
            paths = _strings(paths, "paths", len(codes), _path_string)
        self._index.add(codes)
        self._ids.extend(ids)
        self._paths.extend(paths)

    def search_arrays(self, codes, k=10):
        """The k nearest items of each query, as arrays.

        Order: Hamming distance ascending, then position (the order of
        `add`), lowest first. Of the items tied at the k-th distance, the
        lowest positions are returned, so the answer is a function of the
        codes alone, whatever order faiss returns equal distances in.

        Cost: one faiss search for `max(2k, k + 16)` neighbours. A query
        whose k-th distance is still shared by the last of those gets a
        second pass, a faiss range search returning every item up to that
        distance: slow only when very many items share it (e.g. 100k
        identical codes: ~40 ms a query on 2 cores).

        Args:
            codes: `uint8 [q, bits // 8]` packed query hashes.
            k: neighbours per query, a positive integer; clipped to
                `len(self)`.

        Returns:
            `(distances, positions)`: int32 and int64 arrays of shape
            `[q, min(k, len(self))]`, the Hamming distances and the items'
            positions in the index, in the order above.
        """
        codes = self._check_codes(codes, "codes")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        k = min(int(k), len(self))
        if k == 0 or len(codes) == 0:
            shape = (len(codes), k)
            return np.zeros(shape, np.int32), np.zeros(shape, np.int64)
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

    def search(self, codes, k=10):
        """The k nearest items of each query, with their ids and paths.

        Args:
            codes: `uint8 [q, bits // 8]` packed query hashes.
            k: neighbours per query, a positive integer; clipped to
                `len(self)` (an empty index gives empty lists).

        Returns:
            One list per query of `{"id", "path", "distance"}` dicts,
            Hamming distance ascending, then position (the order of
            `add`), lowest first; see `search_arrays`.
        """
        distances, positions = self.search_arrays(codes, k)
        return [
            [
                {
                    "id": self._ids[p],
                    "path": self._paths[p],
                    "distance": int(d),
                }
                for d, p in zip(row_d.tolist(), row_p.tolist(), strict=True)
            ]
            for row_d, row_p in zip(distances, positions, strict=True)
        ]

    def save(self, directory):
        """Writes the index to `directory` atomically.

        Both files go to a temporary directory beside `directory`, which is
        then renamed into place: an interrupted save leaves any previous
        index untouched. An existing index is replaced by renaming it
        aside, renaming the new one in, and deleting the old one; were the
        process killed between the two renames, the previous index
        survives as `.<name>.old-*` beside `directory`.

        Args:
            directory: the index directory; its parent is created if
                needed. An existing `directory` must be a saved index (or
                empty): anything else is refused rather than deleted.

        Raises:
            FileExistsError: `directory` exists and is not an index.
        """
        directory = Path(directory)
        _check_replaceable(directory)
        with atomic_directory(directory) as partial:
            faiss.write_index_binary(self._index, str(partial / INDEX_FILE))
            items = {
                "format": FORMAT,
                "version": VERSION,
                "bits": self.bits,
                "hasher": self._hasher,
                "ids": self._ids,
                "paths": self._paths,
            }
            (partial / ITEMS_FILE).write_text(json.dumps(items) + "\n")
        self._directory, self._version = directory, VERSION

    @classmethod
    def load(cls, directory, hasher=None):
        """Reads an index written by `save` (format version 1 or 2).

        Args:
            directory: the index directory.
            hasher: optional fingerprint of the hasher that will make the
                query codes; given, the index must have been built with it
                (`check_hasher`).

        Returns:
            The `HashIndex`; `hasher` is None for a version 1 index.

        Raises:
            FileNotFoundError: `directory` or one of its files is missing.
            ValueError: the files are not a `HashIndex` or disagree with
                each other (bits, item counts), the message naming the
                file; or `hasher` is given and the index was not built
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
        index_path, items_path = directory / INDEX_FILE, directory / ITEMS_FILE
        for path in (index_path, items_path):
            if not path.is_file():
                raise FileNotFoundError(f"hash index file {path} is missing")
        try:
            items = json.loads(items_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{items_path} is not valid JSON: {error}"
            ) from None
        if not isinstance(items, dict) or items.get("format") != FORMAT:
            raise ValueError(f"{items_path} is not a {FORMAT} items file")
        version = items.get("version")
        if type(version) is not int or version not in READABLE_VERSIONS:
            readable = ", ".join(map(str, READABLE_VERSIONS))
            raise ValueError(
                f"{items_path} has format version {version!r}; this "
                f"grok_tf reads versions {readable}"
            )
        fingerprint = items.get("hasher") if version >= 2 else None
        if fingerprint is not None and not _is_fingerprint(fingerprint):
            raise ValueError(
                f"{items_path}: 'hasher' must be a fingerprint (64 lowercase "
                f"hex digits) or null, got {fingerprint!r}"
            )
        ids, paths = items.get("ids"), items.get("paths")
        if not isinstance(ids, list) or not isinstance(paths, list):
            raise ValueError(f"{items_path} must hold lists 'ids' and 'paths'")
        if not all(isinstance(x, str) for x in ids + paths):
            raise ValueError(f"{items_path}: 'ids' and 'paths' must be strings")
        if len(ids) != len(paths):
            raise ValueError(
                f"{items_path} has {len(ids)} ids but {len(paths)} paths"
            )
        try:
            faiss_index = faiss.read_index_binary(str(index_path))
        except RuntimeError as error:
            raise ValueError(
                f"{index_path} is not a faiss binary index: {error}"
            ) from None
        if not isinstance(faiss_index, faiss.IndexBinaryFlat):
            raise ValueError(
                f"{index_path} holds a {type(faiss_index).__name__}, "
                "not an IndexBinaryFlat"
            )
        if faiss_index.d != items.get("bits"):
            raise ValueError(
                f"{index_path} holds {faiss_index.d}-bit codes but "
                f"{items_path} says bits={items.get('bits')!r}"
            )
        if faiss_index.ntotal != len(ids):
            raise ValueError(
                f"{index_path} holds {faiss_index.ntotal} codes but "
                f"{items_path} lists {len(ids)} items"
            )
        index = cls(faiss_index.d, hasher=fingerprint)
        index._index = faiss_index
        index._ids, index._paths = ids, paths
        index._directory, index._version = directory, version
        if hasher is not None:
            index.check_hasher(hasher)
        return index

    def _check_codes(self, codes, name):
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


def _check_replaceable(directory):
    if not directory.exists():
        return
    if not directory.is_dir():
        raise FileExistsError(
            f"{directory} exists and is not a hash index directory"
        )
    others = {p.name for p in directory.iterdir()} - {INDEX_FILE, ITEMS_FILE}
    if others:
        raise FileExistsError(
            f"{directory} is not a hash index (it holds {sorted(others)}); "
            "refusing to replace it"
        )
