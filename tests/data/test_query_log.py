"""Search-query labels from interaction logs (grok_tf.data.query_log), from
the file to the spec feed, the encoded split, the batch and one fit step."""

import json

import numpy as np
import pytest

from grok_tf.data import query_log
from grok_tf.data.batch_mixer import evaluation_batches
from grok_tf.data.batch_mixer import training_batches
from grok_tf.data.images import CorruptImageLog
from grok_tf.data.query_log import MalformedRowsWarning
from grok_tf.data.query_log import count_pairs
from grok_tf.data.query_log import normalize_query
from grok_tf.data.query_log import read_query_log
from grok_tf.data.query_log import select_queries
from grok_tf.data.sources import read_split
from grok_tf.data.sources import resolve_vocabularies
from grok_tf.errors import SpecError
from grok_tf.io import text_files
from grok_tf.spec.loader import load_spec
from grok_tf.training.fit import train
from tests.helpers import make_colour_dataset
from tests.helpers import write_spec

HEADER = "query\tproduct_id\tinteractions\n"
# Products are the toy dataset's colour ids 0 (red), 1 (green), 2 (blue);
# product 9 is in the log only.
LOG = (
    HEADER + "Red Apple\t0\t3\n"
    "red-apple!\t0\t1\n"  # the same query: (red apple, 0) has 4
    "apple\t0\t2\n"
    "apple\t1\t2\n"
    "green\t1\t5\n"
    "apple\t2\t1\n"  # a single click: no label
    "berry\t2\t1\n"
    "berry\t2\t1\n"  # two rows: (berry, 2) has 2
    "wrong\t0\t1\n"
    "apple\t9\t7\n"
)
# With min_interactions 2: apple has products 0, 1, 9 (11 interactions),
# green 1 (5), red apple 0 (4), berry 2 (2).
VOCABULARY = ("apple", "berry", "green", "red apple")
LABELS = {
    0: (("apple", 2), ("red apple", 4)),
    1: (("apple", 2), ("green", 5)),
    2: (("berry", 2),),
    9: (("apple", 7),),
}


def write_log(folder, text, name="interactions.tsv"):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def settings(path, **changes):
    return {"file": str(path), **changes}


@pytest.mark.parametrize(
    ("typed", "normal"),
    [
        ("  Red   PLATE ", "red plate"),
        ("red-plate!!", "red plate"),
        ("ＲＥＤ\u3000ｐｌａｔｅ", "red plate"),  # full width: NFKC
        ("Straße", "strasse"),  # casefold
        ("men's\tT-shirt\n", "men s t shirt"),
        ("zero\u200bwidth", "zerowidth"),  # format character: removed
        ("ﬁne “quotes”", "fine quotes"),  # ligature, curly quotes
        ("c++ 50$", "c++ 50$"),  # symbols are not punctuation
        ("¿?¡!", ""),
    ],
)
def test_queries_are_normalised(typed, normal):
    assert normalize_query(typed) == normal


def test_pairs_add_up_over_rows_and_thresholds_apply_in_order(tmp_path):
    path = write_log(tmp_path, LOG)
    pairs, counts, malformed = count_pairs(path)
    assert pairs[("red apple", 0)] == 4 and pairs[("berry", 2)] == 2
    assert counts == {"rows": 10, "malformed": 0, "interactions": 24}
    assert malformed == []
    log = read_query_log(settings(path))
    assert log.vocabulary == VOCABULARY
    assert log.labels == LABELS
    stats = log.stats
    assert (stats.rows, stats.queries, stats.pairs, stats.products) == (
        10,
        5,
        8,
        4,
    )
    assert (stats.kept_pairs, stats.kept_queries) == (6, 4)
    assert stats.labelled_products == 4


def test_min_interactions_counts_per_pair(tmp_path):
    path = write_log(tmp_path, LOG)
    log = read_query_log(settings(path, min_interactions=3))
    # Pairs with >= 3: (red apple, 0) 4, (green, 1) 5, (apple, 9) 7.
    assert log.labels == {
        0: (("red apple", 4),),
        1: (("green", 5),),
        9: (("apple", 7),),
    }
    log = read_query_log(settings(path, min_interactions=1))
    assert log.vocabulary == ("apple", "berry", "green", "red apple", "wrong")


def test_min_products_counts_products_of_kept_pairs(tmp_path):
    path = write_log(tmp_path, LOG)
    # apple: 3 products with >= 2 interactions (0, 1, 9), 4 with >= 1.
    assert read_query_log(settings(path, min_products=3)).vocabulary == (
        "apple",
    )
    assert read_query_log(settings(path, min_products=4)).vocabulary == ()
    log = read_query_log(settings(path, min_products=4, min_interactions=1))
    assert log.labels == {
        0: (("apple", 2),),
        1: (("apple", 2),),
        2: (("apple", 1),),
        9: (("apple", 7),),
    }


