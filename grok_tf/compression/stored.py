"""A compressed run's stored hashers: which were fitted, which is best.

`grok-tf compress` (`grok_tf.compression.compress`) writes
`RUN_DIR/hashes/`; everything that reads it (`grok-tf evaluate`, `index`,
`search`, `export`) goes through this module, which depends on the hasher
registry only, never on evaluation, so evaluation can read hashes while
compression measures hashers with evaluation's retrieval report.

Example (not run: needs a compressed run in runs/demo):

>>> hasher = load_hasher("runs/demo", "best")  # doctest: +SKIP
>>> hasher.name  # doctest: +SKIP
'catalyzer'
"""

import json
from pathlib import Path

from grok_tf.compression.hashers import Hasher
from grok_tf.compression.hashers import hasher_class
from grok_tf.compression.hashers import hasher_names
from grok_tf.run_dir import HASHES

SUMMARY = "compression.json"
DEFAULT_HASHER = "catalyzer"
BEST = "best"  # the name that asks for `best_hasher`


def best_of(scores):
    """The highest score; ties go to the first name (registration order)."""
    return max(
        scores, key=lambda name: (scores[name], -list(scores).index(name))
    )


def best_hasher(run_dir):
    """The name of the run's hasher that measured best on its val split.

    The rule: the fitted hasher with the highest mean mAP@R over the
    validation searches `compress_run` recorded (`hasher_scores`: photo ->
    photo and photo -> catalogue of every id head), ties going to the
    first in registration order (`catalyzer`, `lsh`, `itq`). A run
    compressed without a validation measure (no val split, or before it
    was recorded) gets the default, `catalyzer`, when it was fitted, else
    the first fitted hasher.

    Args:
        run_dir: a compressed run directory.

    Returns:
        a hasher name, e.g. `"itq"`; `load_hasher(run_dir, name)` loads it.

    Raises:
        FileNotFoundError: the run has not been compressed, or no hasher
            was fitted.

    Example (not run: needs a compressed run in runs/demo):

    >>> best_hasher("runs/demo")  # doctest: +SKIP
    'catalyzer'
    """
    folder = Path(run_dir) / HASHES
    path = folder / SUMMARY
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: run `grok-tf compress --run {run_dir}` first"
        )
    summary = _read_summary(path)
    fitted = [
        name
        for name in hasher_names()
        if name in summary.get("hashers", [])
        and hasher_class(name).path(folder).exists()
    ]
    if not fitted:
        raise FileNotFoundError(f"{path}: no hasher was fitted")
    scores = (summary.get("validation") or {}).get("scores", {})
    scores = {name: scores[name] for name in fitted if name in scores}
    if scores:
        return best_of(scores)
    return DEFAULT_HASHER if DEFAULT_HASHER in fitted else fitted[0]


def load_hashers(run_dir):
    """The run's fitted hashers, `name -> Hasher` (see `Hasher.codes`).

    Every registered hasher whose file is in `RUN_DIR/hashes/` is loaded,
    in registration order (runs compressed before the registry, with
    `catalyzer.keras`, `lsh.npz`, `itq.npz`, load the same way).

    Args:
        run_dir: a run directory.

    Returns:
        e.g. `{"catalyzer": ..., "lsh": ..., "itq": ...}` (no `itq` when
        the embedding is narrower than the hash), or `{}` when the run was
        not compressed (no `hashes/`).
    """
    folder = Path(run_dir) / HASHES
    if not folder.is_dir():
        return {}
    return {
        name: hasher_class(name).load(folder)
        for name in hasher_names()
        if hasher_class(name).path(folder).exists()
    }


def load_hasher(run_dir, name=DEFAULT_HASHER) -> Hasher:
    """One fitted hasher of the run, by name (the Catalyzer by default).

    The name `"best"` loads the one `best_hasher` names.

    Raises:
        ValueError: no hasher is registered under `name`.
        FileNotFoundError: the run has not been compressed, or the hasher
            was not fitted (the message gives `compress`'s reason when it
            skipped it).
    """
    if name == BEST:
        name = best_hasher(run_dir)
    cls = hasher_class(name)
    folder = Path(run_dir) / HASHES
    path = cls.path(folder)
    if path.exists():
        return cls.load(folder)
    summary = folder / SUMMARY
    skipped = (
        _read_summary(summary).get("skipped", {}) if summary.exists() else {}
    )
    if name in skipped:
        raise FileNotFoundError(
            f"{path} not found: `grok-tf compress` skipped the {name} "
            f"hasher ({skipped[name]})"
        )
    raise FileNotFoundError(
        f"{path} not found: run `grok-tf compress --run {run_dir}` first"
    )


def _read_summary(path):
    try:
        summary = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(summary, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return summary
