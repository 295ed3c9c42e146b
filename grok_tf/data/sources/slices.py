"""Split slices: `train.txt[:90%]`, `val.txt[:200]` take part of a file.

A split entry of a file or folder source may end in `[start:stop]`; the
spec checks the syntax when it loads, the source applies the bounds to
its records (in file order) when it reads the split.
"""

import re
from collections.abc import Sequence
from typing import TypeVar

from grok_tf.io.text_files import parse_int

_PERCENT = re.compile(r"([0-9]{1,3}(?:\.[0-9]+)?)%")

Bound = int | float | None
T = TypeVar("T")


def split_slice(ref: str) -> tuple[str, tuple[Bound, Bound] | None]:
    """Splits `"file.txt[10%:90%]"` into `("file.txt", (start, stop))`.

    Bounds are fractions (from `N%`, 0 to 100) or counts (integers,
    negative from the end as in Python), `None` when open;
    `("file.txt", None)` when there is no slice.

    Raises:
        ValueError: the slice is not `[start:stop]` with such bounds.

    Example:

    >>> split_slice("tags.csv[:90%]")
    ('tags.csv', (None, 0.9))
    >>> split_slice("val.txt")
    ('val.txt', None)
    """

    match = re.fullmatch(r"(.*)\[([^\]]*)\]", ref)
    if not match:
        return ref, None
    base, body = match.groups()
    if body.count(":") != 1:
        raise ValueError(f"bad slice [{body}]: expected [start:stop]")
    bounds = []
    for part in body.split(":"):
        part = part.strip()
        percent = _PERCENT.fullmatch(part)
        if not part:
            bounds.append(None)
        elif parse_int(part) is not None:
            bounds.append(parse_int(part))
        elif percent and float(percent.group(1)) <= 100:
            bounds.append(float(percent.group(1)) / 100.0)
        else:
            raise ValueError(
                f"bad slice [{body}]: {part!r} is not a count (integer) or "
                "a percentage from 0% to 100%"
            )
    return base, tuple(bounds)


def apply_slice(
    items: Sequence[T], bounds: tuple[Bound, Bound] | None
) -> Sequence[T]:
    """Applies `split_slice` bounds to a list (fractions or counts).

    Example:

    >>> apply_slice(list(range(10)), (None, 0.9))
    [0, 1, 2, 3, 4, 5, 6, 7, 8]
    """
    if bounds is None:
        return items

    def index(bound):
        if bound is None or isinstance(bound, int):
            return bound
        return round(bound * len(items))

    return items[index(bounds[0]) : index(bounds[1])]
