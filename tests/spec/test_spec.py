import copy

import pytest

from grok_tf.data.sources import read_split
from grok_tf.data.sources import resolve_vocabularies
from grok_tf.errors import SpecError
from grok_tf.spec import apply_slice
from grok_tf.spec.loader import load_spec
from grok_tf.spec.loader import split_slice
from tests.helpers import make_colour_dataset
from tests.helpers import write_spec


@pytest.fixture
def base(tmp_path):
    return make_colour_dataset(tmp_path / "data")


def _set(raw, dotted, value):
    """Sets `a.b[0].c` in a nested spec dict; value `DELETE` removes it."""
    target = raw
    parts = dotted.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if value is DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


class _Delete:
    """The marker of a field a broken spec leaves out."""

    def __repr__(self):  # a stable test id, the same in every process
        return "DELETE"


DELETE = _Delete()

BROKEN = [
    ("modle", {}, "spec.yaml: modle: unknown key (did you mean 'model'?)"),
    ("heads", DELETE, "spec.yaml: heads: missing required field"),
    ("heads", [], "spec.yaml: heads: must be a non-empty list"),
    (
        "heads[0].type",
        "softmaxx",
        "spec.yaml: heads[0].type: unknown head type 'softmaxx'; choose one",
    ),
    (
        "heads[0].lossweight",
        2,
        "heads[0].lossweight: unknown key (did you mean 'loss_weight'?)",
    ),
    ("heads[1].name", "colour", "heads[1].name: duplicate name 'colour'"),
    ("heads[1].name", "embedding", "'embedding' is reserved for the model"),
    ("heads[1].name", "1st", "heads[1].name: must be an identifier"),
    (
        "heads[0].classes",
        {"file": "data/nope.txt"},
        "heads[0].classes.file: file not found:",
    ),
    ("heads[1].classes", ["a", "a"], "duplicate class names: ['a']"),
    ("heads[0].loss_weight", -1, "heads[0].loss_weight: must not be negative"),
    (
        "datasets[0].feeds",
        {"colour": 0},
        "spec.yaml: heads[1]: head 'shape' is fed by no dataset",
    ),
    (
        "datasets[0].feeds.colr",
        0,
        "datasets[0].feeds.colr: no such head (did you mean 'colour'?)",
    ),
    (
        "datasets[0].images_per_batch",
        -4,
        "spec.yaml: datasets[0].images_per_batch: must be a positive "
        "integer, got -4",
    ),
    (
        "datasets[0].images_per_batch",
        "8",
        "datasets[0].images_per_batch: must be an integer, got str",
    ),
    (
        "datasets[0].splits.val",
        "missing.txt",
        "spec.yaml: datasets[0].splits.val: split file not found: ",
    ),
    ("datasets[0].source", "csv", "datasets[0].source: unknown source 'csv'"),
    ("datasets[0].source", DELETE, "datasets[0].source: missing required"),
    ("datasets[0].root", "nowhere", "datasets[0].root: folder not found:"),
    (
        "datasets[0].root",
        "${NOPE_DATA_XYZ}/toy",
        "datasets[0].root: environment variable NOPE_DATA_XYZ is not set",
    ),
    ("datasets[0].catalog", "x", "datasets[0].catalog: unknown key"),
    ("datasets[1]", {"name": "toy", "source": "image_list"}, "missing"),
    ("heads[0].margin", 0.3, "heads[0].margin: unknown key"),
    ("heads[1].scale", 30, "heads[1].scale: unknown key"),
    ("model.trunk", "resnet9000", "model.trunk: unknown trunk 'resnet9000'"),
    ("model.input_size", 8, "model.input_size: must be a >= 32 integer"),
    ("model.gem_p", 0, "model.gem_p: must be positive, got 0"),
    ("model.sync_batch_norm", "on", "model.sync_batch_norm: must be true or"),
    ("model.weights", "coco", "model.weights: must be null or 'imagenet'"),
    ("model.pooling", "max", "model.pooling: must be gem or average, got"),
    ("model.learn_gem_p", "no", "model.learn_gem_p: must be true or false"),
    (
        "datasets[0].augmentation",
        "strong",
        "datasets[0].augmentation: must be a mapping, got str",
    ),
    (
        "datasets[0].augmentation",
        {"crop": [0.2, 1.0]},
        "datasets[0].augmentation.crop: unknown key (did you mean",
    ),
    (
        "datasets[0].augmentation",
        {"epochs": 3},
        "datasets[0].augmentation.epochs: unknown key",
    ),
    (
        "datasets[0].augmentation",
        {"crop_area": [0.9, 0.1]},
        "datasets[0].augmentation.crop_area: must be [min, max]",
    ),
    ("datasets[0].loss_weight", 0, "datasets[0].loss_weight: must be posi"),
    ("datasets[0].loss_weight", "low", "datasets[0].loss_weight: must be a"),
    ("datasets[0].loss_weight", float("nan"), "loss_weight: must be a finite"),
    ("training.epoch", 3, "training.epoch: unknown key (did you mean"),
    (
        "training.crop_area",
        [0.5, 0.2],
        "training.crop_area: must be [min, max]",
    ),
    ("training.hue", 0.9, "training.hue: must be in [0, 0.5]"),
]
# Settings of a head type, on heads[1] turned into that type.
BROKEN_HEAD_SETTINGS = [
    ("arcface", "margin", 2.0, "heads[1].margin: must be below pi/2"),
    ("arcface", "scale", -1, "heads[1].scale: must be positive, got -1"),
    ("arcface", "scale", "big", "heads[1].scale: must be a number, got str"),
    ("arcface", "alpha", 0.1, "heads[1].alpha: unknown key"),
    ("pairwise", "beta", 0.1, "heads[1].beta: must be larger than alpha"),
    ("pairwise", "learn_beta", "yes", "heads[1].learn_beta: must be true"),
    ("pairwise", "chunk_size", 0, "heads[1].chunk_size: must be a positive"),
    ("pairwise", "margin", 0.5, "heads[1].margin: unknown key"),
]
BROKEN = [(*case, None) for case in BROKEN] + [
    (f"heads[1].{key}", value, message, kind)
    for kind, key, value, message in BROKEN_HEAD_SETTINGS
]


