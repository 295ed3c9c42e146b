"""The dataset source registry, and the spec loader asking it."""

import copy

import pytest

from grok_tf.data.sources import CsvTagsSource
from grok_tf.data.sources import DatasetSource
from grok_tf.data.sources import ImageFolderSource
from grok_tf.data.sources import ImageListSource
from grok_tf.data.sources import SyntheticSource
from grok_tf.data.sources import TfdsSource
from grok_tf.data.sources import register_source
from grok_tf.data.sources import source
from grok_tf.data.sources import source_names
from grok_tf.data.sources import unregister_source
from grok_tf.errors import SpecError
from grok_tf.spec.loader import load_spec
from tests.helpers import add_query_tag_feed
from tests.helpers import make_colour_dataset
from tests.helpers import write_spec

BUILT_IN = {
    "image_list": ImageListSource,
    "image_folder": ImageFolderSource,
    "csv_tags": CsvTagsSource,
    "tfds": TfdsSource,
    "synthetic": SyntheticSource,
}


@pytest.fixture
def base(tmp_path):
    return make_colour_dataset(tmp_path / "data")


@pytest.fixture
def scratch():
    """Names registered by a test, unregistered when it ends."""
    names = []
    yield names
    for name in names:
        if name in source_names():
            unregister_source(name)


def _reader_of(name, **declared):
    """A concrete source class named `name` with the given declarations."""

    def read(self, spec, dataset, ref, who):
        raise AssertionError("not read in these tests")

    return type(
        f"Source_{name}",
        (DatasetSource,),
        {"name": name, "read": read, **declared},
    )


def test_built_in_sources_are_registered_with_their_declarations():
    assert set(BUILT_IN) <= set(source_names())
    for name, cls in BUILT_IN.items():
        assert type(source(name)) is cls
        assert source(name).name == name
    assert source("tfds").split_entries == "opaque"
    assert source("tfds").required_keys == {"catalog"}
    assert source("image_folder").split_entries == "folder"
    assert source("synthetic").generated
    assert not source("tfds").tag_feeds and not source("tfds").catalogues
    assert not source("synthetic").catalogues
    assert "catalogue" in source("csv_tags").accepted_keys()
    assert "catalogue" not in source("synthetic").accepted_keys()


def test_unknown_source_is_one_line_listing_the_registered_names():
    with pytest.raises(ValueError) as error:
        source("json_lines")
    text = str(error.value)
    assert text.startswith("unknown source 'json_lines'; choose one of ")
    assert all(name in text for name in BUILT_IN)
    assert "\n" not in text
    with pytest.raises(ValueError, match="unknown source"):
        source(["unhashable"])
    with pytest.raises(ValueError, match="unknown source 'nope'"):
        unregister_source("nope")


def test_a_taken_name_is_refused_and_the_first_source_kept(scratch):
    with pytest.raises(ValueError) as error:
        register_source(_reader_of("image_list"))
    assert (
        "source name 'image_list' is already registered by "
        "grok_tf.data.sources.image_list.ImageListSource"
    ) in str(error.value)
    assert type(source("image_list")) is ImageListSource
    register_source(_reader_of("twice"))
    scratch.append("twice")
    with pytest.raises(ValueError, match="'twice' is already registered"):
        register_source(_reader_of("twice"))


@pytest.mark.parametrize(
    "declared, error, message",
    [
        ({"name": "1st"}, ValueError, "`name` must be an identifier"),
        ({"name": None}, ValueError, "`name` must be an identifier"),
        (
            {"required_keys": frozenset({"root", "url"})},
            ValueError,
            "required_keys ['url'] are not in its keys",
        ),
        (
            {"split_entries": "table"},
            ValueError,
            "split_entries must be 'file', 'folder' or 'opaque'",
        ),
        (
            {"keys": frozenset({"url"}), "required_keys": frozenset()},
            ValueError,
            "add 'root' to keys and required_keys",
        ),
        (
            {
                "keys": frozenset({"url"}),
                "required_keys": frozenset(),
                "split_entries": "opaque",
                "tag_feeds": True,
            },
            ValueError,
            "add 'root' to keys and required_keys",
        ),
    ],
)
def test_inconsistent_declarations_are_refused(declared, error, message):
    cls = _reader_of("odd")
    for key, value in declared.items():
        setattr(cls, key, value)
    with pytest.raises(error) as raised:
        register_source(cls)
    assert message in str(raised.value)
    assert "odd" not in source_names()


