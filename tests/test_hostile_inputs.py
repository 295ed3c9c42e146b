"""Hostile inputs, one row each: what must happen to what a user hands us.

Every row builds one input in a temporary folder (a file, a list line, a
spec, a serving request, a weights file), feeds it to the entry point a
user would call and states the outcome, matched as a regular expression:

- `refused: <message>`: a one-line error naming the file (and line or
  field) — `SpecError` / `ValueError`, which `grok-tf` prints as
  `grok-tf: error: ...` with exit code 2;
- `skipped: <reason>`: an image dropped from training and reported;
- `valid` / `invalid`: a serving request's per-image flag, the other
  images of the batch unaffected;
- `ok: ...`: read as intended.

The behaviour behind each row is tested in depth in the module of its
stage; this table is the one place that shows them side by side.
"""

import dataclasses
import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from grok_tf.data.batch_mixer import evaluation_batches
from grok_tf.data.batch_mixer import require_readable
from grok_tf.data.images import CorruptImageLog
from grok_tf.data.images import EvalPreprocessor
from grok_tf.data.images import ImageDecoder
from grok_tf.data.sources import read_split
from grok_tf.data.sources import resolve_vocabularies
from grok_tf.model.pretrained.torch_checkpoint import load_torch_state_dict
from grok_tf.search.hash_index import HashIndex
from grok_tf.spec.loader import load_spec
from tests.helpers import RawPickle
from tests.helpers import make_colour_dataset
from tests.helpers import png_declaring
from tests.helpers import system_call
from tests.helpers import tensor
from tests.helpers import write_legacy_checkpoint
from tests.helpers import write_spec
from tests.helpers import write_zip_checkpoint


@dataclasses.dataclass(frozen=True)
class Case:
    """One hostile input.

    Attributes:
        name: what the input is.
        run: `fn(folder) -> outcome`: builds the input in `folder`, feeds
            it to grok_tf and describes what happened.
        expected: a regular expression the whole outcome must match.
    """

    name: str
    run: Callable[[Path], str]
    expected: str


def outcome(fn):
    """`ok: <result>` or `refused: <one-line message>` of calling `fn`."""
    try:
        return f"ok: {fn()}"
    except ValueError as error:  # SpecError, CheckpointError, ...
        message = str(error)
        assert "\n" not in message, message
        return f"refused: {message}"


# Images, through the training pipeline and the serving decoder.


def jpeg(height, width):
    return tf.io.encode_jpeg(tf.zeros([height, width, 3], tf.uint8)).numpy()


def png(height, width):
    return tf.io.encode_png(tf.zeros([height, width, 3], tf.uint8)).numpy()


def small_photo():
    out = io.BytesIO()
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(out, "JPEG")
    return out.getvalue()


def toy_spec(folder, **model):
    raw = make_colour_dataset(folder / "data")
    raw["model"].update(model)
    return resolve_vocabularies(load_spec(write_spec(folder, raw)))


def in_training(make_bytes, **model):
    """Replaces one training image by `make_bytes()`; kept or skipped?"""

    def run(folder):
        spec = toy_spec(folder, **model)
        victim = folder / "data/images/train.txt_red_0.jpg"
        data = make_bytes()
        if data is None:
            victim.unlink()
        else:
            victim.write_bytes(data)
        split = read_split(spec, spec.datasets[0], "train")
        log = CorruptImageLog(ImageDecoder.for_spec(spec))
        require_readable(spec, split, log)
        rows = sum(
            len(images)
            for images, _, _ in evaluation_batches(spec, [split], log, 64)
        )
        files = log.summary()["files"]
        if str(victim) in files:
            assert rows == len(split) - 1
            return f"skipped: {files[str(victim)]}"
        assert rows == len(split)
        return "kept"

    return run


def whole_split(make_bytes):
    """Replaces every training image by `make_bytes()`."""

    def run(folder):
        spec = toy_spec(folder)
        for image in (folder / "data/images").glob("train*.jpg"):
            image.write_bytes(make_bytes())
        split = read_split(spec, spec.datasets[0], "train")
        log = CorruptImageLog(ImageDecoder.for_spec(spec))
        return outcome(lambda: require_readable(spec, split, log))

    return run


def in_request(make_bytes, size=64):
    """`valid` or `invalid` for one image amid good ones, as served."""

    def run(folder):
        # What grok_tf.serving.export.ServingFunctions.from_bytes runs.
        batch = tf.constant([small_photo(), make_bytes(), small_photo()])
        _, ok = EvalPreprocessor(size).batch_or_flag(batch)
        assert ok.numpy()[0] and ok.numpy()[2]
        return "valid" if ok.numpy()[1] else "invalid"

    return run


