"""The exported SavedModel, called as TF Serving and its clients call it."""

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from grok_tf.calibration.calibrate import calibrate_run
from grok_tf.calibration.calibrate import load_calibration
from grok_tf.compression.compress import compress_run
from grok_tf.compression.compress import load_hasher
from grok_tf.data.images import EvalPreprocessor
from grok_tf.data.images import resize_for_eval
from grok_tf.data.sources import Split
from grok_tf.inference import embed_images
from grok_tf.inference import kept_refs
from grok_tf.inference import predict
from grok_tf.io.atomic_files import HOST
from grok_tf.run_dir import load_run
from grok_tf.serving import export as serving
from grok_tf.serving.export import export_run
from grok_tf.serving.export import latest_version
from tests.helpers import HANG_GUARD
from tests.helpers import grok_tf

HEADS = ("fine_class", "product", "queries")


def encoded(image, fmt):
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def exported(grocery_run, tmp_path_factory):
    """`(run, model_dir)`: the grocery run calibrated, compressed, exported."""
    folder = tmp_path_factory.mktemp("exported")
    run = folder / "run"
    shutil.copytree(grocery_run, run)
    calibrate_run(run)
    compress_run(run, bits=256, epochs=1, verbose=0)
    export_run(run, folder / "models/grocery")
    return run, folder / "models/grocery"


@pytest.fixture(scope="module")
def photos(grok_data):
    root = grok_data / "grocery"
    lines = (root / "val.txt").read_text().splitlines()[::40]
    return [(root / line.split(",")[0]).read_bytes() for line in lines]


# Run in a fresh interpreter where `import grok_tf` fails: the SavedModel
# must stand on TensorFlow alone.
CLIENT = """
import sys, numpy as np
sys.modules["grok_tf"] = None
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
data = np.load(sys.argv[2])
jpegs = [open(path, "rb").read() for path in sys.argv[4:]]
out = loaded.signatures["serving_default"](image_bytes=tf.constant(jpegs))
images = loaded.signatures["serving_images"](
    images=tf.constant(data["images"]))
def arrays(prefix, outputs):
    return {prefix + k: v.numpy().astype("S") if v.dtype == tf.string
            else v.numpy() for k, v in outputs.items()}
np.savez(sys.argv[3], **arrays("bytes_", out), **arrays("images_", images))
"""


def test_saved_model_alone_equals_the_keras_model(exported, photos, tmp_path):
    run, model_dir = exported
    spec, model = load_run(run)
    size = spec.model.input_size
    prepare = EvalPreprocessor.for_spec(spec)  # 348 px photos: 1/8 scale
    resized = np.stack([prepare(p).numpy() for p in photos])
    raw = np.random.default_rng(0).uniform(0, 255, (3, 50, 70, 3))
    raw = raw.astype("float32")
    np.savez(tmp_path / "in.npz", images=raw)
    files = []
    for i, photo in enumerate(photos):
        files.append(tmp_path / f"{i}.jpg")
        files[-1].write_bytes(photo)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CLIENT,
            str(latest_version(model_dir)),
            str(tmp_path / "in.npz"),
            str(tmp_path / "out.npz"),
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    served = np.load(tmp_path / "out.npz")

    tables = load_calibration(run)
    catalyzer = load_hasher(run, "catalyzer")
    for prefix, images in (
        ("bytes_", resized),
        ("images_", np.stack([resize_for_eval(x, size) for x in raw])),
    ):
        keras_out = model(images, training=False)
        embedding = np.asarray(keras_out["embedding"])
        np.testing.assert_allclose(
            served[prefix + "embedding"], embedding, atol=1e-5
        )
        assert served[prefix + "valid"].all()
        # The hash is the packed sign of the Catalyzer output: bit-exact.
        np.testing.assert_array_equal(
            served[prefix + "hash"],
            catalyzer.codes(served[prefix + "embedding"]),
        )
        for name in HEADS:
            head = spec.head(name)
            probabilities = np.asarray(
                head.kind.probabilities(head, keras_out[name])
            )
            calibrated = tables[name].predict(probabilities)
            np.testing.assert_allclose(
                served[f"{prefix}{name}_probabilities"], calibrated, atol=1e-5
            )
            # Best calibrated probability first, ties to the model's best.
            top = np.stack(
                [
                    np.lexsort((-p, -c))[:5]
                    for p, c in zip(probabilities, calibrated, strict=True)
                ]
            )
            labels = np.array(head.classes)[top].astype(bytes)
            agree = served[f"{prefix}{name}_top_k_labels"] == labels
            assert agree.mean() > 0.99, name  # float32 vs float64 near-ties
            scores = served[f"{prefix}{name}_top_k_scores"]
            assert (np.diff(scores, axis=1) <= 0).all(), name
            np.testing.assert_allclose(
                scores, -np.sort(-calibrated, axis=1)[:, :5], atol=1e-5
            )


