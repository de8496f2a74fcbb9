"""Loaders over an object store with real latency: an S3 server on loopback, 20 ms a request.

    python benchmarks/bench_object_store.py [--rows 200000] [--delay-ms 20] [--reps 2]
                                            [--only lk_block,lk_full_scan,...]

Starts moto's S3 server on 127.0.0.1 (as the tests do) and, in front of it, the
benchmark's own latency proxy (latency_proxy.py: this kernel has no `tc netem`),
both as child processes stopped at the end. Writes `--rows` rows of the
bench_loaders data (id int64, label int32, emb float32[128], 8 fragments) to the
server directly (and the same rows, in the same fragments, to local disk), then
runs each loader in a fresh process through the proxy: loaderkit full_scan and
shuffle (block, with the object-store defaults, and other block sizes for
contrast, with the near-neighbour ratio of docs/performance.md), the first epoch
with and without `source.cache`, a later run from the filled cache, the same
recipe over the local copy, and LanceDB's Permutation. Prints and writes
`object_store.md` / `.json` / `.png` in the out dir, with the targets.

Every loader shares the 2 cores with the S3 server itself (a Python process that
spends a few milliseconds of CPU on each request): on this store a read costs
its 20 ms of latency plus the server's time, which the request count decides.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_loaders import BATCH, arrow_to_torch, bar_chart, machine, measure, med

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
# The reliability suite's loopback S3 (moto on 127.0.0.1), so the benchmark's store is the tests'.
from tests.reliability.support import free_port, start_moto_subprocess, wait_for_port  # noqa: E402

BUCKET = "bench"
URI = f"s3://{BUCKET}/db/bench.lance"
KEY_VAR, SECRET_VAR, ENDPOINT_VAR = "BENCH_S3_KEY", "BENCH_S3_SECRET", "BENCH_S3_ENDPOINT"

# name -> (label, kind, batches measured (None: a whole epoch), recipe extras). Extras beyond
# the sampler: `cache` (a fresh cache dir: "fresh", or the one the epoch-1 run filled:
# "filled"), `cold` (one timed epoch in a fresh process, no warm-up: an epoch 1), `local`
# (the same recipe over a local copy of the dataset), `quality` (also the near-neighbour
# ratio of one epoch of the same recipe).
CONFIGS: dict[str, tuple[str, str, int | None, dict]] = {
    "lk_full_scan": ("loaderkit full_scan, 0 workers", "loaderkit", None,
                     {"sampler": {"type": "full_scan"}}),
    "lk_block": ("loaderkit shuffle (block, object-store defaults), 0 workers", "loaderkit",
                 None, {"sampler": {"type": "shuffle", "seed": 7}, "quality": True}),
    "lk_block_4096": ("loaderkit shuffle, the previous default (4,096-row blocks)", "loaderkit",
                      None, {"sampler": {"type": "shuffle", "seed": 7, "block_rows": 4096},
                             "quality": True}),
    "lk_block_128": ("loaderkit shuffle (block_rows 128, the local-disk default)", "loaderkit",
                     None, {"sampler": {"type": "shuffle", "seed": 7, "block_rows": 128}}),
    "lk_block_e1": ("loaderkit shuffle, epoch 1 (a fresh process), no cache", "loaderkit", None,
                    {"sampler": {"type": "shuffle", "seed": 7}, "cold": True}),
    "lk_block_e1_cache": ("loaderkit shuffle, epoch 1 filling `source.cache`", "loaderkit",
                          None, {"sampler": {"type": "shuffle", "seed": 7}, "cold": True,
                                 "cache": "fresh"}),
    "lk_block_e2_cache": ("loaderkit shuffle, a later run from the filled cache", "loaderkit",
                          None, {"sampler": {"type": "shuffle", "seed": 7},
                                 "cache": "filled", "quality": True}),
    "lk_block_local": ("loaderkit shuffle, the same recipe over a local copy", "loaderkit",
                       None, {"sampler": {"type": "shuffle", "seed": 7}, "local": True}),
    "perm_w0": ("lancedb Permutation DataLoader, shuffled, 0 workers", "anchor", 3, {}),
}
# Run in this order (the cache's epoch 1 fills what epoch 2 reads).
ORDER = ["lk_full_scan", "lk_block", "lk_block_4096", "lk_block_128", "lk_block_e1",
         "lk_block_e1_cache", "lk_block_e2_cache", "lk_block_local", "perm_w0"]


def options(endpoint: str) -> dict[str, str]:
    return {"aws_access_key_id": os.environ[KEY_VAR],
            "aws_secret_access_key": os.environ[SECRET_VAR], "aws_region": "us-east-1",
            "aws_endpoint": endpoint, "allow_http": "true",
            "aws_virtual_hosted_style_request": "false"}


def write_data(endpoint: str, rows: int) -> None:
    import boto3
    import lance
    import numpy as np
    import pyarrow as pa

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id=os.environ[KEY_VAR],
                 aws_secret_access_key=os.environ[SECRET_VAR]).create_bucket(Bucket=BUCKET)
    ids = np.arange(rows, dtype=np.int64)
    emb = np.random.default_rng(0).random(rows * 128, dtype=np.float32)
    table = pa.table({"id": ids, "label": (ids % 10).astype(np.int32),
                      "emb": pa.FixedSizeListArray.from_arrays(pa.array(emb), 128)})
    lance.write_dataset(table, URI, storage_options=options(endpoint),
                        max_rows_per_file=-(-rows // 8))


def write_local_copy(endpoint: str, out: Path, rows: int) -> str:
    """The same rows on local disk, in the same fragments (so the same row addresses)."""
    import shutil

    import lance

    path = out / "local.lance"
    shutil.rmtree(path, ignore_errors=True)
    table = lance.dataset(URI, storage_options=options(endpoint)).to_table()
    lance.write_dataset(table, str(path), max_rows_per_file=-(-rows // 8))
    return str(path)


def near_ratio(path: Path) -> dict:
    """One epoch of the recipe at `path`: batch-mates near in the source, against a true
    shuffle's expectation (the quality table of docs/performance.md)."""
    from bench_loaders import WINDOW, batch_quality

    from loaderkit import load_recipe

    loader = load_recipe(str(path))
    batches = [batch["id"].numpy() for batch in loader]
    n = sum(len(b) for b in batches)
    quality = batch_quality(batches, n)
    expected = (2 * (WINDOW - 1) * n - (WINDOW - 1) * WINDOW) / (n * (n - 1))
    return {"near_1024": quality[f"near_{WINDOW}"],
            "near_ratio": quality[f"near_{WINDOW}"] / expected,
            "every_row_once": quality["every_row_once"]}


