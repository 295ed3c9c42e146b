"""Label encoding: tokens of one head -> class ids in its vocabulary.

Softmax heads get one id per image (-1 when unlabelled); multi-label heads
get a padded id list per image (-1 padding).
"""

import numpy as np

from grok_tf.errors import SpecError


def encode_labels(spec, dataset, head, column, where) -> np.ndarray:
    """Turns label tokens into ids, checking them against the vocabulary.

    Args:
        spec: the `Spec`.
        dataset: the `DatasetSpec` the tokens come from.
        head: a `HeadSpec` with its classes resolved.
        column: one tuple of tokens (ids or names) per example.
        where: the origin (`file:line`) of each example, for errors.

    Returns:
        int32 ids, `[N]` for a softmax head, `[N, L]` padded with -1 for a
        multi-label head.

    Raises:
        SpecError: a label outside the vocabulary, or several labels for a
            single-label head, naming the file and line.
    """
    index = {name: i for i, name in enumerate(head.classes)}
    width = max((len(labels) for labels in column), default=0)
    if not head.multilabel and width > 1:
        row = next(i for i, labels in enumerate(column) if len(labels) > 1)
        raise SpecError(
            f"{where[row]}: head '{head.name}' is {head.type} but the image "
            f"has {len(column[row])} labels"
        )
    ids = np.full((len(column), max(width, 1)), -1, dtype=np.int32)
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
    return ids if head.multilabel else ids[:, 0]
