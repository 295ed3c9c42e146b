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

With `views=K` (`grok-tf compress --views K`), the training photos are
also embedded K more times as random training views (crop, flip, colour),
and the Catalyzer learns from those too: another view of the same photo is
a positive, never a negative.

When the spec has a validation split (`val` by default), `compress_run`
also measures retrieval with every fitted hasher on it (the report of
`grok_tf.evaluation.evaluate.retrieval_report`) and records it under
`validation` in `compression.json`, with the hasher that measured best
(`best_hasher`): what an export or index can ship instead of the default.
"""

import time
from pathlib import Path

import numpy as np

from grok_tf.compression.hashers import HasherFitError
from grok_tf.compression.hashers import hasher_class
from grok_tf.compression.hashers import hasher_names
from grok_tf.compression.stored import DEFAULT_HASHER
from grok_tf.compression.stored import SUMMARY
from grok_tf.compression.stored import best_hasher
from grok_tf.compression.stored import best_of
from grok_tf.compression.stored import load_hasher
from grok_tf.compression.stored import load_hashers
from grok_tf.inference import kept_refs
from grok_tf.inference import predict
from grok_tf.inference import predict_split
from grok_tf.inference import read_splits
from grok_tf.io.atomic_files import atomic_directory
from grok_tf.io.atomic_files import write_json
from grok_tf.run_dir import HASHES
from grok_tf.run_dir import load_run

VALIDATION_SPLIT = "val"
# The retrieval measure `best_hasher` ranks the hashers by.
BEST_MEASURE = "map@r"
# Random training views of each image for the hashers that learn from them.
DEFAULT_VIEWS = 0
__all__ = [  # the readers live in `stored`; imported from here as before
    "DEFAULT_HASHER",
    "SUMMARY",
    "best_hasher",
    "compress_run",
    "load_hasher",
    "load_hashers",
]


def compress_run(
    run_dir,
    bits=256,
    split="train",
    epochs=None,
    batch_size=64,
    seed=0,
    verbose=1,
    hashers=None,
    options=None,
    validation_split=VALIDATION_SPLIT,
    views=None,
):
    """Fits the hashers of a finished run on its embeddings.

    With `views=K`, the split is also embedded K more times as random
    training views (crop, flip, colour: the spec's augmentation), and a
    hasher that learns from views (`Hasher.learns_from_views`, the
    Catalyzer) trains on all `(K + 1) N` embeddings, told which rows are
    views of one photo (`groups`); the others fit the N plain ones.

    Args:
        run_dir: a run directory written by `grok_tf.training.fit.train`.
        bits: the hash length, a multiple of 8. Defaults to 256.
        split: the split whose images are embedded to train on.
        epochs: Catalyzer training epochs (short for
            `options={"catalyzer": {"epochs": epochs}}`); None: the
            Catalyzer's default (`CatalyzerHasher`'s, 3).
        batch_size: images per forward pass when embedding.
        seed: seed of every hasher.
        verbose: 1 shows progress bars (embedding, Catalyzer epochs).
        hashers: names of the hashers to fit (None: every registered one,
            `grok_tf.compression.hashers.hasher_names`).
        options: optional `name -> dict` of constructor arguments of a
            hasher (beyond `bits` and `seed`), e.g.
            `{"catalyzer": {"hidden": 512}, "lsh": {"center": False}}`.
        validation_split: the split whose retrieval is measured with every
            fitted hasher (see `validation_report`); None, or a split no
            dataset has: not measured. Defaults to "val".
        views: random training views per image for the hashers that learn
            from them; None: `DEFAULT_VIEWS`. Not made when no hasher to
            fit learns from them.

    Returns:
        The summary written to `hashes/compression.json`: bits, split,
        images, views (0 when no hasher learns from them), the hashers
        written, seconds per hasher, skipped hashers (name -> reason),
        skipped images, and `validation`: None, or
        `{"split", "retrieval" (the report), "scores" (hasher -> mean
        mAP@R), "best" (`best_hasher`'s choice)}`.

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
    views = DEFAULT_VIEWS if views is None else int(views)
    if views < 0:
        raise ValueError(f"views must be >= 0, got {views}")
    arguments = {name: dict(options.get(name, {})) for name in names}
    if DEFAULT_HASHER in arguments and epochs is not None:
        arguments[DEFAULT_HASHER].setdefault("epochs", epochs)
    unfitted = {
        name: hasher_class(name)(bits=bits, seed=seed, **arguments[name])
        for name in names
    }
    if not any(hasher.learns_from_views for hasher in unfitted.values()):
        views = 0  # no hasher would use them
    spec, model = load_run(run_dir)
    splits = read_splits(spec, split)
    outputs, labels, _, log = predict(spec, model, splits, batch_size, verbose)
    embeddings = outputs["embedding"]
    ids = product_ids(spec, labels, len(embeddings))
    refs = kept_refs(splits, log.summary()["files"])
    viewed = augmented_views(
        spec, model, splits, refs, views, batch_size, verbose
    )
    fitted, seconds, skipped = fit_hashers(
        unfitted, embeddings, ids, viewed, verbose
    )
    summary = {
        "bits": bits,
        "split": split,
        "images": int(len(embeddings)),
        "images_with_ids": int(np.sum(ids >= 0)),
        "views": int(views),
        "embedding_size": int(embeddings.shape[1]),
        "hashers": list(fitted),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "skipped": skipped,
        "corrupt_images": log.summary(),
        "validation": validation_report(
            spec, model, fitted, validation_split, batch_size
        ),
    }
    with atomic_directory(run_dir / HASHES) as partial:
        for hasher in fitted.values():
            hasher.save(partial)
        write_json(partial / SUMMARY, summary)
    return summary


