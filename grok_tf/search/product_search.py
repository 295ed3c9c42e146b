"""Exact-product search with a trained run: images -> hashes -> neighbours.

The flow of `grok-tf index` and `grok-tf search`, and of notebooks:

1. `embed_images`: photos -> the run's 400-d embeddings, with a `valid`
   flag per photo (unreadable photos are flagged, never fatal);
2. `ProductHasher`: embeddings -> 256-bit codes with one of the run's
   hashers, the Catalyzer by default (fitted by `grok-tf compress`, see
   `grok_tf.compression.hashers`);
3. `build_index` / `search_index`: codes in a
   `grok_tf.search.hash_index.HashIndex` on disk (exact `flat`, or `ivf` /
   `hnsw` for large catalogues; or shards of them), searched by Hamming
   distance (ties: the item indexed first comes first).

Codes of two runs cannot be compared, even at the same length: an index
records the fingerprint of the `ProductHasher` that built it, and
`search_index` refuses another run's hasher (or an index too old to record
one) rather than return meaningless neighbours.

Example, a notebook (not run: needs a trained, compressed run and photos):

>>> hasher = ProductHasher("runs/grocery")  # doctest: +SKIP
>>> index = build_index(hasher, "catalogue.txt", "indexes/shelf")
... # doctest: +SKIP
>>> search_index(hasher, index, ["query.jpg"], k=5)[0]["results"][0]
... # doctest: +SKIP
{'id': 'Granny-Smith', 'path': '/data/granny.jpg', 'distance': 17}
"""

from pathlib import Path

import numpy as np
from keras.utils import Progbar

from grok_tf.data.sources import IMAGE_SUFFIXES
from grok_tf.inference import embed_images
from grok_tf.search.hash_index import HashIndex
from grok_tf.search.hash_index import hasher_fingerprint
from grok_tf.search.index_kinds import default_settings
from grok_tf.search.sharded_index import ShardedIndexWriter
from grok_tf.search.sharded_index import open_index

# Images hashed at a time by `build_index`: 16k embeddings are 26 MB.
CHUNK_SIZE = 16384


