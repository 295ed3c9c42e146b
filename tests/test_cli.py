"""The `grok-tf` command, run as a user runs it: in a fresh process."""

import base64
import json
import re

import numpy as np
import pytest

from tests.conftest import REPO
from tests.helpers import grok_tf
from tests.helpers import make_colour_dataset
from tests.helpers import write_spec


def test_train_with_two_replicas_then_evaluate(tmp_path):
    spec = write_spec(tmp_path, make_colour_dataset(tmp_path / "data"))
    run = tmp_path / "run"
    done = grok_tf(
        "train",
        "--spec",
        spec,
        "--out",
        run,
        "--epochs",
        1,
        "--steps-per-epoch",
        2,
        "--replicas",
        2,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"model saved to {run / 'model.keras'}" in done.stdout
    report_path = tmp_path / "report.json"
    done = grok_tf("evaluate", "--run", run, "--report", report_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert json.loads(done.stdout) == report  # piped stdout is pure JSON
    assert report["split"] == "val" and report["images"] == 6
    assert set(report["heads"]) == {"colour", "shape"}


def test_bad_spec_is_one_line_on_stderr_and_exit_2(tmp_path):
    raw = make_colour_dataset(tmp_path / "data")
    raw["datasets"][0]["images_per_batch"] = -4
    spec = write_spec(tmp_path, raw)
    done = grok_tf("train", "--spec", spec, "--out", tmp_path / "run")
    assert done.returncode == 2
    # TensorFlow's own start-up log lines may precede it (not silenceable).
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "grok-tf: error: spec.yaml: datasets[0].images_per_batch: must be a "
        "positive integer, got -4"
    )


def test_evaluate_a_missing_run(tmp_path):
    done = grok_tf("evaluate", "--run", tmp_path / "nothing")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("grok-tf: error: ")
    assert last.endswith("is it a finished grok-tf run?")


def test_demo_smoke(tmp_path, _isolated_cache):
    done = grok_tf(
        "demo",
        "--out",
        tmp_path / "demo",
        "--epochs",
        1,
        "--steps-per-epoch",
        2,
        "--model-dir",
        tmp_path / "models/demo",
        env={"GROK_CACHE": str(_isolated_cache)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "GrokNet demo: 216 validation images" in done.stdout
    for head in ("category", "colour", "pattern", "queries"):
        assert f"\n{head} " in done.stdout
        assert f"\n{head} calibration (" in done.stdout
    report = json.loads((tmp_path / "demo/evaluation_val.json").read_text())
    assert report["heads"]["category"]["chance"] == 1 / 6
    # train -> calibrate -> compress -> export -> predict, end to end.
    assert (tmp_path / "models/demo/1/saved_model.pb").is_file()
    sizes = report["retrieval"]["product"]["bytes_per_item"]
    assert sizes == {"float": 1600, "catalyzer": 32, "lsh": 32, "itq": 32}
    assert len(report["predictions"]) == 2
    for prediction in report["predictions"]:
        assert prediction["valid"] and len(prediction["hash"]) == 64
        assert len(prediction["category"]) == 5
    check_readme_rest_example(tmp_path / "models/demo/1")


def check_readme_rest_example(version):
    """The README's REST request, run through the exported signature, gives
    outputs shaped like the README's (abridged) response."""
    import tensorflow as tf

    text = (REPO / "README.md").read_text()
    request = json.loads(_json_block(text, "rest-request"))
    (expected,) = json.loads(_json_block(text, "rest-response"))["predictions"]
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    (instance,) = request["instances"]
    out = serve(image_bytes=tf.constant([base64.b64decode(instance["b64"])]))
    # TF Serving's row format: one object per image, arrays as lists.
    row = {key: value.numpy()[0] for key, value in out.items()}
    row = {
        key: [v.decode() for v in value] if value.dtype == object else value
        for key, value in row.items()
    }
    row = {k: np.asarray(v).tolist() for k, v in row.items()}
    assert set(expected) <= set(row), set(expected) - set(row)
    for key, value in expected.items():
        assert type(row[key]) is type(value), key
        if isinstance(value, list):
            assert len(row[key]) == len(value), key
            assert {type(v) for v in row[key]} == {type(v) for v in value}


def _json_block(text, name):
    match = re.search(rf"<!-- {name} -->\s*```json\n(.*?)```", text, re.S)
    assert match, f"README has no `<!-- {name} -->` json block"
    return match.group(1)


def test_convert_weights_caches_the_converted_file(tmp_path):
    cache = tmp_path / "cache"
    done = grok_tf(
        "convert-weights", "efficientnet_lite0", env={"GROK_CACHE": str(cache)}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    cached = cache / "weights/efficientnet_lite0-57934424.weights.h5"
    assert f"cached at {cached}" in done.stdout
    assert cached.stat().st_size > 15_000_000  # 4.65M float32 parameters


def test_compress_views_argument(capsys):
    from grok_tf.cli import _parser

    parser = _parser()
    assert parser.parse_args(["compress", "--run", "r"]).views is None
    assert (
        parser.parse_args(["compress", "--run", "r", "--views", "0"]).views == 0
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["compress", "--run", "r", "--views", "-1"])
    assert "--views: must be >= 0, got -1" in capsys.readouterr().err
