"""Reads PyTorch checkpoints (state dicts) with `pickle` and numpy only.

PyTorch is not a dependency of `grok_tf`; this module reads the two formats
of `torch.save` well enough to get a state dict's tensors as numpy arrays:

* the legacy format (torch < 1.6, or `_use_new_zipfile_serialization=False`):
  five pickles in a row -- the magic number 0x1950a86a20f9469cfc6c, the
  protocol version (1001), a `sys_info` dict (byte order, type sizes), the
  object itself, whose tensors refer to storages by persistent id
  ``('storage', storage_type, key, location, numel[, view_metadata])``, and
  the list of storage keys -- followed, for each key in that order, by an
  int64 element count and the storage's raw little-endian bytes;
* the zip format (torch >= 1.6): ``<archive>/data.pkl`` holds the object
  (persistent ids ``('storage', storage_type, key, location, numel)``) and
  ``<archive>/data/<key>`` the raw bytes of each storage.

Tensors are rebuilt from ``torch._utils._rebuild_tensor_v2(storage, offset,
size, stride, ...)`` as numpy views of their storage (`as_strided`, strides
in elements), then copied to contiguous arrays. Unpickling is restricted to
an allow-list of globals (`collections.OrderedDict`, the tensor rebuild
functions, the storage types), so a checkpoint cannot run arbitrary code.

Example:
    >>> state = load_torch_state_dict("efficientnet-lite0-57934424.pth")
    >>> state["_conv_stem.weight"].shape
    (32, 3, 3, 3)

Reference:
    PyTorch `torch/serialization.py` (`_legacy_save`, `_save`,
    `_legacy_load`, `_load`) and `torch/_utils.py` (`_rebuild_tensor_v2`).
"""

import collections
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: First pickle of a legacy checkpoint.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
#: Second pickle of a legacy checkpoint.
LEGACY_PROTOCOL_VERSION = 1001

#: PyTorch storage type name -> numpy dtype of its elements. "BFloat16" has
#: no numpy dtype: its 16-bit words are widened to float32 on reading.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
    "ComplexDoubleStorage": np.dtype("<c16"),
    "ComplexFloatStorage": np.dtype("<c8"),
}


@dataclass(frozen=True)
class StorageType:
    """A PyTorch storage class (e.g. `torch.FloatStorage`) as unpickled.

    Attributes:
        name: The class name, a key of `STORAGE_DTYPES`.
        dtype: The numpy dtype of the raw elements.
    """

    name: str
    dtype: np.dtype


class Storage:
    """The flat elements of one PyTorch storage, filled in after unpickling.

    In the legacy format the object pickle comes before the storage bytes,
    so tensors are rebuilt lazily: `_rebuild_tensor_v2` returns a
    `_PendingTensor` holding the storage, and `load_torch_checkpoint`
    materialises it once every storage has its `data`.

    Attributes:
        storage_type: The `StorageType` of the elements.
        key: The storage's key in the checkpoint.
        numel: Number of elements.
        data: The 1-D numpy array of the elements, once read (else None).
    """

    def __init__(self, storage_type: StorageType, key: str, numel: int):
        self.storage_type = storage_type
        self.key = key
        self.numel = int(numel)
        self.data: np.ndarray | None = None


@dataclass(frozen=True)
class _StorageView:
    """A legacy `view_metadata` slice of a root storage (in elements)."""

    root: Storage
    offset: int
    numel: int


@dataclass(frozen=True)
class _PendingTensor:
    """The arguments of `_rebuild_tensor_v2`, turned into numpy later."""

    storage: Storage | _StorageView
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused):
    """Stands in for `torch._utils._rebuild_tensor_v2` (and `_rebuild_tensor`).

    Extra arguments (requires_grad, backward_hooks, metadata) are ignored.
    """
    return _PendingTensor(
        storage, int(storage_offset), tuple(size), tuple(stride)
    )


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
    """Stands in for `torch._utils._rebuild_parameter`: the tensor itself."""
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    """Stands in for `torch._tensor._rebuild_from_type_v2`."""
    return func(*args)


class _TensorClass:
    """Placeholder for `torch.Tensor` / `torch.nn.Parameter` type arguments."""


#: (module, name) -> object, the only globals a checkpoint may refer to.
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TensorClass,
    ("torch.nn.parameter", "Parameter"): _TensorClass,
    ("torch", "Size"): tuple,
    **{
        ("torch", name): StorageType(name, dtype)
        for name, dtype in STORAGE_DTYPES.items()
    },
}