def test_served_outputs_equal_the_evaluated_ones(exported, photos, tmp_path):
    """serving_default on a file's bytes gives what `grok-tf evaluate`
    (`inference.predict`) and product search (`embed_images`) compute from
    that file: one preprocessing, whatever the format and size."""
    run, model_dir = exported
    spec, model = load_run(run)
    rgb = Image.open(io.BytesIO(photos[1])).convert("RGB")
    files = {  # name: (bytes, decoded shape: scaled or not)
        "photo_a.jpg": (photos[0], (44, 44)),  # 348 px at 1/8: 44 >= 36.6
        "photo_b.jpg": (photos[2], (44, 44)),
        "wide.jpg": (encoded(rgb.resize((200, 120)), "JPEG"), (60, 100)),
        "photo.png": (encoded(rgb, "PNG"), (348, 348)),  # never scaled
        "small.jpg": (encoded(rgb.resize((60, 45)), "JPEG"), (45, 60)),
        "small.png": (encoded(rgb.resize((50, 70)), "PNG"), (70, 50)),
        "broken.jpg": (photos[3][:300], None),
    }
    decoder = EvalPreprocessor.for_spec(spec).decoder
    paths = []
    for name, (data, shape) in files.items():
        paths.append(str(tmp_path / name))
        (tmp_path / name).write_bytes(data)
        if shape:  # the scaled decode (1/2, 1/8) is the path taken
            assert decoder.decode(data).shape[:2] == shape, name
    serve = tf.saved_model.load(str(latest_version(model_dir))).signatures[
        "serving_default"
    ]
    served = serve(image_bytes=tf.constant([d for d, _ in files.values()]))
    served = {name: value.numpy() for name, value in served.items()}
    assert served["valid"].tolist() == [True] * 6 + [False]

    split = Split("grocery", "val", paths, {})
    outputs, _, _, log = predict(spec, model, [split])
    skipped = log.summary()["files"]
    assert kept_refs([split], skipped) == paths[:6]
    np.testing.assert_allclose(
        served["embedding"][:6], outputs["embedding"], atol=1e-4
    )
    tables = load_calibration(run)
    for name in HEADS:
        head = spec.head(name)
        probabilities = head.kind.probabilities(head, outputs[name])
        np.testing.assert_allclose(
            served[f"{name}_probabilities"][:6],
            tables[name].predict(np.asarray(probabilities)),
            atol=1e-4,
        )
    embeddings, valid = embed_images(model, paths, spec.model.input_size)
    assert valid.tolist() == [True] * 6 + [False]
    np.testing.assert_allclose(served["embedding"], embeddings, atol=1e-4)
    # Not a tautology: the photos differ, and a full-size decode of the
    # large one (no DCT scaling) would give other outputs.
    assert np.abs(np.diff(served["embedding"][:6], axis=0)).max() > 1e-2
    full = resize_for_eval(tf.io.decode_jpeg(photos[0]), spec.model.input_size)
    unscaled = model(full[None], training=False)["embedding"].numpy()
    assert np.abs(unscaled[0] - served["embedding"][0]).max() > 1e-3


