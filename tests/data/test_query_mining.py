import csv

import numpy as np
import pytest

from grok_tf.data.query_mining import mine_query_tags
from grok_tf.data.query_mining import read_tag_table
from grok_tf.data.query_mining import text_words
from grok_tf.data.sources import read_split
from grok_tf.data.sources import resolve_vocabularies
from grok_tf.errors import SpecError
from grok_tf.spec.loader import load_spec
from tests.conftest import SPECS
from tests.helpers import add_query_tag_feed
from tests.helpers import make_colour_dataset
from tests.helpers import write_spec

# Products of the toy colour dataset (class id = colour id) and their texts.
PRODUCTS = {
    0: ("Red-Apple-Juice", "A sweet juice of red apples. 1 l, 4.5% sugar"),
    1: ("Green-Apple", "A sour green apple."),
    2: ("Blue-Berry-Juice", "Sweet juice, see https://example.com/juice"),
}


def test_text_words_drops_numbers_units_stop_words_and_short_words():
    words = text_words("Arla Ecological Medium-Fat Milk 1.5% fat, 1l. It is")
    assert words == {"arla", "ecological", "medium", "fat", "milk"}
    assert text_words("Smörgås och äpple") == {"smörgås", "och", "äpple"}


def test_tags_are_words_shared_by_enough_but_not_too_many_products():
    texts = {
        "a": "apple red sweet",
        "b": "apple green sour",
        "c": "lime green sour",
        "d": "apple milk",
    }
    # apple: 3 of 4 products, green/sour: 2, the rest: 1.
    assert mine_query_tags(texts, min_products=2, max_share=0.5) == {
        "a": (),
        "b": ("green", "sour"),
        "c": ("green", "sour"),
        "d": (),
    }
    assert mine_query_tags(texts, min_products=2, max_share=0.75)["a"] == (
        "apple",
    )
    assert mine_query_tags(texts, min_products=1, max_share=0.25)["a"] == (
        "red",
        "sweet",
    )


@pytest.fixture
def tagged(tmp_path):
    """The colour toy dataset with a product table and description files."""
    raw = make_colour_dataset(tmp_path / "data")
    with open(tmp_path / "data/products.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "name", "description"])
        for key, (name, text) in PRODUCTS.items():
            (tmp_path / f"data/{name}.txt").write_text(text)
            writer.writerow([key, name, f"/{name}.txt"])
    return add_query_tag_feed(raw)


def test_every_image_gets_the_tags_of_its_product(tmp_path, tagged):
    spec = resolve_vocabularies(load_spec(write_spec(tmp_path, tagged)))
    # apple: products 0, 1; juice, sweet: 0, 2 (product 2 says "juice"
    # twice, counted once); red, green, blue, ...: one product each.
    assert spec.head("queries").classes == ("apple", "juice", "sweet")
    split = read_split(spec, spec.datasets[0], "train")
    names = spec.head("queries").classes
    expected = {0: {"apple", "juice", "sweet"}, 1: {"apple"}}
    expected[2] = {"juice", "sweet"}
    for colour, tags in zip(
        split.labels["colour"], split.labels["queries"], strict=True
    ):
        assert {names[t] for t in tags if t >= 0} == expected[colour]


def test_missing_text_file_names_the_table_line(tmp_path, tagged):
    (tmp_path / "data/Green-Apple.txt").unlink()
    spec = load_spec(write_spec(tmp_path, tagged))
    with pytest.raises(SpecError) as error:
        resolve_vocabularies(spec)
    message = str(error.value)
    assert message.startswith("spec.yaml: datasets.toy.feeds.queries.tags: ")
    assert "products.csv:3: cannot read text file" in message
    assert "Green-Apple.txt" in message


def test_product_without_a_row_names_the_image_line(tmp_path, tagged):
    rows = (tmp_path / "data/products.csv").read_text().splitlines()
    (tmp_path / "data/products.csv").write_text("\n".join(rows[:3]) + "\n")
    spec = load_spec(write_spec(tmp_path, tagged))
    with pytest.raises(SpecError, match=r"train.txt:9: head 'queries': "):
        resolve_vocabularies(spec)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("type", "softmax", "a tag feed gives several labels per image"),
        ("tags.file", "nope.csv", "feeds.queries.tags.file: file not found"),
        ("tags.max_share", 1.5, "tags.max_share: must be in (0, 1]"),
        ("tags.min_products", 0, "tags.min_products: must be a positive"),
        ("tags.txt", "name", "tags.txt: unknown key (did you mean 'text'?)"),
        ("tags.text", [], "tags.text: must name one or more columns"),
        ("columnn", 0, "feeds.queries.columnn: unknown key"),
    ],
)
def test_broken_tag_feed_gives_one_clear_line(
    tmp_path, tagged, path, value, message
):
    if path == "type":
        tagged["heads"][-1]["type"] = value
    else:
        feed = tagged["datasets"][0]["feeds"]["queries"]
        target = feed["tags"] if path.startswith("tags.") else feed
        target[path.removeprefix("tags.")] = value
    with pytest.raises(SpecError) as error:
        load_spec(write_spec(tmp_path, tagged))
    assert str(error.value).startswith("spec.yaml: datasets[0].feeds.queries")
    assert message in str(error.value)