class _CheckpointUnpickler(pickle.Unpickler):
    """Unpickles a checkpoint's object, resolving storages by persistent id.

    Args:
        file: The binary file positioned at the object pickle.
        path: The checkpoint path, for error messages.
        storages: Key -> `Storage`, shared across the whole checkpoint and
            filled in as persistent ids are met.
    """

    def __init__(self, file, path: Path, storages: dict[str, Storage]):
        super().__init__(file, encoding="latin1")
        self._path = path
        self._storages = storages

    def find_class(self, module, name):
        """Returns an allow-listed global, else raises `UnpicklingError`."""
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{self._path}: the checkpoint refers to the global "
                f"'{module}.{name}', which is not a tensor, a storage or an "
                "OrderedDict; only plain state dicts can be read without "
                "PyTorch."
            ) from None

    def persistent_load(self, pid):
        """Maps ``('storage', type, key, location, numel[, view])``."""
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(
                f"{self._path}: unsupported persistent id {pid!r} (expected "
                "('storage', storage_type, key, location, numel))."
            )
        if len(pid) not in (5, 6):
            raise pickle.UnpicklingError(
                f"{self._path}: malformed storage id {pid!r}."
            )
        storage_type, key, _location, numel = pid[1:5]
        view_metadata = pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, StorageType):
            raise pickle.UnpicklingError(
                f"{self._path}: storage {key!r} has unsupported type "
                f"{storage_type!r}; supported: {', '.join(STORAGE_DTYPES)}."
            )
        key = str(key)
        storage = self._storages.get(key)
        if storage is None:
            storage = Storage(storage_type, key, numel)
            self._storages[key] = storage
        if view_metadata is None:
            return storage
        _view_key, view_offset, view_numel = view_metadata
        return _StorageView(storage, int(view_offset), int(view_numel))


def _storage_elements(storage: Storage | _StorageView) -> np.ndarray:
    """The 1-D element array of a storage or storage view."""
    if isinstance(storage, _StorageView):
        base = _storage_elements(storage.root)
        return base[storage.offset : storage.offset + storage.numel]
    assert storage.data is not None, storage.key
    return storage.data


def _root(storage: Storage | _StorageView) -> Storage:
    """The root storage of a storage or storage view."""
    return storage.root if isinstance(storage, _StorageView) else storage


def _materialise(obj: Any, path: Path) -> Any:
    """Replaces every `_PendingTensor` in `obj` by a contiguous numpy copy."""
    if isinstance(obj, _PendingTensor):
        elements = _storage_elements(obj.storage)
        needed = obj.offset + 1
        needed += sum(
            (n - 1) * s for n, s in zip(obj.size, obj.stride, strict=True)
        )
        if any(n == 0 for n in obj.size):
            needed = 0
        if obj.offset < 0 or needed > elements.size:
            raise ValueError(
                f"{path}: a tensor of size {obj.size}, stride {obj.stride} "
                f"and offset {obj.offset} overruns its storage of "
                f"{elements.size} elements."
            )
        view = np.lib.stride_tricks.as_strided(
            elements[obj.offset :],
            shape=obj.size,
            strides=tuple(s * elements.itemsize for s in obj.stride),
            writeable=False,
        )
        array = np.array(view, copy=True, order="C")
        if _root(obj.storage).storage_type.name == "BFloat16Storage":
            array = (array.astype("<u4") << 16).view("<f4")
        return array
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict(
            (k, _materialise(v, path)) for k, v in obj.items()
        )
    if isinstance(obj, dict):
        return {k: _materialise(v, path) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialise(v, path) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialise(v, path) for v in obj)
    return obj


def _not_a_checkpoint(path: Path, reason: str) -> ValueError:
    """The error for a file that is not a readable PyTorch checkpoint."""
    return ValueError(
        f"{path} is not a PyTorch checkpoint readable without PyTorch "
        f"({reason}). Expected a file written by `torch.save` (legacy "
        "pickle format or the zip format of torch >= 1.6)."
    )


