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


def python(code):
    """Runs `code` in a fresh interpreter (no module imported by tests)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )


def test_importing_grok_tf_does_not_import_tensorflow():
    code = "import sys, grok_tf; print('tensorflow' in sys.modules)"
    done = python(code)
    assert done.stdout.strip() == "False", done.stderr[-1000:]


OLD_IMPORTS = [
    # (grok_tf 0.1 module, a name it held, where that name lives now)
    ("grok_tf.hash_index", "HashIndex", "grok_tf.search.hash_index"),
    ("grok_tf.product_search", "build_index", "grok_tf.search.product_search"),
    ("grok_tf.layers.gem_pooling", "GeMPooling", "grok_tf.model.layers"),
    ("grok_tf.losses", "ArcFaceLoss", "grok_tf.model.losses"),
    ("grok_tf.trunks", "build_trunk", "grok_tf.model.trunks"),
    ("grok_tf.image_preprocessing", "ImageDecoder", "grok_tf.data.images"),
    ("grok_tf.catalyzer", "Catalyzer", "grok_tf.compression.hashers.catalyzer"),
    ("grok_tf.training", "train", "grok_tf.training.fit"),
    ("grok_tf.evaluation", "evaluate_run", "grok_tf.evaluation.evaluate"),
    ("grok_tf.calibration", "calibrate_run", "grok_tf.calibration.calibrate"),
    ("grok_tf.serving", "export_run", "grok_tf.serving.export"),
]


def test_old_module_paths_import_the_same_objects():
    """Code written against 0.1's flat layout keeps working, in a fresh
    interpreter (no module imported beforehand by other tests), with a
    DeprecationWarning naming the new path for the moved ones."""
    code = "\n".join(
        [
            "import importlib, warnings",
            "warnings.simplefilter('error', DeprecationWarning)",
            "import grok_tf",
            "from grok_tf import moved_modules",
            f"for old, name, new in {OLD_IMPORTS!r}:",
            "    moved = moved_modules.new_name(old)",
            "    if moved is None:",
            "        module = importlib.import_module(old)",
            "    else:",
            "        try:",
            "            importlib.import_module(old)",
            "        except DeprecationWarning as warning:",
            "            first, _, _, target = str(warning).split()[:4]",
            "            assert old.startswith(first), (old, warning)",
            "            assert moved.startswith(target.rstrip(';')), warning",
            "        else:",
            "            raise AssertionError(f'{old}: no warning')",
            "        with warnings.catch_warnings():",
            "            warnings.simplefilter('ignore', DeprecationWarning)",
            "            module = importlib.import_module(old)",
            "    current = importlib.import_module(new)",
            "    assert getattr(module, name) is getattr(current, name), old",
            "print('ok')",
        ]
    )
    done = python(code)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
