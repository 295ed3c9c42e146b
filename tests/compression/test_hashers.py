"""The hasher registry and every built-in hasher's save / load / graph."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from grok_tf.compression.compress import load_hashers
from grok_tf.compression.hashers import CatalyzerHasher
from grok_tf.compression.hashers import Hasher
from grok_tf.compression.hashers import ITQHasher
from grok_tf.compression.hashers import LSHHasher
from grok_tf.compression.hashers import hasher_class
from grok_tf.compression.hashers import hasher_names
from grok_tf.compression.hashers import register_hasher
from grok_tf.compression.hashers import unregister_hasher

FIXTURE = Path(__file__).parents[1] / "fixtures" / "run_0_1_0"
BUILT_IN = ("catalyzer", "lsh", "itq")


def embeddings(rows=300, width=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, width)) * np.linspace(3.0, 0.2, width) + 1.0


def test_built_in_hashers_are_registered_in_report_order():
    assert hasher_names()[:3] == list(BUILT_IN)
    assert [hasher_class(name) for name in BUILT_IN] == [
        CatalyzerHasher,
        LSHHasher,
        ITQHasher,
    ]
    assert all(hasher_class(name)().servable for name in BUILT_IN)


def test_an_unknown_name_is_one_line_listing_the_registered_ones():
    with pytest.raises(ValueError) as error:
        hasher_class("nope")
    assert str(error.value) == (
        "unknown hasher 'nope': registered hashers are "
        + ", ".join(hasher_names())
    )
    with pytest.raises(ValueError, match="unknown hasher 'nope'"):
        unregister_hasher("nope")


def test_a_hasher_registered_from_outside_is_listed_until_unregistered():
    @register_hasher
    class Uncentred(LSHHasher):
        name, file_name = "test_uncentred", "test_uncentred.npz"

    try:
        assert hasher_names()[-1] == "test_uncentred"
        assert hasher_class("test_uncentred") is Uncentred
        assert register_hasher(Uncentred) is Uncentred  # the same: no-op
        assert hasher_names().count("test_uncentred") == 1
    finally:
        assert unregister_hasher("test_uncentred") is Uncentred
    assert "test_uncentred" not in hasher_names()


def _subclass(name, file_name, base=LSHHasher):
    attributes = {"name": name, "file_name": file_name, "__module__": __name__}
    return type("Other", (base,), attributes)


@pytest.mark.parametrize(
    "cls, error, message",
    [
        (int, TypeError, "int'> is not a Hasher subclass"),
        (Hasher, TypeError, "Hasher does not implement codes, fit, "),
        (
            type("Abstract", (Hasher,), {"name": "a", "file_name": "a"}),
            TypeError,
            "Abstract does not implement codes, fit, fitted, load, save",
        ),
        (_subclass("Bad-Name", "b.npz"), ValueError, "got 'Bad-Name'"),
        (_subclass("", "b.npz"), ValueError, "name must be lowercase"),
        (_subclass("ok", ""), ValueError, "file_name must name the file"),
        (
            _subclass("lsh", "mine.npz"),
            ValueError,
            "name 'lsh' of tests.compression.test_hashers.Other is taken "
            "by grok_tf.compression.hashers.lsh.LSHHasher",
        ),
        (
            _subclass("mine", "itq.npz"),
            ValueError,
            "file_name 'itq.npz' of .* is taken by .*itq.ITQHasher",
        ),
    ],
)
def test_registration_refuses_what_would_break_the_registry(
    cls, error, message
):
    before = hasher_names()
    with pytest.raises(error, match=message):
        register_hasher(cls)
    assert hasher_names() == before
    assert hasher_class("lsh") is LSHHasher


def fresh(name):
    """An unfitted built-in hasher, small enough to fit in a second."""
    return {
        "catalyzer": lambda: CatalyzerHasher(
            bits=16, hidden=32, epochs=1, seed=3
        ),
        "lsh": lambda: LSHHasher(bits=40, seed=4),
        "itq": lambda: ITQHasher(bits=16, seed=4),
    }[name]()


@pytest.mark.parametrize("name", BUILT_IN)
def test_save_load_round_trip_gives_the_same_codes(name, tmp_path):
    hasher = fresh(name).fit(embeddings())
    path = hasher.save(tmp_path)
    assert path == tmp_path / hasher.file_name and path.exists()
    loaded = hasher_class(name).load(tmp_path)
    assert type(loaded) is type(hasher) and loaded.bits == hasher.bits
    queries = embeddings(50, seed=9).astype("float32")
    codes = hasher.codes(queries)
    assert codes.dtype == np.uint8 and codes.shape == (50, hasher.bits // 8)
    np.testing.assert_array_equal(loaded.codes(queries), codes)
    for got, want in zip(loaded.weights(), hasher.weights(), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", BUILT_IN)
def test_the_graph_codes_equal_the_numpy_codes(name):
    hasher = fresh(name).fit(embeddings())
    assert hasher.trackables()  # what an ExportArchive must track
    queries = embeddings(64, seed=5).astype("float32")

    @tf.function(input_signature=[tf.TensorSpec([None, 24], tf.float32)])
    def graph(x):
        return hasher.tf_codes(x)

    np.testing.assert_array_equal(
        graph(tf.constant(queries)).numpy(), hasher.codes(queries)
    )
    assert graph(tf.zeros([0, 24])).shape == (0, hasher.bits // 8)


@pytest.mark.parametrize("cls", [LSHHasher, ITQHasher, CatalyzerHasher])
def test_an_unfitted_hasher_says_so(cls, tmp_path):
    hasher = cls(16)
    assert not hasher.fitted
    message = f"^{cls.__name__}: call fit\\(\\) first$"
    for use in (
        hasher.weights,
        hasher.trackables,
        lambda: hasher.codes(embeddings()),
        lambda: hasher.save(tmp_path),
    ):
        with pytest.raises(RuntimeError, match=message):
            use()
    assert not list(tmp_path.iterdir())


def test_files_written_before_the_registry_still_load():
    """`hashes/` of a run written by grok_tf 0.1.0: the same codes."""
    expected = np.load(FIXTURE / "expected.npz")
    hashers = load_hashers(FIXTURE / "run")
    assert list(hashers) == list(BUILT_IN)
    for name, hasher in hashers.items():
        np.testing.assert_array_equal(
            hasher.codes(expected["output_embedding"]),
            expected[f"codes_{name}"],
        )
    # The SavedModel of that run hashed its embedding with the Catalyzer.
    catalyzer = hashers["catalyzer"]
    catalyzer.trackables()
    np.testing.assert_array_equal(
        catalyzer.tf_codes(expected["served_embedding"]).numpy(),
        expected["served_hash"],
    )
