"""`grok-tf compress`: the run's embeddings -> 256-bit product hashes.

GrokNet keeps a 400-d float embedding per product image (1,600 bytes) for
ranking, and a 256-bit hash (32 bytes, 1/50 of the memory) for exact
product search at catalogue scale. `compress_run` embeds a split of the
run's data (the training split by default) with the trained model, then
fits every registered hasher (`grok_tf.compression.hashers`) on those
embeddings, all at the same number of bits; built in:

- `catalyzer`: the learned Catalyzer, the paper's, served by default;
- `lsh`: sign of a random projection, the baseline with no training;
- `itq`: PCA + iterative quantisation, the classic learned baseline.

A hasher that cannot fit the embeddings (`HasherFitError`, e.g. ITQ with
more bits than dimensions) is recorded under `skipped`. The others are
written by their own `save` into `RUN_DIR/hashes/`, atomically, with
`compression.json` (e.g. `catalyzer.keras`, `lsh.npz`, `itq.npz`);
`load_hashers` reads them back for `grok-tf evaluate`, which reports
retrieval with each beside the float embedding.
"""

import json
import time
from pathlib import Path

from grok_tf.compression.hashers import Hasher
from grok_tf.compression.hashers import HasherFitError
from grok_tf.compression.hashers import hasher_class
from grok_tf.compression.hashers import hasher_names
from grok_tf.inference import predict_split
from grok_tf.io.atomic_files import atomic_directory
from grok_tf.io.atomic_files import write_json
from grok_tf.run_dir import HASHES
from grok_tf.run_dir import load_run

SUMMARY = "compression.json"
DEFAULT_HASHER = "catalyzer"


def compress_run(
    run_dir,
    bits=256,
    split="train",
    epochs=10,
    batch_size=64,
    seed=0,
    verbose=1,
    hashers=None,
    options=None,
):
    """Fits the hashers of a finished run on its embeddings.

    Args:
        run_dir: a run directory written by `grok_tf.training.fit.train`.
        bits: the hash length, a multiple of 8. Defaults to 256.
        split: the split whose images are embedded to train on.
        epochs: Catalyzer training epochs (short for
            `options={"catalyzer": {"epochs": epochs}}`).
        batch_size: images per forward pass when embedding.
        seed: seed of every hasher.
        verbose: 1 shows progress bars (embedding, Catalyzer epochs).
        hashers: names of the hashers to fit (None: every registered one,
            `grok_tf.compression.hashers.hasher_names`).
        options: optional `name -> dict` of constructor arguments of a
            hasher (beyond `bits` and `seed`), e.g.
            `{"catalyzer": {"hidden": 512}, "lsh": {"center": False}}`.

    Returns:
        The summary written to `hashes/compression.json`: bits, split,
        images, the hashers written, seconds per hasher, skipped hashers
        (name -> reason), skipped images.

    Raises:
        ValueError: an unknown hasher name, or options for a hasher that
            is not fitted; checked before any work.

    Example (not run: needs a trained run in runs/demo):

    >>> compress_run("runs/demo", bits=256)["images"]  # doctest: +SKIP
    1280
    """
    run_dir = Path(run_dir)
    names = hasher_names() if hashers is None else list(dict.fromkeys(hashers))
    options = dict(options or {})
    unused = sorted(set(options) - set(names))
    if unused:
        raise ValueError(
            f"options given for {', '.join(unused)}, not among the hashers "
            f"to fit ({', '.join(names)})"
        )
    arguments = {name: dict(options.get(name, {})) for name in names}
    if DEFAULT_HASHER in arguments:
        arguments[DEFAULT_HASHER].setdefault("epochs", epochs)
    unfitted = {
        name: hasher_class(name)(bits=bits, seed=seed, **arguments[name])
        for name in names
    }
    spec, model = load_run(run_dir)
    outputs, _, _, log = predict_split(spec, model, split, batch_size, verbose)
    embeddings = outputs["embedding"]
    fitted, seconds, skipped = {}, {}, {}
    for name, hasher in unfitted.items():
        start = time.perf_counter()
        try:
            fitted[name] = hasher.fit(embeddings, verbose=verbose)
        except HasherFitError as error:
            skipped[name] = str(error)
            continue
        seconds[name] = time.perf_counter() - start
    summary = {
        "bits": bits,
        "split": split,
        "images": int(len(embeddings)),
        "embedding_size": int(embeddings.shape[1]),
        "hashers": list(fitted),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "skipped": skipped,
        "corrupt_images": log.summary(),
    }
    with atomic_directory(run_dir / HASHES) as partial:
        for hasher in fitted.values():
            hasher.save(partial)
        write_json(partial / SUMMARY, summary)
    return summary


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

    Raises:
        ValueError: no hasher is registered under `name`.
        FileNotFoundError: the run has not been compressed, or the hasher
            was not fitted (the message gives `compress`'s reason when it
            skipped it).
    """
    cls = hasher_class(name)
    folder = Path(run_dir) / HASHES
    path = cls.path(folder)
    if path.exists():
        return cls.load(folder)
    summary = folder / SUMMARY
    skipped = (
        json.loads(summary.read_text()).get("skipped", {})
        if summary.exists()
        else {}
    )
    if name in skipped:
        raise FileNotFoundError(
            f"{path} not found: `grok-tf compress` skipped the {name} "
            f"hasher ({skipped[name]})"
        )
    raise FileNotFoundError(
        f"{path} not found: run `grok-tf compress --run {run_dir}` first"
    )
