"""Latency of the exported SavedModel vs the bare Keras forward pass.

    python benchmarks/serving_latency.py [--run RUN_DIR --model-dir MODEL_DIR]
        [--images FOLDER] [--batches 1 32] [--repeats 20] [--warmup 3]

Times, at each batch size and in the same run, the paths an image can take
to the model's outputs:

- `bare model(x)`: `model(images, training=False)` of the run's Keras model
  (`grok_tf.run_dir.load_run`), eager, on pre-decoded, pre-resized float32
  `[N, S, S, 3]` (the photos prepared by the run's `EvalPreprocessor`, as
  in evaluation): the trunk and heads only;
- `bare, tf.function`: the same call traced once into a graph, as the
  SavedModel's signatures are: the compiled forward, the reference of the
  `x graph` ratios;
- `serving_images, resized`: the exported `serving_images` signature
  (`tf.saved_model.load`) on those same float tensors: adds its in-graph
  resize (`resize_for_eval` again, the whole batch in one op: centre
  0.875 crop of the S x S inputs resampled to S), calibration, top-k, the
  Catalyzer hash and the validity masking;
- `serving_images, photo size`: `serving_images` on the photos decoded at
  full size (when they all share one): adds the real resize;
- `serving_default, JPEG`: the `serving_default` signature on the encoded
  bytes: adds decoding (DCT-scaled for JPEGs at least about twice the
  input), the images of a request in parallel. The whole request a TF
  Serving client sends.

Inputs are real photos: the validation images of the run's spec (the
synthetic demo catalogue for the default run) or, with `--images`, the
image files of a folder, repeated to fill a batch. Each repeat calls every
path once, in turn, so a load change on a shared CPU hits all paths alike;
ms/batch is the median over `--repeats` after `--warmup` calls per path,
each call's outputs fetched to NumPy (as a client would). `x bare` divides
by the eager bare row, `x graph` by the `tf.function` one; `best x graph`
divides the fastest calls (the least disturbed by other load) and
`paired` is the median over repeats of each call divided by the
`tf.function` call of the same repeat (a few ms apart: the steadiest
ratio when other processes share the CPU). The last lines repeat the
ratios `serving_default, JPEG` / compiled forward at each batch size.

Without `--run` / `--model-dir` the script builds its own run in a temporary
directory: `data_specs/demo.yaml` trained for 1 epoch of 5 steps, then
calibrated, compressed and exported (a minute or two on CPU; the synthetic
catalogue is generated into `${GROK_CACHE:-~/.cache/grok_tf}` on first use).
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from grok_tf.data.images import EvalPreprocessor  # noqa: E402
from grok_tf.data.images import decode_image  # noqa: E402
from grok_tf.data.sources import IMAGE_SUFFIXES  # noqa: E402
from grok_tf.serving.export import DEFAULT_SIGNATURE  # noqa: E402
from grok_tf.serving.export import IMAGE_BYTES  # noqa: E402
from grok_tf.serving.export import IMAGES  # noqa: E402
from grok_tf.serving.export import IMAGES_SIGNATURE  # noqa: E402


def build_run(folder, steps=5):
    """Trains, calibrates, compresses and exports a tiny demo run."""
    from grok_tf.calibration.calibrate import calibrate_run
    from grok_tf.compression.compress import compress_run
    from grok_tf.demo import demo_spec_path
    from grok_tf.serving.export import export_run
    from grok_tf.training.fit import train

    run, model_dir = folder / "run", folder / "saved_model"
    start = time.perf_counter()
    train(demo_spec_path(), run, epochs=1, steps_per_epoch=steps, verbose=0)
    calibrate_run(run)
    compress_run(run, verbose=0)
    export_run(run, model_dir)
    print(
        f"built a demo run (1 epoch x {steps} steps, calibrated, compressed, "
        f"exported) in {time.perf_counter() - start:.0f} s: {folder}"
    )
    return run, model_dir


def photo_files(spec, folder, count):
    """`count` image files: the folder's, or the spec's validation split."""
    if folder:
        files = sorted(
            p
            for p in Path(folder).iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES
        )
        where = f"folder {folder}"
    else:
        from grok_tf.data.sources import read_split

        files = []
        for dataset in spec.datasets:
            if "val" in dataset.splits:
                files += read_split(spec, dataset, "val").refs[:count]
        files = [Path(f) for f in files[:count] if Path(f).is_file()]
        where = "validation split of the run's spec"
    if not files:
        sys.exit(f"no image files found in the {where}: pass --images FOLDER")
    return [files[i % len(files)] for i in range(count)], where


def fetch(outputs):
    """Every output as NumPy: the timed call ends when a client has them."""
    return tf.nest.map_structure(lambda value: value.numpy(), outputs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="trained run directory")
    parser.add_argument(
        "--model-dir", type=Path, help="its exported SavedModel base path"
    )
    parser.add_argument("--images", type=Path, help="folder of photos")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    if (args.run is None) != (args.model_dir is None):
        parser.error("give both --run and --model-dir, or neither")

    from grok_tf.run_dir import load_run
    from grok_tf.serving.export import latest_version

    with tempfile.TemporaryDirectory(prefix="serving_latency_") as tmp:
        run, model_dir = args.run, args.model_dir
        if run is None:
            run, model_dir = build_run(Path(tmp))
        spec, model = load_run(run)
        version = latest_version(model_dir)
        loaded = tf.saved_model.load(str(version))
        signatures = {
            name: loaded.signatures[name]
            for name in (DEFAULT_SIGNATURE, IMAGES_SIGNATURE)
        }
        files, where = photo_files(spec, args.images, max(args.batches))
        size = spec.model.input_size
        encoded = [f.read_bytes() for f in files]
        decoded = [decode_image(data) for data in encoded]
        preprocessor = EvalPreprocessor.for_spec(spec)
        resized = [preprocessor(data) for data in encoded]
        shapes = sorted({tuple(image.shape) for image in decoded})
        bare_graph = tf.function(lambda x: model(x, training=False))

        cpus = len(os.sched_getaffinity(0))
        threads = tf.config.threading.get_intra_op_parallelism_threads()
        print(
            f"machine: {platform.machine()}, {cpus} usable cores "
            f"(os.cpu_count {os.cpu_count()}), TF {tf.__version__}, "
            f"intra-op threads {threads or 'auto'}"
        )
        print(
            f"model: trunk {spec.model.trunk}, input {size}x{size}, "
            f"{len(model.outputs)} outputs, SavedModel {version}"
        )
        print(
            f"photos: {len(set(files))} distinct from the {where}, decoded "
            f"{', '.join('x'.join(map(str, s[:2])) for s in shapes)}, "
            f"JPEG mean {np.mean([len(d) for d in encoded]) / 1024:.1f} KiB"
        )
        if len(shapes) > 1:
            print(
                "  (photos differ in size: no `serving_images, photo size` "
                "row, it needs one [N, H, W, 3] tensor)"
            )
        print(
            f"timing: median of {args.repeats} repeats after {args.warmup} "
            "warm-up calls per path, paths interleaved"
        )
        print()
        print(
            f"{'batch':>5}  {'path':<28} {'ms/batch':>9} {'images/s':>9} "
            f"{'x bare':>7} {'x graph':>7} {'best ms':>8} {'best x graph':>12}"
            f" {'paired':>6}"
        )
        served = {}
        for batch in args.batches:
            x = tf.stack(resized[:batch])
            paths = {
                "bare model(x), eager": lambda x=x: model(x, training=False),
                "bare, tf.function": lambda x=x: bare_graph(x),
                "serving_images, resized": lambda x=x: signatures[
                    IMAGES_SIGNATURE
                ](**{IMAGES: x}),
            }
            if len(shapes) == 1:
                photos = tf.cast(tf.stack(decoded[:batch]), tf.float32)
                paths["serving_images, photo size"] = lambda p=photos: (
                    signatures[IMAGES_SIGNATURE](**{IMAGES: p})
                )
            data = tf.constant(encoded[:batch], tf.string)
            paths["serving_default, JPEG"] = lambda d=data: signatures[
                DEFAULT_SIGNATURE
            ](**{IMAGE_BYTES: d})
            for call in paths.values():
                for _ in range(args.warmup):
                    fetch(call())
            times = {name: [] for name in paths}
            for _ in range(args.repeats):
                for name, call in paths.items():
                    start = time.perf_counter()
                    fetch(call())
                    times[name].append(time.perf_counter() - start)
            ms = {k: 1000 * statistics.median(t) for k, t in times.items()}
            best = {k: 1000 * min(t) for k, t in times.items()}
            bare, graph = ms["bare model(x), eager"], ms["bare, tf.function"]
            paired = {
                name: statistics.median(
                    a / b
                    for a, b in zip(t, times["bare, tf.function"], strict=True)
                )
                for name, t in times.items()
            }
            for name, value in ms.items():
                fastest = best[name] / best["bare, tf.function"]
                print(
                    f"{batch:>5}  {name:<28} {value:>9.2f} "
                    f"{1000 * batch / value:>9.0f} {value / bare:>7.2f} "
                    f"{value / graph:>7.2f} {best[name]:>8.2f} "
                    f"{fastest:>12.2f} {paired[name]:>6.2f}"
                )
            jpeg = "serving_default, JPEG"
            served[batch] = (
                ms[jpeg] / graph,
                best[jpeg] / best["bare, tf.function"],
                paired[jpeg],
            )
        print()
        for batch, (median, fastest, pair) in served.items():
            print(
                f"serving_default(JPEG) / compiled forward, batch {batch}: "
                f"{median:.2f}x (medians), {fastest:.2f}x (best calls), "
                f"{pair:.2f}x (paired)"
            )


if __name__ == "__main__":
    main()