def _read_legacy(file, path: Path) -> Any:
    """Reads a legacy (non-zip) checkpoint from `file` at offset 0."""
    try:
        magic = pickle.load(file)
    except Exception as exc:
        raise _not_a_checkpoint(path, f"no leading pickle: {exc}") from None
    if magic != LEGACY_MAGIC_NUMBER:
        raise _not_a_checkpoint(
            path, f"magic number {magic!r:.40}, expected 0x1950a86a20f9469cfc6c"
        )
    protocol = pickle.load(file)
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise ValueError(
            f"{path}: unsupported legacy protocol version {protocol!r} "
            f"(expected {LEGACY_PROTOCOL_VERSION})."
        )
    sys_info = pickle.load(file)
    if isinstance(sys_info, Mapping) and not sys_info.get(
        "little_endian", True
    ):
        raise ValueError(f"{path}: big-endian checkpoints are not supported.")
    storages: dict[str, Storage] = {}
    obj = _CheckpointUnpickler(file, path, storages).load()
    keys = pickle.load(file)
    for key in keys:
        key = str(key)
        storage = storages.get(key)
        if storage is None:
            raise ValueError(
                f"{path}: storage key {key!r} is listed but no tensor uses it."
            )
        header = file.read(8)
        if len(header) != 8:
            raise ValueError(f"{path}: truncated before storage {key!r}.")
        (numel,) = struct.unpack("<q", header)
        dtype = storage.storage_type.dtype
        raw = file.read(numel * dtype.itemsize)
        if len(raw) != numel * dtype.itemsize:
            raise ValueError(f"{path}: storage {key!r} is truncated.")
        storage.data = np.frombuffer(raw, dtype=dtype)
    missing = [k for k, s in storages.items() if s.data is None]
    if missing:
        raise ValueError(f"{path}: no data for storages {missing}.")
    return _materialise(obj, path)


def _read_zip(path: Path) -> Any:
    """Reads a zip-format checkpoint (torch >= 1.6)."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise _not_a_checkpoint(path, "a zip without one data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        storages: dict[str, Storage] = {}
        with archive.open(pickles[0]) as file:
            obj = _CheckpointUnpickler(
                io.BytesIO(file.read()), path, storages
            ).load()
        for key, storage in storages.items():
            member = f"{prefix}data/{key}"
            try:
                raw = archive.read(member)
            except KeyError:
                raise ValueError(
                    f"{path}: storage {key!r} has no member {member!r}."
                ) from None
            dtype = storage.storage_type.dtype
            # The zip format's storages are untyped: numel counts bytes in
            # some torch versions and elements in others; the bytes decide.
            if len(raw) % dtype.itemsize:
                raise ValueError(
                    f"{path}: storage {key!r} holds {len(raw)} bytes, not a "
                    f"multiple of {dtype.itemsize} "
                    f"({storage.storage_type.name})."
                )
            storage.data = np.frombuffer(raw, dtype=dtype)
    return _materialise(obj, path)


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
    """Reads any `torch.save` file whose tensors live in plain containers.

    Args:
        path: A file written by `torch.save`, legacy or zip format.

    Returns:
        The saved object with every tensor replaced by a C-contiguous numpy
        array of the tensor's dtype (float32 for FloatStorage, int64 for
        LongStorage, ...; bfloat16 widened to float32).

    Raises:
        FileNotFoundError: If `path` does not exist.
        ValueError: If the file is not a PyTorch checkpoint, is truncated,
            or uses an unsupported feature; the message names the file.
        pickle.UnpicklingError: If the pickle refers to a global that is
            not allow-listed (e.g. a whole pickled `nn.Module`).

    Example:
        >>> obj = load_torch_checkpoint("model.pth")

    Reference:
        PyTorch `torch/serialization.py` (`_legacy_load`, `_load`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {path}.")
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    with open(path, "rb") as file:
        return _read_legacy(file, path)


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a PyTorch state dict (name -> tensor) as numpy arrays.

    Args:
        path: A `torch.save(model.state_dict(), path)` file, legacy or zip
            format.

    Returns:
        A dict from parameter / buffer name (e.g. "_conv_stem.weight") to a
        C-contiguous numpy array, in the checkpoint's order.

    Raises:
        FileNotFoundError: If `path` does not exist.
        ValueError: If the file is not a PyTorch checkpoint or does not hold
            a mapping from names to tensors; the message names the file.

    Example:
        >>> state = load_torch_state_dict("efficientnet-lite0-57934424.pth")
        >>> state["_fc.weight"].shape
        (1000, 1280)

    Reference:
        PyTorch `torch.nn.Module.state_dict` and `torch.save`.
    """
    obj = load_torch_checkpoint(path)
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"{path} holds a {type(obj).__name__}, not a state dict "
            "(a mapping from names to tensors)."
        )
    state = {}
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, np.ndarray):
            raise ValueError(
                f"{path}: entry {name!r} is a {type(value).__name__}, not a "
                "tensor; expected a flat state dict of tensors."
            )
        state[name] = value
    return state