def read_image_refs(images):
    """Image paths and ids from a list file or a folder.

    Args:
        images: a folder (every image below it, sorted; the id of an image
            is its path relative to the folder, without suffix), or a text
            file of `path[, id, ...]` lines (paths relative to the file's
            folder; the id is the first label, else the path; blank lines
            and `#` comments skipped), e.g. grocery's `train.txt`, whose
            first label is the product.

    Returns:
        `(paths, ids)`: lists of str.

    Raises:
        FileNotFoundError: `images` does not exist.
        ValueError: the folder or list holds no image.
    """
    images = Path(images)
    if images.is_dir():
        files = sorted(
            p
            for p in images.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        paths = [str(p) for p in files]
        ids = [str(p.relative_to(images).with_suffix("")) for p in files]
    elif images.is_file():
        from grok_tf.io.text_files import read_list

        paths, ids = [], []
        for _, parts in read_list(images):  # UTF-8, CSV quoting
            path = Path(parts[0])
            paths.append(
                str(path if path.is_absolute() else images.parent / path)
            )
            ids.append(parts[1] if len(parts) > 1 and parts[1] else parts[0])
    else:
        raise FileNotFoundError(f"{images}: no such image folder or list file")
    if not paths:
        raise ValueError(
            f"{images}: holds no image ({', '.join(IMAGE_SUFFIXES)})"
        )
    return paths, ids


class ProductHasher:
    """A run's image -> 256-bit hash function (trunk, embedding, hasher).

    Args:
        run_dir: a trained and compressed run (`grok-tf train`, then
            `grok-tf compress`).
        hasher: the name of one of the run's hashers
            (`grok_tf.compression.hashers`). Defaults to `"catalyzer"`, as
            in the paper.
        batch_size: images per forward pass.

    Attributes:
        hasher: the run's `Hasher` (e.g. `hashes/catalyzer.keras`).
        bits: its code length.
        fingerprint: SHA-256 (64 hex digits) of everything the codes depend
            on: the hasher's name, the bit count, the input size, the
            weights of the model (`model.keras`) and of the hasher
            (`product_hasher_fingerprint`). See
            `grok_tf.search.hash_index.hasher_fingerprint`: it depends on the
            weight values only, so it is the same in every process and for
            a copy of the run, and changes when the run is retrained or
            compressed again.

    Example (not run: needs a trained, compressed run and photos):

    >>> hasher = ProductHasher("runs/demo")  # doctest: +SKIP
    >>> codes, valid = hasher.hash(["a.jpg", "b.jpg"])  # doctest: +SKIP
    >>> codes.shape, codes.dtype  # doctest: +SKIP
    ((2, 32), dtype('uint8'))
    """

    def __init__(self, run_dir, hasher="catalyzer", batch_size=64):
        from grok_tf.compression.stored import load_hasher
        from grok_tf.run_dir import load_run

        self.run_dir = Path(run_dir)
        self.hasher = load_hasher(run_dir, hasher)  # fails fast on a name
        self.spec, self.model = load_run(run_dir)
        self.bits = self.hasher.bits
        self.batch_size = batch_size
        self.fingerprint = product_hasher_fingerprint(
            self.model, self.hasher, self.spec.model.input_size
        )

    def hash(self, paths, verbose=0):
        """Packed hashes `uint8 [N, bits/8]` and `valid` flags of images.

        An unreadable image is flagged `valid=False`; its code is
        meaningless (the hash of a zero embedding).
        """
        embeddings, valid = embed_images(
            self.model,
            paths,
            self.spec.model.input_size,
            self.batch_size,
            verbose,
            self.spec.model.max_image_pixels,
        )
        return self.hasher.codes(embeddings), valid


def product_hasher_fingerprint(model, hasher, input_size):
    """The fingerprint of images -> `model` embedding -> `hasher` codes.

    Args:
        model: the run's GrokNet model.
        hasher: a fitted `grok_tf.compression.hashers.Hasher`.
        input_size: the square size images are resized to.

    Returns:
        `hasher_fingerprint` of kind `hasher.name` over the weights of the
        model (`get_weights()`: trainable and non-trainable, in layer
        order), then `hasher.weights()` (for the Catalyzer, its model's
        `get_weights()`, batch-norm statistics included): the same value
        as before hashers had a registry.
    """
    model_weights = model.get_weights()
    return hasher_fingerprint(
        hasher.name,
        hasher.bits,
        [*model_weights, *hasher.weights()],
        input_size=int(input_size),
        model_weights=len(model_weights),
    )


def build_index(
    hasher,
    images,
    out=None,
    verbose=0,
    kind="auto",
    shard_size=None,
    chunk_size=CHUNK_SIZE,
    **settings,
):
    """Hashes the images of a list file or folder into a search index.

    Images are hashed `chunk_size` at a time, so memory holds one chunk's
    embeddings and the codes (32 bytes an image), never every embedding.

    Args:
        hasher: a `ProductHasher`.
        images: a list file or folder (see `read_image_refs`).
        out: the directory to save the index to (atomically); needed with
            `shard_size`.
        verbose: 1 shows a progress bar.
        kind: `"auto"` (`flat` up to 200k images, else `ivf`), `"flat"`,
            `"ivf"` or `"hnsw"` (`grok_tf.search.index_kinds`).
        shard_size: write a sharded index of shards of this many images,
            built and written one at a time
            (`grok_tf.search.sharded_index`); None: one index.
        chunk_size: images hashed at a time.
        **settings: the kind's settings instead of the defaults for this
            many images (per shard), e.g. `nlist=1024, nprobe=32`.

    Returns:
        `(index, skipped)`: the index of the readable images, in the order
        of `images` (their positions, which break ties in search), with
        `hasher.fingerprint` (a `HashIndex`, or a memory-mapped
        `ShardedIndex` with `shard_size`); and the paths of the images
        that could not be read (left out, never fatal).

    Raises:
        ValueError: unknown kind or settings (before anything is hashed),
            or `shard_size` without `out`.
    """
    paths, ids = read_image_refs(images)
    if shard_size is not None and out is None:
        raise ValueError("a sharded index needs an output directory (out)")
    per_index = (
        len(paths) if shard_size is None else min(shard_size, len(paths))
    )
    settings = default_settings(per_index, kind, **settings)
    skipped = []
    progress = Progbar(len(paths), verbose=verbose, unit_name="image")

    def hashed(start, end):
        """Codes, ids and paths of the readable images in [start, end)."""
        codes, found = [], []
        for at in range(start, end, chunk_size):
            chunk = paths[at : min(at + chunk_size, end)]
            chunk_codes, valid = hasher.hash(chunk)
            codes.append(chunk_codes[valid])
            found.extend(at + np.flatnonzero(valid))
            skipped.extend(
                p for p, ok in zip(chunk, valid, strict=True) if not ok
            )
            progress.add(len(chunk))
        codes = (
            np.concatenate(codes)
            if codes
            else np.zeros((0, hasher.bits // 8), np.uint8)
        )
        return codes, [ids[i] for i in found], [paths[i] for i in found]

    if shard_size is None:
        index = HashIndex(
            hasher.bits, hasher=hasher.fingerprint, settings=settings
        )
        index.add(*hashed(0, len(paths)))
        if out is not None:
            index.save(out)
        return index, skipped
    with ShardedIndexWriter(
        out, hasher.bits, hasher.fingerprint, settings, shard_size
    ) as writer:
        for start in range(0, len(paths), shard_size):
            writer.add(*hashed(start, min(start + shard_size, len(paths))))
    return open_index(out), skipped


def search_index(hasher, index, paths, k=10):
    """The k nearest indexed items of each query image.

    Args:
        hasher: a `ProductHasher` (the same run that built the index).
        index: a `HashIndex` or `ShardedIndex` (`open_index`).
        paths: query image paths.
        k: neighbours per query.

    Returns:
        One dict per query: `{"image", "valid", "results"}`, results a list
        of `{"id", "path", "distance"}`, Hamming distance ascending, then
        the order in which the items were indexed (see
        `HashIndex.search_arrays`); an unreadable image has
        `valid: false` and no results.

    Raises:
        ValueError: the index holds codes of another length than the run's,
            or was built by another hasher (fingerprints differ), or records
            no hasher (an index written before fingerprints: rebuild it).
            Nothing is hashed then. To search an old index anyway, at your
            own risk: `index.search(hasher.hash(paths)[0], k)`.
    """
    if index.bits != hasher.bits:
        where = (
            "the hash index"
            if index.directory is None
            else f"hash index {index.directory}"
        )
        raise ValueError(
            f"{where} holds {index.bits}-bit codes, the run "
            f"makes {hasher.bits}-bit codes: was it built with another run?"
        )
    index.check_hasher(hasher.fingerprint)
    codes, valid = hasher.hash(paths)
    found = index.search(codes, k)
    return [
        {"image": str(path), "valid": bool(ok), "results": hits if ok else []}
        for path, ok, hits in zip(paths, valid, found, strict=True)
    ]
