"""Inferred vocabularies: the classes of heads declared `classes: inferred`."""

import dataclasses

from grok_tf.data.sources.splits import read_tokens
from grok_tf.errors import SpecError

# Most classes a head may infer from integer ids (`"0" .. str(max id)`):
# a larger id is more likely a typo than a class; declare such heads'
# classes in a file.
MAX_INFERRED_CLASSES = 1_000_000


def resolve_vocabularies(spec):
    """Fills in the classes of heads declared `classes: inferred`.

    Names come from the training split (`train`, else the first split) of
    every dataset feeding the head, sorted; integer ids give classes
    `"0" .. str(max id)`; a source's own vocabulary (tfds `ClassLabel`
    features, tag tables, the synthetic catalogue's files) comes first.

    Returns:
        The `Spec` with every head's classes set.
    """
    if all(head.classes is not None for head in spec.heads):
        return spec
    found = {h.name: {} for h in spec.heads if h.classes is None}
    named = {}
    for dataset in spec.datasets:
        wanted = [h for h in dataset.feeds if h in found]
        if not wanted:
            continue
        split = (
            "train" if "train" in dataset.splits else next(iter(dataset.splits))
        )
        raw = read_tokens(spec, dataset, split)
        for head in wanted:
            if head in raw.vocabularies:
                named[head] = raw.vocabularies[head]
            for labels, origin in zip(raw.tokens[head], raw.where, strict=True):
                for token in labels:
                    found[head].setdefault(token, origin)
    heads = []
    for head in spec.heads:
        if head.classes is None:
            classes = named.get(head.name) or _vocabulary_from(
                head.name, found[head.name]
            )
            if not classes:
                raise SpecError(
                    spec.where(f"heads.{head.name}.classes")
                    + ": inferred, but the data has no labels for this head"
                )
            head = dataclasses.replace(head, classes=tuple(classes))
        heads.append(head)
    return spec.replace_heads(heads)


def _vocabulary_from(head, found):
    """Inferred classes from `{token: "file:line" of its first use}`."""
    ids = [t for t in found if isinstance(t, int)]
    names = [t for t in found if not isinstance(t, int)]
    if ids and names:
        raise SpecError(
            f"{found[names[0]]}: head '{head}': label {names[0]!r} is a class "
            f"name, but {found[ids[0]]} gives class id {ids[0]}; an inferred "
            "head takes ids or names, not both"
        )
    if names:
        return sorted(names)
    if not ids:
        return []
    largest = max(ids)
    if largest >= MAX_INFERRED_CLASSES:
        raise SpecError(
            f"{found[largest]}: head '{head}': class id {largest} would make "
            f"{largest + 1} inferred classes (at most {MAX_INFERRED_CLASSES}"
            "); list the classes in a file"
        )
    return [str(i) for i in range(largest + 1)]
