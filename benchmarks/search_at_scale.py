"""Hash search at 1M and 10M items: recall and speed of flat / ivf / hnsw.

    python benchmarks/search_at_scale.py [--sizes 1000000 10000000]
        [--queries 1000] [--k 10] [--runs 3] [--hnsw-up-to 1000000]
        [--shards 4] [--shards-up-to 1000000]
        [--out benchmarks/results/search_at_scale]

The items are 256-bit hashes of clustered 400-d vectors, the shape of a
product catalogue: `--categories` category centres, products around them
(`--images-per-product` photos each, a product offset plus photo noise),
hashed by the sign of a fixed random projection (LSH). Queries are new
photos of indexed products. Random bits would have no neighbours: every
item would sit at Hamming distance ~128 from a query, and any index would
look either perfect or useless. The script prints the median Hamming
distance of the 1st and 10th exact neighbour and of a random item.

Per size, measured in one run:

- float exact: `faiss.IndexFlatIP` over the L2-normalised float vectors
  (cosine), k=10, the baseline of the speed-up column. At 10M items the
  vectors (16 GB) are searched in 1M-vector chunks whose results are
  merged: the same work as one index, in bounded memory;
- `HashIndex` kinds over the codes: `flat` (exact Hamming, the ground
  truth), `ivf` at its default `nlist` for a range of `nprobe` (and its
  default), saved and then opened memory-mapped as `grok-tf search` opens
  it, `hnsw` for a range of `efSearch` (up to `--hnsw-up-to` items: its
  build takes about a minute a million codes on 2 cores).

Recall@10 is tie-aware: the share of the 10 returned items whose Hamming
distance is at most the exact 10th distance (any of several items tied at
that distance is a right answer). q/s is queries per second, the best of
`--runs` searches of all queries (the CPU is shared: the best is the
least disturbed); speed-up is over float exact search measured the same
way.

Also measured: the id map (ids `sku-0001234`, paths
`images/00/0001234.jpg`) in bytes against the codes, the time to open the
saved index (memory-mapped, warm page cache) and answer one query, and
(up to `--shards-up-to` items) a sharded index of `--shards` shards
against the one-piece index: equal results for `flat`, recall and speed
for `ivf`.

Writes `search_at_scale.json` and `search_at_scale.png` (recall against
speed-up, one panel per size) into `--out`.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from grok_tf.search.hash_index import HashIndex
from grok_tf.search.index_kinds import default_settings
from grok_tf.search.sharded_index import ShardedIndexWriter
from grok_tf.search.sharded_index import open_index
from grok_tf.search.string_column import StringColumn

DIM, BITS = 400, 256
CHUNK = 1_000_000
NPROBES = (4, 8, 16, 32, 64, 128, 256)
EF_SEARCHES = (16, 32, 64, 128, 256)


class Catalogue:
    """Clustered vectors and their hashes, generated chunk by chunk.

    Item i is a photo of product `i // images_per_product`; chunk c (items
    [c * CHUNK, (c + 1) * CHUNK)) comes from its own seeded generator, so
    any chunk can be made again without the others.
    """

    def __init__(self, args):
        self.args = args
        rng = np.random.default_rng(args.seed)
        self.centres = rng.standard_normal((args.categories, DIM), np.float32)
        self.projection = rng.standard_normal((DIM, BITS), np.float32)

    def products(self, number, size):
        """`(offsets, categories)` of the products of chunk `number`."""
        a = self.args
        start, end = number * CHUNK, min((number + 1) * CHUNK, size)
        rng = np.random.default_rng([a.seed, number, 0])
        count = -(-(end - start) // a.images_per_product)
        offsets = rng.standard_normal((count, DIM), np.float32)
        return offsets, rng.integers(0, a.categories, count)

    def chunk(self, number, size):
        """The vectors of the photos of chunk `number`."""
        a = self.args
        start, end = number * CHUNK, min((number + 1) * CHUNK, size)
        offsets, categories = self.products(number, size)
        owner = np.arange(end - start) // a.images_per_product
        noise = np.random.default_rng([a.seed, number, 1])
        return self.photos(offsets[owner], categories[owner], noise)

    def photos(self, offsets, categories, rng):
        """New photos of products: centre + spread * offset + noise."""
        a = self.args
        vectors = self.centres[categories]
        vectors += a.product_spread * offsets
        vectors += a.photo_noise * rng.standard_normal(
            vectors.shape, np.float32
        )
        return vectors

    def queries(self, size, count):
        """New photos of indexed products, spread over the chunks."""
        rng = np.random.default_rng([self.args.seed, 10**6])
        chunks = -(-size // CHUNK)
        per_chunk = np.bincount(
            rng.integers(0, chunks, count), minlength=chunks
        )
        found = []
        for number in range(chunks):
            offsets, categories = self.products(number, size)
            picked = rng.integers(0, len(offsets), per_chunk[number])
            found.append(self.photos(offsets[picked], categories[picked], rng))
        return np.concatenate(found)

    def codes(self, vectors):
        return np.packbits(
            vectors @ self.projection > 0, axis=1, bitorder="little"
        )


def best_seconds(search, runs):
    search()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        search()
        times.append(time.perf_counter() - start)
    return min(times)


def codes_and_float_search(catalogue, size, queries, k, runs):
    """The items' codes, and the seconds of exact float search over them.

    One pass over the chunks: each chunk's vectors are hashed, put in a
    `faiss.IndexFlatIP` (L2-normalised: cosine) and searched for every
    query; the chunks' top k are then merged. The vectors never all sit
    in memory (10M of them are 16 GB).
    """
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    codes, scores, total = [], [], 0.0
    for number in range(-(-size // CHUNK)):
        vectors = catalogue.chunk(number, size)
        codes.append(catalogue.codes(vectors))
        faiss.normalize_L2(vectors)
        index = faiss.IndexFlatIP(DIM)
        index.add(vectors)
        del vectors
        found = {}

        def search(index=index, found=found):
            found["result"] = index.search(queries, k)

        total += best_seconds(search, runs)
        scores.append(found["result"][0])
        del index
    start = time.perf_counter()  # merging the chunks' top k
    np.argsort(-np.concatenate(scores, axis=1), axis=1)[:, :k]
    return np.concatenate(codes), total + time.perf_counter() - start


def recall_at_k(distances, exact_distances):
    """Tie-aware recall: returned items within the exact k-th distance."""
    return float(np.mean(distances <= exact_distances[:, -1:]))


def id_strings(start, end, kind):
    if kind == "ids":
        return (f"sku-{i:07d}" for i in range(start, end))
    return (f"images/{i % 100:02d}/{i:07d}.jpg" for i in range(start, end))


def measure_size(catalogue, size, args, folder):
    k, runs = args.k, args.runs
    print(f"\n== {size:,} items ==", flush=True)
    start = time.perf_counter()
    query_vectors = catalogue.queries(size, args.queries)
    query_codes = catalogue.codes(query_vectors)
    codes, float_s = codes_and_float_search(
        catalogue, size, query_vectors, k, runs
    )
    float_qps = args.queries / float_s
    print(
        f"float exact (IndexFlatIP, 400-d): {float_qps:,.0f} q/s "
        f"(with generating the items: {time.perf_counter() - start:.0f} s)",
        flush=True,
    )

    rows = []

    def row(kind, setting, index, build_s):
        found = {}

        def search():
            found["result"] = index.search_arrays(query_codes, k)

        seconds = best_seconds(search, runs)
        distances = found["result"][0]
        qps = args.queries / seconds
        rows.append(
            {
                "kind": kind,
                "setting": setting,
                "qps": qps,
                "speedup": qps / float_qps,
                "recall": recall_at_k(distances, exact),
                "build_s": build_s,
            }
        )
        r = rows[-1]
        print(
            f"{kind:>5} {setting:>14} {r['qps']:>10,.0f} q/s "
            f"{r['speedup']:>7.1f}x  recall@{k} {r['recall']:.3f}  "
            f"(build {build_s:.0f} s)",
            flush=True,
        )

    ids = StringColumn.from_strings(id_strings(0, size, "ids"))
    paths = StringColumn.from_strings(id_strings(0, size, "paths"))

    def filled(settings):
        start = time.perf_counter()
        index = HashIndex(BITS, settings=settings)
        index.add(codes, ids, paths)
        return index, time.perf_counter() - start

    flat, build_s = filled({"kind": "flat"})
    exact = flat.search_arrays(query_codes, k)[0]
    median = np.median
    randoms = np.bitwise_count(query_codes[:, None] ^ codes[:1000][None]).sum(
        -1
    )
    print(
        f"Hamming distance, median: 1st neighbour {median(exact[:, 0]):.0f}, "
        f"10th {median(exact[:, -1]):.0f}, random item {median(randoms):.0f}"
    )
    row("flat", "exact", flat, build_s)
    del flat

    # ivf is searched as users search it: saved, then opened (mapped).
    settings = default_settings(size, "ivf")
    ivf, build_s = filled(settings)
    start = time.perf_counter()
    ivf.save(folder / "ivf")
    save_s = time.perf_counter() - start
    del ivf
    start = time.perf_counter()
    opened = HashIndex.load(folder / "ivf")
    opened.search(query_codes[:1], k)
    open_s = time.perf_counter() - start
    for nprobe in sorted({*NPROBES, settings["nprobe"]}):
        opened.tune(nprobe=nprobe)
        row("ivf", f"nprobe={nprobe}", opened, build_s)
    default_row = next(
        r for r in rows if r["setting"] == f"nprobe={settings['nprobe']}"
    )
    code_bytes = size * BITS // 8
    id_bytes = ids.nbytes + paths.nbytes
    print(
        f"id map: {id_bytes / 2**20:,.0f} MB ({ids.nbytes / 2**20:,.0f} ids + "
        f"{paths.nbytes / 2**20:,.0f} paths) = {id_bytes / code_bytes:.2f}x "
        f"the codes' {code_bytes / 2**20:,.0f} MB; saved in {save_s:.1f} s; "
        f"opened + 1 query in {open_s:.2f} s"
    )
    del opened

    if size <= args.hnsw_up_to:
        hnsw, build_s = filled(default_settings(size, "hnsw"))
        for ef in EF_SEARCHES:
            hnsw.tune(efSearch=ef)
            row("hnsw", f"efSearch={ef}", hnsw, build_s)
        del hnsw

    shards = None
    if size <= args.shards_up_to:
        shards = compare_shards(
            codes, query_codes, exact, settings, size, args, folder
        )
    return {
        "size": size,
        "float_qps": float_qps,
        "rows": rows,
        "default": {
            **settings,
            "recall": default_row["recall"],
            "speedup": default_row["speedup"],
        },
        "id_map": {
            "bytes": id_bytes,
            "code_bytes": code_bytes,
            "ratio": id_bytes / code_bytes,
            "open_s": open_s,
            "save_s": save_s,
        },
        "shards": shards,
    }


def compare_shards(codes, query_codes, exact, settings, size, args, folder):
    # The ids are the positions: enough to compare results.
    """Sharded vs one-piece index: flat results equal, ivf recall/speed."""
    shard_size = (size + args.shards - 1) // args.shards
    found = {}
    for kind, chosen in (("flat", {"kind": "flat"}), ("ivf", settings)):
        one = HashIndex(BITS, settings=chosen)
        one.add(codes, StringColumn.from_strings(map(str, range(size))))
        start = time.perf_counter()
        with ShardedIndexWriter(
            folder / f"shards-{kind}", BITS, None, chosen, shard_size
        ) as writer:
            for at in range(0, size, shard_size):
                part = slice(at, at + shard_size)
                names = map(str, range(at, min(at + shard_size, size)))
                writer.add(codes[part], list(names))
        build_s = time.perf_counter() - start
        sharded = open_index(folder / f"shards-{kind}")
        results, seconds = {}, {}
        for name, index in (("one", one), ("sharded", sharded)):

            def search(index=index, name=name, results=results):
                results[name] = index.search_arrays(query_codes, args.k)

            seconds[name] = best_seconds(search, args.runs)
        same = all(
            np.array_equal(a, b)
            for a, b in zip(results["one"], results["sharded"], strict=True)
        )
        found[kind] = {
            "shards": len(sharded.shards),
            "equal": same,
            "qps_one": args.queries / seconds["one"],
            "qps_sharded": args.queries / seconds["sharded"],
            "recall_one": recall_at_k(results["one"][0], exact),
            "recall_sharded": recall_at_k(results["sharded"][0], exact),
            "sharded_build_s": build_s,
        }
        f = found[kind]
        print(
            f"{kind} in {f['shards']} shards vs one index: results "
            f"{'equal' if same else 'differ'}; recall@{args.k} "
            f"{f['recall_sharded']:.3f} vs {f['recall_one']:.3f}; "
            f"{f['qps_sharded']:,.0f} vs {f['qps_one']:,.0f} q/s",
            flush=True,
        )
        del one, sharded
    return found


def plot(results, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5 * len(results), 4.5))
    FigureCanvasAgg(figure)
    for i, result in enumerate(results, 1):
        axes = figure.add_subplot(1, len(results), i)
        for kind, marker in (("flat", "s"), ("ivf", "o"), ("hnsw", "^")):
            rows = [r for r in result["rows"] if r["kind"] == kind]
            if rows:
                axes.plot(
                    [r["speedup"] for r in rows],
                    [r["recall"] for r in rows],
                    marker=marker,
                    label=kind,
                )
                for r in rows:
                    if kind != "flat":
                        axes.annotate(
                            r["setting"].split("=")[1],
                            (r["speedup"], r["recall"]),
                            fontsize=7,
                            xytext=(3, -9),
                            textcoords="offset points",
                        )
        axes.axhline(0.95, color="grey", linestyle=":", label="recall 0.95")
        axes.axvline(20, color="grey", linestyle="--", label="20x float")
        axes.set_xscale("log")
        axes.set_xlabel("speed-up over float exact search (q/s ratio)")
        axes.set_ylabel("recall@10 of the exact Hamming top 10")
        axes.set_title(f"{result['size']:,} items, 256-bit codes")
        axes.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000]
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hnsw-up-to", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--shards-up-to", type=int, default=1_000_000)
    parser.add_argument("--categories", type=int, default=10_000)
    parser.add_argument("--images-per-product", type=int, default=10)
    parser.add_argument("--product-spread", type=float, default=0.6)
    parser.add_argument("--photo-noise", type=float, default=0.45)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/search_at_scale")
    )
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    print(
        f"faiss {faiss.__version__}, {args.threads} threads; {args.queries} "
        f"queries, k={args.k}, best of {args.runs} runs"
    )
    catalogue = Catalogue(args)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(dir=args.out) as folder:
            results.append(measure_size(catalogue, size, args, Path(folder)))
        (args.out / "search_at_scale.json").write_text(
            json.dumps(
                {
                    "args": vars(args) | {"out": str(args.out)},
                    "results": results,
                },
                indent=2,
            )
        )
        plot(results, args.out / "search_at_scale.png")
    print(f"\nwrote {args.out}/search_at_scale.json and .png")


if __name__ == "__main__":
    main()
