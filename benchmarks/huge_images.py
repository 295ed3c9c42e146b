"""Peak memory of training and serving with one huge image among ordinary ones.

    python benchmarks/huge_images.py [--model-dir MODEL_DIR] [--steps 3]
        [--batch 8] [--copies 4] [--train-side 12000] [--serve-side 8000]

    # the same table for another checkout of grok_tf, e.g. the last commit:
    git worktree add --detach /tmp/grok_before HEAD
    PYTHONPATH=/tmp/grok_before python benchmarks/huge_images.py

Measures the peak RSS (GB) of a fresh Python process per configuration,
without and with one oversized image in its input:

- training: `grok_tf.training.fit.train` of a tiny spec (trunk small_cnn,
  input 64, one softmax head, `--steps` steps of `--batch` images, no
  validation) on an `image_list` of 16 ordinary 640x480 JPEGs; "with" adds
  `--copies` lines naming one `--train-side`^2 JPEG (12000 x 12000: 432 MB
  of RGB at full size), so the shuffled stream surely draws it during
  those steps;
- serving: `tf.saved_model.load` of an exported run, then its
  `serving_default` signature called once on 4 ordinary JPEGs (warm-up)
  and twice on the measured batch: those 4, then those 4 plus one
  `--serve-side`^2 JPEG (8000 x 8000).

Each runs with three kinds of oversized image: a baseline JPEG, the same
pixels as a progressive JPEG (libjpeg keeps a progressive image's DCT
coefficients for the whole frame, 2 bytes per sample, whatever scale it
decodes at) and a tiny PNG whose IHDR declares 50,000 x 50,000 pixels
(7.5 GB of RGB), which should be refused from its header.

Per row: peak GB without and with the image, `with/without` (the bound
of the oversized-image issue: at most 1.5) and what became of the image.
In training `decoded Nx` counts how often the file was read during
`train()` (the growth of `rchar` in `/proc/self/io` divided by the file's
size; each read is one decode) and `skipped: reason` is its entry in the
run's `corrupt_images.json`; in serving it is the image's `valid` output.

The peak is `VmHWM` of `/proc/self/status`, not `ru_maxrss`: Linux carries
a parent's peak RSS over fork and exec into the child's `ru_maxrss`, so a
child of a 2 GB parent reports at least 2 GB. Children run one at a time
and import `grok_tf` from where this process imported it (shown in the
header): `PYTHONPATH=OTHER_CHECKOUT` measures that checkout's code.

Without `--model-dir` the script builds its own export in a temporary
directory first: `data_specs/demo.yaml` trained for 1 epoch of 2 steps,
then calibrated, compressed and exported (2 to 7 minutes on a shared
2-core CPU; the synthetic catalogue is generated into
`${GROK_CACHE:-~/.cache/grok_tf}` on first use). Writing the huge JPEGs
takes ~30 s; with code that decodes them at full size, expect several GB
per child.
"""

import argparse
import itertools
import json
import os
import platform
import resource
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

from child_process import measure_in_child
from serving_latency import build_run

ORDINARY = 16  # ordinary JPEGs written; the serving batch takes SERVED
SERVED = 4
ORDINARY_SIZE = (640, 480)
BOMB_SIDE = 50_000
BOUND = 1.5


def peak_gb():
    """This process's peak RSS so far, GB: `VmHWM`, else `ru_maxrss`.

    `ru_maxrss` is no fresh figure in a child (Linux carries the parent's
    peak into it over fork and exec); `VmHWM` is the peak of the child's
    own address space, which exec starts afresh.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def bytes_read():
    """Bytes this process has read through read() calls, or None."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def measure_training(spec, run_dir, big):
    """Runs in the child: `train()` of `spec`; returns the figures."""
    from grok_tf.training.fit import train

    before = bytes_read()
    start = time.perf_counter()
    train(spec, run_dir, verbose=0)
    seconds = time.perf_counter() - start
    after = bytes_read()
    result = {"peak_gb": peak_gb(), "seconds": seconds}
    corrupt = Path(run_dir) / "corrupt_images.json"
    files = json.loads(corrupt.read_text())["files"] if corrupt.exists() else {}
    name = Path(big).name if big else None
    skipped = {f: reason for f, reason in files.items() if Path(f).name == name}
    result["skipped"] = next(iter(skipped.values()), None)
    result["other_skipped"] = sorted(set(files) - set(skipped))
    if big and before is not None and after is not None:
        size = os.path.getsize(big)
        if size > 1 << 20:  # reads of a small file drown in the others
            result["reads"] = (after - before) / size
    return result


