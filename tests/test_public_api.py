import subprocess
import sys

import grok_tf
from tests.helpers import HANG_GUARD


def test_every_public_name_resolves_to_its_module_object():
    import importlib

    for name, module in grok_tf._PUBLIC.items():
        assert getattr(grok_tf, name) is getattr(
            importlib.import_module(module), name
        ), name
    assert set(grok_tf.__all__) == {*grok_tf._PUBLIC, "__version__"}


def test_importing_grok_tf_does_not_import_tensorflow():
    code = "import sys, grok_tf; print('tensorflow' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert done.stdout.strip() == "False", done.stderr[-1000:]
