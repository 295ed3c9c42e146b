"""The on-disk layout of a run directory, and `load_run`.

`grok-tf train` writes a run directory; every later stage (evaluate,
calibrate, compress, index / search, export) reads it through `load_run`
and writes its own sub-folder::

    RUN_DIR/
      spec.yaml            copy of the spec text
      run.json             where the spec came from, the resolved heads
                           (vocabularies), replicas
      model.keras          the full GrokNet model (all outputs)
      history.json         per-epoch metrics, rewritten after every epoch
      corrupt_images.json  images skipped because they could not be decoded
      checkpoints/         weights after every epoch
      backup/              `BackupAndRestore` state: rerun to resume
      logs/                TensorBoard
      calibration/         `grok-tf calibrate` (grok_tf.calibration)
      hashes/              `grok-tf compress` (grok_tf.compression)

Every file is written through `grok_tf.io.atomic_files`, so a crash never
leaves a half-written one.
"""

import dataclasses
import json
from pathlib import Path

from grok_tf.errors import SpecError
from grok_tf.io.atomic_files import write_atomically
from grok_tf.io.atomic_files import write_json

SPEC_FILE = "spec.yaml"
INFO_FILE = "run.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"
CORRUPT_IMAGES_FILE = "corrupt_images.json"
CHECKPOINTS = "checkpoints"
BACKUP = "backup"
LOGS = "logs"
CALIBRATION = "calibration"
HASHES = "hashes"


def load_run_spec(run_dir):
    """The resolved `Spec` of a finished run (its heads carry vocabularies).

    Raises:
        FileNotFoundError: `run_dir` holds no finished run.
    """
    import yaml

    from grok_tf.spec.loader import parse_spec
    from grok_tf.spec.schema import HeadSpec

    run_dir = Path(run_dir)
    for name in (INFO_FILE, MODEL_FILE):
        if not (run_dir / name).exists():
            raise FileNotFoundError(
                f"{run_dir / name} not found: is it a finished grok-tf run?"
            )
    info = json.loads((run_dir / INFO_FILE).read_text())
    text = (run_dir / SPEC_FILE).read_text()
    spec = parse_spec(yaml.safe_load(text), info["spec_path"], text)
    return spec.replace_heads([HeadSpec.from_record(h) for h in info["heads"]])


def load_run(run_dir):
    """`(spec, model)` of a finished run; the spec carries its vocabularies.

    Example (not run: needs a trained run in runs/demo):

    >>> spec, model = load_run("runs/demo")  # doctest: +SKIP
    >>> sorted(model.output)[:2]  # doctest: +SKIP
    ['category', 'colour']
    """
    import keras

    import grok_tf.model  # noqa: F401  (registers the custom layers)

    spec = load_run_spec(run_dir)
    return spec, keras.saving.load_model(Path(run_dir) / MODEL_FILE)


def check_run_dir(run_dir, spec):
    """Refuses a run directory that holds a run of another spec."""
    copy = Path(run_dir) / SPEC_FILE
    if copy.exists() and copy.read_text() != spec.text:
        raise SpecError(
            f"{run_dir} holds a run of a different spec; choose another --out"
        )


def start_run(run_dir, spec, replicas):
    """Writes `spec.yaml` and `run.json` of a run about to train."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    text = spec.text.encode()
    write_atomically(run_dir / SPEC_FILE, lambda f: f.write(text))
    info = {
        "spec_path": str(spec.path.resolve()),
        "heads": [dataclasses.asdict(h) for h in spec.heads],
        "replicas": replicas,
    }
    write_json(run_dir / INFO_FILE, info)
