"""Test setup: two logical CPU devices, quiet TensorFlow, data fixtures.

The CPU is split into two logical devices before anything initialises
TensorFlow, so distribution tests can run `MirroredStrategy` with two
replicas on any machine.
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "data_specs"


def shared_datasets():
    """`GROK_DATA`, else `../shared/datasets` beside the repository."""
    return Path(os.environ.get("GROK_DATA", REPO.parent / "shared/datasets"))


@pytest.fixture(scope="session")
def grok_data():
    """The shared real datasets; the tests using them skip when absent."""
    root = shared_datasets()
    if not (root / "grocery").is_dir():
        pytest.skip(f"real datasets not found in {root} (set GROK_DATA)")
    os.environ["GROK_DATA"] = str(root)
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Synthetic catalogues go to one per-session cache, never to ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "grok_cache"
    monkeypatch.setenv("GROK_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def grocery_run(grok_data, tmp_path_factory):
    """A tiny model trained for a few steps on real grocery photos.

    small_cnn at 32 px, a softmax, an ArcFace product head and a query-tag
    head on 10% of the training photos: seconds to train; the run that
    compress / index / search / calibrate / export tests start from (copy
    it before writing into it).
    """
    from grok_tf.training.fit import train
    from tests.helpers import write_spec

    folder = tmp_path_factory.mktemp("grocery_run")
    classes = {
        "file": str(grok_data / "grocery/classes.csv"),
        "column": "Class Name (str)",
        "id_column": "Class ID (int)",
    }
    raw = {
        "model": {"trunk": "small_cnn", "input_size": 32},
        "training": {"epochs": 1, "steps_per_epoch": 4},
        "heads": [
            {"name": "fine_class", "type": "softmax", "classes": classes},
            {"name": "product", "type": "arcface", "classes": classes},
            {
                "name": "queries",
                "type": "multilabel_arcface",
                "classes": "inferred",
            },
        ],
        "datasets": [
            {
                "name": "grocery",
                "source": "image_list",
                "root": str(grok_data / "grocery"),
                "splits": {"train": "train.txt[:10%]", "val": "val.txt"},
                "images_per_batch": 16,
                "feeds": {
                    "fine_class": 0,
                    "product": 0,
                    "queries": {
                        "column": 0,
                        "tags": {
                            "file": "classes.csv",
                            "key": "Class ID (int)",
                            "text": [
                                "Class Name (str)",
                                "Coarse Class Name (str)",
                            ],
                        },
                    },
                },
                "catalogue": {
                    "file": "classes.csv",
                    "image": "Iconic Image Path (str)",
                    "id": "Class ID (int)",
                },
            }
        ],
    }
    run = folder / "run"
    train(write_spec(folder, raw), run, verbose=0)
    return run
