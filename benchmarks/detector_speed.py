"""Speed of the weak-supervision detectors on real grocery photos.

    python benchmarks/detector_speed.py [--photos 100] [--threads N]
        [--detector TEXT ...] [--warmup 3]

Runs each detector over `--photos` grocery validation photos (spread
evenly over `$GROK_DATA/grocery/val.txt`, mostly 348 x 348) as
pseudo-labelling does: decode the file, `detect` with the default
`DetectorOptions`, `crop` every detection. Detectors are `make_detector`
texts; by default `whole` and the shared SSD-MobileNet v1,
`tflite:$GROK_MODELS/ssd_mobilenet_v1` (`GROK_MODELS` defaults to
`../shared/models` beside the repository), run by LiteRT with `--threads`
threads (LiteRT's default when not given).

Decoding (reading the file and `grok_tf.data.images.decode_image` to
uint8, as a graph) is timed once, on its own, and is the same for every
detector.
Per detector the table shows crops per photo, ms per photo of detect +
crop, photos/s without decoding, then photos/s and crops/s with the
decode time added (end to end). The first `--warmup` photos run once
before timing (the first call of a model builds its kernels).
"""

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from grok_tf.data.images import decode_image  # noqa: E402
from grok_tf.weak_supervision.detectors import TFLiteSSDDetector  # noqa: E402
from grok_tf.weak_supervision.detectors import crop  # noqa: E402
from grok_tf.weak_supervision.detectors import make_detector  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def photo_paths(count):
    """`count` grocery val photos, spread evenly over `val.txt`."""
    root = Path(os.environ.get("GROK_DATA", REPO.parent / "shared/datasets"))
    lines = (root / "grocery/val.txt").read_text().splitlines()
    paths = [root / "grocery" / line.split(",")[0] for line in lines if line]
    count = min(count, len(paths))
    return [paths[i * len(paths) // count] for i in range(count)]


def decoded(paths):
    """`(photos, seconds)`: uint8 arrays and the time to read + decode.

    `decode_image` runs as a graph, traced once beforehand, as in the
    `tf.data` pipeline of pseudo-labelling (eagerly, its header checks and
    guarded decode cost several times more than the decode itself).
    """
    decode = tf.function(
        decode_image, input_signature=[tf.TensorSpec([], tf.string)]
    )
    decode(tf.constant(paths[0].read_bytes()))
    start = time.perf_counter()
    photos = [decode(tf.constant(p.read_bytes())).numpy() for p in paths]
    return photos, time.perf_counter() - start


def timed(detector, photos, warmup):
    """`(crops, seconds)` of detect + crop over `photos`."""
    for photo in photos[:warmup]:
        detector.detect(photo)
    crops = 0
    start = time.perf_counter()
    for photo in photos:
        for detection in detector.detect(photo):
            crop(photo, detection)
            crops += 1
    return crops, time.perf_counter() - start


def build(text, threads):
    detector = make_detector(text)
    if threads and isinstance(detector, TFLiteSSDDetector):
        detector = TFLiteSSDDetector(
            detector.model_path, detector.label_map, num_threads=threads
        )
    return detector


def main():
    models = Path(os.environ.get("GROK_MODELS", REPO.parent / "shared/models"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--detector",
        action="append",
        help="a make_detector text, repeatable (default: whole and the "
        f"SSD in {models / 'ssd_mobilenet_v1'})",
    )
    args = parser.parse_args()
    texts = args.detector or ["whole", f"tflite:{models / 'ssd_mobilenet_v1'}"]

    paths = photo_paths(args.photos)
    photos, decode_s = decoded(paths)
    n = len(photos)
    print(
        f"{n} grocery val photos, {platform.processor() or platform.machine()}"
        f", {os.cpu_count()} CPUs, LiteRT threads: {args.threads or 'default'}"
    )
    print(
        f"decode (read + decode_image graph): {1000 * decode_s / n:.2f} "
        f"ms/photo, {n / decode_s:.0f} photos/s"
    )
    header = (
        f"{'detector':<28} {'crops/photo':>11} {'ms/photo':>9} "
        f"{'photos/s':>9} {'photos/s+dec':>12} {'crops/s+dec':>11}"
    )
    print(header)
    print("-" * len(header))
    for text in texts:
        crops, seconds = timed(build(text, args.threads), photos, args.warmup)
        total = seconds + decode_s
        kind, _, path = text.partition(":")
        name = text if len(text) <= 28 else f"{kind}:.../{Path(path).name}"
        print(
            f"{name:<28} {crops / n:>11.2f} {1000 * seconds / n:>9.2f} "
            f"{n / seconds:>9.0f} {n / total:>12.0f} {crops / total:>11.0f}"
        )


if __name__ == "__main__":
    main()