def test_bad_images_are_flagged_and_the_batch_survives(exported, photos):
    run, model_dir = exported
    serve = tf.saved_model.load(str(latest_version(model_dir))).signatures[
        "serving_default"
    ]
    rgb = Image.open(io.BytesIO(photos[0])).convert("RGB")
    batch = {
        "good": photos[0],
        "truncated jpeg": photos[0][: len(photos[0]) // 2],
        "random bytes": np.random.default_rng(0).bytes(500),
        "empty": b"",
        "text": b"<html>not an image</html>",
        "png with alpha": encoded(rgb.convert("RGBA"), "PNG"),
        "png": encoded(rgb, "PNG"),
        "grayscale": encoded(rgb.convert("L"), "PNG"),
        "1x1": encoded(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
        "4000x3000": encoded(rgb.resize((4000, 3000)), "JPEG"),
    }
    out = serve(image_bytes=tf.constant(list(batch.values())))
    valid = dict(zip(batch, out["valid"].numpy().tolist(), strict=True))
    assert valid == {
        "good": True,
        "truncated jpeg": False,
        "random bytes": False,
        "empty": False,
        "text": False,
        "png with alpha": True,
        "png": True,
        "grayscale": True,
        "1x1": True,
        "4000x3000": True,
    }
    ok = out["valid"].numpy()
    assert not out["embedding"].numpy()[~ok].any()
    assert not out["hash"].numpy()[~ok].any()
    assert (out["fine_class_top_k_labels"].numpy()[~ok] == b"").all()
    norms = np.linalg.norm(out["embedding"].numpy()[ok], axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    # The PNG with alpha holds the JPEG's pixels: alpha is dropped.
    embedding = dict(zip(batch, out["embedding"].numpy(), strict=True))
    np.testing.assert_allclose(
        embedding["png with alpha"], embedding["png"], atol=1e-6
    )
    # Every valid image is scored as `evaluate` scores its file: the PNG
    # decoded at full size, the JPEG at 1/8 scale. (How near the two
    # embeddings are is the trained model's business, not serving's.)
    spec, model = load_run(run)
    prepare = EvalPreprocessor.for_spec(spec)
    images = {name: prepare(batch[name]) for name, ok in valid.items() if ok}
    expected = model(np.stack(list(images.values())), training=False)
    np.testing.assert_allclose(
        np.stack([embedding[name] for name in images]),
        expected["embedding"],
        atol=1e-4,
    )
    # The two decodes of one photo are near in pixels, not equal.
    gap = np.abs(images["good"] - images["png"]).mean()
    assert 0 < gap < 10  # of 255; 5 on the 348 px val photos at 32 px


def test_an_empty_batch_returns_empty_outputs(exported):
    _, model_dir = exported
    loaded = tf.saved_model.load(str(latest_version(model_dir)))
    out = loaded.signatures["serving_default"](
        image_bytes=tf.constant([], tf.string)
    )
    assert out["embedding"].shape == (0, 400)
    assert out["hash"].shape == (0, 32)
    assert out["valid"].shape == (0,)
    assert out["fine_class_top_k_labels"].shape == (0, 5)
    images = loaded.signatures["serving_images"](images=tf.zeros([0, 8, 8, 3]))
    assert images["product_probabilities"].shape == (0, 81)


def test_saved_model_cli_lists_both_signatures(exported):
    _, model_dir = exported
    cli = Path(sys.executable).with_name("saved_model_cli")
    done = subprocess.run(
        [cli, "show", "--dir", latest_version(model_dir), "--all"],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    signatures = _signatures(done.stdout)
    expected_outputs = {
        "embedding": ("DT_FLOAT", "(-1, 400)"),
        "hash": ("DT_UINT8", "(-1, 32)"),
        "valid": ("DT_BOOL", "(-1)"),
        "fine_class_probabilities": ("DT_FLOAT", "(-1, 81)"),
        "fine_class_top_k_labels": ("DT_STRING", "(-1, 5)"),
        "fine_class_top_k_scores": ("DT_FLOAT", "(-1, 5)"),
        "product_probabilities": ("DT_FLOAT", "(-1, 81)"),
        "product_top_k_labels": ("DT_STRING", "(-1, 5)"),
        "product_top_k_scores": ("DT_FLOAT", "(-1, 5)"),
    }
    tags = len(spec_classes(exported[0], "queries"))
    expected_outputs.update(
        {
            "queries_probabilities": ("DT_FLOAT", f"(-1, {tags})"),
            "queries_top_k_labels": ("DT_STRING", "(-1, 5)"),
            "queries_top_k_scores": ("DT_FLOAT", "(-1, 5)"),
        }
    )
    assert signatures["serving_default"] == (
        {"image_bytes": ("DT_STRING", "(-1)")},
        expected_outputs,
    )
    assert signatures["serving_images"] == (
        {"images": ("DT_FLOAT", "(-1, -1, -1, 3)")},
        expected_outputs,
    )


def spec_classes(run, head):
    spec, _ = load_run(run)
    return spec.head(head).classes


def _signatures(text):
    """`{name: (inputs, outputs)}` of `saved_model_cli show --all` output."""
    found = {}
    pattern = re.compile(
        r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+"
        r"shape: (\([-\d, ]*\))"
    )
    for block in text.split("signature_def['")[1:]:
        name = block.split("'", 1)[0]
        sides = {"inputs": {}, "outputs": {}}
        for side, key, dtype, shape in pattern.findall(block):
            sides[side][key] = (dtype, shape)
        found[name] = (sides["inputs"], sides["outputs"])
    return found


def test_warmup_requests_parse_and_run(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    _, model_dir = exported
    version = latest_version(model_dir)
    path = version / "assets.extra/tf_serving_warmup_requests"
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    assert len(records) == 3
    for size, record in enumerate(records, start=1):
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        assert request.model_spec.name == "grocery"
        assert request.model_spec.signature_name == "serving_default"
        images = tf.make_ndarray(request.inputs["image_bytes"])
        out = serve(image_bytes=tf.constant(images))
        assert out["valid"].numpy().tolist() == [True] * size


def test_export_versions_and_a_failed_export_leaves_nothing(
    exported, tmp_path, monkeypatch
):
    run, _ = exported
    models = tmp_path / "models/m"
    assert export_run(run, models).name == "1"
    assert export_run(run, models).name == "2"

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(serving, "write_warmup_requests", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export_run(run, models)
    assert sorted(p.name for p in models.iterdir()) == [
        "1",
        "2",
        "models.config",
    ]
    config = (models / "models.config").read_text()
    assert 'name: "m"' in config and f'base_path: "{models}"' in config


def test_concurrent_exports_each_publish_their_own_version(
    exported, photos, tmp_path, monkeypatch
):
    run, _ = exported
    models = tmp_path / "models/m"
    models.mkdir(parents=True)
    # What an export killed with -9 left: the next export removes it.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    killed = models / f".version.partial-{HOST}-{gone.pid}-0123abcd"
    (killed / "variables").mkdir(parents=True)
    (killed / "saved_model.pb").write_bytes(b"half a model")
    # A second export starts after this one and publishes first, while
    # this one writes its warm-up requests.
    write_warmup_requests = serving.write_warmup_requests
    other = []

    def overtaken(path, name):
        monkeypatch.setattr(
            serving, "write_warmup_requests", write_warmup_requests
        )
        other.append(export_run(run, models))
        write_warmup_requests(path, name)

    monkeypatch.setattr(serving, "write_warmup_requests", overtaken)
    first = export_run(run, models)

    assert (other[0].name, first.name) == ("1", "2")
    assert sorted(p.name for p in models.iterdir()) == [
        "1",
        "2",
        "models.config",
    ]
    embeddings = []
    for version in (first, other[0]):
        serve = tf.saved_model.load(str(version)).signatures["serving_default"]
        out = serve(image_bytes=tf.constant(photos[:2]))
        assert out["valid"].numpy().all()
        embeddings.append(out["embedding"].numpy())
    np.testing.assert_allclose(embeddings[0], embeddings[1], atol=1e-6)


def test_versions_are_ascii_integer_folders(tmp_path):
    for name in ("1", "10", "2", "²", "3a", "notes", ".4.partial"):
        (tmp_path / name).mkdir()
    (tmp_path / "5").write_text("a file")
    (tmp_path / "99999999999999999999").mkdir()  # not an int64
    assert serving.versions(tmp_path) == [1, 2, 10]
    assert latest_version(tmp_path) == tmp_path / "10"
    assert serving.versions(tmp_path / "missing") == []


def test_calibrate_export_predict_commands(exported, grok_data, tmp_path):
    run, _ = exported
    done = grok_tf("calibrate", "--run", run)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert sorted(report["heads"]) == sorted(HEADS)
    for entry in report["heads"].values():
        assert set(entry["ece"]) == {"before", "after"}
    assert (run / "calibration/product_reliability.png").stat().st_size > 0
    models = tmp_path / "models/grocery"
    done = grok_tf("export", "--run", run, "--model-dir", models)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"exported {models / '1'}" in done.stdout
    photo = grok_data / "grocery/val/Fruit/Apple/Golden-Delicious"
    photo = sorted(photo.glob("*.jpg"))[0]
    done = grok_tf("predict", "--model", models, photo, tmp_path / "no.jpg")
    assert done.returncode == 0, done.stderr[-2000:]
    good, missing = json.loads(done.stdout)
    assert good["valid"] and good["version"] == "1"
    assert len(good["hash"]) == 64 and len(good["fine_class"]) == 5
    assert 0.0 <= good["fine_class"][0]["score"] <= 1.0
    assert not missing["valid"] and missing["hash"] is None
    done = grok_tf("predict", "--model", tmp_path / "nothing", photo)
    assert done.returncode == 2
    assert "no exported version" in done.stderr.strip().splitlines()[-1]


def test_calibration_lowers_held_out_ece_on_real_grocery(exported):
    run, _ = exported
    report = json.loads((run / "calibration/report.json").read_text())
    assert report["split"] == "val" and report["images"] == 296
    # The briefly trained ArcFace scores are far from calibrated (softmax
    # of 64 * cos); the query tags' one-vs-rest scores too. "after" is
    # measured on held-out folds the tables never saw.
    for name in ("product", "queries"):
        ece = report["heads"][name]["ece"]
        assert ece["after"] < 0.5 * ece["before"], (name, ece)
        brier = report["heads"][name]["brier"]
        assert brier["after"] < brier["before"], (name, brier)
    assert report["heads"]["product"]["examples"] == 296
    # Products whose names share no word with another product have no tag.
    assert 0 < report["heads"]["queries"]["examples"] < 296