def measure_serving(version, files):
    """Runs in the child: `serving_default` on `files`; returns figures."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(version))
    signature = loaded.signatures["serving_default"]
    (key,) = signature.structured_input_signature[1]  # "image_bytes"
    ordinary = [Path(f).read_bytes() for f in files[:SERVED]]
    data = [Path(f).read_bytes() for f in files]
    start = time.perf_counter()
    valid = signature(**{key: tf.constant(ordinary)})["valid"].numpy()
    assert valid.all(), "an ordinary JPEG came back invalid"
    for _ in range(2):
        valid = signature(**{key: tf.constant(data)})["valid"].numpy()
    return {
        "peak_gb": peak_gb(),
        "seconds": time.perf_counter() - start,
        "valid": [bool(v) for v in valid],
    }


def child(args):
    """`--child KIND ...`: imports grok_tf as the parent did, measures."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, args.grok_root)
    import grok_tf

    kind, *rest = args.child
    if kind == "train":
        result = measure_training(rest[0], rest[1], rest[2] or None)
    else:
        result = measure_serving(rest[0], rest[1:])
    result["grok_tf"] = str(Path(grok_tf.__file__).parent)
    print(json.dumps(result))


def write_jpeg(path, width, height, seed, progressive=False):
    """A JPEG (quality 90, 4:2:0): colour ramps plus noise, photo-sized."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    start = rng.integers(0, 60, 3)  # below 256 with the rest added
    across = [np.linspace(s, s + 120, width).astype(np.uint8) for s in start]
    down = np.linspace(0, 40, height).astype(np.uint8)
    noise = rng.integers(0, 32, (height, width), dtype=np.uint8)
    channels = [
        Image.fromarray(across[0][None, :] + noise),
        Image.fromarray(down[:, None] + across[1][None, ::-1] + noise),
        Image.fromarray(across[2][None, :] + down[:, None]),
    ]
    del noise
    Image.merge("RGB", channels).save(path, quality=90, progressive=progressive)
    return path


def write_png_declaring(path, width, height):
    """A valid PNG signature and IHDR declaring any size, with tiny data."""

    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        size = struct.pack(">I", len(data))
        return size + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )
    return path


SPEC = """\
model: {{trunk: small_cnn, input_size: 64, embedding_size: 64}}
training: {{epochs: 1, steps_per_epoch: {steps}}}
heads:
  - {{name: kind, type: softmax, classes: [a, b]}}
datasets:
  - name: photos
    source: image_list
    root: {root}
    splits: {{train: {list}}}
    images_per_batch: {batch}
    feeds: {{kind: 0}}
