"""Dataset sources: read one split of one dataset into images and labels.

Every source yields the same thing, a `Split`: image references (file
paths, or tfds ids with a stream of encoded bytes) and, for each head the
dataset feeds, integer class ids. Softmax heads get one id per image (-1
when unlabelled); multi-label heads get a padded id list per image (-1
padding).

Sources (the `source:` field of a dataset in a spec):

- `image_list`: a text file of `path, label, label, ...` lines, paths
  relative to `root`; a label is a class id, a class name, `|`-joined ids or
  names for multi-label heads, or empty / `-1` when unknown. Feed column `K`
  is the K-th label after the path (0-based).
- `image_folder`: `root/<split>/<class>/*.jpg`; feed column `class_folder`.
- `csv_tags`: a CSV with an `image` column (path relative to `root`) and
  label columns of `|`-joined names; feed column = the CSV column name.
- `tfds`: a TensorFlow Datasets catalogue name; feed column = a feature name
  (`ClassLabel` or a sequence of them). Images stay encoded
  (`tfds.decode.SkipDecoding`) and are streamed, never held in memory, so
  they go through the same decoder as files.
- `synthetic`: the package's synthetic catalogue, generated into `root` on
  first use, then read as an `image_list`.

Every file source also accepts feed column `path:K`, the K-th component of
the image's relative path (e.g. `path:1` of `train/Fruit/Apple/x.jpg` is
`Fruit`). Split names may slice their file: `tags.csv[:90%]`, `val.txt[:200]`.

Text files are read by `grok_tf.io.text_files`: UTF-8 (with or without BOM),
CSV quoting, one error line `FILE:LINE: what is wrong` for a malformed
line. Image paths are relative to `root` and may not leave it (`..`); in
a list file or a `csv_tags` CSV an absolute path is an error, in a
catalogue a leading `/` means `root` (grocery's `classes.csv`).
"""

import dataclasses
from pathlib import Path

import numpy as np

from grok_tf.errors import SpecError
from grok_tf.io.text_files import dataset_path
from grok_tf.io.text_files import parse_int
from grok_tf.io.text_files import read_lines
from grok_tf.io.text_files import read_list
from grok_tf.io.text_files import read_table
from grok_tf.spec.loader import apply_slice
from grok_tf.spec.loader import split_slice

# Most classes a head may infer from integer ids (`"0" .. str(max id)`):
# a larger id is more likely a typo than a class; declare such heads'
# classes in a file.
MAX_INFERRED_CLASSES = 1_000_000

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


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
    """

    dataset: str
    split: str
    refs: list
    labels: dict
    image_stream: object = None

    def __len__(self):
        return len(self.refs)


@dataclasses.dataclass
class _Tokens:
    """A split before encoding: label tokens per head, with their origin."""

    refs: list
    tokens: dict  # head -> list of tuples of label tokens (str or int)
    where: list  # "file:line" per example, for error messages
    image_stream: object = None
    vocabularies: dict = dataclasses.field(default_factory=dict)


def read_split(spec, dataset, split):
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

    Example:

    >>> spec = resolve_vocabularies(load_spec("grocery.yaml"))  # doctest: +SKIP
    >>> read_split(spec, spec.datasets[0], "val").labels["fine_class"][:3]
    ... # doctest: +SKIP
    array([0, 0, 0], dtype=int32)
    """
    raw = _read_tokens(spec, dataset, split)
    labels = {}
    for head_name, column in raw.tokens.items():
        head = spec.head(head_name)
        labels[head_name] = _encode(spec, dataset, head, column, raw.where)
    return Split(
        dataset=dataset.name,
        split=split,
        refs=raw.refs,
        labels=labels,
        image_stream=raw.image_stream,
    )


def read_catalogue(spec, dataset):
    """The dataset's catalogue images, labelled with its id head's ids.

    A catalogue (the `catalogue:` setting of a dataset) is a CSV naming one
    or more reference images per product, e.g. grocery's `classes.csv` with
    its iconic images; retrieval evaluation searches it with photos.

    Returns:
        A `Split` named `catalogue`, labels `{id head: ids}`.
    """
    settings = dataset.options["catalogue"]
    path = Path(settings["file"])
    field = f"{spec.path.name}: datasets.{dataset.name}.catalogue"
    table = read_table(path, f"{field}.file")
    for key in ("image", "id"):
        if settings[key] not in table.header:
            raise SpecError(
                f"{field}.{key}: column {settings[key]!r} not in {path.name} "
                f"(has {table.header})"
            )
    head = spec.head(settings["head"])
    refs, tokens, where = [], [], []
    for number, row in table.rows:
        origin = f"{path}:{number}"
        image = dataset_path(row[settings["image"]], origin, root_relative=True)
        token = _parse_token(row[settings["id"]])
        if not token:
            raise SpecError(
                f"{origin}: no id in column {settings['id']!r} (a catalogue "
                "image needs its product)"
            )
        refs.append(str(dataset.root / image))
        tokens.append(token)
        where.append(origin)
    ids = _encode(spec, dataset, head, tokens, where)
    return Split(
        dataset=dataset.name,
        split="catalogue",
        refs=refs,
        labels={head.name: ids},
    )


