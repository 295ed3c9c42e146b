"""A searchable store of binary product hashes (GrokNet's exact-product search).

GrokNet compresses each embedding to a 256-bit hash and finds the same
product by the Hamming distance between hashes (the number of differing
bits, lower is closer). `HashIndex` keeps the packed hashes in a
`faiss.IndexBinaryFlat` (exhaustive search, exact distances) and, beside
it, the product id and image path of every item, keyed by the item's
position in the faiss index (the order of `add`).

Codes are packed by the caller (see `grok_tf.binary_codes.pack_bits`):
`uint8 [n, bits // 8]`, bit j in byte j // 8 at position j % 8 from the
least significant bit (`np.packbits(bits, axis=1, bitorder="little")`).

On disk an index is a directory of two files, written together atomically
by `HashIndex.save` (a sibling temporary directory renamed into place):

- `index.faiss`: the codes (`faiss.write_index_binary`);
- `items.json`: `{"format", "version", "bits", "ids", "paths"}`.

Reference:
    Bell, Liu, Alsheikh, Tao, Sun, Taneja, Shrivastava, Brown, Tosio,
    Prasad, Srinivasan, Buchanan, Yadav, Ghosh, Hsu, Tsai, Dave, Sharma,
    Reed, Lofgren. "GrokNet: Unified Computer Vision Model Trunk and
    Embeddings For Commerce", KDD 2020.
"""

import json
import os
from pathlib import Path

import faiss
import numpy as np

from grok_tf.atomic_files import atomic_directory

INDEX_FILE = "index.faiss"
ITEMS_FILE = "items.json"
FORMAT = "grok_tf.HashIndex"
VERSION = 1


class HashIndex:
    """Exact Hamming-distance search over packed binary codes, with ids.

    Args:
        bits: hash length in bits, a positive multiple of 8 (256 in
            GrokNet); codes are `uint8 [n, bits // 8]`.

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

    def __init__(self, bits=256):
        if (
            isinstance(bits, bool)
            or not isinstance(bits, int | np.integer)
            or bits < 8
            or bits % 8
        ):
            raise ValueError(
                f"bits must be a positive multiple of 8, got {bits!r}"
            )
        self._index = faiss.IndexBinaryFlat(int(bits))
        self._ids = []
        self._paths = []

    @property
    def bits(self):
        """The hash length in bits."""
        return self._index.d

    def __len__(self):
        return self._index.ntotal

    def __repr__(self):
        return f"HashIndex(bits={self.bits}, items={len(self)})"

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

        Args:
            codes: `uint8 [q, bits // 8]` packed query hashes.
            k: neighbours per query, a positive integer; clipped to
                `len(self)`.

        Returns:
            `(distances, positions)`: int32 and int64 arrays of shape
            `[q, min(k, len(self))]`, Hamming distances ascending (ties in
            faiss order) and the items' positions in the index.
        """
        codes = self._check_codes(codes, "codes")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        k = min(int(k), len(self))
        if k == 0 or len(codes) == 0:
            shape = (len(codes), k)
            return np.zeros(shape, np.int32), np.zeros(shape, np.int64)
        distances, positions = self._index.search(codes, k)
        return (
            distances.astype(np.int32, copy=False),
            positions.astype(np.int64, copy=False),
        )

    def search(self, codes, k=10):
        """The k nearest items of each query, with their ids and paths.

        Args:
            codes: `uint8 [q, bits // 8]` packed query hashes.
            k: neighbours per query, a positive integer; clipped to
                `len(self)` (an empty index gives empty lists).

        Returns:
            One list per query of `{"id", "path", "distance"}` dicts,
            Hamming distance ascending (ties in faiss order).
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
                "ids": self._ids,
                "paths": self._paths,
            }
            (partial / ITEMS_FILE).write_text(json.dumps(items) + "\n")

    @classmethod
    def load(cls, directory):
        """Reads an index written by `save`.

        Args:
            directory: the index directory.

        Returns:
            The `HashIndex`.

        Raises:
            FileNotFoundError: `directory` or one of its files is missing.
            ValueError: the files are not a `HashIndex` or disagree with
                each other (bits, item counts); the message names the file.
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
        if items.get("version") != VERSION:
            raise ValueError(
                f"{items_path} has format version {items.get('version')!r}; "
                f"this grok_tf reads version {VERSION}"
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
        index = cls(faiss_index.d)
        index._index = faiss_index
        index._ids, index._paths = ids, paths
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