def test_max_queries_keeps_most_interactions_ties_by_text():
    pairs = {
        ("b", 1): 3,
        ("a", 2): 3,
        ("c", 3): 3,
        ("d", 1): 9,
        ("a", 4): 1,  # below min_interactions: not counted
    }
    assert select_queries(pairs, 2, 1, max_queries=1)[1] == ("d",)
    assert select_queries(pairs, 2, 1, max_queries=2)[1] == ("a", "d")
    assert select_queries(pairs, 2, 1, max_queries=3)[1] == ("a", "b", "d")
    labels, _ = select_queries(pairs, 2, 1, max_queries=2)
    assert labels == {1: (("d", 9),), 2: (("a", 3),)}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "log.tsv",
            "Query\tx\tinteractions\tproduct_id\nred, plate\t0\t2\t5\n",
        ),
        ("log.csv", 'interactions,query,product_id\n2,"red, plate",5\n'),
        ("log.txt", "product_id\tquery\tinteractions\n5\tred, plate\t2\n"),
        ("log.txt", 'product_id,query,interactions\n5,"red, plate",2\n'),
        (
            "log",
            "\n\nproduct_id,query,interactions\n\n5,red plate,1\n5,red,1\n",
        ),
    ],
)
def test_csv_or_tsv_by_name_or_header_any_column_order(tmp_path, name, text):
    path = write_log(tmp_path, text, name)
    pairs, _, _ = count_pairs(path)
    if name == "log":  # "red" and "red plate" are two queries
        assert pairs == {("red plate", 5): 1, ("red", 5): 1}
    else:
        assert pairs == {("red plate", 5): 2}


def test_bom_crlf_and_string_product_ids(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(
        b"\xef\xbb\xbfquery,product_id,interactions\r\n"
        b"Caf\xc3\xa9,sku-1,2\r\ncafe,007,3\r\n"
    )
    pairs, _, _ = count_pairs(path)
    assert pairs == {("café", "sku-1"): 2, ("cafe", 7): 3}


MALFORMED = [
    ("red\t0\n", "2 fields, the header has 3"),
    ("red\t0\t1\textra\n", "4 fields, the header has 3"),
    ("?!\t0\t1\n", "empty query after normalisation ('?!')"),
    ("red\t0\tmany\n", "interactions 'many' is not an integer"),
    ("red\t0\t2.0\n", "interactions '2.0' is not an integer"),
    ("red\t0\t-3\n", "negative interactions -3"),
    ("red\t \t1\n", "empty product_id"),
    ("red\t0\t" + "9" * 80 + "\n", "line longer than 64 bytes"),
    ("ab " * 15 + "\t0\t1\n", "query of 44 characters, more than 40"),
]


@pytest.mark.parametrize(("row", "reason"), MALFORMED)
def test_each_malformed_row_is_skipped_and_reported_by_file_and_line(
    tmp_path, monkeypatch, row, reason
):
    monkeypatch.setattr(text_files, "MAX_LINE_BYTES", 64)
    monkeypatch.setattr(query_log, "MAX_QUERY_CHARACTERS", 40)
    path = write_log(tmp_path, HEADER + "red\t0\t2\n" + row + "red\t0\t3\n")
    with pytest.warns(MalformedRowsWarning) as caught:
        log = read_query_log(settings(path))
    (warning,) = caught
    assert str(warning.message) == (
        f"{path}: skipped 1 malformed row(s) of 3: {path}:3: {reason}"
    )
    assert log.labels == {0: (("red", 5),)}
    assert (log.stats.rows, log.stats.malformed) == (3, 1)


def test_bad_csv_quoting_is_a_malformed_row(tmp_path):
    path = write_log(
        tmp_path,
        'query,product_id,interactions\n"red,0,1\nred,0,2\n',
        "log.csv",
    )
    _, counts, malformed = count_pairs(path)
    assert counts["malformed"] == 1
    assert malformed[0].startswith(f"{path}:2: bad CSV quoting (")


def test_the_warning_quotes_the_first_rows_and_counts_all(tmp_path):
    rows = "".join(f"red\t0\tx{i}\n" for i in range(7))
    path = write_log(tmp_path, HEADER + rows + "red\t0\t2\n")
    with pytest.warns(MalformedRowsWarning) as caught:
        read_query_log(settings(path))
    message = str(caught[0].message)
    assert message.startswith(f"{path}: skipped 7 malformed row(s) of 8: ")
    assert f"{path}:6: interactions 'x4' is not an integer (+2 more)" in (
        message
    )
    assert f"{path}:7:" not in message


def test_a_log_read_again_unchanged_is_not_parsed_again(tmp_path):
    path = write_log(tmp_path, LOG)
    first = read_query_log(settings(path))
    assert read_query_log(settings(path)) is first
    write_log(tmp_path, LOG + "plum\t2\t4\n")
    assert "plum" in read_query_log(settings(path)).vocabulary


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "{path}: empty query log; the first line must be a header"),
        (
            "query\tproduct\tinteractions\nred\t0\t1\n",
            "{path}:1: header has no column 'product_id' (has ['query', "
            "'product', 'interactions'])",
        ),
        (
            "query\tquery\tproduct_id\tinteractions\n",
            "{path}:1: header has two columns 'query'",
        ),
        (
            HEADER + "red\t0\tx\n\n?\t1\t1\n",
            "{path}: no valid row (of 2; 2 malformed, e.g. {path}:2: "
            "interactions 'x' is not an integer)",
        ),
        (HEADER, "{path}: no valid row (of 0; 0 malformed)"),
    ],
)
def test_what_is_not_a_rows_fault_is_one_error_naming_the_file(
    tmp_path, text, message
):
    path = write_log(tmp_path, text)
    with pytest.raises(SpecError) as error:
        count_pairs(path)
    assert str(error.value).startswith(message.format(path=path))