def wait_cached(cache_dir: Path, seconds: float = 600) -> float:
    """Seconds until the cache holds the version whole (the fill may outlast epoch 1)."""
    from loaderkit.runtime import object_cache

    start = time.perf_counter()
    while not list(cache_dir.glob(f"*/{object_cache.MARKER_DIR}/*.json")):
        if time.perf_counter() - start > seconds:
            raise SystemExit("the cache never held the version whole")
        time.sleep(0.1)
    return time.perf_counter() - start


def child(name: str, out: Path) -> dict:
    import lance  # noqa: F401  (the baseline includes what every loader imports)
    import torch  # noqa: F401
    import yaml
    from torch.utils.data import DataLoader

    _label, kind, batches, extra = CONFIGS[name]
    endpoint = os.environ[ENDPOINT_VAR]
    if kind == "anchor":
        import lancedb
        from lancedb.permutation import Permutation

        def build() -> DataLoader:
            db = lancedb.connect(URI.rsplit("/", 1)[0], storage_options=options(endpoint))
            perm = Permutation.identity(db.open_table("bench")).with_format("arrow")
            return DataLoader(perm, batch_size=BATCH, shuffle=True, collate_fn=arrow_to_torch)

        return measure(build, batches)
    import warnings

    from loaderkit import load_recipe

    source: dict = {"uri": URI, "storage_options": {
        "aws_access_key_id": "${env:" + KEY_VAR + "}",
        "aws_secret_access_key": "${env:" + SECRET_VAR + "}",
        "aws_endpoint": "${env:" + ENDPOINT_VAR + "}", "aws_region": "us-east-1",
        "allow_http": "true", "aws_virtual_hosted_style_request": "false"}}
    if extra.get("local"):
        source = {"uri": str(out / "local.lance")}
    if extra.get("cache"):
        source["cache"] = {"dir": str(out / "cache")}
    recipe = {"loaderkit": 1, "name": name, "source": source,
              "sampler": extra["sampler"], "loader": {"batch_size": BATCH}}
    path = out / "recipes" / f"s3_{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if extra.get("cold"):  # epoch 1 of a fresh process: one epoch, timed as it comes
            result = measure(lambda: load_recipe(str(path)), None, 0.0, False)
            if extra.get("cache"):
                result["fill_after_epoch_s"] = wait_cached(out / "cache")
            if extra.get("quality"):
                result.update(near_ratio(path))
            return {**result, "cold_first_batch_s": result["build_to_first_s"]}
        start = time.perf_counter()  # cold: a fresh process, nothing open yet
        next(iter(load_recipe(str(path))))
        cold = time.perf_counter() - start
        # Then the steady state, once the build's spawn probe (a process importing torch
        # on the same two cores) is done: a warm-up epoch first.
        result = {**measure(lambda: load_recipe(str(path)), batches, 0.0, True),
                  "cold_first_batch_s": cold}
        if extra.get("quality"):
            result.update(near_ratio(path))
        return result