@pytest.mark.parametrize(
    "field, value, message, head_type",
    BROKEN,
    ids=[f"{b[0]}={b[1]!r}" for b in BROKEN],
)
def test_broken_spec_gives_one_clear_line(
    tmp_path, base, field, value, message, head_type
):
    raw = copy.deepcopy(base)
    if head_type:
        raw["heads"][1]["type"] = head_type
    if field == "datasets[1]":
        raw["datasets"].append(value)
    else:
        _set(raw, field, value)
    with pytest.raises(SpecError) as error:
        load_spec(write_spec(tmp_path, raw))
    text = str(error.value)
    assert message in text
    assert "\n" not in text


def test_valid_spec_loads_with_defaults(tmp_path, base):
    spec = load_spec(write_spec(tmp_path, base))
    assert [h.name for h in spec.heads] == ["colour", "shape"]
    assert spec.heads[0].classes == ("red", "green", "blue")
    assert spec.model.embedding_size == 400 and spec.model.gem_p == 3.0
    assert spec.datasets[0].root == (tmp_path / "data").resolve()


def test_variables_expand_with_defaults(tmp_path, base, monkeypatch):
    raw = copy.deepcopy(base)
    raw["datasets"][0]["root"] = "${TOY_ROOT_FOR_TEST:-nowhere}"
    monkeypatch.setenv("TOY_ROOT_FOR_TEST", str(tmp_path / "data"))
    assert load_spec(write_spec(tmp_path, raw)).datasets[0].root.is_dir()
    monkeypatch.delenv("TOY_ROOT_FOR_TEST")
    with pytest.raises(SpecError, match="folder not found: .*nowhere"):
        load_spec(write_spec(tmp_path, raw))