"""


def write_spec(folder, name, lines, args):
    """A training spec reading `lines` (`file, label`) as its train list."""
    (folder / f"{name}.txt").write_text("".join(f"{x}\n" for x in lines))
    spec = folder / f"{name}.yaml"
    spec.write_text(
        SPEC.format(
            steps=args.steps,
            root=folder,
            list=f"{name}.txt",
            batch=args.batch,
        )
    )
    return spec


def newest_version(model_dir):
    """The SavedModel folder: `model_dir` itself or its newest version."""
    model_dir = Path(model_dir)
    if (model_dir / "saved_model.pb").exists():
        return model_dir
    found = [p for p in model_dir.iterdir() if p.name.isdigit() and p.is_dir()]
    if not found:
        sys.exit(f"{model_dir}: no SavedModel and no version folder in it")
    return max(found, key=lambda p: int(p.name))


def describe_training(result, big):
    if result["other_skipped"]:
        return f"! also skipped {result['other_skipped']}"
    if result.get("skipped"):
        return f"skipped: {result['skipped']}"
    if "reads" in result:
        return f"decoded {result['reads']:.1f}x ({big.name} read that often)"
    return "not skipped"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model-dir", type=Path, help="an exported SavedModel (base path)"
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--copies", type=int, default=4, help="list lines naming the image"
    )
    parser.add_argument("--train-side", type=int, default=12_000)
    parser.add_argument("--serve-side", type=int, default=8_000)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--grok-root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    import grok_tf

    grok_root = str(Path(grok_tf.__file__).parent.parent)
    print(
        f"grok_tf from {Path(grok_tf.__file__).parent}; TF {tf.__version__}; "
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} usable cores"
    )

    def run(*arguments):
        return measure_in_child(
            __file__, [*arguments, f"--grok-root={grok_root}"]
        )

    with tempfile.TemporaryDirectory(prefix="huge_images_") as tmp:
        folder = Path(tmp)
        model_dir = args.model_dir or build_run(folder, steps=2)[1]
        version = newest_version(model_dir)
        start = time.perf_counter()
        ordinary = [
            write_jpeg(folder / f"photo_{i:02d}.jpg", *ORDINARY_SIZE, seed=i)
            for i in range(ORDINARY)
        ]
        # Per case: its training image and its serving image.
        cases = {}
        for progressive, name in ((False, "huge"), (True, "progressive")):
            cases[name] = [
                write_jpeg(
                    folder / f"{name}_{side}.jpg", side, side, seed, progressive
                )
                for side, seed in (
                    (args.train_side, 100),
                    (args.serve_side, 101),
                )
            ]
        bomb = write_png_declaring(folder / "bomb.png", BOMB_SIDE, BOMB_SIDE)
        cases["bomb"] = [bomb, bomb]
        labels = {"huge": "JPEG", "progressive": "progr. JPEG"}
        print(
            f"wrote {ORDINARY} JPEGs of {ORDINARY_SIZE[0]}x{ORDINARY_SIZE[1]}"
            f" (~{os.path.getsize(ordinary[0]) / 1024:.0f} KiB), "
            + ", ".join(
                f"{p.name} ({os.path.getsize(p) / 2**20:.1f} MiB)"
                for p in cases["huge"] + cases["progressive"]
            )
            + f", {bomb.name} ({os.path.getsize(bomb)} bytes, IHDR "
            f"{BOMB_SIDE}x{BOMB_SIDE}) in {time.perf_counter() - start:.0f} s"
        )
        print(
            f"training: {args.steps} steps of {args.batch} images, "
            f"{ORDINARY} list lines (+{args.copies} naming the image); "
            f"serving: {SERVED} JPEGs (+1), SavedModel {version}",
            flush=True,
        )
        plain = [f"{p.name}, {'ab'[i % 2]}" for i, p in enumerate(ordinary)]
        specs = {"plain": write_spec(folder, "plain", plain, args)}
        for name, (image, _) in cases.items():
            lines = plain + [f"{image.name}, a"] * args.copies
            specs[name] = write_spec(folder, name, lines, args)
        served = [str(p) for p in ordinary[:SERVED]]

        def train_child(name, image):
            out = folder / f"run_{name}"
            return run("train", str(specs[name]), str(out), str(image or ""))

        results = {}
        # Children one at a time: their peaks must not add up on the machine.
        results["train", None] = train_child("plain", None)
        where = results["train", None]["grok_tf"]
        if where != str(Path(grok_tf.__file__).parent):
            sys.exit(f"the children imported grok_tf from {where}")
        for name, (image, _) in cases.items():
            results["train", name] = train_child(name, image)
        results["serve", None] = run("serve", str(version), *served)
        for name, (_, image) in cases.items():
            results["serve", name] = run(
                "serve", str(version), *served, str(image)
            )

        print()
        header = (
            f"{'case':<9} {'image':<19} {'GB without':>10} {'GB with':>8} "
            f"{'with/w/o':>8} {'<=1.5':>5} {'s with':>6}  the image"
        )
        print(header)
        print("-" * len(header))
        for kind, name in itertools.product(("train", "serve"), cases):
            image = cases[name][kind == "serve"]
            without, with_ = results[kind, None], results[kind, name]
            ratio = with_["peak_gb"] / without["peak_gb"]
            if kind == "train":
                fate = describe_training(with_, image)
            else:
                fate = f"valid={with_['valid'][-1]}"
                if not all(without["valid"] + with_["valid"][:-1]):
                    fate += " (! an ordinary image came back invalid)"
            if image == bomb:
                label = f"{BOMB_SIDE}^2 PNG"
            else:
                label = f"{image.stem.split('_')[1]}^2 {labels[name]}"
            print(
                f"{kind:<9} {label:<19} {without['peak_gb']:>10.2f} "
                f"{with_['peak_gb']:>8.2f} {ratio:>8.2f} "
                f"{'yes' if ratio <= BOUND else 'NO':>5} "
                f"{with_['seconds']:>6.0f}  {fate}"
            )


if __name__ == "__main__":
    main()