IMAGES = [
    Case(
        "truncated JPEG in a training list",
        in_training(lambda: small_photo()[:400]),
        "skipped: corrupt or truncated",
    ),
    Case(
        "text file named .jpg in a training list",
        in_training(lambda: b"hello"),
        "skipped: not a JPEG, PNG, GIF, BMP or WebP image",
    ),
    Case(
        "empty file in a training list",
        in_training(lambda: b""),
        "skipped: empty file",
    ),
    Case(
        "missing file in a training list",
        in_training(lambda: None),
        "skipped: file not found",
    ),
    Case(
        "12000x12000 JPEG in a training list (decoded at 1/8)",
        in_training(lambda: jpeg(12000, 12000)),
        "kept",
    ),
    Case(
        "150-byte PNG declaring 50000x50000 in a training list",
        in_training(lambda: png_declaring(50_000, 50_000)),
        "skipped: too large: 50000x50000 decodes to 2,500,000,000 pixels, "
        "above max_image_pixels=40,000,000",
    ),
    Case(
        "PNG above a lowered model.max_image_pixels",
        in_training(lambda: png(300, 400), max_image_pixels=100_000),
        "skipped: too large: 400x300 decodes to 120,000 pixels, above "
        "max_image_pixels=100,000",
    ),
    Case(
        "training split whose images are all truncated",
        whole_split(lambda: small_photo()[:400]),
        r"refused: spec.yaml: dataset 'toy', split 'train': none of its 12 "
        r"images can be read: 12 files \(12 corrupt or truncated\), e\.g\. "
        r".*train.txt_blue_0.jpg: corrupt or truncated; .* \(\+9 more\)",
    ),
    Case(
        "8000x8000 JPEG in a serving request (decoded at 1/8)",
        in_request(lambda: jpeg(8000, 8000)),
        "valid",
    ),
    Case(
        "PNG declaring 50000x50000 in a serving request",
        in_request(lambda: png_declaring(50_000, 50_000)),
        "invalid",
    ),
    Case(
        "truncated JPEG in a serving request",
        in_request(lambda: small_photo()[:400]),
        "invalid",
    ),
    Case(
        "random bytes in a serving request",
        in_request(lambda: np.random.default_rng(0).bytes(3000)),
        "invalid",
    ),
    Case(
        "JPEG header with endless fill bytes in a serving request",
        in_request(lambda: b"\xff\xd8" + b"\xff" * 100_000),
        "invalid",
    ),
]


# Weights files, through the ImageNet weights loader.


def weights_file(write):
    """`write(path, marker)` writes a .pth; loaded as the weights loader
    does, and the payload (which would create `marker`) never runs."""

    def run(folder):
        path, marker = folder / "weights.pth", folder / "marker"
        write(path, marker)
        result = outcome(lambda: list(load_torch_state_dict(path)))
        assert not marker.exists(), "the payload ran"
        return result.replace(str(path), "FILE")

    return run


def legacy_weights(replace=None):
    def write(path, marker):
        payload = {"replace": replace(marker)} if replace else {}
        state = {"w": tensor(np.ones(3, np.float32), "0")}
        write_legacy_checkpoint(path, state, **payload)

    return weights_file(write)


def zip_weights(obj):
    return weights_file(
        lambda path, marker: write_zip_checkpoint(path, obj(marker))
    )


REFUSED_SYSTEM = (
    r"refused: FILE: refused the global '(os|posix)\.system' in the"
)
WEIGHTS = [
    Case("a plain state dict", legacy_weights(), r"ok: \['w'\]"),
    *(
        Case(
            f"os.system in the {which} pickle of a .pth",
            legacy_weights(lambda marker, w=which: {w: system_call(marker)}),
            REFUSED_SYSTEM + ".*",
        )
        for which in ("magic", "protocol", "sys_info", "keys")
    ),
    Case(
        "os.system in the zip format's data.pkl",
        zip_weights(lambda marker: {"w": system_call(marker)}),
        REFUSED_SYSTEM + " object pickle.*",
    ),
    Case(
        "a list that contains itself",
        zip_weights(
            lambda marker: RawPickle(b"]q\x00h\x00a")  # l = []; l.append(l)
        ),
        "refused: FILE: the checkpoint holds a container that contains "
        "itself; refused.",
    ),
]


# Text inputs: list lines, class tables, specs, through the spec loader
# and the readers `grok-tf train` uses.


def with_list_line(line):
    """The toy train list with its first line replaced by `line` (bytes)."""

    def run(folder):
        raw = make_colour_dataset(folder / "data")
        path = folder / "data/train.txt"
        path.write_bytes(line + path.read_bytes().split(b"\n", 1)[1])
        spec_path = write_spec(folder, raw)

        def read():
            spec = resolve_vocabularies(load_spec(spec_path))
            split = read_split(spec, spec.datasets[0], "train")
            name = split.refs[0].rsplit("/", 1)[-1]
            return f"{name} {split.labels['colour'][0]}"

        return outcome(read).replace(str(folder), "T")

    return run


def with_spec(change):
    """The toy spec after `change(raw)`, loaded."""

    def run(folder):
        raw = make_colour_dataset(folder / "data")
        change(raw)
        spec_path = write_spec(folder, raw)
        return outcome(lambda: load_spec(spec_path) and "loaded").replace(
            str(folder), "T"
        )

    return run


