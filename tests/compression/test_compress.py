"""`compress_run` over the registry, with a hasher defined in this file.

Runs on a copy of the small run of tests/fixtures/run_0_1_0 (16-d
embeddings, 12 training and 6 validation images): seconds, no training.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from grok_tf.compression.compress import best_hasher
from grok_tf.compression.compress import compress_run
from grok_tf.compression.compress import load_hasher
from grok_tf.compression.compress import load_hashers
from grok_tf.compression.hashers import Hasher
from grok_tf.compression.hashers import HasherFitError
from grok_tf.compression.hashers import hasher_names
from grok_tf.compression.hashers import register_hasher
from grok_tf.compression.hashers import unregister_hasher
from grok_tf.evaluation.evaluate import evaluate_run
from grok_tf.evaluation.retrieval_metrics import retrieval_metrics
from grok_tf.inference import predict_split
from grok_tf.run_dir import load_run
from grok_tf.search.product_search import ProductHasher
from grok_tf.serving.export import ServingFunctions

FIXTURE = Path(__file__).parents[1] / "fixtures" / "run_0_1_0"


class RotationHasher(Hasher):
    """A toy hasher from outside grok_tf: a random rotation, then signs."""

    name = "test_rotation"
    file_name = "test_rotation.npz"
    encoded = []  # spy: the shape of every batch `codes` encoded

    def __init__(self, bits=256, seed=0):
        super().__init__(bits, seed)
        self.rotation = None

    @property
    def fitted(self):
        return self.rotation is not None

    def fit(self, embeddings, verbose=0):
        width = np.shape(embeddings)[1]
        if self.bits > width:
            raise HasherFitError(f"a [{width}, {width}] rotation: bits > d")
        gaussian = np.random.default_rng(self.seed).normal(size=(width,) * 2)
        self.rotation = np.linalg.qr(gaussian)[0][:, : self.bits]
        return self

    def codes(self, embeddings):
        self.check_fitted()
        x = np.asarray(embeddings, np.float64)
        RotationHasher.encoded.append(x.shape)
        return np.packbits(x @ self.rotation > 0, axis=-1, bitorder="little")

    def weights(self):
        return [self.rotation]

    def save(self, folder):
        np.savez(self.path(folder), rotation=self.rotation, seed=self.seed)
        return self.path(folder)

    @classmethod
    def load(cls, folder):
        with np.load(cls.path(folder)) as data:
            hasher = cls(data["rotation"].shape[1], int(data["seed"]))
            hasher.rotation = data["rotation"]
        return hasher


@pytest.fixture
def rotation():
    register_hasher(RotationHasher)
    RotationHasher.encoded.clear()
    yield RotationHasher
    unregister_hasher(RotationHasher.name)


@pytest.fixture
def run(tmp_path):
    """A copy of the fixture run, its spec path pointed at the copy."""
    folder = shutil.copytree(FIXTURE, tmp_path / "fixture")
    info = json.loads((folder / "run/run.json").read_text())
    info["spec_path"] = str(folder / "spec.yaml")
    (folder / "run/run.json").write_text(json.dumps(info))
    return folder / "run"


def test_a_registered_hasher_is_fitted_saved_and_evaluated(run, rotation):
    assert hasher_names()[-1] == "test_rotation"
    summary = compress_run(
        run, bits=8, hashers=["lsh", "test_rotation"], verbose=0
    )
    assert summary["hashers"] == ["lsh", "test_rotation"]
    assert summary["skipped"] == {} and summary["images"] == 12
    written = sorted(p.name for p in (run / "hashes").iterdir())
    assert written == ["compression.json", "lsh.npz", "test_rotation.npz"]
    hashers = load_hashers(run)
    assert list(hashers) == ["lsh", "test_rotation"]
    toy = hashers["test_rotation"]
    assert isinstance(toy, RotationHasher) and toy.bits == 8

    RotationHasher.encoded.clear()
    report = evaluate_run(run)["retrieval"]["product"]
    # The report's toy column is retrieval with the toy's own codes.
    spec, model = load_run(run)
    outputs, labels, _, _ = predict_split(spec, model, "val")
    keep = labels["product"] >= 0
    codes = toy.codes(outputs["embedding"][keep])
    ids = labels["product"][keep]
    assert RotationHasher.encoded[0] == (6, 16)  # evaluate encoded val
    assert report["bytes_per_item"] == {
        "float": 64,
        "lsh": 1,
        "test_rotation": 1,
    }
    assert report["photo_to_photo"]["test_rotation"] == retrieval_metrics(
        codes, ids, codes, ids, metric="hamming", exclude_self=True
    )

    # Product search takes it by name; its fingerprint is its own.
    by_toy = ProductHasher(run, "test_rotation")
    by_lsh = ProductHasher(run, "lsh")
    assert by_toy.hasher.weights()[0].shape == (16, 8)
    assert by_toy.fingerprint != by_lsh.fingerprint
    # Serving needs a graph (tf_codes): the toy has none, refused early.
    with pytest.raises(ValueError, match="test_rotation hasher has no TF"):
        ServingFunctions(spec, model, toy, {})


def test_what_cannot_fit_is_recorded_as_skipped(run, rotation):
    summary = compress_run(run, bits=32, verbose=0, hashers=hasher_names()[1:])
    assert summary["hashers"] == ["lsh"]
    assert summary["skipped"] == {
        "itq": "ITQ needs bits <= the embedding width: bits=32 > d=16 "
        "(PCA has at most d directions)",
        "test_rotation": "a [16, 16] rotation: bits > d",
    }
    written = json.loads((run / "hashes/compression.json").read_text())
    assert written == summary
    assert list(load_hashers(run)) == ["lsh"]
    with pytest.raises(FileNotFoundError) as error:
        load_hasher(run, "itq")
    assert str(error.value) == (
        f"{run}/hashes/itq.npz not found: `grok-tf compress` skipped the "
        "itq hasher (ITQ needs bits <= the embedding width: bits=32 > d=16 "
        "(PCA has at most d directions))"
    )
    with pytest.raises(FileNotFoundError, match="compress --run .* first"):
        load_hasher(run, "catalyzer")  # replaced by this compression


def test_every_registered_hasher_is_fitted_by_default(run, rotation):
    options = {"catalyzer": {"hidden": 16, "k_pos": 2, "k_neg": 3}}
    summary = compress_run(run, bits=8, epochs=1, verbose=0, options=options)
    assert summary["hashers"] == hasher_names()
    hashers = load_hashers(run)
    assert list(hashers) == hasher_names()
    catalyzer = hashers["catalyzer"].model
    assert catalyzer.get_layer("mlp").hidden == 16  # options reached it


def test_bad_names_and_options_fail_before_any_work(run):
    hashes = run / "hashes"
    before = sorted(p.name for p in hashes.iterdir())
    with pytest.raises(ValueError, match="unknown hasher 'nope': registered"):
        compress_run(run, hashers=["lsh", "nope"])
    with pytest.raises(ValueError, match="options given for itq, not among"):
        compress_run(run, hashers=["lsh"], options={"itq": {}})
    with pytest.raises(TypeError, match="unexpected keyword argument 'bad'"):
        compress_run(run, options={"lsh": {"bad": 1}})
    assert sorted(p.name for p in hashes.iterdir()) == before
    with pytest.raises(ValueError, match="unknown hasher 'nope'"):
        ProductHasher(run, "nope")


def test_any_hasher_with_a_graph_can_be_served(run, tmp_path):
    """`export_run(..., hasher="lsh")`: the SavedModel's hash is LSH's."""
    from grok_tf.serving.export import export_run

    version = export_run(run, tmp_path / "models/toy", hasher="lsh")
    loaded = tf.saved_model.load(str(version))
    image = (run.parent / "data/images/val.txt_red_0.jpg").read_bytes()
    served = loaded.signatures["serving_default"](
        image_bytes=tf.constant([image])
    )
    lsh = load_hasher(run, "lsh")
    np.testing.assert_array_equal(
        served["hash"].numpy(), lsh.codes(served["embedding"].numpy())
    )
    expected = np.load(run.parent / "expected.npz")
    assert not np.array_equal(served["hash"], expected["served_hash"])


def test_compress_measures_val_per_hasher_and_best_hasher_picks(run):
    summary = compress_run(run, bits=8, hashers=["lsh", "itq"], verbose=0)
    validation = summary["validation"]
    assert validation["split"] == "val"
    # The val retrieval is evaluate's; a score is the mean map@r over its
    # searches (here photo -> photo of the one id head).
    report = evaluate_run(run)["retrieval"]
    assert validation["retrieval"] == report
    searches = [
        results
        for entry in report.values()
        if "same_as" not in entry
        for search, results in entry.items()
        if search != "bytes_per_item"
    ]
    for name in ("lsh", "itq"):
        mean = np.mean([results[name]["map@r"] for results in searches])
        assert validation["scores"][name] == pytest.approx(mean, abs=1e-6)
    scores = validation["scores"]
    want = "itq" if scores["itq"] > scores["lsh"] else "lsh"
    assert validation["best"] == best_hasher(run) == want

    # The rule, on a hand-written summary: the highest score, ties to the
    # first registered; no score recorded: the Catalyzer, else the first.
    path = run / "hashes/compression.json"
    for scores, best in (
        ({"lsh": 0.4, "itq": 0.5}, "itq"),
        ({"lsh": 0.5, "itq": 0.5}, "lsh"),
        ({"lsh": 0.6, "itq": 0.5}, "lsh"),
        (None, "lsh"),
    ):
        written = dict(summary)
        written["validation"] = scores and {"scores": scores}
        path.write_text(json.dumps(written))
        assert best_hasher(run) == best
        assert load_hasher(run, "best").name == best

    no_val = compress_run(
        run, bits=8, hashers=["lsh"], verbose=0, validation_split=None
    )
    assert no_val["validation"] is None
    path.unlink()
    with pytest.raises(FileNotFoundError, match="compress --run"):
        best_hasher(run)


def test_the_default_catalyzer_starts_at_itq_and_stays_near_it(run):
    """`compress_run` defaults: a linear Catalyzer from ITQ, 2 epochs."""
    options = {"catalyzer": {"k_pos": 2, "k_neg": 3}}
    summary = compress_run(run, bits=8, verbose=0, options=options)
    assert summary["hashers"] == hasher_names()
    hashers = load_hashers(run)
    layer = hashers["catalyzer"].model.get_layer("mlp")
    assert layer.hidden_layers == 0
    spec, model = load_run(run)
    outputs, _, _, _ = predict_split(spec, model, "val")
    x = outputs["embedding"]
    differ = np.unpackbits(
        hashers["catalyzer"].codes(x) ^ hashers["itq"].codes(x)
    ).mean()
    assert differ < 0.1  # 1e-4 steps from ITQ's codes


class ViewsSpy(RotationHasher):
    """A rotation that records what `compress_run` fits it on."""

    name = "test_views_spy"
    file_name = "test_views_spy.npz"
    learns_from_views = True
    fitted_on = []  # spy: (embeddings, groups) of every fit

    def fit(self, embeddings, verbose=0, groups=None, labels=None):
        ViewsSpy.fitted_on.append((np.asarray(embeddings), groups, labels))
        return super().fit(embeddings, verbose)


NO_VAL = {"validation_split": None}  # val is not what these tests check


@pytest.fixture
def views_spy():
    register_hasher(ViewsSpy)
    ViewsSpy.fitted_on.clear()
    yield ViewsSpy
    unregister_hasher(ViewsSpy.name)


def test_views_feed_the_hashers_that_learn_from_them(
    run, views_spy, monkeypatch
):
    summary = compress_run(
        run, bits=8, verbose=0, hashers=[views_spy.name], views=2, **NO_VAL
    )
    spec, model = load_run(run)
    plain = predict_split(spec, model, "train")[0]["embedding"]
    n = len(plain)
    assert summary["views"] == 2 and summary["images"] == n
    ((x, groups, _),) = ViewsSpy.fitted_on
    assert x.shape == (3 * n, plain.shape[1])
    np.testing.assert_array_equal(groups, np.tile(np.arange(n), 3))
    np.testing.assert_allclose(x[:n], plain, atol=1e-6)
    # Each view is a new random crop / flip / colour of its photo.
    for view in (x[n : 2 * n], x[2 * n :]):
        assert np.abs(view - plain).max() > 1e-3
    assert not np.allclose(x[n : 2 * n], x[2 * n :])
    # A supervised one gets the product ids of every row.
    monkeypatch.setattr(ViewsSpy, "supervised", True)
    compress_run(
        run, bits=8, verbose=0, hashers=[views_spy.name], views=1, **NO_VAL
    )
    _, groups, ids = ViewsSpy.fitted_on[-1]
    assert (ids >= 0).sum() > 0 and len(ids) == 2 * n
    np.testing.assert_array_equal(ids[n:], ids[:n])
    # One that does not learn from views fits the plain rows only, and
    # no views are made when no hasher would use them.
    monkeypatch.setattr(ViewsSpy, "learns_from_views", False)
    summary = compress_run(
        run, bits=8, verbose=0, hashers=[views_spy.name], views=2, **NO_VAL
    )
    x, groups, _ = ViewsSpy.fitted_on[-1]
    assert groups is None and summary["views"] == 0
    np.testing.assert_allclose(x, plain, atol=1e-6)
    with pytest.raises(ValueError, match="views must be >= 0"):
        compress_run(run, hashers=["lsh"], views=-1)


def test_views_that_lose_an_image_name_it(run, monkeypatch):
    """A view pass must read exactly the images the plain pass read."""
    from grok_tf.compression import compress

    real = compress.predict

    def losing_one(spec, model, splits, *args, augment=False, **kwargs):
        outputs, labels, weights, log = real(
            spec, model, splits, *args, augment=augment, **kwargs
        )
        if augment:
            lost = splits[0].refs[0]
            summary = log.summary()
            log = type("Log", (), {})()
            log.summary = lambda: {**summary, "files": {lost: "gone"}}
        return outputs, labels, weights, log

    monkeypatch.setattr(compress, "predict", losing_one)
    spec, _ = load_run(run)
    first = compress.read_splits(spec, "train")[0].refs[0]
    with pytest.raises(ValueError, match=f"{first}: read in one pass"):
        compress_run(run, bits=8, verbose=0, views=1, **NO_VAL)
