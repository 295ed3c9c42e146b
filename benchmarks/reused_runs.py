"""Trains a benchmark's run once: a finished run of the same spec is reused.

Benchmarks that train several models (`vertical_ablations.py`,
`query_log_demo.py`, `weak_supervision.py`) can be rerun after an
interruption: each run directory that holds a finished model of the same
spec is reused, an interrupted one resumes (`grok-tf train`'s
`BackupAndRestore`), and one that holds another spec stops the script.
"""

import sys
import time

from grok_tf.run_dir import MODEL_FILE
from grok_tf.run_dir import SPEC_FILE


def train_or_reuse(spec, folder, **train_arguments):
    """Trains `spec` into `folder` unless a finished run of it is there.

    Args:
        spec: a loaded `Spec`.
        folder: the run directory (a `Path`).
        **train_arguments: passed to `grok_tf.training.fit.train`.

    Returns:
        The training time in seconds, or None for a reused run.
    """
    from grok_tf.training.fit import train

    copy = folder / SPEC_FILE
    if copy.exists() and copy.read_text() != spec.text:
        sys.exit(f"{folder} holds a run of other settings")
    if (folder / MODEL_FILE).exists():
        return None
    print(f"training {folder.name} into {folder}", flush=True)
    start = time.perf_counter()
    train(spec, folder, **train_arguments)
    return round(time.perf_counter() - start, 1)
