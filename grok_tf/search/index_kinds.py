"""How a `HashIndex` searches its codes: `flat`, `ivf` or `hnsw`.

- `flat`: `faiss.IndexBinaryFlat`, every code compared with every query,
  exact. The default up to `FLAT_UP_TO` items.
- `ivf`: `faiss.IndexBinaryIVF`, codes grouped into `nlist` lists around
  k-means centres; a query scans the `nprobe` lists nearest to it. About
  `nprobe / nlist` of the codes are compared, so it is fast and almost
  exact on codes with real neighbour structure (see
  `benchmarks/binary_index.py`). The default above `FLAT_UP_TO` items.
- `hnsw`: `faiss.IndexBinaryHNSW`, a graph of `M` links per code, searched
  greedily with a queue of `efSearch` candidates (`efConstruction` while
  building). No training, but slow to build and, on 256-bit Hamming
  codes, less accurate than `ivf` for the same time.

Build settings (`nlist`, `M`, `efConstruction`) are fixed when the index
is made; search settings (`nprobe`, `efSearch`) can change at any time
(`HashIndex.tune`). Both are stored with the index.

Example:

>>> settings = default_settings(2_000_000)
>>> settings
{'kind': 'ivf', 'nlist': 1024, 'nprobe': 128}
>>> index = make_faiss_index(256, settings)
>>> type(index).__name__, index.nlist, index.nprobe
('IndexBinaryIVF', 1024, 128)
"""

import abc

import faiss
import numpy as np

from grok_tf.registry import ClassRegistry

FLAT_UP_TO = 200_000
# k-means of `ivf` trains on at most this many codes a list: enough for
# stable centres, and bounded (the float k-means costs n * nlist * bits).
TRAIN_POINTS_PER_LIST = 64
# Fewer codes a list than this leave lists almost empty.
MIN_POINTS_PER_LIST = 39


class IndexKind(abc.ABC):
    """A faiss binary index type and its settings.

    Subclasses set `name`, `faiss_type`, `build_settings` and
    `search_settings` (names of positive integer settings), and implement
    `defaults`, `make` and `apply`. Register one with `@register_kind` to
    make it a `grok-tf index --kind`. `mmap_flags` are the
    `faiss.read_index_binary` flags that map its file rather than read it
    (0: read).
    """

    name: str
    faiss_type: type
    mmap_flags: int = 0
    build_settings: tuple[str, ...] = ()
    search_settings: tuple[str, ...] = ()

    @abc.abstractmethod
    def defaults(self, count: int) -> dict:
        """Settings for an index of about `count` codes."""

    @abc.abstractmethod
    def make(self, bits: int, settings: dict):
        """A new, empty faiss index with the build settings."""

    @abc.abstractmethod
    def apply(self, index, settings: dict) -> None:
        """Sets the search settings on a faiss index of this kind."""

    def train(self, index, codes) -> None:  # noqa: B027 (most need none)
        """Trains `index` on `codes` (only kinds that need it)."""


_KINDS = ClassRegistry(IndexKind, "index kind")


def register_kind(cls):
    """Class decorator: registers an `IndexKind` by its `name`."""
    return _KINDS.add(cls)


def kind_names():
    """The registered index kinds, e.g. `['flat', 'ivf', 'hnsw']`."""
    return _KINDS.names()


@register_kind
class Flat(IndexKind):
    """Exhaustive, exact Hamming search."""

    name = "flat"
    faiss_type = faiss.IndexBinaryFlat
    mmap_flags = faiss.IO_FLAG_MMAP_IFC

    def defaults(self, count):
        return {}

    def make(self, bits, settings):
        return faiss.IndexBinaryFlat(bits)

    def apply(self, index, settings):
        pass


