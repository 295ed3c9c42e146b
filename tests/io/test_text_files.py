"""Hostile text inputs: every malformed line is one error naming FILE:LINE.

Each case of `CASES` writes some bytes into the toy colour dataset
(`tests.helpers.make_colour_dataset`: heads `colour` (classes from
`data/colours.txt`) and `shape` (`square`, `disc`), list files of
`path, colour, shape` lines), possibly changes the spec, then reads
everything through the public readers: `load_spec`,
`resolve_vocabularies`, `read_split` of every split, `read_catalogue`.
The case expects either one error line or the parsed result.
"""

import copy
import csv
import dataclasses

import pytest

from grok_tf.data.sources import read_catalogue
from grok_tf.data.sources import read_split
from grok_tf.data.sources import resolve_vocabularies
from grok_tf.errors import SpecError
from grok_tf.io import text_files
from grok_tf.io.text_files import parse_int
from grok_tf.io.text_files import read_lines
from grok_tf.io.text_files import read_list
from grok_tf.io.text_files import read_table
from grok_tf.spec.loader import load_spec
from tests.helpers import add_query_tag_feed
from tests.helpers import make_colour_dataset
from tests.helpers import write_spec

_tag_feed = add_query_tag_feed  # short, for the table's rows

IMG = "images/train.txt_red_0.jpg"  # an image of the toy dataset
UTF8 = "not UTF-8: byte"


@dataclasses.dataclass
class Error:
    """Expect `FILE:LINE: ...what...` (file in the data folder)."""

    file: str
    line: int
    what: str


@dataclasses.dataclass
class FieldError:
    """Expect `spec.yaml: FIELD: ...what...`."""

    field: str
    what: str


@dataclasses.dataclass
class Parsed:
    """Expect these refs (relative to the data folder) and labels."""

    split: tuple  # (dataset, split) or (dataset, "catalogue")
    refs: list
    labels: dict
    classes: dict = dataclasses.field(default_factory=dict)


# Spec changes.
def _inferred(raw):
    raw["heads"][0]["classes"] = "inferred"


def _inferred_train_only(raw):
    _inferred(raw)
    raw["datasets"][0]["splits"] = {"train": "train.txt"}


def _class_csv(raw):
    raw["heads"][0]["classes"] = {
        "file": "data/classes.csv",
        "column": "name",
        "id_column": "id",
    }


def _class_file(name):
    def change(raw):
        raw["heads"][0]["classes"] = {"file": f"data/{name}"}

    return change


def _train_split(ref):
    def change(raw):
        raw["datasets"][0]["splits"]["train"] = ref

    return change


def _shape_feed(column):
    def change(raw):
        raw["datasets"][0]["feeds"]["shape"] = column

    return change


def _catalogue(raw):
    raw["heads"][0]["type"] = "arcface"
    raw["datasets"][0]["catalogue"] = {
        "file": "catalogue.csv",
        "image": "image",
        "id": "id",
    }


def _csv_tags(raw):
    raw["heads"].append(
        {"name": "tags", "type": "multilabel_softmax", "classes": list("abc")}
    )
    raw["datasets"].append(
        {
            "name": "tagged",
            "source": "csv_tags",
            "root": "data",
            "splits": {"train": "tags.csv"},
            "images_per_batch": 2,
            "feeds": {"tags": "tags"},
        }
    )


def _train(content):
    return {"train.txt": content}


def _classes_csv(content):
    return {"classes.csv": b"name,id\n" + content}


PRODUCTS = (
    b"id,name,description\n0,Red-Apple-Juice,/a.txt\n"
    b"1,Green-Apple,/b.txt\n2,Blue-Berry-Juice,/c.txt\n"
)
TEXTS = {
    "a.txt": b"sweet juice of red apples",
    "b.txt": b"sour green apple",
    "c.txt": b"sweet juice",
}


def _products(old=b"", new=b"", **files):
    return {"products.csv": PRODUCTS.replace(old, new), **TEXTS, **files}


def _line(label, shape="0"):
    return f"{IMG}, {label}, {shape}\n".encode()


