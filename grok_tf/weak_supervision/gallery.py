"""The labelled gallery pseudo-labels come from: a run's photos and
catalogue images, with their product ids."""

import dataclasses
from pathlib import Path

from grok_tf.data.sources import read_catalogues
from grok_tf.data.sources import read_split

#: Sources whose labels are guesses: never a reference for new guesses.
GUESSED_SOURCES = frozenset({"pseudo_labels"})


@dataclasses.dataclass
class Gallery:
    """Labelled images of one id head.

    Attributes:
        head: the id head's name.
        refs: image file paths.
        ids: the head's class id of each image.
        catalogue_images: how many of them are catalogue images.
    """

    head: str
    refs: list[str]
    ids: list[int]
    catalogue_images: int = 0


def id_head(spec, name=None):
    """The id head pseudo-labels name products of.

    Args:
        spec: a run's resolved `Spec`.
        name: a head name; None picks the first id head (`HeadType.
            identity`: ArcFace, pairwise) that a dataset feeds.

    Raises:
        ValueError: `name` is not an id head, or the spec has none.
    """
    fed = {h for d in spec.datasets for h in d.feeds}
    heads = [h for h in spec.heads if h.kind.identity and h.name in fed]
    if name is None:
        if not heads:
            raise ValueError(
                f"{spec.path.name}: no id head (arcface, pairwise) to "
                "pseudo-label with"
            )
        return _single_space(spec, heads[0])
    for head in heads:
        if head.name == name:
            return _single_space(spec, head)
    names = ", ".join(h.name for h in heads) or "none"
    raise ValueError(
        f"{spec.path.name}: {name!r} is not an id head of the run "
        f"(id heads: {names})"
    )


def _single_space(spec, head):
    """`head`, when its ids are one dataset's products (pseudo-labels name
    the products of one space: a `pseudo_labels` dataset's `of:`)."""
    from grok_tf.data.sources import id_spaces

    spaces = id_spaces(spec, head)
    if len(spaces) > 1:
        raise ValueError(
            f"{spec.path.name}: head '{head.name}' holds the products of "
            f"{', '.join(spaces)}; pseudo-label with an id head of one "
            "dataset's products (--head)"
        )
    return head


def labelled_images(spec, head, split):
    """`(refs, ids)` of a split's images labelled for `head`.

    Every dataset that feeds `head`, has `split` and holds true labels
    (not a `pseudo_labels` dataset) contributes its labelled images.
    """
    refs, ids = [], []
    for dataset in spec.datasets:
        if (
            head.name not in dataset.feeds
            or split not in dataset.splits
            or dataset.source in GUESSED_SOURCES
        ):
            continue
        part = read_split(spec, dataset, split)
        for ref, label in zip(part.refs, part.labels[head.name], strict=True):
            if label >= 0:
                refs.append(ref)
                ids.append(int(label))
    return refs, ids


def training_gallery(spec, head):
    """The run's training photos and catalogue images of `head`'s products.

    An image listed twice (a catalogue dataset trains on the catalogue
    images too) is kept once.
    """
    refs, ids = labelled_images(spec, head, "train")
    catalogues = read_catalogues(spec, head.name)
    for split in catalogues:
        for ref, label in zip(split.refs, split.labels[head.name], strict=True):
            if label >= 0:
                refs.append(ref)
                ids.append(int(label))
    first = dict(reversed([(ref, i) for i, ref in enumerate(refs)]))
    kept = sorted(first.values())
    shots = {ref for split in catalogues for ref in split.refs}
    return Gallery(
        head=head.name,
        refs=[refs[i] for i in kept],
        ids=[ids[i] for i in kept],
        catalogue_images=sum(refs[i] in shots for i in kept),
    )


def listed_gallery(head, images):
    """A gallery from a list file of `path, product` lines (or a folder
    whose sub-folders are named by product).

    A product is a class id or a class name of `head`.

    Raises:
        ValueError: a product outside the head's classes, naming it.
    """
    from grok_tf.search.product_search import read_image_refs

    paths, labels = read_image_refs(images)
    if Path(images).is_dir():  # the id of a file is its relative path
        labels = [Path(label).parts[0] for label in labels]
    index = {name: i for i, name in enumerate(head.classes)}
    # Digits are a class id, unless class names are digits (SKUs): then a
    # label must be a name, so a mistyped SKU is an error, not a class.
    by_id = not any(name.isdigit() for name in head.classes)
    ids = []
    for path, label in zip(paths, labels, strict=True):
        label = label.strip()
        if label in index:
            ids.append(index[label])
        elif by_id and label.isdigit() and int(label) < len(head.classes):
            ids.append(int(label))
        else:
            raise ValueError(
                f"{images}: {path}: product {label!r} is not a class of "
                f"head '{head.name}' ({len(head.classes)} classes)"
            )
    return Gallery(head.name, paths, ids)
