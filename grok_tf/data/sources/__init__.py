"""Dataset sources: read one split of one dataset into images and labels.

Every source yields the same thing, a `Split`: image references (file
paths, or tfds ids with a stream of encoded bytes) and, for each head the
dataset feeds, integer class ids. Softmax heads get one id per image (-1
when unlabelled); multi-label heads get a padded id list per image (-1
padding).

A source (the `source:` field of a dataset in a spec) is a `DatasetSource`
subclass registered with `register_source`: it declares the spec keys it
takes and what its split entries are (`base.py`), and reads a split into
label tokens. The built-in ones, one module each:

- `image_list`: a text file of `path, label, label, ...` lines, paths
  relative to `root`; feed column `K` is the K-th label after the path.
- `image_folder`: `root/<split>/<class>/*.jpg`; feed column `class_folder`.
- `csv_tags`: a CSV with an `image` column (path relative to `root`) and
  label columns of `|`-joined names; feed column = the CSV column name.
- `tfds`: a TensorFlow Datasets catalogue name; feed column = a feature name
  (`ClassLabel` or a sequence of them). Images stay encoded and streamed.
- `synthetic`: the package's synthetic catalogue, generated into `root` on
  first use, then read as an `image_list`.
- `catalogue`: the catalogue images of another dataset (`of:`), as
  training data; feed column = a column of that catalogue's CSV.
- `pseudo_labels`: the accepted crops of a `grok-tf pseudo-label` folder
  (`grok_tf.weak_supervision`), in the id space of another dataset
  (`of:`); feed column `product` or `product_id`.

An id head (ArcFace, pairwise) fed by datasets of different products
(grocery and cars, say) keeps their ids apart: its classes are named
`<space>/<label>`, a dataset's space being its name (a `catalogue`
dataset's is its `of:`), and inferred classes are built that way.

Every file source also accepts feed column `path:K`, the K-th component of
the image's relative path (e.g. `path:1` of `train/Fruit/Apple/x.jpg` is
`Fruit`). Split names may slice their file: `tags.csv[:90%]`, `val.txt[:200]`.

Shared machinery: `slices.py` (`[a:b]` split slices), `tokens.py` (label
tokens before encoding, `path:K` feeds), `tags.py` (tag feeds),
`labels.py` (tokens -> class ids), `splits.py` (`Split`, `read_split`,
`read_catalogue`), `vocabularies.py` (`resolve_vocabularies` for
`classes: inferred`).

Text files are read by `grok_tf.io.text_files`: UTF-8 (with or without BOM),
CSV quoting, one error line `FILE:LINE: what is wrong` for a malformed
line. Image paths are relative to `root` and may not leave it (`..`); in
a list file or a `csv_tags` CSV an absolute path is an error, in a
catalogue a leading `/` means `root` (grocery's `classes.csv`).
"""

from grok_tf.data.sources.base import DatasetSource
from grok_tf.data.sources.base import SpecReader
from grok_tf.data.sources.catalogue import CatalogueSource
from grok_tf.data.sources.csv_tags import CsvTagsSource
from grok_tf.data.sources.image_folder import IMAGE_SUFFIXES
from grok_tf.data.sources.image_folder import ImageFolderSource
from grok_tf.data.sources.image_list import ImageListSource
from grok_tf.data.sources.labels import encode_labels
from grok_tf.data.sources.labels import id_spaces
from grok_tf.data.sources.pseudo_labels import PseudoLabelSource
from grok_tf.data.sources.registry import register_source
from grok_tf.data.sources.registry import source
from grok_tf.data.sources.registry import source_names
from grok_tf.data.sources.registry import unregister_source
from grok_tf.data.sources.slices import apply_slice
from grok_tf.data.sources.slices import split_slice
from grok_tf.data.sources.splits import Split
from grok_tf.data.sources.splits import read_catalogue
from grok_tf.data.sources.splits import read_catalogues
from grok_tf.data.sources.splits import read_split
from grok_tf.data.sources.splits import read_tokens
from grok_tf.data.sources.synthetic import SyntheticSource
from grok_tf.data.sources.tfds import TfdsSource
from grok_tf.data.sources.tokens import Tokens
from grok_tf.data.sources.tokens import collect_tokens
from grok_tf.data.sources.tokens import parse_token
from grok_tf.data.sources.vocabularies import MAX_INFERRED_CLASSES
from grok_tf.data.sources.vocabularies import resolve_vocabularies

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_INFERRED_CLASSES",
    "CatalogueSource",
    "CsvTagsSource",
    "DatasetSource",
    "ImageFolderSource",
    "ImageListSource",
    "PseudoLabelSource",
    "SpecReader",
    "Split",
    "SyntheticSource",
    "TfdsSource",
    "Tokens",
    "apply_slice",
    "collect_tokens",
    "encode_labels",
    "id_spaces",
    "parse_token",
    "read_catalogue",
    "read_catalogues",
    "read_split",
    "read_tokens",
    "register_source",
    "resolve_vocabularies",
    "source",
    "source_names",
    "split_slice",
    "unregister_source",
]
