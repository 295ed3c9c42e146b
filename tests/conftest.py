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
