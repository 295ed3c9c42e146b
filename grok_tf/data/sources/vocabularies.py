"""Inferred vocabularies: the classes of heads declared `classes: inferred`."""

import dataclasses

from grok_tf.data.sources.labels import id_space
from grok_tf.data.sources.labels import id_spaces
from grok_tf.data.sources.labels import spaced
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
    An id head fed from several id spaces gets each space's classes in
    turn, named `<space>/<label>` (`grok_tf.data.sources.labels`).

    Returns:
        The `Spec` with every head's classes set.
    """
    if all(head.classes is not None for head in spec.heads):
        return spec
    # head -> id space (None for heads fed from one space) -> what was found
    found = {h.name: {} for h in spec.heads if h.classes is None}
    named = {h: {} for h in found}
    spaced_heads = {h.name for h in spec.heads if len(id_spaces(spec, h)) > 1}
    for dataset in spec.datasets:
        wanted = [h for h in dataset.feeds if h in found]
        if not wanted:
            continue
        split = (
            "train" if "train" in dataset.splits else next(iter(dataset.splits))
        )
        raw = read_tokens(spec, dataset, split)
        for head in wanted:
            space = id_space(dataset) if head in spaced_heads else None
            if head in raw.vocabularies:
                named[head][space] = raw.vocabularies[head]
            tokens = found[head].setdefault(space, {})
            for labels, origin in zip(raw.tokens[head], raw.where, strict=True):
                for token in labels:
                    tokens.setdefault(token, origin)
    heads = []
    for head in spec.heads:
        if head.classes is None:
            classes = []
            for space, tokens in found[head.name].items():
                names = named[head.name].get(space) or _vocabulary_from(
                    head.name, tokens
                )
                if space is not None:
                    names = [spaced(space, name) for name in names]
                classes.extend(names)
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
