"""Figures of an evaluation, for people: retrieval grids, confusion matrices.

`grok-tf evaluate --figures DIR` (`evaluate_run(..., figures=DIR)`) writes
into DIR, for a split:

- `<head>_retrieval.png`, per id head (`HeadType.identity`) with its own
  retrieval (not `same_as` another head's): a few query photos, one a row,
  spread evenly over the labelled photos (`query_rows`), each followed by
  its 5 nearest other photos (`nearest_neighbours`: cosine of the float
  embedding, ties to the lower index, as in
  `grok_tf.evaluation.retrieval_metrics`), framed green when they have the
  query's id and red when not;
- `<head>_catalogue_retrieval.png`, when a dataset names a catalogue for
  the head: the same queries against the catalogue images;
- `<head>_confusion.png`, per one-label head with an output: the confusion
  matrix (rows true, columns predicted: the argmax of the head type's
  logits) of its most confused classes (`most_confused_classes`).

Thumbnails are the images as the model saw them: decoded by the run's
`ImageDecoder` and resized by `resize_for_eval`. The pure parts (query
choice, neighbours, confusion counts, class choice) take numpy arrays; the
drawing functions (`retrieval_grid`, `confusion_figure`) take arrays too,
draw on matplotlib's Agg canvas and write each PNG atomically.
"""

from pathlib import Path

import numpy as np

from grok_tf.data.images import ImageDecoder
from grok_tf.data.images import resize_for_eval
from grok_tf.data.sources import read_catalogues
from grok_tf.evaluation.retrieval_metrics import rank_gallery
from grok_tf.inference import kept_refs
from grok_tf.inference import predict
from grok_tf.io.atomic_files import write_atomically

#: Query photos (rows) of a retrieval grid.
ROWS = 8
#: Neighbours shown per query.
NEIGHBOURS = 5
#: Most classes a confusion matrix shows.
CONFUSED_CLASSES = 12
#: Seed of the offset of the evenly spread queries.
SEED = 0
#: Characters of a class name kept in titles and tick labels.
NAME_CHARACTERS = 14
HIT_COLOUR = "#1a9850"  # green frame: the neighbour has the query's id
MISS_COLOUR = "#d73027"  # red frame: another id
QUERY_COLOUR = "#404040"


def query_rows(ids, count=ROWS, seed=SEED):
    """Rows of `count` labelled examples, spread evenly over the labelled.

    The labelled rows (id >= 0) are cut into `count` equal stretches and
    one row is taken from each, at the same seeded offset into every
    stretch: deterministic, and spread over the whole split (datasets are
    often stored class by class).

    Args:
        ids: `[N]` integer ids, below 0 for unlabelled rows.
        count: how many rows; all the labelled ones when there are fewer.
        seed: seeds the offset.

    Returns:
        int64 `[min(count, labelled)]` row indices, ascending.

    Example: 8 labelled rows (row 1 is not), 4 stretches of 2; seed 0's
    offset (0.64 of a stretch) takes the second row of each.

    >>> query_rows(np.array([3, -1, 3, 4, 4, 5, 5, 6, 6]), count=4, seed=0)
    array([2, 4, 6, 8])
    """
    labelled = np.flatnonzero(np.asarray(ids) >= 0)
    if count >= len(labelled):
        return labelled
    offset = np.random.default_rng(seed).random()
    stretch = len(labelled) / count
    return labelled[np.floor((np.arange(count) + offset) * stretch).astype(int)]


