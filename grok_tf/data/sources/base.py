"""The base of every dataset source: what a spec may say, how to read it."""

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar
from typing import Literal
from typing import NoReturn
from typing import Protocol

from grok_tf.data.sources.slices import split_slice
from grok_tf.data.sources.tokens import Tokens

if TYPE_CHECKING:  # the spec imports this package lazily: no cycle
    from grok_tf.spec.schema import DatasetSpec
    from grok_tf.spec.schema import Spec

#: What the value of a split (`splits: {train: <entry>}`) names: a file or
#: a folder under `root` (checked when the spec loads, `[a:b]` slices
#: allowed), or an entry only the source understands (tfds split syntax).
SplitEntries = Literal["file", "folder", "opaque"]

#: Keys every dataset of a spec takes, whatever its source.
COMMON_KEYS = frozenset(
    {
        "name",
        "source",
        "splits",
        "images_per_batch",
        "feeds",
        "augmentation",
        "loss_weight",
    }
)


class SpecReader(Protocol):
    """What `DatasetSource.check` may use of the spec loader's reader.

    Every method fails with one `SpecError` line naming the spec file and
    `field` (see `grok_tf.spec.loader`).
    """

    def fail(self, field: str, message: str) -> NoReturn: ...

    def check_keys(
        self,
        field: str,
        mapping: Any,
        allowed: set[str],
        required: Any = (),
    ) -> None: ...

    def path_of(
        self,
        field: str,
        value: Any,
        must_exist: bool = True,
        kind: str = "file",
    ) -> Path: ...

    def positive_int(self, field: str, value: Any, minimum: int = 1) -> int: ...

    def number(
        self, field: str, value: Any, positive: bool = False
    ) -> float: ...


class DatasetSource(abc.ABC):
    """A kind of dataset (the `source:` of a dataset in a spec).

    A subclass declares, in one place, what a spec may say about datasets
    of its kind (class attributes, checked when the spec loads) and reads
    one split of such a dataset into label tokens (`read`). Register it
    with `register_source` to make `source: <name>` valid in specs.

    Class attributes:
        name: the value of `source:` in a spec.
        keys: spec keys of the dataset beyond the common ones (`name`,
            `source`, `splits`, `images_per_batch`, `feeds`), e.g. `root`.
        required_keys: those of `keys` a spec must give.
        split_entries: what a split's value names: `"file"` or `"folder"`
            under `root`, checked when the spec loads, or `"opaque"` (only
            `read` understands it, e.g. tfds split syntax).
        generated: `root` and its split files are written on first read,
            so they are not checked when the spec loads.
        tag_feeds: a feed may be a tag feed (query tags mined from a
            product table under `root`; `grok_tf.data.query_mining`).
        catalogues: the dataset may name a `catalogue:` CSV of reference
            images under `root`, for retrieval evaluation.
        default_splits: the `splits:` of a dataset that gives none; None
            when a spec must give them.

    Example (not run: it would register a source for the whole process):

    >>> @register_source  # doctest: +SKIP
    ... class JsonList(DatasetSource):
    ...     name = "json_list"
    ...
    ...     def read(self, spec, dataset, ref, who):
    ...         records = json.loads((dataset.root / ref).read_text())
    ...         rows = ((r["image"], who, r["labels"]) for r in records)
    ...         return collect_tokens(
    ...             spec, dataset, rows, lambda row, k, where: tuple(row[k:k+1])
    ...         )
    """

    name: ClassVar[str]
    keys: ClassVar[frozenset[str]] = frozenset({"root"})
    required_keys: ClassVar[frozenset[str]] = frozenset({"root"})
    split_entries: ClassVar[SplitEntries] = "file"
    generated: ClassVar[bool] = False
    tag_feeds: ClassVar[bool] = False
    catalogues: ClassVar[bool] = False
    default_splits: ClassVar[dict[str, str] | None] = None

    def accepted_keys(self) -> frozenset[str]:
        """Every key a dataset of this source may have in a spec."""
        extra = {"catalogue"} if self.catalogues else set()
        return COMMON_KEYS | self.keys | extra

    def check(
        self, reader: SpecReader, field: str, raw: dict[str, Any]
    ) -> dict[str, Any]:
        """Checks this source's settings; returns the dataset's `options`.

        Called when the spec loads, after the common keys, `root`, the
        splits and the feeds are checked. Override it to validate or
        normalise settings (call `super().check` for the default).

        Args:
            reader: the spec loader's reader, to fail with a spec error.
            field: the dataset's field in the spec, e.g. `datasets[0]`.
            raw: the dataset's mapping as written in the spec.

        Returns:
            `DatasetSpec.options`: the given `keys` except `root` (the
            loader adds a checked `catalogue`).
        """
        del reader, field
        return {
            key: raw[key] for key in sorted(self.keys - {"root"}) if key in raw
        }

    def check_spec(
        self,
        reader: SpecReader,
        field: str,
        dataset: "DatasetSpec",
        datasets: Sequence["DatasetSpec"],
    ) -> None:
        """Checks `dataset` against the spec's other datasets.

        Called once every dataset of the spec is loaded; the default
        checks nothing. A source whose datasets refer to another one
        (`catalogue`'s `of:`) checks the reference here.
        """
        del reader, field, dataset, datasets

    def id_space(self, dataset: "DatasetSpec") -> str:
        """The name of the products `dataset`'s ids number.

        Ids of different spaces are different products, even when equal
        (grocery product 3 and car class 3): an id head fed from several
        spaces names its classes `<space>/<label>`
        (`grok_tf.data.sources.labels`). A dataset is its own space unless
        its source says otherwise.
        """
        return dataset.name

    @abc.abstractmethod
    def read(
        self, spec: "Spec", dataset: "DatasetSpec", ref: str, who: str
    ) -> Tokens:
        """Reads one split of `dataset` into label tokens.

        Args:
            spec: the `Spec` (vocabularies may still be unresolved).
            dataset: a `DatasetSpec` of this source.
            ref: the split's entry, e.g. `train.txt[:90%]`.
            who: `spec.yaml: datasets.<name>.splits.<split>`, the prefix of
                errors about the split itself.

        Returns:
            `Tokens`: one image reference and one tuple of label tokens
            per head of `dataset.feeds` for each example.

        Raises:
            SpecError: one line naming the file and line (or field) of the
                first problem.
        """


class FileSource(DatasetSource):
    """A source whose splits are files (or folders) under `root`.

    Such datasets may take tag feeds and name a catalogue; `split_path`
    resolves a split's entry, `[a:b]` slice and all.
    """

    tag_feeds = True
    catalogues = True

    def split_path(
        self, dataset: "DatasetSpec", ref: str
    ) -> tuple[Path, tuple | None]:
        """`(root / file, bounds)` of a split entry such as `a.txt[:90%]`."""
        name, bounds = split_slice(ref)
        return dataset.root / name, bounds
