"""Runs written by older grok_tf versions still load and give their numbers.

`tests/fixtures/run_0_1_0` is a run written at commit 3f8cf80, before the
stage subpackages (see its README.md), with what that commit computed from
it: every output on `val`, each hasher's codes of those embeddings, the
exported SavedModel's outputs for one image and `evaluate_run`'s report.
The current code must read the run (`.keras` model, calibration tables,
hashers) and compute the same numbers. One copy per module keeps it fast.
"""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from grok_tf.compression import load_hashers
from grok_tf.evaluation import evaluate_run
from grok_tf.inference import predict_split
from grok_tf.run_dir import load_run
from grok_tf.serving import export_run
from tests.helpers import grok_tf

FIXTURE = Path(__file__).resolve().parent / "fixtures/run_0_1_0"
IMAGE = "data/images/val.txt_red_0.jpg"
TOLERANCE = 1e-5  # outputs of a forward pass
REPORT_TOLERANCE = 1e-6  # metrics
#: Report fields added since the fixture was written (tested in their own
#: tests): present in today's report, absent from the fixture's.
ADDED_SINCE = {"balanced_top1"}


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    """A copy of the fixture, its `run.json` pointing at the copied spec
    (as if the user's files had stayed where they were)."""
    folder = tmp_path_factory.mktemp("old_runs") / FIXTURE.name
    shutil.copytree(FIXTURE, folder)
    info_path = folder / "run/run.json"
    info = json.loads(info_path.read_text())
    info["spec_path"] = str(folder / "spec.yaml")
    info_path.write_text(json.dumps(info, indent=2))
    return folder


@pytest.fixture(scope="module")
def expected():
    with np.load(FIXTURE / "expected.npz") as arrays:
        return dict(arrays)


def with_prefix(arrays, prefix):
    return {
        name.removeprefix(prefix): value
        for name, value in arrays.items()
        if name.startswith(prefix)
    }


@pytest.fixture(scope="module")
def val_outputs(old_run):
    spec, model = load_run(old_run / "run")
    outputs, _, _, log = predict_split(spec, model, "val")
    assert log.summary()["skipped"] == 0
    return outputs


def test_model_outputs_on_val_are_unchanged(val_outputs, expected):
    want = with_prefix(expected, "output_")
    assert set(val_outputs) == set(want)
    for name, value in want.items():
        np.testing.assert_allclose(
            val_outputs[name], value, atol=TOLERANCE, err_msg=name
        )


def test_evaluation_report_is_unchanged(old_run):
    want = json.loads((FIXTURE / "expected_report.json").read_text())
    assert_same_report(evaluate_run(old_run / "run"), want)


def test_hasher_codes_are_unchanged(old_run, expected):
    want = with_prefix(expected, "codes_")
    hashers = load_hashers(old_run / "run")
    assert set(hashers) == set(want) == {"catalyzer", "lsh", "itq"}
    embeddings = expected["output_embedding"]
    for name, hasher in hashers.items():
        codes = hasher.codes(embeddings)
        assert codes.dtype == want[name].dtype, name
        np.testing.assert_array_equal(codes, want[name], err_msg=name)


def test_exported_model_serves_the_same_outputs(old_run, expected):
    version = export_run(old_run / "run", old_run / "saved_models/old")
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    image = (old_run / IMAGE).read_bytes()
    served = serve(image_bytes=tf.constant([image]))
    numbers = {k: v.numpy() for k, v in served.items() if v.dtype != tf.string}
    want = with_prefix(expected, "served_")
    assert set(numbers) == set(want)
    for name, value in want.items():
        assert numbers[name].dtype == value.dtype, name
        if np.issubdtype(value.dtype, np.floating):
            np.testing.assert_allclose(
                numbers[name], value, atol=TOLERANCE, err_msg=name
            )
        else:  # the hash bytes and the validity flag
            np.testing.assert_array_equal(numbers[name], value, err_msg=name)


def test_cli_evaluates_the_old_run(old_run):
    done = grok_tf("evaluate", "--run", old_run / "run")
    assert done.returncode == 0, done.stderr[-2000:]
    want = json.loads((FIXTURE / "expected_report.json").read_text())
    assert_same_report(json.loads(done.stdout), want)


def assert_same_report(got, want, where="report"):
    """Same keys and values, numbers to `REPORT_TOLERANCE`; the corrupt
    images' paths are compared by file name (the copy lives elsewhere)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        if where.endswith(".corrupt_images.files"):
            got = {Path(k).name: v for k, v in got.items()}
            want = {Path(k).name: v for k, v in want.items()}
        added = set(got) - set(want)
        assert set(want) <= set(got) and added <= ADDED_SINCE, (
            where,
            set(got) ^ set(want),
        )
        for key, value in want.items():
            assert_same_report(got[key], value, f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_same_report(a, b, f"{where}[{i}]")
    elif isinstance(want, float):
        assert isinstance(got, int | float), where
        assert math.isclose(got, want, rel_tol=0, abs_tol=REPORT_TOLERANCE), (
            where,
            got,
            want,
        )
    else:
        assert got == want and type(got) is type(want), (where, got, want)