def fit_hashers(hashers, embeddings, ids, viewed=(), verbose=0):
    """Fits unfitted hashers on a split's embeddings, each as it learns.

    A supervised hasher (`Hasher.supervised`) is also given the product
    ids; one that learns from views (`Hasher.learns_from_views`) trains on
    the embeddings followed by every view pass in `viewed`, told which rows
    are views of one photo (`groups`); the others fit `embeddings` alone.

    Args:
        hashers: `name -> Hasher`, not fitted.
        embeddings: float `[N, d]`.
        ids: int64 `[N]` product ids (`product_ids`, -1: none).
        viewed: float `[N, d]` view passes, row-aligned with `embeddings`.
        verbose: the hashers' `fit` verbosity.

    Returns:
        `(fitted, seconds, skipped)`: `name -> Hasher`, `name -> fit
        seconds`, and `name -> reason` for a hasher that raised a
        `HasherFitError`.
    """
    fitted, seconds, skipped = {}, {}, {}
    passes = len(viewed) + 1
    for name, hasher in hashers.items():
        start = time.perf_counter()
        x, extra = embeddings, {}
        if hasher.supervised:
            extra["labels"] = ids
        if passes > 1 and hasher.learns_from_views:
            x = np.concatenate([embeddings, *viewed])
            extra["groups"] = np.tile(np.arange(len(embeddings)), passes)
            if hasher.supervised:
                extra["labels"] = np.tile(ids, passes)
        try:
            fitted[name] = hasher.fit(x, verbose=verbose, **extra)
        except HasherFitError as error:
            skipped[name] = str(error)
            continue
        seconds[name] = time.perf_counter() - start
    return fitted, seconds, skipped


def augmented_views(spec, model, splits, refs, views, batch_size=64, verbose=0):
    """`views` embeddings of the images of `splits`, each a random training
    view of every image, as float32 `[N, d]` arrays row-aligned with the
    plain pass that kept the images `refs`.

    The views are drawn by TF's stateful random ops in parallel: they differ
    from one call to the next, whatever the seeds.

    Raises:
        ValueError: a pass could not read an image the plain pass read (or
            the reverse), named.
    """
    viewed = []
    for _ in range(views):
        outputs, _, _, log = predict(
            spec, model, splits, batch_size, verbose, augment=True
        )
        kept = kept_refs(splits, log.summary()["files"])
        if kept != refs:
            lost = sorted(set(refs) ^ set(kept)) or refs
            raise ValueError(
                f"{lost[0]}: read in one pass over the images and not in "
                "another (changed on disk?); compress again without views "
                "or fix the image"
            )
        viewed.append(outputs["embedding"])
    return viewed