def resolve_vocabularies(spec):
    """Fills in the classes of heads declared `classes: inferred`.

    Names come from the training split (`train`, else the first split) of
    every dataset feeding the head, sorted; integer ids give classes
    `"0" .. str(max id)`; tfds `ClassLabel` features give their own names.
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
        raw = _read_tokens(spec, dataset, split)
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


def _encode(spec, dataset, head, column, where):
    """Turns label tokens into ids, checking them against the vocabulary."""
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


def _read_tokens(spec, dataset, split):
    if split not in dataset.splits:
        raise SpecError(
            f"{spec.path.name}: datasets.{dataset.name}.splits: no split "
            f"{split!r} (has {', '.join(dataset.splits)})"
        )
    reader = _READERS[dataset.source]
    who = f"{spec.path.name}: datasets.{dataset.name}.splits.{split}"
    return reader(spec, dataset, dataset.splits[split], who)


def _parse_token(text):
    """Label tokens of one cell: ints (class ids) or names; -1 is unknown."""
    text = text.strip()
    if not text or text == "-1":
        return ()
    parts = [p.strip() for p in text.split("|") if p.strip()]
    return tuple(p if parse_int(p) is None else parse_int(p) for p in parts)


def _path_part(spec, dataset, relative, column, where):
    k = parse_int(column.split(":", 1)[1])  # an int: checked by the spec
    try:
        return (Path(relative).parts[k],)
    except (TypeError, IndexError):
        raise SpecError(
            f"{where}: feed {column!r} of dataset '{dataset.name}': the path "
            f"{relative!r} has no component {column.split(':', 1)[1]}"
        ) from None


def _collect(spec, dataset, rows, label_of):
    """Builds `_Tokens` from `(relative_path, where, row)` triples."""
    refs, where = [], []
    tokens = {head: [] for head in dataset.feeds}
    tag_tables = _tag_tables(spec, dataset)
    for relative, origin, row in rows:
        refs.append(str(dataset.root / relative))
        where.append(origin)
        for head, column in dataset.feeds.items():
            if head in tag_tables:
                column = column["column"]
            if isinstance(column, str) and column.startswith("path:"):
                value = _path_part(spec, dataset, relative, column, origin)
            else:
                value = label_of(row, column, origin)
            if head in tag_tables:
                value = _tags_of(tag_tables[head][0], value, head, origin)
            tokens[head].append(value)
    vocabularies = {head: table[1] for head, table in tag_tables.items()}
    return _Tokens(
        refs=refs, tokens=tokens, where=where, vocabularies=vocabularies
    )


def _tag_tables(spec, dataset):
    """Head -> (product -> tags, vocabulary) for the dataset's tag feeds."""
    from grok_tf.data.query_mining import read_tag_table

    tables = {}
    for head, column in dataset.feeds.items():
        if isinstance(column, dict):
            try:
                tables[head] = read_tag_table(column["tags"], dataset.root)
            except ValueError as error:
                raise SpecError(
                    f"{spec.path.name}: datasets.{dataset.name}.feeds.{head}"
                    f".tags: {error}"
                ) from None
    return tables


def _tags_of(table, products, head, origin):
    tags = set()
    for product in products:
        if product not in table:
            raise SpecError(
                f"{origin}: head '{head}': product {product!r} has no row in "
                "its tag table"
            )
        tags.update(table[product])
    return tuple(sorted(tags))


def _read_image_list(spec, dataset, ref, who):
    name, bounds = split_slice(ref)
    path = dataset.root / name
    records = apply_slice(list(read_list(path, who)), bounds)

    def rows():
        for number, fields in records:
            origin = f"{path}:{number}"
            yield dataset_path(fields[0], origin), origin, fields[1:]

    def label_of(row, column, origin):
        if not isinstance(column, int) or column < 0:
            raise SpecError(
                f"{spec.path.name}: datasets.{dataset.name}.feeds: an "
                f"image_list column is a label index >= 0 or 'path:K', got "
                f"{column!r}"
            )
        if column >= len(row):
            raise SpecError(
                f"{origin}: has {len(row)} label columns, feed of dataset "
                f"'{dataset.name}' asks for column {column}"
            )
        return _parse_token(row[column])

    return _collect(spec, dataset, rows(), label_of)


