"""Benchmark loaderkit's loaders against the pylance / LanceDB loaders, side by side.

    python benchmarks/bench_loaders.py [--rows 1000000] [--reps 3] [--out benchmarks/out]

Writes the benchmark data once (cached under the out dir), then runs every
loader in a fresh subprocess (`--child NAME`), interleaved over `--reps`
rounds (the order rotates each round), and prints a table of medians, the
ratios the performance targets name, PASS/FAIL per target, and a bar chart
(`loaders.png`). See benchmarks/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BATCH = 1024
DIM = 128
FRAGMENTS = 8
TABLE = "bench"  # the Lance dataset is <out>/db_<rows>/bench.lance: a LanceDB table too
WINDOW = 1024  # shuffle quality: batch-mates closer than this in the source are "near"

# Loaders whose rates are compared run next to each other: this VM's speed drifts by
# 20-40% over minutes, which a ratio of loaders run a minute apart picks up. Each
# round runs the groups in a rotated order, and each group forwards or backwards.
RUN_GROUPS = [
    ["lance_seq", "lk_full_scan", "lk_cache", "lk_block", "lk_mix_block"],
    ["lk_full_scan_100k", "lk_block_100k"],
    ["lk_split_block", "lk_filter_block"],
    ["raw_take", "lk_exact", "lk_exact_256k"],
    ["perm_w0", "perm_w2", "streaming", "lk_block_4x"],
    ["safe_w2", "lk_block_w2", "lk_block_w2_warm", "lk_full_scan_w2"],
]
# Whole-epoch loaders with 0 workers repeat epochs until this much steady time (or
# MAX_EPOCHS): one 1M-row epoch of a fast loader is a quarter of a second.
MIN_STEADY_S = 3.0
MAX_EPOCHS = 10

# name -> (label, kind, dataset scale (x --rows), batches measured (None: whole epoch), extra)
CONFIGS: dict[str, tuple[str, str, int, int | None, dict]] = {
    "lance_seq": ("pylance LanceDataset, sequential", "anchor", 1, None, {}),
    "raw_take": ("raw sorted take per random batch", "anchor", 1, 100, {}),
    "safe_w2": ("SafeLanceDataset+get_safe_loader, shuffled, 2 spawn", "anchor", 1, 100, {}),
    "perm_w0": (
        "lancedb Permutation DataLoader, shuffled, 0 workers",
        "anchor",
        1,
        100,
        {"workers": 0},
    ),
    "perm_w2": (
        "lancedb Permutation DataLoader, shuffled, 2 spawn",
        "anchor",
        1,
        100,
        {"workers": 2},
    ),
    "streaming": ("lancedb StreamingDataset, shuffled", "anchor", 1, 50, {}),
    "lk_full_scan": (
        "loaderkit full_scan, 0 workers",
        "loaderkit",
        1,
        None,
        {"sampler": {"type": "full_scan"}},
    ),
    "lk_block": (
        "loaderkit shuffle (default: block), 0 workers",
        "loaderkit",
        1,
        None,
        {"sampler": {"type": "shuffle", "seed": 7}},
    ),
    "lk_exact": (
        "loaderkit shuffle mode exact, 0 workers",
        "loaderkit",
        1,
        None,
        {"sampler": {"type": "shuffle", "seed": 7, "mode": "exact"}},
    ),
    "lk_exact_256k": (
        "loaderkit exact, chunk_rows 262144 (tuning experiment)",
        "loaderkit",
        1,
        None,
        {"sampler": {"type": "shuffle", "seed": 7, "mode": "exact", "chunk_rows": 262144}},
    ),
    "lk_cache": (
        "loaderkit shuffle mode cache, 0 workers",
        "loaderkit",
        1,
        None,
        {"sampler": {"type": "shuffle", "seed": 7, "mode": "cache", "cache_mb": 2048}},
    ),
    "lk_block_w2": (
        "loaderkit shuffle (block), 2 spawn workers",
        "loaderkit",
        1,
        None,
        {"sampler": {"type": "shuffle", "seed": 7}, "workers": 2},
    ),
    "lk_block_w2_warm": (
        "loaderkit shuffle (block), 2 spawn workers, persistent, once they are up",
        "loaderkit",
        1,
        None,
        {"sampler": {"type": "shuffle", "seed": 7}, "workers": 2, "persistent": True},
    ),
    "lk_full_scan_w2": (
        "loaderkit full_scan, 2 spawn workers",
        "loaderkit",
        1,
        None,
        {"sampler": {"type": "full_scan"}, "workers": 2},
    ),
    "lk_block_4x": (
        "loaderkit shuffle (block), 0 workers, 4x rows",
        "loaderkit",
        4,
        None,
        {"sampler": {"type": "shuffle", "seed": 7}},
    ),
    "lk_mix_block": (
        "loaderkit mixture of two sources (the dataset twice, 1:1), block shuffle, 0 workers",
        "loaderkit",
        1,
        None,
        # Unfiltered sources, so the ratio to lk_block is the mixture's own cost (a filter
        # costs what lk_filter_block shows, mixed or not).
        {"sampler": {"type": "shuffle", "seed": 7}, "sources": {
            "first": {"weight": 1}, "second": {"weight": 1}}},
    ),
    "lk_full_scan_100k": (
        "loaderkit full_scan, the first ~100k rows of an epoch (after a warm-up epoch)",
        "loaderkit",
        1,
        98,
        {"sampler": {"type": "full_scan"}, "warm": True},
    ),
    "lk_block_100k": (
        "loaderkit shuffle (block), the first ~100k rows of an epoch (after a warm-up epoch)",
        "loaderkit",
        1,
        98,
        {"sampler": {"type": "shuffle", "seed": 7}, "warm": True},
    ),
    "lk_split_block": (
        "loaderkit split (train, 0.9 by id), block shuffle, 0 workers",
        "loaderkit",
        1,
        None,
        {"sampler": {"type": "shuffle", "seed": 7}, "recipe": {
            "splits": {"by": "id", "fractions": {"train": 0.9, "val": 0.1}}, "split": "train"}},
    ),
    "lk_filter_block": (
        "loaderkit filter keeping 0.9 (id % 10 != 0), block shuffle, 0 workers",
        "loaderkit",
        1,
        None,
        {"sampler": {"type": "shuffle", "seed": 7}, "recipe": {"filter": "id % 10 != 0"}},
    ),
}


# --------------------------------------------------------------------------- data


def dataset_path(out: Path, rows: int) -> Path:
    return out / f"db_{rows}" / f"{TABLE}.lance"


def ensure_data(out: Path, rows: int) -> Path:
    """id int64, label int32, emb float32[128]; `rows` rows in 8 fragments. Written once."""
    import lance
    import numpy as np
    import pyarrow as pa

    path = dataset_path(out, rows)
    if path.exists():
        try:
            ds = lance.dataset(str(path))
            if ds.count_rows() == rows and len(ds.get_fragments()) == FRAGMENTS:
                return path
        except Exception:
            pass
    schema = pa.schema(
        [("id", pa.int64()), ("label", pa.int32()), ("emb", pa.list_(pa.float32(), DIM))]
    )

    def batches():
        rng = np.random.default_rng(0)
        for start in range(0, rows, 65536):
            m = min(65536, rows - start)
            emb = pa.array(rng.standard_normal(m * DIM, dtype=np.float32))
            yield pa.record_batch(
                [
                    pa.array(np.arange(start, start + m, dtype=np.int64)),
                    pa.array(rng.integers(0, 1000, m, dtype=np.int32)),
                    pa.FixedSizeListArray.from_arrays(emb, DIM),
                ],
                schema=schema,
            )

    print(f"writing {rows:,} rows to {path} ...", flush=True)
    t = time.perf_counter()
    lance.write_dataset(
        pa.RecordBatchReader.from_batches(schema, batches()),
        str(path),
        max_rows_per_file=math.ceil(rows / FRAGMENTS),
        mode="overwrite",
    )
    print(f"  done in {time.perf_counter() - t:.1f} s", flush=True)
    return path


def write_recipe(out: Path, name: str, uri: Path, extra: dict, columns=None) -> Path:
    import yaml

    recipe = {
        "loaderkit": 1,
        "name": name,
        "source": {"uri": str(uri)},
        "format": "torch",
        "sampler": dict(extra.get("sampler", {})),
        "loader": {"batch_size": BATCH, "num_workers": extra.get("workers", 0)},
    }
    if extra.get("persistent"):
        recipe["loader"]["persistent_workers"] = True
    if columns:
        recipe["columns"] = columns
    recipe.update(extra.get("recipe", {}))
    if "sources" in extra:  # sources over the same dataset (whole, or parts of it)
        del recipe["source"]
        recipe["sources"] = {name: {"uri": str(uri), **part}
                             for name, part in extra["sources"].items()}
    path = out / "recipes" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


# --------------------------------------------------------------------------- children


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def arrow_to_torch(batch):
    """collate_fn for the Permutation anchor (module level so spawn can pickle it)."""
    import numpy as np
    import torch

    emb = batch.column("emb")
    return {
        "id": torch.from_numpy(batch.column("id").to_numpy()),
        "label": torch.from_numpy(batch.column("label").to_numpy()),
        "emb": torch.from_numpy(np.asarray(emb.flatten().to_numpy()).reshape(-1, DIM)),
    }


def n_rows(batch) -> int:
    if isinstance(batch, dict):
        return len(batch["id"])
    if isinstance(batch, list):  # list of row dicts
        return len(batch)
    return batch.num_rows


def measure(
    build, max_batches: int | None, min_steady_s: float = 0.0, warm_up: bool = False
) -> dict:
    """Build the loader, pull batches, and time: build, first batch, steady rows/s, peak RSS.

    With `min_steady_s`, whole epochs are repeated (at most MAX_EPOCHS) until the
    steady part (everything after the first batch) lasted that long: one epoch of a
    fast loader is under a second, too short to average out a busy machine. With `warm_up`, whole
    epochs run untimed (after the timed build) until the loader's workers are all up
    (at most 20): the steady state of persistent workers.
    """
    import gc

    gc.collect()
    baseline = rss_bytes()
    t0 = time.perf_counter()
    loader = build()
    t_built = time.perf_counter()
    for _ in range(20 if warm_up else 0):
        for _batch in loader:
            pass
        # A private counter, read only here: loaderkit's main process reads until it
        # is full, so an epoch after that is the workers' own.
        if loader.workers.all_up:
            break
    if warm_up:
        t_built = time.perf_counter()
    it = iter(loader)
    first = next(it)
    t_first = time.perf_counter()
    rows, batches = n_rows(first), 1
    del first
    epochs = 0
    while True:
        for batch in it:
            rows += n_rows(batch)
            batches += 1
            if max_batches is not None and batches >= max_batches:
                break
        epochs += 1
        if (
            max_batches is not None
            or epochs >= MAX_EPOCHS
            or time.perf_counter() - t_first >= min_steady_s
        ):
            break
        it = iter(loader)  # the next epoch (reshuffled for shuffle samplers)
    t_end = time.perf_counter()
    del it, loader
    gc.collect()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    steady = t_end - t_first
    return {
        "rows": rows,
        "batches": batches,
        "epochs": epochs,
        "build_s": t_built - t0,
        "first_batch_s": t_first - t_built,
        "build_to_first_s": t_first - t0,
        "steady_s": steady,
        "rows_per_s": (rows - BATCH) / steady if steady > 0 and rows > BATCH else float("nan"),
        "epoch_rows_per_s": rows / (t_end - t_built),
        "baseline_mb": baseline / 2**20,
        "peak_above_baseline_mb": (peak - baseline) / 2**20,
        "child_procs_peak_rss_mb": kids / 2**20,
    }


def child(name: str, out: Path, rows: int, max_batches: int | None) -> dict:
    # Baseline RSS includes the libraries every loader needs.
    import lance
    import numpy as np
    import pyarrow  # noqa: F401
    import torch  # noqa: F401
    from torch.utils.data import DataLoader

    _label, kind, scale, default_batches, extra = CONFIGS[name]
    if max_batches is None:
        max_batches = default_batches
    uri = dataset_path(out, rows * scale)
    workers = extra.get("workers", 0)
    # Whole-epoch loaders with 0 workers repeat epochs (MIN_STEADY_S); with spawn
    # workers (not persistent) a new epoch would start new workers, so one epoch.
    steady = MIN_STEADY_S if workers == 0 and max_batches is None else 0.0

    if name == "lance_seq":
        from lance.torch.data import LanceDataset

        return measure(
            lambda: DataLoader(LanceDataset(str(uri), batch_size=BATCH), batch_size=None),
            max_batches,
            steady,
        )
    if name == "raw_take":

        def build():
            ds = lance.dataset(str(uri))
            n = ds.count_rows()
            rng = np.random.default_rng(0)

            def gen():
                while True:
                    idx = np.sort(rng.choice(n, BATCH, replace=False))
                    yield ds.take(idx)

            return gen()

        return measure(build, max_batches)
    if name == "safe_w2":
        from lance.torch.data import SafeLanceDataset, get_safe_loader

        return measure(
            lambda: get_safe_loader(
                SafeLanceDataset(str(uri)), batch_size=BATCH, num_workers=2, shuffle=True
            ),
            max_batches,
        )
    if name.startswith("perm_"):
        import lancedb
        from lancedb.permutation import Permutation

        def build():
            table = lancedb.connect(str(uri.parent)).open_table(TABLE)
            perm = Permutation.identity(table).with_format("arrow")
            kw = {"multiprocessing_context": "spawn"} if workers else {}
            return DataLoader(
                perm,
                batch_size=BATCH,
                shuffle=True,
                num_workers=workers,
                collate_fn=arrow_to_torch,
                **kw,
            )

        return measure(build, max_batches)
    if name == "streaming":
        import lancedb
        from lancedb.streaming import StreamingDataset

        def build():
            table = lancedb.connect(str(uri.parent)).open_table(TABLE)
            return DataLoader(StreamingDataset(table, shuffle_seed=7), batch_size=BATCH)

        return measure(build, max_batches)
    if kind == "loaderkit":
        import warnings

        from loaderkit import load_recipe

        recipe = write_recipe(out, f"{name}_{rows * scale}", uri, extra)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warm = bool(extra.get("persistent") or extra.get("warm"))
            return measure(lambda: load_recipe(str(recipe)), max_batches, steady, warm)
    raise SystemExit(f"unknown child {name!r}")


def quality_child(out: Path, rows: int) -> dict:
    """Shuffle quality of each loaderkit mode, over one full epoch of ids."""
    import warnings

    import numpy as np

    from loaderkit import load_recipe

    uri = dataset_path(out, rows)
    n = rows
    results = {}
    modes = {"full_scan": {"sampler": {"type": "full_scan"}}}
    for mode in ("block", "exact", "cache"):
        modes[mode] = {"sampler": {"type": "shuffle", "seed": 7, "mode": mode}}
    # The object-store default block size (storage.py), read here from local disk.
    modes["block_rows_4096"] = {"sampler": {"type": "shuffle", "seed": 7,
                                                   "block_rows": 4096}}
    for label, extra in modes.items():
        recipe = write_recipe(out, f"quality_{label}_{rows}", uri, extra, columns=["id"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loader = load_recipe(str(recipe))
        results[label] = batch_quality([b["id"].numpy() for b in loader], n)
    # Mixture quality: a 3:1 mixture of the even and odd rows; the largest deviation of
    # each source's running share from its weight, after the first 1,000 rows.
    extra = {"sampler": {"type": "shuffle", "seed": 7}, "sources": {
        "even": {"filter": "id % 2 = 0", "weight": 3}, "odd": {"filter": "id % 2 = 1",
                                                               "weight": 1}}}
    recipe = write_recipe(out, f"quality_mixture_{rows}", uri, extra, columns=["id"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = load_recipe(str(recipe))
    odd = np.concatenate([b["id"].numpy() for b in loader]) % 2
    running = np.cumsum(odd) / np.arange(1, len(odd) + 1)
    results["mixture_max_share_deviation_pp"] = float(np.abs(running[999:] - 0.25).max() * 100)
    # A true uniform shuffle (reference, same batch size).
    perm = np.random.default_rng(1).permutation(n)
    results["true shuffle (numpy permutation)"] = batch_quality(
        [perm[i : i + BATCH] for i in range(0, n, BATCH)], n
    )
    w = WINDOW
    results["expected_true_fraction"] = (2 * (w - 1) * n - (w - 1) * w) / (n * (n - 1))
    return results


def batch_quality(batches, n: int) -> dict:
    """Fraction of batch-mate pairs within WINDOW (and 64) of each other in the source."""
    import numpy as np

    near = {WINDOW: 0, 64: 0}
    pairs = 0
    seen = np.zeros(n, dtype=np.int32)
    first_near = None
    for k, ids in enumerate(batches):
        ids = np.sort(np.asarray(ids, dtype=np.int64))
        seen[ids] += 1
        m = len(ids)
        pairs += m * (m - 1) // 2
        for w in near:
            # for each row, batch-mates above it that are closer than w
            near[w] += int((np.searchsorted(ids, ids + w, side="left") - np.arange(m) - 1).sum())
        if k == 0:
            first_near = (np.searchsorted(ids, ids + WINDOW) - np.arange(m) - 1).sum() / max(
                1, m * (m - 1) // 2
            )
    return {
        f"near_{WINDOW}": near[WINDOW] / pairs,
        "near_64": near[64] / pairs,
        "first_batch_near_1024": float(first_near),
        "every_row_once": bool((seen == 1).all()),
    }


# --------------------------------------------------------------------------- driver


def run_child(name: str, out: Path, rows: int) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        name,
        "--rows",
        str(rows),
        "--out",
        str(out),
    ]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-1500:]
        print(f"  !! {name} failed (rc {proc.returncode}):\n{tail}", flush=True)
        return {"error": tail}
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    res = json.loads(line)
    res["wall_s"] = time.perf_counter() - t
    return res


def med(results: list[dict], key: str) -> float:
    vals = [r[key] for r in results if key in r and not math.isnan(r[key])]
    return statistics.median(vals) if vals else float("nan")


def machine() -> dict:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    versions = {}
    for mod in ("torch", "lance", "lancedb", "pyarrow", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            versions[mod] = "?"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gb": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "versions": versions,
        "loadavg_start": os.getloadavg(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def fmt_rate(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k"


def report(
    runs: dict[str, list[dict]], quality: dict, info: dict, rows: int, reps: int
) -> tuple[str, list]:
    m = {
        k: {
            key: med(v, key)
            for key in (
                "rows_per_s",
                "first_batch_s",
                "build_to_first_s",
                "build_s",
                "peak_above_baseline_mb",
                "rows",
                "epoch_rows_per_s",
            )
        }
        for k, v in runs.items()
    }
    lines = [
        f"# loaderkit loader benchmark ({rows:,} rows x (int64, int32, float32[{DIM}]), "
        f"{FRAGMENTS} fragments, batch {BATCH}; medians of {reps} interleaved runs)",
        "",
        "| loader | rows/s | build s | first batch s | build+first s | peak RSS +MB "
        "| rows measured |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, (label, _kind, scale, nb, _e) in CONFIGS.items():
        if name not in m:
            continue
        r = m[name]
        measured = f"{int(r['rows']):,}" + (
            f" ({nb} batches)" if nb else f" ({med(runs[name], 'epochs'):g} epoch(s))"
        )
        if scale != 1:
            label += f" ({rows * scale:,} rows)"
        lines.append(
            f"| `{name}` {label} | {fmt_rate(r['rows_per_s'])} | {r['build_s']:.2f} | "
            f"{r['first_batch_s']:.3f} | {r['build_to_first_s']:.2f} | "
            f"{r['peak_above_baseline_mb']:.0f} | {measured} |"
        )

    def ratio(a: str, b: str, key="rows_per_s") -> float:
        return m[a][key] / m[b][key] if a in m and b in m else float("nan")

    q = quality or {}
    targets = [
        (
            "full_scan (0 workers) >= 0.95x pylance LanceDataset",
            ratio("lk_full_scan", "lance_seq"),
            ">=",
            0.95,
        ),
        (
            "block shuffle >= 10x lancedb Permutation (0 workers)",
            ratio("lk_block", "perm_w0"),
            ">=",
            10,
        ),
        (
            f"block shuffle: batch-mates nearer than {WINDOW} rows <= 2x a true shuffle's",
            q["block"][f"near_{WINDOW}"] / q["expected_true_fraction"] if q else float("nan"),
            "<=",
            2,
        ),
        (
            "block shuffle first batch <= 0.3 s (iter -> batch)",
            m.get("lk_block", {}).get("first_batch_s", float("nan")),
            "<=",
            0.3,
        ),
        (
            "block shuffle first batch <= 0.3 s (load_recipe -> batch)",
            m.get("lk_block", {}).get("build_to_first_s", float("nan")),
            "<=",
            0.3,
        ),
        (
            "block shuffle peak RSS <= 300 MB above baseline",
            m.get("lk_block", {}).get("peak_above_baseline_mb", float("nan")),
            "<=",
            300,
        ),
        ("block shuffle >= 0.75x loaderkit full_scan", ratio("lk_block", "lk_full_scan"), ">=",
         0.75),
        (
            "block shuffle, first 100k rows of an epoch >= 0.5x full_scan's (iter -> row 100k)",
            ratio("lk_block_100k", "lk_full_scan_100k", "epoch_rows_per_s"),
            ">=",
            0.5,
        ),
        ("exact shuffle >= 0.5x loaderkit full_scan", ratio("lk_exact", "lk_full_scan"), ">=",
         0.5),
        ("exact shuffle >= 2x raw sorted take per batch", ratio("lk_exact", "raw_take"), ">=", 2),
        (
            "(experiment) exact, chunk_rows 262144 >= 2x raw sorted take",
            ratio("lk_exact_256k", "raw_take"),
            ">=",
            2,
        ),
        ("cache shuffle >= 3x pylance sequential scan", ratio("lk_cache", "lance_seq"), ">=", 3),
        (
            "2 workers: first batch <= 0.5x get_safe_loader's (build+first)",
            ratio("lk_block_w2", "safe_w2", "build_to_first_s"),
            "<=",
            0.5,
        ),
        (
            "2 workers: first batch <= 0.5x get_safe_loader's (iter -> batch)",
            ratio("lk_block_w2", "safe_w2", "first_batch_s"),
            "<=",
            0.5,
        ),
        (
            "2 workers: block throughput >= 0.5x same recipe, 0 workers (1st epoch)",
            ratio("lk_block_w2", "lk_block"),
            ">=",
            0.5,
        ),
        (
            "2 workers, persistent, once they are up: block >= 0.5x 0 workers",
            ratio("lk_block_w2_warm", "lk_block"),
            ">=",
            0.5,
        ),
        (
            "2 workers: full_scan throughput >= 0.5x full_scan, 0 workers (extra)",
            ratio("lk_full_scan_w2", "lk_full_scan"),
            ">=",
            0.5,
        ),
        (
            "mixture of two block-shuffled sources >= 0.8x one block-shuffled source",
            ratio("lk_mix_block", "lk_block"),
            ">=",
            0.8,
        ),
        (
            "a split costs no more than the equivalent filter (split rows/s / filter's)",
            ratio("lk_split_block", "lk_filter_block"),
            ">=",
            0.95,
        ),
        (
            "mixture 3:1, largest running-share deviation after 1,000 rows (pp)",
            q.get("mixture_max_share_deviation_pp", float("nan")),
            "<=",
            2,
        ),
        (
            "memory: block epoch on 4x rows peaks <= 1.2x the RSS of 1x",
            ratio("lk_block_4x", "lk_block", "peak_above_baseline_mb"),
            "<=",
            1.2,
        ),
    ]
    lines += ["", "| target | measured | verdict |", "| --- | ---: | --- |"]
    verdicts = []
    for text, val, op, lim in targets:
        ok = (val >= lim) if op == ">=" else (val <= lim)
        verdict = "n/a" if math.isnan(val) else ("PASS" if ok else "FAIL")
        verdicts.append((text, val, verdict))
        lines.append(f"| {text} | {val:.3g} | {verdict} |")
    lines += [
        "",
        "Ratios of anchors (for context): "
        f"raw take / Permutation w0 = {ratio('raw_take', 'perm_w0'):.2f}, "
        f"block / raw take = {ratio('lk_block', 'raw_take'):.1f}, "
        f"block / StreamingDataset = {ratio('lk_block', 'streaming'):.0f}, "
        f"block / get_safe_loader = {ratio('lk_block', 'safe_w2'):.0f}, "
        f"block w2 / Permutation w2 = {ratio('lk_block_w2', 'perm_w2'):.0f}.",
    ]
    if q:
        lines += [
            "",
            f"Shuffle quality (one epoch, ids only; 'near' = batch-mate pairs closer than "
            f"N rows in the source; a true shuffle expects {q['expected_true_fraction']:.5f} "
            f"for N={WINDOW}):",
            "",
            f"| order | near, N={WINDOW} | x true shuffle | near, N=64 "
            f"| first batch near, N={WINDOW} | every row once |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        exp = q["expected_true_fraction"]
        for k, v in q.items():
            if isinstance(v, dict):
                lines.append(
                    f"| {k} | {v[f'near_{WINDOW}']:.5f} | {v[f'near_{WINDOW}'] / exp:.2f} | "
                    f"{v['near_64']:.5f} | {v['first_batch_near_1024']:.4f} | "
                    f"{v['every_row_once']} |"
                )
    lines += [
        "",
        f"Machine: {info['nproc']} cores, {info['cpu']}, {info['ram_gb']} GB RAM; "
        f"Python {info['python']}; "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + f"; {info['date']}; load average at start "
        + f"{tuple(round(x, 2) for x in info['loadavg_start'])}"
        + (
            f", at end {tuple(round(x, 2) for x in info['loadavg_end'])}"
            if "loadavg_end" in info
            else ""
        )
        + ".",
    ]
    return "\n".join(lines), verdicts


def bar_chart(path: Path, bars: list[tuple[str, float, bool]], title: str,
              size: tuple[float, float] = (7.5, 4.2)) -> None:
    """Rates as horizontal bars on a log scale, loaderkit's (the flag) blue, anchors grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=90)
    ax.barh(range(len(bars)), [v for _, v, _ in bars],
            color=["#1f77b4" if ours else "#999999" for _, _, ours in bars])
    ax.set_yticks(range(len(bars)), [n for n, _, _ in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("rows/s (median, log scale)")
    ax.set_title(title, fontsize=9)
    for i, (_, v, _) in enumerate(bars):
        ax.text(v, i, " " + fmt_rate(v), va="center", fontsize=7)
    ax.set_xlim(right=max(v for _, v, _ in bars) * 4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def chart(runs: dict[str, list[dict]], path: Path, rows: int) -> None:
    names = [n for n in CONFIGS if n in runs and not math.isnan(med(runs[n], "rows_per_s"))]
    bars = [(n, med(runs[n], "rows_per_s"), CONFIGS[n][1] == "loaderkit") for n in names]
    bar_chart(path, bars, f"{rows:,} rows, batch {BATCH}: loaderkit (blue) vs anchors (grey)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--only", help="comma-separated subset of loaders")
    ap.add_argument(
        "--report",
        action="store_true",
        help="re-render the table and chart from <out>/results.json, run nothing",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--max-batches", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = args.out.resolve()

    if args.child == "quality":
        print(json.dumps(quality_child(out, args.rows)))
        return
    if args.child:
        print(json.dumps(child(args.child, out, args.rows, args.max_batches)))
        return

    if args.report:
        saved = json.loads((out / "results.json").read_text())
        text, _ = report(
            saved["runs"],
            saved["quality"],
            saved["machine"],
            saved.get("rows", args.rows),
            saved.get("reps", args.reps),
        )
        print(text)
        (out / "results.md").write_text(text + "\n")
        chart(saved["runs"], out / "loaders.png", saved.get("rows", args.rows))
        return
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in CONFIGS if not args.only or n in args.only.split(",")]
    for scale in sorted({CONFIGS[n][2] for n in names}):
        ensure_data(out, args.rows * scale)
    info = machine()
    runs: dict[str, list[dict]] = {n: [] for n in names}
    assert sorted(n for g in RUN_GROUPS for n in g) == sorted(CONFIGS), "RUN_GROUPS drifted"
    for rep in range(args.reps):
        groups = RUN_GROUPS[rep % len(RUN_GROUPS) :] + RUN_GROUPS[: rep % len(RUN_GROUPS)]
        order = [n for g in groups for n in (g if rep % 2 == 0 else g[::-1]) if n in names]
        for name in order:
            res = run_child(name, out, args.rows)
            if "error" not in res:
                runs[name].append(res)
                print(
                    f"[{rep + 1}/{args.reps}] {name:16s} {fmt_rate(res['rows_per_s']):>8} rows/s  "
                    f"first {res['first_batch_s']:.3f}s  "
                    f"build+first {res['build_to_first_s']:.2f}s  "
                    f"peak +{res['peak_above_baseline_mb']:.0f} MB",
                    flush=True,
                )
    quality = {}
    if not args.only:
        print("shuffle quality ...", flush=True)
        proc = subprocess.run(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--child",
                "quality",
                "--rows",
                str(args.rows),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0:
            quality = json.loads(proc.stdout.strip().splitlines()[-1])
        else:
            print(proc.stderr[-1500:])
    info["loadavg_end"] = os.getloadavg()
    runs = {k: v for k, v in runs.items() if v}
    text, verdicts = report(runs, quality, info, args.rows, args.reps)
    print("\n" + text)
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(
        json.dumps(
            {
                "machine": info,
                "rows": args.rows,
                "reps": args.reps,
                "runs": runs,
                "quality": quality,
                "verdicts": verdicts,
            },
            indent=1,
            default=str,
        )
    )
    if runs:
        chart(runs, out / "loaders.png", args.rows)
        print(f"\nwrote {out / 'results.md'}, {out / 'results.json'}, {out / 'loaders.png'}")


if __name__ == "__main__":
    main()