def product_ids(spec, labels, rows):
    """One product id per embedded image, from the spec's id heads.

    The id of a row is its label in the first id head (`HeadType.
    identity`: ArcFace, pairwise; in spec order) that labels it, offset
    so that ids of different heads never collide; -1 when no id head
    labels it. A supervised hasher (`Hasher.supervised`, the Catalyzer)
    learns from them which photos show the same product.

    Args:
        spec: the run's resolved spec.
        labels: `predict`'s labels, `head name -> [rows]` (-1: none).
        rows: the number of embedded images.

    Returns:
        int64 `[rows]`.

    Example (not run: needs a spec with id heads):

    >>> product_ids(spec, {"product": np.array([3, -1])}, 2)  # doctest: +SKIP
    array([ 3, -1])
    """
    ids = np.full(rows, -1, np.int64)
    offset = 0
    for head in spec.heads:
        if not head.kind.identity or head.name not in labels:
            continue
        column = np.asarray(labels[head.name])
        if column.ndim != 1 or len(column) != rows:
            continue
        column = column.astype(np.int64)
        free = (ids < 0) & (column >= 0)
        ids[free] = offset + column[free]
        offset += int(column.max()) + 1 if len(column) else 0
    return ids


def validation_report(
    spec, model, hashers, split=VALIDATION_SPLIT, batch_size=64
):
    """Retrieval on a held-out split with each hasher, and the best one.

    Embeds `split` and measures, for every id head, photo -> photo (and
    photo -> catalogue where the dataset has one) Recall@K and mAP@R with
    the float embedding and with each hasher's codes
    (`grok_tf.evaluation.evaluate.retrieval_report`, what `grok-tf
    evaluate` reports). A hasher's score is the mean of its `map@r` over
    every search of every id head (`hasher_scores`).

    Args:
        spec: the run's resolved spec.
        model: the run's inference model.
        hashers: fitted `name -> Hasher`.
        split: the split name; None: nothing is measured.
        batch_size: images per forward pass.

    Returns:
        `{"split", "retrieval", "scores", "best"}`, or None when `split` is
        None, no dataset has it, no hasher is given or the spec has no id
        head (no retrieval to measure).
    """
    from grok_tf.evaluation.evaluate import retrieval_report

    if split is None or not hashers or split not in spec.split_names():
        return None
    outputs, labels, _, _ = predict_split(spec, model, split, batch_size)
    report = retrieval_report(spec, model, outputs, labels, batch_size, hashers)
    scores = hasher_scores(report, list(hashers))
    if not scores:
        return None
    return {
        "split": split,
        "retrieval": report,
        "scores": scores,
        "best": best_of(scores),
    }


def hasher_scores(retrieval, names):
    """Each hasher's mean `map@r` over the searches of a retrieval report.

    Args:
        retrieval: a `retrieval_report` (`{head: {search: {representation:
            metrics}}}`; heads with `same_as` are skipped).
        names: the hashers to score, in order.

    Returns:
        `name -> mean map@r` (rounded to 6 decimals) over every search
        (photo -> photo, photo -> catalogue) of every id head with a value
        for it; `{}` when there is no search.

    Example:

    >>> report = {"product": {
    ...     "photo_to_photo": {"itq": {"map@r": 0.5}, "lsh": {"map@r": 0.3}},
    ...     "photo_to_catalogue": {"itq": {"map@r": 0.7},
    ...                            "lsh": {"map@r": 0.9}},
    ...     "bytes_per_item": {}}}
    >>> hasher_scores(report, ["itq", "lsh"])
    {'itq': 0.6, 'lsh': 0.6}
    """
    values = {name: [] for name in names}
    for entry in retrieval.values():
        for search, results in entry.items():
            if search in ("same_as", "bytes_per_item"):
                continue
            for name in names:
                value = results.get(name, {}).get(BEST_MEASURE)
                if value is not None:
                    values[name].append(value)
    return {
        name: round(float(np.mean(found)), 6)
        for name, found in values.items()
        if found
    }
