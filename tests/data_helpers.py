"""Small on-disk datasets for tests: real JPEG files and list files."""

import copy
import struct
import zlib

import numpy as np
import yaml
from PIL import Image

#: Seconds a subprocess or wait may take before a test calls it hung: a
#: guard against hangs only, never a speed limit (a 2-core machine under
#: load ran one multi-worker training for 360 s).
HANG_GUARD = 1200

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def write_image(path, colour, size=40, seed=0):
    """A JPEG of a coloured square on noise: learnable, real to decode."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    lo, hi = size // 4, 3 * size // 4
    pixels[lo:hi, lo:hi] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=92)


def write_colour_list(root, name, per_class=4, seed=0, shapes=True):
    """Writes `root/name` lines `images/x.jpg, colour_id, shape_id`."""
    lines = []
    for c, (colour, rgb) in enumerate(COLOURS.items()):
        for k in range(per_class):
            relative = f"images/{name}_{colour}_{k}.jpg"
            write_image(root / relative, rgb, seed=seed * 100 + c * 10 + k)
            label = f", {k % 2}" if shapes else ""
            lines.append(f"{relative}, {c}{label}")
    (root / name).write_text("\n".join(lines) + "\n")


def make_colour_dataset(root):
    """A 2-head, 1-dataset toy dataset; returns its spec as a dict."""
    write_colour_list(root, "train.txt", per_class=4, seed=0)
    write_colour_list(root, "val.txt", per_class=2, seed=1)
    (root / "colours.txt").write_text("\n".join(COLOURS) + "\n")
    return {
        "model": {"trunk": "small_cnn", "input_size": 32},
        "training": {"epochs": 1, "steps_per_epoch": 2},
        "heads": [
            {
                "name": "colour",
                "type": "softmax",
                "classes": {"file": "data/colours.txt"},
            },
            {"name": "shape", "type": "softmax", "classes": ["square", "disc"]},
        ],
        "datasets": [
            {
                "name": "toy",
                "source": "image_list",
                "root": "data",
                "splits": {"train": "train.txt", "val": "val.txt"},
                "images_per_batch": 4,
                "feeds": {"colour": 0, "shape": 1},
            }
        ],
    }


def write_spec(folder, raw, name="spec.yaml"):
    path = folder / name
    path.write_text(yaml.safe_dump(copy.deepcopy(raw), sort_keys=False))
    return path


def add_query_tag_feed(raw, table="products.csv", max_share=0.7):
    """Adds an inferred multi-label `queries` head fed with the tags mined
    from `table` (columns id, name, description) to a toy spec dict."""
    raw["heads"].append(
        {"name": "queries", "type": "multilabel_arcface", "classes": "inferred"}
    )
    raw["datasets"][0]["feeds"]["queries"] = {
        "column": 0,
        "tags": {
            "file": table,
            "key": "id",
            "text": ["name", "description"],
            "max_share": max_share,
        },
    }
    return raw


def png_declaring(width, height):
    """A PNG signature and IHDR declaring any size, with a few bytes of data:
    what a decompression bomb's header looks like."""

    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(100)))
        + chunk(b"IEND", b"")
    )