@register_kind
class InvertedFile(IndexKind):
    """Inverted lists around k-means centres (`nlist`, `nprobe`)."""

    name = "ivf"
    faiss_type = faiss.IndexBinaryIVF
    # Maps the lists as arrays, searched as fast as lists in memory (1M
    # codes, nprobe 128: 6,500 q/s both); IO_FLAG_MMAP's on-disk lists
    # searched at 2,900 q/s.
    mmap_flags = faiss.IO_FLAG_MMAP_IFC
    build_settings = ("nlist",)
    search_settings = ("nprobe",)

    def defaults(self, count):
        # About sqrt(count) lists, a power of two, with enough codes each.
        most = max(1, count // MIN_POINTS_PER_LIST)
        nlist = min(
            2 ** round(np.log2(max(count, 1)) / 2), 2 ** int(np.log2(most))
        )
        # An eighth of the lists, at least 8: recall@10 0.97 on clustered
        # codes at 1M items, 0.95 when the 10th neighbour is another
        # product (benchmarks/search_at_scale.py).
        return {"nlist": nlist, "nprobe": min(nlist, max(8, nlist // 8))}

    def make(self, bits, settings):
        quantizer = faiss.IndexBinaryFlat(bits)
        index = faiss.IndexBinaryIVF(quantizer, bits, settings["nlist"])
        index.own_fields = True  # the index frees its quantizer
        quantizer.this.disown()
        index.cp.niter = 10
        self.apply(index, settings)
        return index

    def apply(self, index, settings):
        index.nprobe = min(settings["nprobe"], index.nlist)

    def train(self, index, codes):
        if len(codes) < index.nlist:
            raise ValueError(
                f"an ivf index of nlist={index.nlist} lists needs at least "
                f"{index.nlist} codes to train on, got {len(codes)}: "
                "lower nlist or use --kind flat"
            )
        most = TRAIN_POINTS_PER_LIST * index.nlist
        if len(codes) > most:  # an even sample, deterministic
            codes = codes[np.linspace(0, len(codes) - 1, most).astype(int)]
        index.train(np.ascontiguousarray(codes))


@register_kind
class Graph(IndexKind):
    """A navigable small-world graph (`M`, `efConstruction`, `efSearch`)."""

    name = "hnsw"
    faiss_type = faiss.IndexBinaryHNSW
    build_settings = ("M", "efConstruction")
    search_settings = ("efSearch",)

    def defaults(self, count):
        return {"M": 32, "efConstruction": 40, "efSearch": 64}

    def make(self, bits, settings):
        index = faiss.IndexBinaryHNSW(bits, settings["M"])
        index.hnsw.efConstruction = settings["efConstruction"]
        self.apply(index, settings)
        return index

    def apply(self, index, settings):
        index.hnsw.efSearch = settings["efSearch"]


def index_kind(name):
    """The registered `IndexKind` called `name` (an instance)."""
    return _KINDS.get(name)()


def default_settings(count, kind="auto", **overrides):
    """The settings of a new index of about `count` codes.

    Args:
        count: how many codes it will hold (per shard, when sharded).
        kind: `"flat"`, `"ivf"`, `"hnsw"` (or another registered kind), or
            `"auto"`: `flat` up to `FLAT_UP_TO` codes, else `ivf`.
        **overrides: settings of that kind to use instead of the
            defaults (None values are ignored), e.g. `nprobe=64`.

    Returns:
        `{"kind": name, setting: value, ...}`, ready for `make_faiss_index`.

    Raises:
        ValueError: an unknown kind, a setting the kind does not take, or
            a value that is not a positive integer.
    """
    if kind == "auto":
        kind = "flat" if count <= FLAT_UP_TO else "ivf"
    chosen = index_kind(kind)
    settings = {"kind": kind, **chosen.defaults(int(count))}
    given = {k: v for k, v in overrides.items() if v is not None}
    return check_settings({**settings, **given}, "settings")


def check_settings(settings, where):
    """`settings` if they are a known kind's, else a one-line ValueError.

    Args:
        settings: `{"kind": name, setting: value, ...}`.
        where: what to name in the message (a file, an argument).
    """
    names = kind_names()
    if not isinstance(settings, dict) or settings.get("kind") not in names:
        got = settings.get("kind") if isinstance(settings, dict) else settings
        raise ValueError(
            f"{where}: index kind must be one of {', '.join(names)}, got "
            f"{got!r}"
        )
    kind = index_kind(settings["kind"])
    allowed = set(kind.build_settings + kind.search_settings)
    unknown = sorted(set(settings) - allowed - {"kind"})
    if unknown:
        takes = ", ".join(sorted(allowed)) or "no settings"
        raise ValueError(
            f"{where}: a {kind.name} index takes {takes}, not "
            f"{', '.join(unknown)}"
        )
    for name in sorted(allowed):
        value = settings.get(name)
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(
                f"{where}: {kind.name} setting {name} must be a positive "
                f"integer, got {value!r}"
            )
        if value < 1:
            raise ValueError(
                f"{where}: {kind.name} setting {name} must be positive, "
                f"got {value}"
            )
    return {"kind": kind.name, **{n: int(settings[n]) for n in sorted(allowed)}}


def make_faiss_index(bits, settings):
    """A new, empty faiss binary index for checked `settings`."""
    settings = check_settings(settings, "settings")
    return index_kind(settings["kind"]).make(int(bits), settings)
