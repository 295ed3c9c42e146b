"""Label encoding: tokens of one head -> class ids in its vocabulary.

Softmax heads get one id per image (-1 when unlabelled); multi-label heads
get a padded id list per image (-1 padding), and optionally a weight per
label (a query log weighted by interactions). An id head fed by datasets of
several id spaces (`DatasetSource.id_space`) names its classes
`<space>/<label>`, so equal ids of different products stay apart.
"""

import numpy as np

from grok_tf.data.sources.registry import source
from grok_tf.errors import SpecError


def id_space(dataset) -> str:
    """The products `dataset`'s ids number (`DatasetSource.id_space`)."""
    return source(dataset.source).id_space(dataset)


def id_spaces(spec, head) -> tuple[str, ...]:
    """The id spaces of the datasets feeding an id head, in spec order.

    Empty for a head that is not an id head (`HeadType.identity`): class
    names of other heads (a colour, a category) mean the same thing in
    every dataset.
    """
    if not head.kind.identity:
        return ()
    spaces = [id_space(d) for d in spec.datasets if head.name in d.feeds]
    return tuple(dict.fromkeys(spaces))


def spaced(space: str, token) -> str:
    """The class name of label `token` in id space `space`.

    Example:

    >>> spaced("cars", 3)
    'cars/3'
    """
    return f"{space}/{token}"


def encode_labels(spec, dataset, head, column, where, weights=None):
    """Turns label tokens into ids, checking them against the vocabulary.

    Args:
        spec: the `Spec`.
        dataset: the `DatasetSpec` the tokens come from.
        head: a `HeadSpec` with its classes resolved.
        column: one tuple of tokens (ids or names) per example.
        where: the origin (`file:line`) of each example, for errors.
        weights: for a multi-label head whose labels are weighted
            (`Tokens.label_weights`), one tuple of weights per example,
            one per token; None otherwise.

    Returns:
        int32 ids, `[N]` for a softmax head, `[N, L]` padded with -1 for a
        multi-label head; with `weights`, `(ids, label weights)`, the
        weights float32 `[N, L]` beside the ids, 0 on the padding.

    Raises:
        SpecError: a label outside the vocabulary, or several labels for a
            single-label head, naming the file and line.
    """
    index = {name: i for i, name in enumerate(head.classes)}
    if len(id_spaces(spec, head)) > 1:
        space = id_space(dataset)
        column = [tuple(spaced(space, t) for t in labels) for labels in column]
    width = max((len(labels) for labels in column), default=0)
    if not head.multilabel and width > 1:
        row = next(i for i, labels in enumerate(column) if len(labels) > 1)
        raise SpecError(
            f"{where[row]}: head '{head.name}' is {head.type} but the image "
            f"has {len(column[row])} labels"
        )
    ids = np.full((len(column), max(width, 1)), -1, dtype=np.int32)
    if weights is not None:
        values = np.zeros(ids.shape, np.float32)
        for row, found in enumerate(weights):
            if len(found) != len(column[row]):
                raise ValueError(
                    f"{where[row]}: {len(found)} weights for "
                    f"{len(column[row])} labels"
                )
            values[row, : len(found)] = found
    for row, labels in enumerate(column):
        for j, token in enumerate(labels):
            if isinstance(token, int):
                if not 0 <= token < len(head.classes):
                    raise SpecError(
                        f"{where[row]}: head '{head.name}': class id {token} "
                        f"out of range ({len(head.classes)} classes)"
                    )
                ids[row, j] = token
            elif token in index:
                ids[row, j] = index[token]
            else:
                raise SpecError(
                    f"{where[row]}: head '{head.name}': unknown class "
                    f"{token!r} (not in its {len(head.classes)} classes)"
                )
    if weights is not None:
        return ids, values
    return ids if head.multilabel else ids[:, 0]
