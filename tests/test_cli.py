"""The `grok-tf` command, run as a user runs it: in a fresh process."""

import json
import os
import subprocess
import sys

from tests.data_helpers import make_colour_dataset
from tests.data_helpers import write_spec


def grok_tf(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "grok_tf", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


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
        env={"GROK_CACHE": str(_isolated_cache)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "GrokNet demo: 216 validation images" in done.stdout
    for head in ("category", "colour", "pattern", "queries"):
        assert f"\n{head} " in done.stdout
    report = json.loads((tmp_path / "demo/evaluation_val.json").read_text())
    assert report["heads"]["category"]["chance"] == 1 / 6


def test_convert_weights_caches_the_converted_file(tmp_path):
    cache = tmp_path / "cache"
    done = grok_tf(
        "convert-weights", "efficientnet_lite0", env={"GROK_CACHE": str(cache)}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    cached = cache / "weights/efficientnet_lite0-57934424.weights.h5"
    assert f"cached at {cached}" in done.stdout
    assert cached.stat().st_size > 15_000_000  # 4.65M float32 parameters
