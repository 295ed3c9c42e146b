"""ImageNet accuracy of the converted EfficientNet-Lite0 on grocery photos.

    python benchmarks/efficientnet_lite0_imagenet.py [--size 224]
        [--per-product N]

Runs the ImageNet classifier converted from the PyTorch checkpoint
(`efficientnet_lite0_classifier(weights="imagenet")`, without its built-in
preprocessing) on the grocery TRAINING photos of the 14 products that are
ImageNet classes, once per candidate input preprocessing, and prints the
top-1 / top-5 rates, overall and per product. Photos are resized for
evaluation (shorter side to size / 0.875, centre crop, antialiased).

Candidates:

* ``lite``: (x - 127) / 128, TensorFlow EfficientNet-lite's own scaling;
* ``imagenet``: ImageNet mean / std on the 0-255 scale (torchvision's);
* ``unit``: x / 255.

Reads `${GROK_DATA:-../shared/datasets}/grocery`; converts the weights on
first use into `${GROK_CACHE:-~/.cache/grok_tf}/weights/`.

Reference:
    Tan, Le. "EfficientNet: Rethinking Model Scaling for Convolutional
    Neural Networks". ICML 2019. Klasson, Zhang, Kjellstrom. "A Hierarchical
    Grocery Store Image Dataset with Visual and Semantic Labels". WACV 2019.
"""

import argparse
import csv
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from grok_tf.data.images import decode_image  # noqa: E402
from grok_tf.data.images import resize_for_eval  # noqa: E402
from grok_tf.model.pretrained import efficientnet_lite0 as converter  # noqa: E402
from grok_tf.model.pretrained.efficientnet_lite0 import (  # noqa: E402
    GROCERY_IMAGENET_CLASSES as IMAGENET_CLASS,
)
from grok_tf.model.trunks import efficientnet_lite  # noqa: E402
from grok_tf.model.trunks.resnext import IMAGENET_MEAN_255  # noqa: E402
from grok_tf.model.trunks.resnext import IMAGENET_STD_255  # noqa: E402

#: Candidate name -> function of the [0, 255] float32 images.
CANDIDATES = {
    "lite": lambda x: (x - 127.0) / 128.0,
    "imagenet": lambda x: (
        (x - np.asarray(IMAGENET_MEAN_255, "float32"))
        / np.asarray(IMAGENET_STD_255, "float32")
    ),
    "unit": lambda x: x / 255.0,
}


def grocery_photos(root, per_product=None):
    """(path, product name) of the training photos of `IMAGENET_CLASS`.

    Args:
        root: The `grocery/` folder.
        per_product: Keep at most this many photos per product (the first
            ones of `train.txt`), or all if None.

    Returns:
        A list of (Path, fine class name) in `train.txt` order.
    """
    with open(root / "classes.csv", newline="") as file:
        rows = list(csv.reader(file))[1:]
    names = {int(row[1]): row[0] for row in rows}
    missing = set(IMAGENET_CLASS) - set(names.values())
    if missing:
        raise ValueError(f"{root}/classes.csv lacks {sorted(missing)}.")
    photos, counts = [], {}
    for line in (root / "train.txt").read_text().splitlines():
        if not line.strip():
            continue
        path, fine, _ = (part.strip() for part in line.split(","))
        name = names[int(fine)]
        if name not in IMAGENET_CLASS:
            continue
        if per_product is not None and counts.get(name, 0) >= per_product:
            continue
        counts[name] = counts.get(name, 0) + 1
        photos.append((root / path, name))
    return photos


def load_images(photos, size):
    """Decodes and eval-resizes the photos to float32 [N, size, size, 3]."""
    return np.stack(
        [
            resize_for_eval(decode_image(tf.io.read_file(str(path))), size)
            for path, _ in photos
        ]
    ).astype("float32")


def rates(logits, photos):
    """Top-1 and top-5 hit arrays of `logits` against `IMAGENET_CLASS`."""
    targets = np.asarray([IMAGENET_CLASS[name] for _, name in photos])
    top5 = np.argsort(-logits, axis=1)[:, :5]
    return top5[:, 0] == targets, (top5 == targets[:, None]).any(axis=1)


def main():
    """Prints the rates of every preprocessing candidate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--per-product", type=int, default=None)
    args = parser.parse_args()
    data = Path(
        os.environ.get(
            "GROK_DATA", Path(__file__).resolve().parents[2] / "shared/datasets"
        )
    )
    start = time.perf_counter()
    converter.convert_efficientnet_lite0()
    print(f"weights ready in {time.perf_counter() - start:.1f} s")
    photos = grocery_photos(data / "grocery", args.per_product)
    images = load_images(photos, args.size)
    model = efficientnet_lite.efficientnet_lite0_classifier(
        (args.size, args.size, 3),
        weights="imagenet",
        include_preprocessing=False,
    )
    products = list(dict.fromkeys(name for _, name in photos))
    names = np.asarray([name for _, name in photos])
    print(f"{len(photos)} photos of {len(products)} products, {args.size}px")
    results = {}
    for candidate, preprocess in CANDIDATES.items():
        start = time.perf_counter()
        logits = model.predict(preprocess(images), batch_size=32, verbose=0)
        top1, top5 = rates(logits, photos)
        results[candidate] = (top1, top5)
        print(
            f"{candidate:9s} top-1 {top1.mean():.3f}  top-5 {top5.mean():.3f}"
            f"  ({time.perf_counter() - start:.1f} s)"
        )
    header = "product              n  " + "  ".join(
        f"{c:>11s}" for c in CANDIDATES
    )
    print("\nper product, top-1/top-5")
    print(header)
    for product in products:
        mask = names == product
        cells = "  ".join(
            f"{top1[mask].mean():.2f}/{top5[mask].mean():.2f}".rjust(11)
            for top1, top5 in results.values()
        )
        print(f"{product:19s} {mask.sum():3d}  {cells}")


if __name__ == "__main__":
    main()