def test_grocery_query_tags_from_names_and_descriptions(grok_data):
    spec = load_spec(SPECS / "grocery.yaml")
    feed = spec.datasets[0].feeds["queries"]
    table, vocabulary = read_tag_table(feed["tags"], spec.datasets[0].root)
    assert sorted(table) == list(range(81))  # every product, by class id
    counts = {tag: 0 for tag in vocabulary}
    for tags in table.values():
        for tag in tags:
            counts[tag] += 1
    assert min(counts.values()) >= 2
    assert max(counts.values()) <= 0.25 * 81
    sizes = np.array([len(tags) for tags in table.values()])
    assert 150 <= len(vocabulary) <= 400, len(vocabulary)
    assert sizes.min() >= 2 and 5 <= np.median(sizes) <= 20, sizes
    # Name words shared across products become tags: the brand, the
    # variety, the coarse class.
    with open(spec.datasets[0].root / "classes.csv", newline="") as f:
        names = {int(r["Class ID (int)"]): r for r in csv.DictReader(f)}
    by_name = {names[k]["Class Name (str)"]: v for k, v in table.items()}
    assert {"arla", "ecological", "fat", "medium"} <= set(
        by_name["Arla-Ecological-Medium-Fat-Milk"]
    )
    apples = [
        k for k, r in names.items() if r["Coarse Class Name (str)"] == "Apple"
    ]
    assert all("apple" in table[k] for k in apples)


def test_tag_table_texts_must_be_utf8_and_may_span_lines(tmp_path):
    """A description in Latin-1 was decoded with U+FFFD replacements."""
    table = tmp_path / "products.csv"
    table.write_bytes(
        b"\xef\xbb\xbfid,name,description\r\n"
        b'0,Apple,"red\r\nsweet apple"\r\n1,Pear,/pear.txt\r\n'
        b"2,Plum,/plum.txt\r\n"
    )
    (tmp_path / "pear.txt").write_bytes(b"sweet pear")
    (tmp_path / "plum.txt").write_bytes(b"red plum")
    settings = {
        "file": str(table),
        "key": "id",
        "text": ["name", "description"],
        "min_products": 2,
        "max_share": 1.0,
    }
    tags, vocabulary = read_tag_table(settings, tmp_path)
    assert vocabulary == ("red", "sweet")
    assert tags == {0: ("red", "sweet"), 1: ("sweet",), 2: ("red",)}
    (tmp_path / "plum.txt").write_bytes(b"r\xe9d plum")
    with pytest.raises(SpecError) as error:
        read_tag_table(settings, tmp_path)
    assert str(error.value).startswith(
        f"{table}:5: text file {tmp_path / 'plum.txt'}:1: not UTF-8: byte E9 "
        "at column 2 (file offset 1)"
    )