def _read_image_folder(spec, dataset, ref, who):
    name, bounds = split_slice(ref)
    folder = dataset.root / name
    files = sorted(
        p
        for p in folder.glob("*/*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    files = apply_slice(files, bounds)

    def rows():
        for file in files:
            yield file.relative_to(dataset.root), str(file), file.parent.name

    def label_of(row, column, origin):
        if column != "class_folder":
            raise SpecError(
                f"{spec.path.name}: datasets.{dataset.name}.feeds: an "
                f"image_folder column is 'class_folder' or 'path:K', got "
                f"{column!r}"
            )
        return (row,)

    return _collect(spec, dataset, rows(), label_of)


def _read_csv_tags(spec, dataset, ref, who):
    name, bounds = split_slice(ref)
    path = dataset.root / name
    table = read_table(path, who)
    header = table.header
    if "image" not in header:
        raise SpecError(f"{path}: no 'image' column (has {header})")
    records = apply_slice(table.rows, bounds)

    def rows():
        for number, row in records:
            origin = f"{path}:{number}"
            yield dataset_path(row["image"], origin), origin, row

    def label_of(row, column, origin):
        if column not in header:
            raise SpecError(
                f"{spec.path.name}: datasets.{dataset.name}.feeds: column "
                f"{column!r} not in {path.name} (has {header})"
            )
        return _parse_token(row[column])

    return _collect(spec, dataset, rows(), label_of)


def _read_synthetic(spec, dataset, ref, who):
    from grok_tf.data.synthetic.catalog import VOCABULARY_FILES
    from grok_tf.data.synthetic.catalog import CatalogConfig
    from grok_tf.data.synthetic.catalog import generate_synthetic_catalog

    options = dict(dataset.options.get("config") or {})
    options.setdefault("seed", dataset.options.get("seed", 0))
    try:
        config = CatalogConfig(**options)
    except TypeError as error:
        raise SpecError(
            f"{spec.path.name}: datasets.{dataset.name}.config: {error}"
        ) from None
    generate_synthetic_catalog(dataset.root, config)
    if not (dataset.root / split_slice(ref)[0]).exists():
        raise SpecError(
            f"{spec.path.name}: datasets.{dataset.name}.splits: split file "
            f"not found: {dataset.root / split_slice(ref)[0]}"
        )
    tokens = _read_image_list(spec, dataset, ref, who)
    for head, column in dataset.feeds.items():
        if isinstance(column, int) and 0 <= column < len(VOCABULARY_FILES):
            file = dataset.root / VOCABULARY_FILES[column]
            lines = read_lines(
                file, f"{spec.path.name}: datasets.{dataset.name}"
            )
            tokens.vocabularies[head] = tuple(text for _, text in lines)
    return tokens


def _read_tfds(spec, dataset, ref, who):
    import tensorflow_datasets as tfds

    catalog = dataset.options["catalog"]
    image_key = dataset.options.get("image_key", "image")

    def load():
        builder = tfds.builder(
            catalog, data_dir=dataset.options.get("data_dir")
        )
        ds = builder.as_dataset(
            split=ref,
            shuffle_files=False,
            decoders={image_key: tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(add_tfds_id=True),
        )
        return builder, ds

    try:
        builder, ds = load()
    except Exception as error:  # tfds raises many unrelated error types
        raise SpecError(
            f"{spec.path.name}: datasets.{dataset.name}: cannot read tfds "
            f"catalogue {catalog!r} split {ref!r}: {error}"
        ) from error
    features = builder.info.features
    if image_key not in features:
        raise SpecError(
            f"{spec.path.name}: datasets.{dataset.name}.image_key: {catalog} "
            f"has no feature {image_key!r}"
        )
    vocabularies = {}
    for head, column in dataset.feeds.items():
        if column not in features:
            raise SpecError(
                f"{spec.path.name}: datasets.{dataset.name}.feeds.{head}: "
                f"{catalog} has no feature {column!r} (has "
                f"{', '.join(features.keys())})"
            )
        feature = features[column]
        feature = getattr(feature, "feature", feature)
        names = getattr(feature, "names", None)
        if names:
            vocabularies[head] = tuple(names)
    prefix = f"tfds:{catalog}/"
    refs = []
    tokens = {head: [] for head in dataset.feeds}
    labels_only = ds.map(
        lambda example: {
            "tfds_id": example["tfds_id"],
            **{column: example[column] for column in dataset.feeds.values()},
        }
    )
    for example in tfds.as_numpy(labels_only):
        refs.append(prefix + example["tfds_id"].decode())
        for head, column in dataset.feeds.items():
            value = np.atleast_1d(example[column])
            tokens[head].append(tuple(int(v) for v in value if v >= 0))

    def image_stream():
        return load()[1].map(
            lambda example: (prefix + example["tfds_id"], example[image_key])
        )

    return _Tokens(
        refs=refs,
        tokens=tokens,
        where=list(refs),
        image_stream=image_stream,
        vocabularies=vocabularies,
    )


_READERS = {
    "image_list": _read_image_list,
    "image_folder": _read_image_folder,
    "csv_tags": _read_csv_tags,
    "synthetic": _read_synthetic,
    "tfds": _read_tfds,
}