def test_only_concrete_dataset_sources_register():
    with pytest.raises(TypeError, match="takes a DatasetSource subclass"):
        register_source(dict)

    class NoReader(DatasetSource):
        name = "no_reader"

    with pytest.raises(TypeError, match="abstract"):
        register_source(NoReader)
    assert "no_reader" not in source_names()


def test_spec_errors_list_the_registered_sources(tmp_path, base, scratch):
    register_source(_reader_of("archive"))
    scratch.append("archive")
    raw = copy.deepcopy(base)
    raw["datasets"][0]["source"] = "zip"
    with pytest.raises(SpecError) as error:
        load_spec(write_spec(tmp_path, raw))
    text = str(error.value)
    assert "datasets[0].source: unknown source 'zip'; choose one of " in text
    assert all(name in text for name in [*BUILT_IN, "archive"])


def test_a_source_without_tag_feeds_refuses_one(tmp_path, base):
    raw = add_query_tag_feed(copy.deepcopy(base))
    dataset = raw["datasets"][0]
    del dataset["root"]
    dataset.update(source="tfds", catalog="colours")
    with pytest.raises(SpecError) as error:
        load_spec(write_spec(tmp_path, raw))
    text = str(error.value)
    assert "datasets[0].feeds.queries: tag feeds need a file source (" in text
    assert text.endswith("not tfds")
    for name in ("image_list", "image_folder", "csv_tags", "synthetic"):
        assert name in text


def test_tfds_check_resolves_data_dir_and_skips_split_files(tmp_path, base):
    raw = copy.deepcopy(base)
    dataset = raw["datasets"][0]
    del dataset["root"]
    dataset.update(
        source="tfds",
        catalog="colours",
        data_dir="tfds_data",
        splits={"train": "train[:80%]", "val": "no such file"},
    )
    spec = load_spec(write_spec(tmp_path, raw))
    options = spec.datasets[0].options
    assert options == {
        "catalog": "colours",
        "data_dir": str((tmp_path / "tfds_data").resolve()),
    }
    dataset["catalog"] = 3
    with pytest.raises(SpecError, match=r"datasets\[0\].catalog: must be a"):
        load_spec(write_spec(tmp_path, raw))
    del dataset["catalog"]
    with pytest.raises(SpecError, match="catalog: missing required field"):
        load_spec(write_spec(tmp_path, raw))


def test_synthetic_check_validates_seed_and_config(tmp_path, base):
    raw = copy.deepcopy(base)
    dataset = raw["datasets"][0]
    dataset.update(
        source="synthetic",
        root="not_made_yet",
        seed=3,
        config={"image_size": 32},
    )
    spec = load_spec(write_spec(tmp_path, raw))  # root, splits: made later
    assert spec.datasets[0].options == {
        "config": {"image_size": 32},
        "seed": 3,
    }
    broken = [
        ("seed", -1, "datasets[0].seed: must be a >= 0 integer"),
        ("config", [1], "datasets[0].config: must be a mapping"),
        ("config", {"image_size": 8}, "CatalogConfig.image_size: must be"),
        ("config", {"colours": 3}, "datasets[0].config: "),
    ]
    for key, value, message in broken:
        raw_broken = copy.deepcopy(raw)
        raw_broken["datasets"][0][key] = value
        with pytest.raises(SpecError) as error:
            load_spec(write_spec(tmp_path, raw_broken))
        assert message in str(error.value)


def test_split_entries_are_checked_as_the_source_declares(tmp_path, base):
    raw = copy.deepcopy(base)
    raw["datasets"][0].update(source="image_folder")
    raw["datasets"][0]["feeds"] = {"colour": "class_folder", "shape": "path:0"}
    with pytest.raises(SpecError, match=r"splits.train: not a folder: "):
        load_spec(write_spec(tmp_path, raw))
    raw["datasets"][0]["splits"] = {"train": "images"}
    assert load_spec(write_spec(tmp_path, raw)).datasets[0].splits == {
        "train": "images"
    }
    raw["datasets"][0]["catalog"] = "x"
    with pytest.raises(SpecError, match=r"datasets\[0\].catalog: unknown key"):
        load_spec(write_spec(tmp_path, raw))