def run_child(name: str, out: Path, endpoint: str) -> dict:
    env = dict(os.environ, **{ENDPOINT_VAR: endpoint}, LANCE_LOG="error", LANCEDB_LOG="error")
    result = subprocess.run([sys.executable, __file__, "--child", name, "--out", str(out)],
                            capture_output=True, text=True, timeout=1800, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{result.stderr[-3000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def report(runs: dict[str, list[dict]], info: dict, args: argparse.Namespace) -> str:
    def m(name: str, key: str) -> float:
        return med(runs[name], key) if name in runs and key in runs[name][0] else float("nan")

    lines = [f"# loaders over S3 with {args.delay_ms:g} ms a request ({args.rows:,} rows, "
             f"batch {BATCH}; medians of {args.reps} runs)", "",
             "| loader | rows/s | first batch s (warm) | load_recipe -> first batch s (cold) "
             "| peak RSS +MB | near x true shuffle |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name in runs:
        label, kind = CONFIGS[name][0], CONFIGS[name][1]
        cold = m(name, "cold_first_batch_s" if kind == "loaderkit" else "build_to_first_s")
        near = f"{m(name, 'near_ratio'):.2f}" if "near_ratio" in runs[name][0] else "-"
        lines.append(f"| `{name}` {label} | {m(name, 'rows_per_s') / 1e3:.1f}k | "
                     f"{m(name, 'first_batch_s'):.2f} | {cold:.2f} | "
                     f"{m(name, 'peak_above_baseline_mb'):.0f} | {near} |")
    targets = [
        ("block >= 0.5x loaderkit full_scan over the same store",
         m("lk_block", "rows_per_s") / m("lk_full_scan", "rows_per_s"), ">=", 0.5),
        ("block near neighbours <= 2x a true shuffle's", m("lk_block", "near_ratio"), "<=", 2),
        ("block >= 20x LanceDB Permutation",
         m("lk_block", "rows_per_s") / m("perm_w0", "rows_per_s"), ">=", 20),
        ("block first batch <= 1 s (cold: load_recipe -> batch)",
         m("lk_block", "cold_first_batch_s"), "<=", 1),
        ("with the cache (its default blocks), near neighbours <= 2x a true shuffle's",
         m("lk_block_e2_cache", "near_ratio"), "<=", 2),
        ("with the cache, epoch 1 >= 0.5x loaderkit full_scan over the same store",
         m("lk_block_e1_cache", "rows_per_s") / m("lk_full_scan", "rows_per_s"), ">=", 0.5),
        ("with the cache, a later epoch >= 0.9x the same recipe on a local copy",
         m("lk_block_e2_cache", "rows_per_s") / m("lk_block_local", "rows_per_s"), ">=", 0.9),
        ("with the cache, epoch 1 >= 0.9x epoch 1 without it",
         m("lk_block_e1_cache", "rows_per_s") / m("lk_block_e1", "rows_per_s"), ">=", 0.9),
    ]
    targets = [t for t in targets if t[1] == t[1]]  # configs left out (--only): no target
    lines += ["", "| target | measured | verdict |", "| --- | ---: | --- |"]
    for text, value, op, bar in targets:
        ok = value >= bar if op == ">=" else value <= bar
        lines.append(f"| {text} | {value:.3g} | {'PASS' if ok else 'FAIL'} |")
    lines += ["", f"Machine: {info['nproc']} cores, {info['cpu']}, {info['ram_gb']} GB RAM; "
                  f"{info['date']}; moto S3 server and latency proxy on the same cores."]
    return "\n".join(lines)


def chart(runs: dict[str, list[dict]], path: Path) -> None:
    bars = [(n, med(runs[n], "rows_per_s"), CONFIGS[n][1] == "loaderkit") for n in runs]
    bar_chart(path, bars, "S3 on loopback, 20 ms a request", size=(7, 2.8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--delay-ms", type=float, default=20.0)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--child")
    ap.add_argument("--only", help="comma-separated loader names (default: all)")
    args = ap.parse_args()
    out = args.out.resolve()
    if args.child:
        print(json.dumps(child(args.child, out)))
        return
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(KEY_VAR, "bench-key")
    os.environ.setdefault(SECRET_VAR, "bench-secret")
    server_port, proxy_port = free_port(), free_port()
    processes = [start_moto_subprocess(server_port)]
    try:
        print(f"writing {args.rows:,} rows to {URI} ...", flush=True)
        write_data(f"http://127.0.0.1:{server_port}", args.rows)
        write_local_copy(f"http://127.0.0.1:{server_port}", out, args.rows)
        processes.append(subprocess.Popen(
            [sys.executable, str(HERE / "latency_proxy.py"), "--listen", str(proxy_port),
             "--target", str(server_port), "--delay-ms", str(args.delay_ms)]))
        wait_for_port(proxy_port)
        info = machine()
        runs: dict[str, list[dict]] = {}
        chosen = [n for n in ORDER if not args.only or n in args.only.split(",")]
        for _rep in range(args.reps):
            names = chosen  # in ORDER: the cache's epoch 1 fills what its epoch 2 reads
            for name in names:
                if name == "lk_block_e1_cache":
                    shutil.rmtree(out / "cache", ignore_errors=True)
                result = run_child(name, out, f"http://127.0.0.1:{proxy_port}")
                runs.setdefault(name, []).append(result)
                print(f"[{_rep + 1}/{args.reps}] {name:14s} {result['rows_per_s'] / 1e3:8.1f}k "
                      f"rows/s  first {result['first_batch_s']:.2f}s", flush=True)
    finally:
        for process in processes:
            process.kill()
    text = report(runs, info, args)
    print(text)
    (out / "object_store.md").write_text(text + "\n")
    (out / "object_store.json").write_text(json.dumps({"runs": runs, "machine": info}, indent=1))
    chart(runs, out / "object_store.png")


if __name__ == "__main__":
    main()