def test_text_that_is_not_utf8_is_an_error_of_its_line(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_bytes(HEADER.encode() + b"red\t0\t1\nr\xe9d\t0\t1\n")
    with pytest.raises(SpecError, match=r"log.tsv:3: not UTF-8: byte E9"):
        count_pairs(path)


def test_max_pairs_bounds_the_distinct_pairs(tmp_path):
    path = write_log(
        tmp_path, HEADER + "a\t1\t1\nb\t1\t1\na\t1\t1\nA!\t1\t1\nb\t2\t1\n"
    )
    pairs, _, _ = count_pairs(path, max_pairs=3)  # (a,1) (b,1) (b,2)
    assert pairs == {("a", 1): 3, ("b", 1): 1, ("b", 2): 1}
    with pytest.raises(SpecError) as error:
        count_pairs(path, max_pairs=2)
    assert str(error.value).startswith(
        f"{path}:6: more than 2 distinct (query, product) pairs; raise the "
        "feed's max_pairs"
    )


# The log as a spec feed.


def query_log_spec(tmp_path, log=LOG, **feed):
    """The toy colour dataset (colour id = product) with a `queries` head
    fed from an interaction log."""
    raw = make_colour_dataset(tmp_path / "data")
    write_log(tmp_path / "data", log)
    raw["heads"].append(
        {"name": "queries", "type": "multilabel_softmax", "classes": "inferred"}
    )
    raw["datasets"][0]["feeds"]["queries"] = {
        "column": 0,
        "query_log": {"file": "interactions.tsv", **feed},
    }
    return raw


def expected_targets(weighted):
    """Product -> the queries head's target row, from `LABELS`."""
    rows = {}
    for product in (0, 1, 2):
        row = np.zeros(len(VOCABULARY), np.float32)
        found = LABELS[product]
        total = sum(n for _, n in found)
        for query, n in found:
            row[VOCABULARY.index(query)] = n / total if weighted else 1.0
        rows[product] = row
    return rows


def test_every_image_gets_its_products_queries(tmp_path):
    raw = query_log_spec(tmp_path)
    spec = resolve_vocabularies(load_spec(write_spec(tmp_path, raw)))
    assert spec.head("queries").classes == VOCABULARY
    split = read_split(spec, spec.datasets[0], "train")
    assert split.label_weights == {}  # weighting none: a plain multi-hot
    for colour, ids in zip(
        split.labels["colour"], split.labels["queries"], strict=True
    ):
        names = {VOCABULARY[i] for i in ids if i >= 0}
        assert names == {q for q, _ in LABELS[colour]}


@pytest.mark.parametrize("weighting", ["none", "interactions"])
def test_weights_flow_into_training_batches_only(tmp_path, weighting):
    raw = query_log_spec(tmp_path, weighting=weighting)
    spec = resolve_vocabularies(load_spec(write_spec(tmp_path, raw)))
    split = read_split(spec, spec.datasets[0], "train")
    weighted = weighting == "interactions"
    assert ("queries" in split.label_weights) == weighted
    targets = expected_targets(weighted)
    batches = training_batches(spec, {"toy": split}, CorruptImageLog())
    for _, labels, weights in batches.take(3).as_numpy_iterator():
        for colour, row in zip(
            labels["colour"], labels["queries"], strict=True
        ):
            np.testing.assert_allclose(row, targets[colour], rtol=1e-6)
        np.testing.assert_array_equal(weights["queries"], 1.0)
    binary = expected_targets(weighted=False)
    for _, labels, _ in evaluation_batches(
        spec, [split], CorruptImageLog(), batch_size=5
    ).as_numpy_iterator():
        for colour, row in zip(
            labels["colour"], labels["queries"], strict=True
        ):
            np.testing.assert_array_equal(row, binary[colour])


def test_a_product_without_kept_queries_gets_weight_zero(tmp_path):
    raw = query_log_spec(tmp_path, min_products=3, weighting="interactions")
    spec = resolve_vocabularies(load_spec(write_spec(tmp_path, raw)))
    assert spec.head("queries").classes == ("apple",)
    split = read_split(spec, spec.datasets[0], "train")
    batches = training_batches(spec, {"toy": split}, CorruptImageLog())
    _, labels, weights = next(batches.as_numpy_iterator())
    blue = labels["colour"] == 2  # product 2: only a single apple click
    np.testing.assert_array_equal(weights["queries"], np.where(blue, 0, 1))
    np.testing.assert_array_equal(labels["queries"][:, 0], np.where(blue, 0, 1))


def test_one_fit_step_on_a_weighted_query_log(tmp_path):
    raw = query_log_spec(tmp_path, weighting="interactions")
    run = tmp_path / "run"
    history = train(
        write_spec(tmp_path, raw), run, epochs=1, steps_per_epoch=1, verbose=0
    )
    assert np.isfinite(history["queries_loss"]).all()
    assert "val_queries_loss" in history
    heads = json.loads((run / "run.json").read_text())["heads"]
    assert next(h for h in heads if h["name"] == "queries")["classes"] == list(
        VOCABULARY
    )


def test_a_broken_log_names_the_feed_and_the_file(tmp_path):
    raw = query_log_spec(tmp_path, log=HEADER + "red\t0\t-1\n")
    spec = load_spec(write_spec(tmp_path, raw))
    with pytest.raises(SpecError) as error:
        resolve_vocabularies(spec)
    log = (tmp_path / "data/interactions.tsv").resolve()
    assert str(error.value) == (
        "spec.yaml: datasets.toy.feeds.queries.query_log: "
        f"{log}: no valid row (of 1; 1 malformed, e.g. {log}:2: negative "
        "interactions -1)"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"tags": {"file": "p.csv", "key": "id", "text": ["name"]}},
            "feeds.queries: a feed mapping has `tags` (query tags mined from "
            "product texts) or `query_log` (an interaction log), not both",
        ),
        (
            {"query_log": None},
            "feeds.queries: a feed mapping has `tags` (query tags mined from "
            "product texts) or `query_log` (an interaction log), one of them",
        ),
        (
            {"query_log": {"file": "interactions.tsv", "weighting": "clicks"}},
            "feeds.queries.query_log.weighting: must be none or "
            "interactions, got 'clicks'",
        ),
        (
            {"query_log": {"file": "interactions.tsv", "min_interactions": 0}},
            "feeds.queries.query_log.min_interactions: must be a positive "
            "integer, got 0",
        ),
        (
            {"query_log": {"file": "interactions.tsv", "max_pairs": "many"}},
            "feeds.queries.query_log.max_pairs: must be an integer",
        ),
        (
            {"query_log": {"fil": "interactions.tsv"}},
            "feeds.queries.query_log.fil: unknown key (did you mean 'file'?)",
        ),
        (
            {"query_log": {"file": "clicks.tsv"}},
            "feeds.queries.query_log.file: file not found: ",
        ),
        (
            {"query_log": {"min_products": 2}},
            "feeds.queries.query_log.file: missing required field",
        ),
        (
            {"type": "softmax"},
            "feeds.queries: a query-log feed gives several labels per image",
        ),
    ],
)
def test_a_broken_query_log_feed_is_one_line_naming_the_field(
    tmp_path, change, message
):
    raw = query_log_spec(tmp_path)
    feed = raw["datasets"][0]["feeds"]["queries"]
    if "type" in change:
        raw["heads"][-1]["type"] = change["type"]
    elif change.get("query_log", 0) is None:
        del feed["query_log"]
    else:
        feed.update(change)
    with pytest.raises(SpecError) as error:
        load_spec(write_spec(tmp_path, raw))
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith(f"spec.yaml: datasets[0].{message}"), text
