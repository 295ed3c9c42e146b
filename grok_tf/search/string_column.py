"""A compact, memory-mappable column of strings (an index's ids and paths).

Ten million Python strings cost about 60 bytes each before their text;
a `StringColumn` costs the UTF-8 text plus one 4-byte offset per string
(8 bytes once the text passes 4 GiB), the Arrow layout: string `i` is
`data[offsets[i]:offsets[i + 1]]`. Saved as two `.npy` files, it opens
memory-mapped, so a 10M-item index reads none of its text until asked.

On disk, for a column named `ids`: `ids.offsets.npy` (uint32 or uint64,
`n + 1` values from 0 to `len(data)`, non-decreasing) and `ids.data.npy`
(uint8). `load` checks both against each other and against the expected
length and refuses anything else with a one-line message naming the file;
`.npy` files are read with `allow_pickle=False`.

Example:

>>> column = StringColumn.from_strings(["sku-1", "sku-22", "épicerie"])
>>> len(column), column[2], column.take([1, 0])
(3, 'épicerie', ['sku-22', 'sku-1'])
>>> column.nbytes  # 20 bytes of UTF-8 text, 4 offsets of 4 bytes
36
"""

from pathlib import Path

import numpy as np

# Strings per chunk when encoding: bounds the temporary Python objects.
_CHUNK = 1 << 16


class StringColumn:
    """An immutable sequence of strings stored as UTF-8 bytes and offsets.

    Args:
        offsets: `uint32` or `uint64 [n + 1]`, from 0 to `len(data)`,
            non-decreasing.
        data: `uint8 [total]`, the strings' UTF-8 encodings, concatenated.

    Use `from_strings` to build one, `save` / `load` to store it.

    Example:

    >>> column = StringColumn.from_strings(["a", "bc"])
    >>> list(column), column.offsets.tolist()
    (['a', 'bc'], [0, 1, 3])
    """

    def __init__(self, offsets, data):
        self.offsets = offsets
        self.data = data

    @classmethod
    def from_strings(cls, strings):
        """Encodes an iterable of `str` (e.g. a list, or a generator)."""
        chunks, lengths = [], []
        batch = []
        for string in strings:
            batch.append(string.encode("utf-8", "surrogateescape"))
            if len(batch) == _CHUNK:
                _flush(batch, chunks, lengths)
                batch = []
        _flush(batch, chunks, lengths)
        data = np.frombuffer(b"".join(chunks), np.uint8)
        offsets = np.cumsum(np.concatenate([[0], *lengths]), dtype=np.uint64)
        return cls(_narrowed(offsets), data)

    @classmethod
    def concatenate(cls, columns):
        """One column holding the strings of `columns`, in order."""
        columns = list(columns)
        data = np.concatenate([np.asarray(c.data) for c in columns] or [[]])
        starts = np.cumsum([0] + [len(c.data) for c in columns])
        offsets = [np.zeros(1, np.uint64)] + [
            np.asarray(c.offsets[1:], np.uint64) + np.uint64(start)
            for c, start in zip(columns, starts, strict=False)
        ]
        return cls(_narrowed(np.concatenate(offsets)), data.astype(np.uint8))

    def __len__(self):
        return len(self.offsets) - 1

    def __getitem__(self, i):
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return bytes(self.data[start:end]).decode("utf-8", "surrogateescape")

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def take(self, positions):
        """The strings at `positions` (any iterable of ints), as a list."""
        return [self[int(i)] for i in positions]

    @property
    def nbytes(self):
        """Bytes of the offsets and the text (what it costs in memory)."""
        return self.offsets.nbytes + self.data.nbytes

    def save(self, directory, name):
        """Writes `NAME.offsets.npy` and `NAME.data.npy` into `directory`."""
        directory = Path(directory)
        np.save(directory / f"{name}.offsets.npy", self.offsets)
        np.save(directory / f"{name}.data.npy", self.data)

    @classmethod
    def load(cls, directory, name, count, mmap=True):
        """Reads a column written by `save`, memory-mapped by default.

        Args:
            directory: the folder holding its two files.
            name: the column's name, e.g. `"ids"`.
            count: the number of strings it must hold.
            mmap: map the files (read on first use) rather than read them.

        Raises:
            FileNotFoundError: a file is missing.
            ValueError: a file is not a valid `.npy` of the right dtype and
                shape, or the offsets disagree with the data or `count`;
                the message names the file.
        """
        offsets_path = Path(directory) / f"{name}.offsets.npy"
        data_path = Path(directory) / f"{name}.data.npy"
        offsets = _read_array(offsets_path, mmap, (np.uint32, np.uint64))
        data = _read_array(data_path, mmap, (np.uint8,))
        if len(offsets) != count + 1:
            raise ValueError(
                f"{offsets_path} holds {len(offsets)} offsets; {count} "
                f"items need {count + 1}"
            )
        if offsets[0] != 0 or int(offsets[-1]) != len(data):
            raise ValueError(
                f"{offsets_path} must run from 0 to {len(data)} (the bytes "
                f"of {data_path.name}), got {int(offsets[0])} to "
                f"{int(offsets[-1])}"
            )
        if count and not np.all(offsets[1:] >= offsets[:-1]):
            raise ValueError(f"{offsets_path}: offsets must not decrease")
        return cls(offsets, data)


def _flush(batch, chunks, lengths):
    chunks.extend(batch)
    lengths.append(np.fromiter(map(len, batch), np.uint64, len(batch)))


def _narrowed(offsets):
    """uint64 offsets as uint32 when the total fits (half the memory)."""
    if offsets[-1] < 2**32:
        return offsets.astype(np.uint32)
    return offsets


def _read_array(path, mmap, dtypes):
    if not path.is_file():
        raise FileNotFoundError(f"hash index file {path} is missing")
    try:
        array = np.load(
            path, mmap_mode="r" if mmap else None, allow_pickle=False
        )
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path} is not a valid .npy array: {error}") from None
    if array.ndim != 1 or array.dtype not in [np.dtype(d) for d in dtypes]:
        kinds = " or ".join(np.dtype(d).name for d in dtypes)
        raise ValueError(
            f"{path} must hold a 1-D {kinds} array, got {array.dtype} "
            f"{array.shape}"
        )
    return array