TRAIN = ("toy", "train")
COLOURS = ("red", "green", "blue")
CASES = [
    # List files: encodings and line ends.
    ("list latin-1", _train(b"images/caf\xe9.jpg, 0, 0\n"), None,
     Error("train.txt", 1, f"{UTF8} E9 at column 11 (file offset 10)")),
    ("list lone 0xff", _train(_line(0) + b"\xff\n"), None,
     Error("train.txt", 2, f"{UTF8} FF at column 1 (file offset 33)")),
    ("list UTF-16", _train(_line(0).decode().encode("utf-16")), None,
     Error("train.txt", 1, "UTF-16 text (byte order mark FF FE)")),
    ("list NUL", _train(b"images/a\x00.jpg, 0, 0\n"), None,
     Error("train.txt", 1, "NUL byte at column 9")),
    ("list BOM", _train(b"\xef\xbb\xbf" + _line(1)), None,
     Parsed(TRAIN, [IMG], {"colour": [1], "shape": [0]})),
    ("list CRLF", _train(_line(0).replace(b"\n", b"\r\n") * 2), None,
     Parsed(TRAIN, [IMG, IMG], {"colour": [0, 0], "shape": [0, 0]})),
    ("list CR", _train(_line(2, 1).replace(b"\n", b"\r") * 2), None,
     Parsed(TRAIN, [IMG, IMG], {"colour": [2, 2], "shape": [1, 1]})),
    ("list form feed is no line end",
     _train(_line(0).strip() + b"\x0c" + _line(1)), None,
     Error("train.txt", 1, "head 'shape': unknown class '0\\x0cimages/")),
    ("list huge line", _train(_line("x" * 2_000_000)), None,
     Error("train.txt", 1, "line longer than 1048576 bytes")),
    # List files: CSV quoting, comments.
    ("list quoted comma", _train(b'"images/a,b.jpg", 2, 1\n'), None,
     Parsed(TRAIN, ["images/a,b.jpg"], {"colour": [2], "shape": [1]})),
    ("list doubled quote", _train(b'"images/say ""hi"".jpg",0,1\n'), None,
     Parsed(TRAIN, ['images/say "hi".jpg'], {"colour": [0], "shape": [1]})),
    ("list comments and blanks",
     _train(b"# photos\n\n   \n  # more\n" + _line(2, 1)), None,
     Parsed(TRAIN, [IMG], {"colour": [2], "shape": [1]})),
    ("list unbalanced quote", _train(b'"' + _line(0) + _line(1)), None,
     Error("train.txt", 1, "a quoted field is not closed")),
    ("list text after closing quote", _train(b'"images/a.jpg"x, 0, 0\n'), None,
     Error("train.txt", 1, "bad quoting")),
    # List files: labels.
    ("label --5", _train(_line("--5")), None,
     Error("train.txt", 1, "head 'colour': unknown class '--5'")),
    ("label superscript two", _train(_line("²")), None,
     Error("train.txt", 1, "head 'colour': unknown class '²'")),
    ("label Arabic-Indic one", _train(_line("١")), None,
     Error("train.txt", 1, "head 'colour': unknown class '١'")),
    ("label 1e3", _train(_line("1e3")), None,
     Error("train.txt", 1, "head 'colour': unknown class '1e3'")),
    ("label 3.0", _train(_line("3.0")), None,
     Error("train.txt", 1, "head 'colour': unknown class '3.0'")),
    ("label 0x1", _train(_line("0x1")), None,
     Error("train.txt", 1, "head 'colour': unknown class '0x1'")),
    ("label spaced", _train(f"{IMG},   2  ,0\n".encode()), None,
     Parsed(TRAIN, [IMG], {"colour": [2], "shape": [0]})),
    ("label -2", _train(_line("-2")), None,
     Error("train.txt", 1, "class id -2 out of range (3 classes)")),
    ("label quoted name", _train(f'{IMG}, "blue", 0\n'.encode()), None,
     Parsed(TRAIN, [IMG], {"colour": [2], "shape": [0]})),
    ("inferred ids and names", _train(_line("red") + _line(0)), _inferred,
     Error("train.txt", 1, "label 'red' is a class name, but ")),
    ("inferred --5 beside ids", _train(_line(1) + _line("--5")), _inferred,
     Error("train.txt", 2, "label '--5' is a class name, but ")),
    ("inferred huge id", _train(_line(2_000_000)), _inferred,
     Error("train.txt", 1, "class id 2000000 would make 2000001 inferred")),
    ("inferred names", _train(_line("teal") + _line("cyan")),
     _inferred_train_only,
     Parsed(TRAIN, [IMG, IMG], {"colour": [1, 0]},
            {"colour": ("cyan", "teal")})),
    # List files: columns and paths.
    ("too few columns", _train(f"{IMG}, 0\n".encode()), None,
     Error("train.txt", 1, "has 1 label columns")),
    ("extra columns are ignored", _train(f"{IMG}, 1, 1, 7, x\n".encode()),
     None, Parsed(TRAIN, [IMG], {"colour": [1], "shape": [1]})),
    ("empty path", _train(b", 0, 0\n"), None,
     Error("train.txt", 1, "empty path")),
    ("absolute path", _train(b"/etc/passwd, 0, 0\n"), None,
     Error("train.txt", 1, "absolute path '/etc/passwd'")),
    ("path leaves root", _train(b"images/../../x.jpg, 0, 0\n"), None,
     Error("train.txt", 1, "path 'images/../../x.jpg' leaves the dataset")),
    ("path with .. inside root", _train(b"images/../x.jpg, 0, 0\n"), None,
     Parsed(TRAIN, ["images/../x.jpg"], {"colour": [0], "shape": [0]})),
    # Split files, slices and feeds named by the spec.
    ("missing list file", {}, _train_split("nope.txt"),
     FieldError("datasets[0].splits.train", "split file not found: ")),
    ("folder as list file", {}, _train_split("images"),
     FieldError("datasets[0].splits.train", "not a file: ")),
    ("slice [:abc]", {}, _train_split("train.txt[:abc]"),
     FieldError("datasets[0].splits.train", "bad slice [:abc]: 'abc' is")),
    ("slice [1:2:3]", {}, _train_split("train.txt[1:2:3]"),
     FieldError("datasets[0].splits.train", "bad slice [1:2:3]: expected")),
    ("slice [:nan%]", {}, _train_split("train.txt[:nan%]"),
     FieldError("datasets[0].splits.train", "bad slice [:nan%]")),
    ("slice [:50%%]", {}, _train_split("train.txt[:50%%]"),
     FieldError("datasets[0].splits.train", "bad slice [:50%%]")),
    ("slice [:1e400%]", {}, _train_split("train.txt[:1e400%]"),
     FieldError("datasets[0].splits.train", "bad slice [:1e400%]")),
    ("slice [:150%]", {}, _train_split("train.txt[:150%]"),
     FieldError("datasets[0].splits.train", "0% to 100%")),
    ("slice [-2:]", {}, _train_split("train.txt[-2:]"),
     Parsed(TRAIN, ["images/train.txt_blue_2.jpg",
                    "images/train.txt_blue_3.jpg"],
            {"colour": [2, 2], "shape": [0, 1]})),
    ("feed path:x", {}, _shape_feed("path:x"),
     FieldError("datasets[0].feeds.shape", "K of 'path:K' must be an int")),
    ("feed path:1.5", {}, _shape_feed("path:1.5"),
     FieldError("datasets[0].feeds.shape", "K of 'path:K' must be an int")),
    ("feed path:Arabic one", {}, _shape_feed("path:١"),
     FieldError("datasets[0].feeds.shape", "K of 'path:K' must be an int")),
    ("feed true", {}, _shape_feed(True),
     FieldError("datasets[0].feeds.shape", "must be a label column")),
    # Class files (.txt).
    ("classes.txt latin-1", {"colours.txt": b"red\ngr\xe9en\nblue\n"}, None,
     Error("colours.txt", 2, f"{UTF8} E9 at column 3")),
    ("classes.txt 0xff", {"colours.txt": b"red\n\xff\nblue\n"}, None,
     Error("colours.txt", 2, f"{UTF8} FF at column 1")),
    ("classes.txt NUL", {"colours.txt": b"red\ngre\x00en\nblue\n"}, None,
     Error("colours.txt", 2, "NUL byte at column 4")),
    ("classes.txt duplicate", {"colours.txt": b"red\nred\nblue\n"}, None,
     Error("colours.txt", 2, "class name 'red' repeats line 1")),
    ("classes.txt BOM CRLF",
     {"colours.txt": b"\xef\xbb\xbfred\r\n\r\ngreen\r\nblue\r\n"}, None,
     Parsed(TRAIN, [], {}, {"colour": COLOURS})),
    ("classes folder", {}, _class_file("images"),
     FieldError("heads[0].classes.file", "not a file: ")),
    ("classes missing", {}, _class_file("nope.txt"),
     FieldError("heads[0].classes.file", "file not found: ")),
    # Class tables (.csv with an id column).
    ("class id 'a'", _classes_csv(b"red,0\ngreen,a\nblue,2\n"), _class_csv,
     Error("classes.csv", 3, "column 'id': a class id is an integer, got 'a'")),
    ("class id --5", _classes_csv(b"red,0\ngreen,--5\nblue,2\n"), _class_csv,
     Error("classes.csv", 3, "a class id is an integer, got '--5'")),
    ("class id superscript", _classes_csv("red,0\ngreen,²\n".encode()),
     _class_csv, Error("classes.csv", 3, "a class id is an integer, got '²'")),
    ("class id Arabic one", _classes_csv("red,0\ngreen,١\n".encode()),
     _class_csv, Error("classes.csv", 3, "a class id is an integer, got '١'")),
    ("class id empty", _classes_csv(b"red,0\ngreen,\n"), _class_csv,
     Error("classes.csv", 3, "a class id is an integer, got ''")),
    ("class id conflict", _classes_csv(b"red,0\ngreen,0\nblue,1\n"),
     _class_csv, Error("classes.csv", 3, "class id 0 is 'green' here but")),
    ("class name two ids", _classes_csv(b"red,0\nred,1\nblue,2\n"),
     _class_csv, Error("classes.csv", 3, "class 'red' has id 1 here but 0")),
    ("class id gap", _classes_csv(b"red,0\nblue,2\n"), _class_csv,
     FieldError("heads[0].classes.id_column", "are not 0..1 (no 1, but 2)")),
    ("class table too few fields", _classes_csv(b"red,0\ngreen\nblue,2\n"),
     _class_csv, Error("classes.csv", 3, "1 fields, the header (line 1)")),
    ("class table too many fields",
     _classes_csv(b"red,0\ngreen,1,x\nblue,2\n"), _class_csv,
     Error("classes.csv", 3, "3 fields, the header (line 1) has 2")),
    ("class table unbalanced quote",
     _classes_csv(b'red,0\n"green,1\nblue,2\n'), _class_csv,
     Error("classes.csv", 3, "a quoted field is not closed")),
    ("class table empty name", _classes_csv(b"red,0\n,1\nblue,2\n"),
     _class_csv, Error("classes.csv", 3, "empty class name in column 'name'")),
    ("class table latin-1", _classes_csv(b"red,0\ngr\xe9en,1\nblue,2\n"),
     _class_csv, Error("classes.csv", 3, f"{UTF8} E9 at column 3")),
    ("class table repeated column",
     {"classes.csv": b"name,id,name\nred,0,x\n"}, _class_csv,
     Error("classes.csv", 1, "column 'name' appears twice in the header")),
    ("class table BOM CRLF quoted comma",
     {"classes.csv": b'\xef\xbb\xbfname,id\r\nred,0\r\n"green, light",1\r\n'
      b"blue,2\r\nblue,2\r\n"}, _class_csv,
     Parsed(TRAIN, [], {}, {"colour": ("red", "green, light", "blue")})),
    # Tag tables and product descriptions (query_mining).
    ("tag key --5", _products(b"\n1,", b"\n--5,"), _tag_feed,
     Error("train.txt", 5, "head 'queries': product 1 has no row")),
    ("tag table latin-1", _products(b"Green", b"Gr\xe9en"), _tag_feed,
     Error("products.csv", 3, f"{UTF8} E9 at column 5")),
    ("tag table too few fields",
     _products(b"1,Green-Apple,/b.txt", b"1,Green-Apple"), _tag_feed,
     Error("products.csv", 3, "2 fields, the header (line 1) has 3")),
    ("tag table empty key", _products(b"\n1,", b"\n,"), _tag_feed,
     Error("products.csv", 3, "empty product key in column 'id'")),
    ("description latin-1", _products(**{"b.txt": b"gr\xe9en apple"}),
     _tag_feed,
     Error("products.csv", 3, f"text file {{data}}/b.txt:1: {UTF8} E9")),
    ("description NUL", _products(**{"b.txt": b"green\n\x00apple"}),
     _tag_feed, Error("products.csv", 3, "b.txt:2: NUL byte at column 1")),
    ("description leaves root", _products(b"/b.txt", b"/../../b.txt"),
     _tag_feed, Error("products.csv", 3, "leaves the dataset root")),
    ("description folder", _products(b"/b.txt", b"/d.txt", **{"d.txt/x": b""}),
     _tag_feed, Error("products.csv", 3, "cannot read text file")),
    ("tag table BOM, CRLF, quoted multi-line description",
     _products(**{
         "products.csv": b"\xef\xbb\xbf" + PRODUCTS.replace(
             b"/c.txt", b'"sweet\njuice, red"').replace(b"\n", b"\r\n"),
         "a.txt": b"\xef\xbb\xbfsweet juice of red apples\r\n",
     }), _tag_feed,
     Parsed(("toy", "val"), ["images/val.txt_red_0.jpg"],
            {"queries": [[0, 1, 2, 3]]},
            {"queries": ("apple", "juice", "red", "sweet")})),
    ("tag table folder", {"products.csv/x": b""}, _tag_feed,
     FieldError("datasets[0].feeds.queries.tags.file", "not a file: ")),
    # Catalogues.
    ("catalogue id name", {"catalogue.csv": f"image,id\n{IMG},0\n{IMG},a\n"
                           .encode()}, _catalogue,
     Error("catalogue.csv", 3, "head 'colour': unknown class 'a'")),
    ("catalogue id Arabic one", {"catalogue.csv": f"image,id\n{IMG},١\n"
                                 .encode()}, _catalogue,
     Error("catalogue.csv", 2, "head 'colour': unknown class '١'")),
    ("catalogue empty id", {"catalogue.csv": f"image,id\n{IMG},\n".encode()},
     _catalogue, Error("catalogue.csv", 2, "no id in column 'id'")),
    ("catalogue too few fields", {"catalogue.csv": f"image,id\n{IMG}\n"
                                  .encode()}, _catalogue,
     Error("catalogue.csv", 2, "1 fields, the header (line 1) has 2")),
    ("catalogue latin-1", {"catalogue.csv": b"image,id\ncaf\xe9.jpg,0\n"},
     _catalogue, Error("catalogue.csv", 2, f"{UTF8} E9 at column 4")),
    ("catalogue leaves root", {"catalogue.csv": b"image,id\n/../x.jpg,0\n"},
     _catalogue, Error("catalogue.csv", 2, "leaves the dataset root")),
    ("catalogue empty image", {"catalogue.csv": b"image,id\n,0\n"},
     _catalogue, Error("catalogue.csv", 2, "empty path")),
    ("catalogue folder", {"catalogue.csv/x": b""}, _catalogue,
     FieldError("datasets[0].catalogue.file", "not a file: ")),
    ("catalogue BOM, root-relative /",
     {"catalogue.csv": f"\ufeffimage,id\r\n/{IMG},2\r\n".encode()},
     _catalogue, Parsed(("toy", "catalogue"), [IMG], {"colour": [2]})),
    # csv_tags datasets.
    ("csv_tags too few fields", {"tags.csv": f"image,tags\n{IMG},a\n{IMG}\n"
                                 .encode()}, _csv_tags,
     Error("tags.csv", 3, "1 fields, the header (line 1) has 2")),
    ("csv_tags too many fields", {"tags.csv": f"image,tags\n{IMG},a,b\n"
                                  .encode()}, _csv_tags,
     Error("tags.csv", 2, "3 fields, the header (line 1) has 2")),
    ("csv_tags repeated column", {"tags.csv": b"image,tags,tags\nx,a,b\n"},
     _csv_tags, Error("tags.csv", 1, "column 'tags' appears twice")),
    ("csv_tags latin-1", {"tags.csv": b"image,tags\ncaf\xe9.jpg,a\n"},
     _csv_tags, Error("tags.csv", 2, f"{UTF8} E9 at column 4")),
    ("csv_tags unbalanced quote",
     {"tags.csv": f'image,tags\n"{IMG},a\n{IMG},b\n'.encode()}, _csv_tags,
     Error("tags.csv", 2, "a quoted field is not closed")),
    ("csv_tags empty image", {"tags.csv": b"image,tags\n,a\n"}, _csv_tags,
     Error("tags.csv", 2, "empty path")),
    ("csv_tags absolute image", {"tags.csv": b"image,tags\n/etc/x.jpg,a\n"},
     _csv_tags, Error("tags.csv", 2, "absolute path '/etc/x.jpg'")),
    ("csv_tags BOM, CRLF, quoted comma",
     {"tags.csv": b'\xef\xbb\xbfimage,tags\r\n"images/a,b.jpg",a|c\r\n'},
     _csv_tags, Parsed(("tagged", "train"), ["images/a,b.jpg"],
                       {"tags": [[0, 2]]})),
    # The spec itself.
    ("spec latin-1", {"../spec.yaml": b"# caf\xe9\n"}, None,
     Error("../spec.yaml", 1, f"{UTF8} E9 at column 6 (file offset 5)")),
    ("spec BOM", {"../spec.yaml": b"\xef\xbb\xbf"}, None,
     Parsed(TRAIN, [IMG], {"colour": [0]})),
]  # fmt: skip


