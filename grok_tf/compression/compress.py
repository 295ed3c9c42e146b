"""`grok-tf compress`: the run's embeddings -> 256-bit product hashes.

GrokNet keeps a 400-d float embedding per product image (1,600 bytes) for
ranking, and a 256-bit hash (32 bytes, 1/50 of the memory) for exact
product search at catalogue scale. `compress_run` embeds a split of the
run's data (the training split by default) with the trained model, then
fits three hashers on those embeddings, all at the same number of bits:

- `catalyzer`: the learned Catalyzer
  (`grok_tf.compression.hashers.catalyzer`), the one that ships in the
  SavedModel;
- `lsh`: sign of a random projection, the baseline with no training;
- `itq`: PCA + iterative quantisation, the classic learned baseline
  (`grok_tf.compression.hashers.baselines`).

They are written atomically to `RUN_DIR/hashes/` (`catalyzer.keras`,
`lsh.npz`, `itq.npz`, `compression.json`); `grok-tf evaluate` then reports
retrieval with each beside the float embedding.
"""

import time
from pathlib import Path

import keras

from grok_tf.compression.hashers.baselines import ITQHasher
from grok_tf.compression.hashers.baselines import LSHHasher
from grok_tf.compression.hashers.catalyzer import catalyzer_codes
from grok_tf.compression.hashers.catalyzer import train_catalyzer
from grok_tf.inference import predict_split
from grok_tf.io.atomic_files import atomic_directory
from grok_tf.io.atomic_files import write_json
from grok_tf.run_dir import HASHES
from grok_tf.run_dir import load_run

HASHERS = ("catalyzer", "lsh", "itq")
_BASELINES = {"lsh": LSHHasher, "itq": ITQHasher}


def compress_run(
    run_dir,
    bits=256,
    split="train",
    epochs=10,
    batch_size=64,
    seed=0,
    verbose=1,
):
    """Trains the Catalyzer and the LSH / ITQ baselines of a finished run.

    Args:
        run_dir: a run directory written by `grok_tf.training.fit.train`.
        bits: the hash length, a multiple of 8. Defaults to 256.
        split: the split whose images are embedded to train on.
        epochs: Catalyzer training epochs.
        batch_size: images per forward pass when embedding.
        seed: seed of the Catalyzer, LSH and ITQ.
        verbose: 1 shows progress bars (embedding, Catalyzer epochs).

    Returns:
        The summary written to `hashes/compression.json`: bits, split,
        images, seconds per hasher, skipped images.

    Example:

    >>> compress_run("runs/demo", bits=256)["images"]  # doctest: +SKIP
    1280
    """
    run_dir = Path(run_dir)
    spec, model = load_run(run_dir)
    outputs, _, _, log = predict_split(spec, model, split, batch_size, verbose)
    embeddings = outputs["embedding"]
    seconds = {}
    start = time.perf_counter()
    catalyzer = train_catalyzer(
        embeddings,
        bits=bits,
        epochs=epochs,
        batch_size=min(256, len(embeddings)),
        seed=seed,
        verbose=verbose,
    )
    seconds["catalyzer"] = time.perf_counter() - start
    baselines, skipped = {}, {}
    for name, cls in _BASELINES.items():
        if name == "itq" and bits > embeddings.shape[1]:
            skipped[name] = (
                f"ITQ rotates {bits} PCA directions of "
                f"{embeddings.shape[1]}-d embeddings: bits > d"
            )
            continue
        start = time.perf_counter()
        baselines[name] = cls(bits=bits, seed=seed).fit(embeddings)
        seconds[name] = time.perf_counter() - start
    summary = {
        "bits": bits,
        "split": split,
        "images": int(len(embeddings)),
        "embedding_size": int(embeddings.shape[1]),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "skipped": skipped,
        "corrupt_images": log.summary(),
    }
    with atomic_directory(run_dir / HASHES) as partial:
        catalyzer.save(partial / "catalyzer.keras")
        for name, hasher in baselines.items():
            hasher.save(partial / f"{name}.npz")
        write_json(partial / "compression.json", summary)
    return summary


def load_hashers(run_dir):
    """The run's hashers, `name -> fn(float [N, d]) -> uint8 [N, bits/8]`.

    Args:
        run_dir: a run directory.

    Returns:
        `{"catalyzer": ..., "lsh": ..., "itq": ...}` (no `itq` when the
        embedding is narrower than the hash), or `{}` when the run was not
        compressed (no `hashes/`).
    """
    folder = Path(run_dir) / HASHES
    if not folder.is_dir():
        return {}
    catalyzer = load_catalyzer(run_dir)
    hashers = {"catalyzer": lambda x: catalyzer_codes(catalyzer, x)}
    for name, cls in _BASELINES.items():
        if (folder / f"{name}.npz").exists():
            hashers[name] = cls.load(folder / f"{name}.npz").codes
    return hashers


def load_catalyzer(run_dir):
    """The run's trained Catalyzer model (float outputs; see `catalyzer`).

    Raises:
        FileNotFoundError: the run has not been compressed yet.
    """
    path = Path(run_dir) / HASHES / "catalyzer.keras"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: run `grok-tf compress --run {run_dir}` first"
        )
    return keras.saving.load_model(path)