def nearest_neighbours(
    query_embeddings,
    query_ids,
    gallery_embeddings,
    gallery_ids,
    k=NEIGHBOURS,
    self_positions=None,
):
    """Each query's `k` nearest gallery items by cosine, and which match.

    Ranked as `grok_tf.evaluation.retrieval_metrics.rank_gallery` ranks:
    by cosine (computed in float64, compared in float32), ties to the lower
    gallery index. With `self_positions`, query `i` is gallery item
    `self_positions[i]` and is left out of its own neighbours; the others
    keep their order.

    Args:
        query_embeddings: `[Q, D]` float embeddings.
        query_ids: `[Q]` integer ids.
        gallery_embeddings: `[G, D]` float embeddings.
        gallery_ids: `[G]` integer ids.
        k: neighbours per query (fewer when the gallery is smaller).
        self_positions: optional `[Q]` gallery index of each query.

    Returns:
        `(neighbours, hits)`: int64 `[Q, k]` gallery indices, nearest
        first, and bool `[Q, k]`, true where the neighbour has the query's
        id.

    Example:

    >>> gallery = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [1.0, 0.0]])
    >>> near, hits = nearest_neighbours(
    ...     gallery[:1], [7], gallery, [7, 8, 8, 7], k=2, self_positions=[0])
    >>> near.tolist(), hits.tolist()
    ([[3, 1]], [[True, False]])
    """
    query_ids, gallery_ids = np.asarray(query_ids), np.asarray(gallery_ids)
    if self_positions is None:
        ranked = rank_gallery(query_embeddings, gallery_embeddings, top=k)
    else:
        # One more than k: leaving self out of a stable ranking keeps the
        # order of the others, as `exclude_self` does.
        ranked = rank_gallery(query_embeddings, gallery_embeddings, top=k + 1)
        self_positions = np.asarray(self_positions)
        width = min(k, len(gallery_ids) - 1)
        ranked = np.stack(
            [
                row[row != own][:width]
                for row, own in zip(ranked, self_positions, strict=True)
            ]
        ).reshape(len(ranked), width)
    return ranked, gallery_ids[ranked] == query_ids[:, None]