def _read_all(spec_path):
    spec = resolve_vocabularies(load_spec(spec_path))
    splits = {}
    for dataset in spec.datasets:
        for split in dataset.splits:
            splits[dataset.name, split] = read_split(spec, dataset, split)
        if "catalogue" in dataset.options:
            splits[dataset.name, "catalogue"] = read_catalogue(spec, dataset)
    return spec, splits


@pytest.mark.parametrize(
    "files, change, expected",
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_hostile_text_inputs(tmp_path, files, change, expected):
    raw = make_colour_dataset(tmp_path / "data")
    if change:
        change(raw)
    spec_path = write_spec(tmp_path, copy.deepcopy(raw))
    data = tmp_path / "data"
    for name, content in files.items():
        path = data / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "../spec.yaml":  # prepend to the spec
            content += spec_path.read_bytes()
        path.write_bytes(content)
    if isinstance(expected, Parsed):
        spec, splits = _read_all(spec_path)
        split = splits[expected.split]
        refs = [str(data / ref) for ref in expected.refs]
        assert split.refs[: len(refs)] == refs
        for head, labels in expected.labels.items():
            assert split.labels[head][: len(labels)].tolist() == labels
        for head, classes in expected.classes.items():
            assert spec.head(head).classes == classes
        return
    with pytest.raises(SpecError) as error:
        _read_all(spec_path)
    message = str(error.value)
    assert "\n" not in message
    if isinstance(expected, FieldError):
        assert message.startswith(f"spec.yaml: {expected.field}: "), message
        assert expected.what in message
    else:
        where = f"{(data / expected.file).resolve()}:{expected.line}: "
        assert where in message, message
        assert expected.what.format(data=data) in message, message


def _write(tmp_path, content, name="f.txt"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 16])
def test_lines_split_alike_whatever_the_read_size(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(text_files, "_CHUNK", chunk)
    path = _write(tmp_path, b"\xef\xbb\xbfa\r\nb\rc\n\nd\xc3\xa9\r\r\ne\r")
    assert list(read_lines(path)) == [
        (1, "a"),
        (2, "b"),
        (3, "c"),
        (4, ""),
        (5, "dé"),
        (6, ""),
        (7, "e"),
    ]
    path = _write(tmp_path, b"ok\r\nd\xc3\xa9j\xc3\r\n")
    with pytest.raises(SpecError, match=r"f.txt:2: not UTF-8: byte C3 at "):
        list(read_lines(path))


def test_line_length_is_bounded_before_the_line_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(text_files, "MAX_LINE_BYTES", 10)
    monkeypatch.setattr(text_files, "_CHUNK", 4)
    assert list(read_lines(_write(tmp_path, b"0123456789\n"))) == [
        (1, "0123456789")
    ]
    reads = []

    class Endless:
        def read(self, size):
            reads.append(size)
            return b"x" * size

    with pytest.raises(SpecError, match="f.txt:1: line longer than 10 bytes"):
        list(text_files._decoded_lines("f.txt", Endless()))
    assert len(reads) <= 4


@pytest.mark.parametrize("chunk", [1, 3, 4, 1 << 16])
def test_long_lines_can_be_skipped_as_they_are_read(
    tmp_path, monkeypatch, chunk
):
    """For logs: a long line is `(number, None)`, the next lines still
    come, numbered as before, whatever the read size."""
    monkeypatch.setattr(text_files, "MAX_LINE_BYTES", 5)
    monkeypatch.setattr(text_files, "_CHUNK", chunk)
    path = _write(tmp_path, b"ok\r\n" + b"x" * 23 + b"\r\nfine\r" + b"y" * 6)
    assert list(read_lines(path, skip_long_lines=True)) == [
        (1, "ok"),
        (2, None),
        (3, "fine"),
        (4, None),
    ]
    path = _write(tmp_path, b"123456\n12345\n" + b"z" * 40 + b"\n\nend")
    assert list(read_lines(path, skip_long_lines=True)) == [
        (1, None),
        (2, "12345"),
        (3, None),
        (4, ""),
        (5, "end"),
    ]
    with pytest.raises(SpecError, match="f.txt:1: line longer than 5 bytes"):
        list(read_lines(path))


def test_unreadable_file_is_named_with_who_referred_to_it(tmp_path):
    with pytest.raises(SpecError) as error:
        list(read_lines(tmp_path, "spec.yaml: heads[0].classes.file"))
    assert str(error.value) == (
        f"spec.yaml: heads[0].classes.file: cannot read file {tmp_path}: "
        "Is a directory"
    )


def test_list_records_follow_csv_quoting(tmp_path):
    path = _write(
        tmp_path,
        b'# a comment\n\n  "a,b.jpg" ,x\n'
        b' c.jpg ,  "1, 2", 0|1,\n"say ""hi"".jpg"\n',
    )
    with pytest.raises(SpecError, match="f.txt:3: bad quoting"):
        list(read_list(path))
    path.write_bytes(path.read_bytes().replace(b'" ,x', b'",x'))
    assert list(read_list(path)) == [
        (3, ["a,b.jpg", "x"]),
        (4, ["c.jpg", "1, 2", "0|1", ""]),
        (5, ['say "hi".jpg']),
    ]


def test_table_records_start_lines_and_multiline_fields(tmp_path):
    path = _write(
        tmp_path, b'\n\nid,text\n1,"two\nlines"\n\n2,x\n3,"open\n4,y\n'
    )
    with pytest.raises(SpecError, match="f.txt:4: a quoted field is not c"):
        read_table(path)
    with pytest.raises(SpecError) as error:
        read_table(path, multiline=True)
    assert str(error.value) == (
        f"{path}:8: a quoted field is not closed (unbalanced quote) (the "
        "record runs to line 9)"
    )
    path.write_bytes(path.read_bytes().replace(b'"open', b"open"))
    table = read_table(path, multiline=True)
    assert table.header == ["id", "text"]
    assert table.rows == [
        (4, {"id": "1", "text": "two\nlines"}),
        (7, {"id": "2", "text": "x"}),
        (8, {"id": "3", "text": "open"}),
        (9, {"id": "4", "text": "y"}),
    ]


@pytest.mark.parametrize(
    "text, value",
    [
        ("0", 0),
        ("-1", -1),
        ("007", 7),
        ("123456789012345678", 123456789012345678),
        ("1234567890123456789", None),  # 19 digits: past int64
        ("--5", None),
        ("+5", None),
        ("²", None),
        ("١", None),
        ("３", None),
        ("1e3", None),
        ("3.0", None),
        ("0x1", None),
        (" 3", None),
        ("1_000", None),
        ("", None),
    ],
)
def test_integers_are_ascii_digits_only(text, value):
    assert parse_int(text) == value


def test_image_list_for_search_reads_quoted_paths(tmp_path):
    from grok_tf.search.product_search import read_image_refs

    listing = _write(
        tmp_path,
        b'\xef\xbb\xbf# photos\r\n"a,b.jpg", sku-1\r\n/abs/z.jpg\r\n',
        "list.txt",
    )
    assert read_image_refs(listing) == (
        [str(tmp_path / "a,b.jpg"), "/abs/z.jpg"],
        ["sku-1", "/abs/z.jpg"],
    )
    listing.write_bytes(b"a.jpg, sku-1\nb\xe9.jpg, sku-2\n")
    with pytest.raises(SpecError, match=r"list.txt:2: not UTF-8: byte E9"):
        read_image_refs(listing)


@pytest.mark.parametrize(
    "line",
    ["a.jpg,1,2", " a.jpg ,\t1 ,, 2 ,", "a b.jpg, x|y", "x#y.jpg, 1", "é"],
)
def test_unquoted_lines_split_as_csv_does(tmp_path, line):
    path = _write(tmp_path, f"# c\n{line}\n".encode())
    (number, fields), *_ = read_list(path)
    expected = next(csv.reader([line], skipinitialspace=True, strict=True))
    assert (number, fields) == (2, [field.strip() for field in expected])