TEXTS = [
    Case(
        "latin-1 byte in a list file",
        with_list_line(b"images/caf\xe9.jpg, 0, 0\n"),
        "refused: T/data/train.txt:1: not UTF-8: byte E9 at column 11 "
        r"\(file offset 10\); text files must be UTF-8 \(with or without BOM\)",
    ),
    Case(
        "UTF-8 byte order mark before a list file's first path",
        with_list_line(b"\xef\xbb\xbfimages/train.txt_red_0.jpg, 0, 0\n"),
        "ok: train.txt_red_0.jpg 0",
    ),
    Case(
        "quoted path holding a comma",
        with_list_line(b'"images/train.txt_red_0.jpg", 2, 0\n'),
        "ok: train.txt_red_0.jpg 2",
    ),
    Case(
        "label '--5' (int() would crash on it)",
        with_list_line(b"images/train.txt_red_0.jpg, --5, 0\n"),
        "refused: T/data/train.txt:1: head 'colour': unknown class '--5' "
        r"\(not in its 3 classes\)",
    ),
    Case(
        "class id out of range",
        with_list_line(b"images/train.txt_red_0.jpg, 7, 0\n"),
        "refused: T/data/train.txt:1: head 'colour': class id 7 out of range "
        r"\(3 classes\)",
    ),
    Case(
        "path leaving the dataset root",
        with_list_line(b"../../etc/passwd, 0, 0\n"),
        "refused: T/data/train.txt:1: path '../../etc/passwd' leaves the "
        "dataset root",
    ),
    Case(
        "NUL byte in a list file",
        with_list_line(b"images/a\x00.jpg, 0, 0\n"),
        r"refused: T/data/train.txt:1: NUL byte at column 9; not a text file\?",
    ),
    Case(
        "unbalanced quote in a list file",
        with_list_line(b'"images/train.txt_red_0.jpg, 0, 0\n'),
        "refused: T/data/train.txt:1: a quoted field is not closed "
        r"\(unbalanced quote\)",
    ),
    Case(
        "split slice that is not a number",
        with_spec(
            lambda raw: raw["datasets"][0]["splits"].update(
                train="train.txt[:abc]"
            )
        ),
        r"refused: spec.yaml: datasets\[0\].splits.train: bad slice "
        r"\[:abc\]: 'abc' is not a count \(integer\) or a percentage from "
        "0% to 100%",
    ),
    Case(
        "negative images_per_batch",
        with_spec(lambda raw: raw["datasets"][0].update(images_per_batch=-4)),
        r"refused: spec.yaml: datasets\[0\].images_per_batch: must be a "
        "positive integer, got -4",
    ),
    Case(
        "max_image_pixels that is not a number",
        with_spec(lambda raw: raw["model"].update(max_image_pixels="lots")),
        "refused: spec.yaml: model.max_image_pixels: must be an integer, got "
        "str",
    ),
]


# Hash indexes on disk, through HashIndex.load.


def index_searched_by(hasher, tamper=None):
    """An index built by hasher 'a...' loaded for `hasher` (or tampered)."""

    def run(folder):
        codes = np.random.default_rng(0).integers(0, 256, (3, 32), np.uint8)
        index = HashIndex(256, hasher="a" * 64)
        index.add(codes, ["x", "y", "z"])
        index.save(folder / "index")
        if tamper is not None:
            tamper(folder / "index")
        return outcome(
            lambda: len(HashIndex.load(folder / "index", hasher=hasher))
        ).replace(str(folder), "T")

    return run


def lose_an_id(index):
    offsets = np.load(index / "ids.offsets.npy")
    np.save(index / "ids.offsets.npy", offsets[:-1])


def pickle_the_paths(index):
    np.save(index / "paths.data.npy", np.array([print], object))


INDEXES = [
    Case(
        "an index searched by its own hasher",
        index_searched_by("a" * 64),
        "ok: 3",
    ),
    Case(
        "an index searched by another run's hasher of the same length",
        index_searched_by("b" * 64),
        "refused: hash index T/index was built with hasher aaaaaaaaaaaa, not "
        "this hasher bbbbbbbbbbbb: search it with the run that built it, or "
        "rebuild it with `grok-tf index`",
    ),
    Case(
        "an index whose id map lost an item",
        index_searched_by("a" * 64, lose_an_id),
        "refused: T/index/ids.offsets.npy holds 3 offsets; 3 items need 4",
    ),
    Case(
        "an index whose paths are a pickle",
        index_searched_by("a" * 64, pickle_the_paths),
        r"refused: T/index/paths.data.npy is not a valid .npy array: .*",
    ),
]


CASES = IMAGES + WEIGHTS + TEXTS + INDEXES


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case, tmp_path):
    got = case.run(tmp_path)
    assert re.fullmatch(case.expected, got), got