def test_missing_spec_file_and_bad_yaml(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("heads: [\n  - name: x\n")
    with pytest.raises(SpecError, match=r"bad.yaml: line \d+: invalid YAML"):
        load_spec(bad)


def test_class_id_out_of_range_names_file_and_line(tmp_path, base):
    raw = copy.deepcopy(base)
    raw["heads"][1]["classes"] = ["square"]
    spec = load_spec(write_spec(tmp_path, raw))
    with pytest.raises(SpecError) as error:
        read_split(spec, spec.datasets[0], "train")
    assert "train.txt:2: head 'shape': class id 1 out of range (1 classes)" in (
        str(error.value)
    )


def test_unknown_class_name_and_multiple_labels(tmp_path, base):
    data = tmp_path / "data"
    (data / "odd.txt").write_text(
        "images/train.txt_red_0.jpg, purple, 0\n"
        "images/train.txt_red_1.jpg, 0, 0|1\n"
    )
    raw = copy.deepcopy(base)
    raw["datasets"][0]["splits"]["odd"] = "odd.txt"
    spec = load_spec(write_spec(tmp_path, raw))
    with pytest.raises(SpecError, match="odd.txt:1: head 'colour': unknown"):
        read_split(spec, spec.datasets[0], "odd")
    (data / "odd.txt").write_text("images/train.txt_red_1.jpg, 0, 0|1\n")
    with pytest.raises(SpecError, match="odd.txt:1: head 'shape' is softmax"):
        read_split(spec, spec.datasets[0], "odd")


def test_inferred_vocabulary_from_integer_ids(tmp_path, base):
    raw = copy.deepcopy(base)
    raw["heads"][1]["classes"] = "inferred"
    spec = resolve_vocabularies(load_spec(write_spec(tmp_path, raw)))
    assert spec.head("shape").classes == ("0", "1")


@pytest.mark.parametrize(
    "ref, expected",
    [
        ("a.txt", ("a.txt", None)),
        ("a.txt[:90%]", ("a.txt", (None, 0.9))),
        ("tags.csv[90%:]", ("tags.csv", (0.9, None))),
        ("x[10:20]", ("x", (10, 20))),
    ],
)
def test_split_slices(ref, expected):
    assert split_slice(ref) == expected


def test_slices_partition_a_list():
    items = list(range(10))
    head = apply_slice(items, split_slice("f[:90%]")[1])
    tail = apply_slice(items, split_slice("f[90%:]")[1])
    assert head + tail == items and tail == [9]


def test_catalogue_needs_its_file_and_one_id_head(tmp_path, base):
    raw = copy.deepcopy(base)
    raw["datasets"][0]["catalogue"] = {
        "file": "catalogue.csv",
        "image": "image",
        "id": "id",
    }
    with pytest.raises(SpecError, match="catalogue.file: file not found"):
        load_spec(write_spec(tmp_path, raw))
    (tmp_path / "data/catalogue.csv").write_text("image,id\nimages/a.jpg,0\n")
    with pytest.raises(
        SpecError, match="needs the dataset to feed exactly one"
    ):
        load_spec(write_spec(tmp_path, raw))
    raw["heads"][0]["type"] = "arcface"
    spec = load_spec(write_spec(tmp_path, raw))
    assert spec.datasets[0].options["catalogue"]["head"] == "colour"
    # Two id heads: `head:` picks one, and must name one of them.
    raw["heads"][1]["type"] = "pairwise"
    with pytest.raises(SpecError, match="it feeds 2: name one with `head:`"):
        load_spec(write_spec(tmp_path, raw))
    raw["datasets"][0]["catalogue"]["head"] = "nope"
    with pytest.raises(
        SpecError,
        match=r"catalogue.head: 'nope' is not an id head .* this dataset "
        r"feeds \(colour, shape\)",
    ):
        load_spec(write_spec(tmp_path, raw))
    raw["datasets"][0]["catalogue"]["head"] = "shape"
    spec = load_spec(write_spec(tmp_path, raw))
    assert spec.datasets[0].options["catalogue"]["head"] == "shape"


def test_a_dataset_overrides_the_training_augmentation(tmp_path, base):
    raw = copy.deepcopy(base)
    raw["training"]["brightness"] = 0.1
    raw["datasets"][0]["augmentation"] = {"crop_area": [0.2, 0.9], "hue": 0.1}
    spec = load_spec(write_spec(tmp_path, raw))
    assert spec.datasets[0].options["augmentation"] == {
        "crop_area": (0.2, 0.9),
        "hue": 0.1,
    }
    assert spec.training.brightness == 0.1


def test_a_dataset_takes_a_loss_weight(tmp_path, base):
    raw = copy.deepcopy(base)
    assert load_spec(write_spec(tmp_path, raw)).datasets[0].loss_weight == 1
    raw["datasets"][0]["loss_weight"] = 0.5
    spec = load_spec(write_spec(tmp_path, raw))
    assert spec.datasets[0].loss_weight == 0.5
    # A pairwise head scores pairs, not weighted examples: refused.
    raw["heads"][1]["type"] = "pairwise"
    with pytest.raises(SpecError, match=r"datasets\[0\]\.loss_weight: head "):
        load_spec(write_spec(tmp_path, raw))


@pytest.mark.parametrize(
    "ref, message",
    [
        ("a.txt[:abc]", "bad slice [:abc]: 'abc' is not a count"),
        ("a.txt[1:2:3]", "bad slice [1:2:3]: expected [start:stop]"),
        ("a.txt[:nan%]", "'nan%' is not a count (integer) or a percentage"),
        ("a.txt[:inf%]", "'inf%' is not a count"),
        ("a.txt[:1e400%]", "'1e400%' is not a count"),
        ("a.txt[:50%%]", "'50%%' is not a count"),
        ("a.txt[:150%]", "'150%' is not a count (integer) or a percentage"),
        ("a.txt[-5%:]", "'-5%' is not a count"),
        ("a.txt[:١]", "'١' is not a count"),
    ],
)
def test_bad_slices_say_what_a_bound_is(ref, message):
    with pytest.raises(ValueError) as error:
        split_slice(ref)
    assert message in str(error.value)


def test_slice_bounds_are_counts_or_percentages():
    assert split_slice("a.txt[-2:12.5%]") == ("a.txt", (-2, 0.125))
    assert split_slice("a.txt[ 0% : 100% ]") == ("a.txt", (0.0, 1.0))