def confusion_matrix(predicted, labels, weights, num_classes):
    """Counts of (true, predicted) class pairs over rows with weight > 0.

    Args:
        predicted: `[N]` predicted class ids.
        labels: `[N]` true class ids (-1 where unknown, weight 0).
        weights: `[N]` row weights.
        num_classes: C.

    Returns:
        int64 `[C, C]`: row = true class, column = predicted class.

    Example:

    >>> confusion_matrix(np.array([0, 1, 1, 0]), np.array([0, 0, 1, -1]),
    ...                  np.array([1, 1, 1, 0]), 2).tolist()
    [[1, 1], [0, 1]]
    """
    keep = np.asarray(weights) > 0
    pairs = np.asarray(labels)[keep] * num_classes + np.asarray(predicted)[keep]
    counts = np.bincount(pairs, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def most_confused_classes(confusion, limit=CONFUSED_CLASSES):
    """At most `limit` classes: those of the largest off-diagonal counts.

    Off-diagonal cells are taken by count, largest first (ties: lower true
    class, then lower predicted class), each adding its true then its
    predicted class until `limit` classes are chosen. When fewer classes
    are confused than that, the other classes with examples (true or
    predicted) fill the rest, most examples first (ties: lower index).

    Args:
        confusion: `[C, C]` counts (rows true, columns predicted).
        limit: the most classes returned.

    Returns:
        int64 class indices, ascending.

    Example: the 2 -> 0 cell (5) comes first, then 1 -> 2 (2).

    >>> most_confused_classes(np.array([[9, 0, 1, 0], [0, 3, 2, 0],
    ...                                 [5, 0, 4, 0], [0, 0, 0, 7]]), limit=3)
    array([0, 1, 2])
    """
    confusion = np.asarray(confusion)
    chosen = []

    def choose(classes):
        for c in classes:
            if len(chosen) == limit:
                return
            if int(c) not in chosen:
                chosen.append(int(c))

    true, predicted = np.nonzero(confusion * (1 - np.eye(len(confusion))))
    order = np.lexsort((predicted, true, -confusion[true, predicted]))
    choose(np.stack([true[order], predicted[order]], 1).ravel())
    support = confusion.sum(0) + confusion.sum(1)
    by_support = np.lexsort((np.arange(len(support)), -support))
    choose(by_support[support[by_support] > 0])
    return np.array(sorted(chosen), np.int64)


def short_name(name, characters=NAME_CHARACTERS):
    """`name` cut to `characters`, an ellipsis marking the cut.

    >>> short_name("Golden-Delicious", 8)
    'Golden-…'
    """
    return name if len(name) <= characters else name[: characters - 1] + "…"


def retrieval_grid(
    query_images,
    neighbour_images,
    hits,
    path,
    title,
    query_titles=None,
    neighbour_titles=None,
):
    """Draws query rows and their neighbours, framed by match, into a PNG.

    Row r: query r (grey frame), then its neighbours nearest first, each
    framed green (`HIT_COLOUR`, title marked ✓) when it has the query's id
    and red (`MISS_COLOUR`, ✗) when not. A cell is 1.4 x 1.5 inches (the
    figure at least 5.6 wide, for the title), at 100 dpi. Written
    atomically.

    Args:
        query_images: `[R, H, W, 3]` images in [0, 255].
        neighbour_images: `[R, K, H, W, 3]` images in [0, 255] (or R lists
            of K images).
        hits: `[R, K]` booleans.
        path: the PNG to write.
        title: the figure title.
        query_titles: optional R strings.
        neighbour_titles: optional `[R][K]` strings.

    Returns:
        The `Path` written.

    Example (not run: writes a PNG file):

    >>> retrieval_grid(q, n, hits, "grid.png", "product")  # doctest: +SKIP
    PosixPath('grid.png')
    """
    from matplotlib.figure import Figure

    hits = np.asarray(hits, bool)
    rows, k = hits.shape
    height = 1.5 * rows + 0.6  # inches; 0.6 for two lines of title
    figure = Figure(figsize=(max(1.4 * (k + 1), 5.6), height))
    # Fixed margins: a constrained layout takes seconds for 48 thumbnails.
    axes = figure.subplots(
        rows,
        k + 1,
        squeeze=False,
        gridspec_kw={
            "left": 0.01,
            "right": 0.99,
            "bottom": 0.1 / height,
            "top": 1 - 0.6 / height,
            "wspace": 0.08,
            "hspace": 0.22,
        },
    )
    for r in range(rows):
        _thumbnail(
            axes[r, 0],
            query_images[r],
            "query: " + query_titles[r] if query_titles else "query",
            QUERY_COLOUR,
        )
        for j in range(k):
            mark = "✓ " if hits[r, j] else "✗ "
            _thumbnail(
                axes[r, j + 1],
                neighbour_images[r][j],
                mark + (neighbour_titles[r][j] if neighbour_titles else ""),
                HIT_COLOUR if hits[r, j] else MISS_COLOUR,
            )
    figure.suptitle(title, fontsize=9, y=1 - 0.12 / height, va="top")
    write_atomically(path, lambda f: figure.savefig(f, format="png"))
    return Path(path)


def confusion_figure(confusion, class_names, path, title):
    """Draws a confusion matrix with its counts into a PNG.

    Rows are the true classes, columns the predicted ones, both labelled
    with the (shortened) class names; every cell shows its count. Written
    atomically.

    Args:
        confusion: `[n, n]` integer counts.
        class_names: n names.
        path: the PNG to write.
        title: the figure title.

    Returns:
        The `Path` written.

    Example (not run: writes a PNG file):

    >>> confusion_figure(c, names, "c.png", "colour")  # doctest: +SKIP
    PosixPath('c.png')
    """
    from matplotlib.figure import Figure

    confusion = np.asarray(confusion)
    n = len(confusion)
    side = max(4.0, 2.5 + 0.5 * n)
    figure = Figure(figsize=(side, side), layout="constrained")
    axes = figure.subplots()
    axes.imshow(confusion, cmap="Blues", vmin=0, vmax=max(1, confusion.max()))
    dark = confusion.max() / 2
    for (t, p), count in np.ndenumerate(confusion):
        colour = "white" if count > dark else "black"
        axes.text(p, t, str(count), ha="center", va="center", color=colour)
    names = [short_name(str(name)) for name in class_names]
    axes.set_xticks(range(n), names, rotation=45, ha="right")
    axes.set_yticks(range(n), names)
    axes.set(xlabel="predicted class", ylabel="true class")
    axes.set_title(title, fontsize=9)
    write_atomically(path, lambda f: figure.savefig(f, format="png"))
    return Path(path)


def load_images(spec, refs, splits=()):
    """The images of `refs` as the model saw them in evaluation.

    Each is decoded by the spec's `ImageDecoder` and resized by
    `resize_for_eval`. A ref of a split whose images are streamed (tfds) is
    read from its `image_stream` (one pass, stopped when every wanted ref
    of it is found); any other ref is a file path.

    Args:
        spec: the run's `Spec`.
        refs: image references.
        splits: the `Split`s the refs come from.

    Returns:
        `{ref: uint8 [S, S, 3]}`, S the model's input size; an image that
        can no longer be read is black.
    """
    import tensorflow as tf

    decoder = ImageDecoder.for_spec(spec)
    size = spec.model.input_size
    wanted = set(refs)
    encoded = {}
    for split in splits:
        missing = wanted.intersection(split.refs) - encoded.keys()
        if split.image_stream is None or not missing:
            continue
        for ref, data in split.image_stream():
            name = ref.numpy().decode()
            if name in missing:
                encoded[name] = data.numpy()
                missing.discard(name)
                if not missing:
                    break
    if not wanted:
        return {}
    order = sorted(wanted)

    def load(ref, data):  # empty data: read the file `ref`
        return resize_for_eval(decoder.load_or_flag(ref, data)[0], size)

    pixels = (
        tf.data.Dataset.from_tensor_slices(
            (order, [encoded.get(ref, b"") for ref in order])
        )
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(64)
    )
    images = np.concatenate([batch.numpy() for batch in pixels])
    images = np.round(images).astype(np.uint8)
    return dict(zip(order, images, strict=True))


def figures_folder(folder):
    """Creates `folder` (and its parents) for figures, checking it can be.

    Returns:
        The folder as a `Path`.

    Raises:
        FileExistsError: a file stands at `folder` or one of its parents.

    Example (not run: creates a folder):

    >>> figures_folder("runs/demo/figures")  # doctest: +SKIP
    PosixPath('runs/demo/figures')
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise FileExistsError(
            f"{folder}: cannot hold the figures: a file is in the way"
        ) from error
    return folder


def write_figures(
    spec,
    model,
    outputs,
    labels,
    weights,
    refs,
    splits,
    folder,
    id_heads,
    split_name="val",
    batch_size=64,
    rows=ROWS,
    neighbours=NEIGHBOURS,
    classes=CONFUSED_CLASSES,
    seed=SEED,
):
    """Writes the retrieval grids and confusion matrices of a split.

    Args:
        spec, model: the run (`grok_tf.run_dir.load_run`).
        outputs, labels, weights: `grok_tf.inference.predict` of `splits`.
        refs: the image reference of each row (`kept_refs`).
        splits: the `Split`s predicted.
        folder: where to write the PNGs (created if missing).
        id_heads: the id heads to draw retrieval for (one per group of
            heads with the same ids).
        split_name: the split's name, for the titles.
        batch_size: images per forward pass over a catalogue.
        rows: query photos per grid.
        neighbours: neighbours per query.
        classes: the most classes of a confusion matrix.
        seed: seeds the choice of the queries.

    Returns:
        The list of `Path`s written.

    Example (not run: needs a trained run):

    >>> write_figures(spec, model, outputs, labels, weights, refs,
    ...               splits, "figures", ["product"])  # doctest: +SKIP
    [PosixPath('figures/product_retrieval.png'), ...]
    """
    folder = figures_folder(folder)
    grids, sources = [], list(splits)
    for name in id_heads:
        ids = labels[name]
        labelled = np.flatnonzero(ids >= 0)
        if not len(labelled):
            continue
        photos = _Gallery(
            outputs["embedding"][labelled], ids[labelled], refs, labelled
        )
        picked = query_rows(photos.ids, rows, seed)
        searches = [("retrieval", "photo -> photo", photos, picked)]
        catalogues = read_catalogues(spec, name)
        if catalogues:
            sources += catalogues
            found, found_labels, _, log = predict(
                spec, model, catalogues, batch_size
            )
            items = kept_refs(catalogues, log.summary()["files"])
            listed = np.flatnonzero(found_labels[name] >= 0)
            catalogue = _Gallery(
                found["embedding"][listed],
                found_labels[name][listed],
                items,
                listed,
            )
            searches.append(
                ("catalogue_retrieval", "photo -> catalogue", catalogue, None)
            )
        for suffix, what, gallery, own in searches:
            if len(gallery.ids) < (1 if own is None else 2):  # no neighbour
                continue
            near, hits = nearest_neighbours(
                photos.embeddings[picked],
                photos.ids[picked],
                gallery.embeddings,
                gallery.ids,
                neighbours,
                own,
            )
            title = (
                f"{name}: {what} on {split_name}\n{len(picked)} of "
                f"{len(labelled)} queries, nearest {near.shape[1]} "
                "(green: same id, red: another)"
            )
            path = folder / f"{name}_{suffix}.png"
            grids.append(
                (
                    spec.head(name),
                    photos,
                    picked,
                    gallery,
                    near,
                    hits,
                    title,
                    path,
                )
            )
    # One decoding pass for every grid's thumbnails.
    wanted = {
        ref
        for _, photos, picked, gallery, near, *_ in grids
        for ref in [*photos.refs_of(picked), *gallery.refs_of(near.flat)]
    }
    images = load_images(spec, wanted, sources)
    written = []
    for head, photos, picked, gallery, near, hits, title, path in grids:
        written.append(
            retrieval_grid(
                np.stack([images[ref] for ref in photos.refs_of(picked)]),
                [[images[ref] for ref in gallery.refs_of(row)] for row in near],
                hits,
                path,
                title,
                [_class_name(head, i) for i in photos.ids[picked]],
                [
                    [_class_name(head, i) for i in gallery.ids[row]]
                    for row in near
                ],
            )
        )
    for head in spec.heads:
        if head.name not in outputs or head.kind.multilabel:
            continue
        w = weights[head.name]
        if not (w > 0).any():
            continue
        logits = np.asarray(head.kind.logits(head, outputs[head.name]))
        counts = confusion_matrix(
            logits.argmax(-1), labels[head.name], w, head.num_classes
        )
        shown = most_confused_classes(counts, classes)
        written.append(
            confusion_figure(
                counts[np.ix_(shown, shown)],
                [head.classes[c] for c in shown],
                folder / f"{head.name}_confusion.png",
                f"{head.name} on {split_name} ({int((w > 0).sum())} "
                f"images): rows true, columns predicted\n"
                + (
                    f"the {len(shown)} most confused of {head.num_classes} "
                    "classes"
                    if len(shown) < head.num_classes
                    else f"all {head.num_classes} classes"
                ),
            )
        )
    return written


class _Gallery:
    """Embeddings and ids of the labelled items of a search, with the
    reference of each (`refs[rows[i]]` for item i)."""

    def __init__(self, embeddings, ids, refs, rows):
        self.embeddings, self.ids = embeddings, ids
        self.refs, self.rows = refs, rows

    def refs_of(self, items):
        return [self.refs[self.rows[i]] for i in items]


def _thumbnail(axes, image, title, colour):
    axes.imshow(np.clip(np.asarray(image), 0, 255).astype(np.uint8))
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(4)
    axes.set_title(title, fontsize=7, color=colour, pad=2)


def _class_name(head, class_id):
    if head.classes is None or not 0 <= class_id < len(head.classes):
        return str(class_id)
    return short_name(str(head.classes[class_id]))
