"""Splits: one split of one dataset, read by its source, labels encoded."""

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from grok_tf.data.sources.catalogue import catalogue_rows
from grok_tf.data.sources.labels import encode_labels
from grok_tf.data.sources.registry import source
from grok_tf.data.sources.registry import source_names
from grok_tf.data.sources.tokens import Tokens
from grok_tf.data.sources.tokens import parse_token
from grok_tf.errors import SpecError


@dataclasses.dataclass
class Split:
    """One split of one dataset, labels encoded as class ids.

    Attributes:
        dataset: the dataset name.
        split: the split name.
        refs: image file paths (absolute), or tfds references.
        labels: head name -> int32 array: `[N]` for softmax heads, `[N, L]`
            padded with -1 for multi-label heads.
        image_stream: for tfds, `fn() -> tf.data.Dataset` of `(ref, encoded
            bytes)` in the order of `refs` (streamed, never all in memory);
            None when the images are files read from `refs`.
        label_weights: head name -> float32 `[N, L]`, the weight of each id
            of `labels[head]` (0 on padding), for multi-label heads whose
            labels are weighted (a query log with `weighting:
            interactions`); the other heads' labels weigh the same.
    """

    dataset: str
    split: str
    refs: list[str]
    labels: dict[str, np.ndarray]
    image_stream: Callable[[], Any] | None = None
    label_weights: dict[str, np.ndarray] = dataclasses.field(
        default_factory=dict
    )

    def __len__(self):
        return len(self.refs)


def read_split(spec, dataset, split: str) -> Split:
    """Reads one split of `dataset` with ids encoded in the spec's vocabularies.

    Args:
        spec: a `Spec` whose vocabularies are resolved
            (see `resolve_vocabularies`).
        dataset: a `DatasetSpec` of `spec`.
        split: a split name of `dataset`.

    Returns:
        A `Split`.

    Raises:
        SpecError: for a label outside its head's vocabulary, naming the file
            and line.

    Example (not run: needs grocery.yaml and its photos):

    >>> spec = resolve_vocabularies(load_spec("grocery.yaml"))  # doctest: +SKIP
    >>> read_split(spec, spec.datasets[0], "val").labels["fine_class"][:3]
    ... # doctest: +SKIP
    array([0, 0, 0], dtype=int32)
    """
    raw = read_tokens(spec, dataset, split)
    labels, label_weights = {}, {}
    for head_name, column in raw.tokens.items():
        head = spec.head(head_name)
        weights = raw.label_weights.get(head_name)
        encoded = encode_labels(spec, dataset, head, column, raw.where, weights)
        if weights is not None:
            encoded, label_weights[head_name] = encoded
        labels[head_name] = encoded
    return Split(
        dataset=dataset.name,
        split=split,
        refs=raw.refs,
        labels=labels,
        image_stream=raw.image_stream,
        label_weights=label_weights,
    )


def read_tokens(spec, dataset, split: str) -> Tokens:
    """One split of `dataset` as label tokens, read by its source."""
    if split not in dataset.splits:
        raise SpecError(
            f"{spec.path.name}: datasets.{dataset.name}.splits: no split "
            f"{split!r} (has {', '.join(dataset.splits)})"
        )
    if dataset.source not in source_names():
        raise SpecError(
            f"{spec.path.name}: datasets.{dataset.name}.source: unknown "
            f"source {dataset.source!r}; choose one of "
            f"{', '.join(source_names())}"
        )
    who = f"{spec.path.name}: datasets.{dataset.name}.splits.{split}"
    return source(dataset.source).read(
        spec, dataset, dataset.splits[split], who
    )


def read_catalogue(spec, dataset) -> Split:
    """The dataset's catalogue images, labelled with its id head's ids.

    A catalogue (the `catalogue:` setting of a dataset) is a CSV naming one
    or more reference images per product, e.g. grocery's `classes.csv` with
    its iconic images; retrieval evaluation searches it with photos.

    Returns:
        A `Split` named `catalogue`, labels `{id head: ids}`.
    """
    settings = dataset.options["catalogue"]
    _, rows = catalogue_rows(spec, dataset)
    head = spec.head(settings["head"])
    refs, tokens, where = [], [], []
    for image, origin, row in rows:
        token = parse_token(row[settings["id"]])
        if not token:
            raise SpecError(
                f"{origin}: no id in column {settings['id']!r} (a catalogue "
                "image needs its product)"
            )
        refs.append(str(dataset.root / image))
        tokens.append(token)
        where.append(origin)
    ids = encode_labels(spec, dataset, head, tokens, where)
    return Split(
        dataset=dataset.name,
        split="catalogue",
        refs=refs,
        labels={head.name: ids},
    )


def read_catalogues(spec, head_name) -> list[Split]:
    """The catalogues (`read_catalogue`) of every dataset whose catalogue
    holds the ids of head `head_name`, in spec order."""
    return [
        read_catalogue(spec, d)
        for d in spec.datasets
        if d.options.get("catalogue", {}).get("head") == head_name
    ]
