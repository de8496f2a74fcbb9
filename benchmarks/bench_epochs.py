"""The cost of starting an epoch against the rows: scale-free planning, measured.

    python benchmarks/bench_epochs.py [--real-rows 20000000,200000000] [--out benchmarks/out]

1. A synthetic universe (no I/O): 10M, 100M and 1B rows in fragments of 1M rows,
   rank 3 of 8, batch 1024: the time and peak memory to plan the first task of an
   epoch, for `full_scan`, `shuffle` block and exact. Each in a fresh process.
2. Real datasets on disk, `--real-rows` rows of one uint8 column (1-byte rows,
   written once under the out dir; the targets name the largest): from
   `load_recipe` to the first batch of rank 3 of 8, and the peak memory above the
   process's baseline, unfiltered and with a filter that keeps half the rows, for
   `shuffle` block and exact.
Prints the table and the targets, and draws `epochs.png`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench_loaders import machine

SYNTHETIC = [10_000_000, 100_000_000, 1_000_000_000]
MODES = {"full_scan": {"type": "full_scan"}, "block": {"type": "shuffle", "mode": "block"},
         "exact": {"type": "shuffle", "mode": "exact"}}
FRAGMENT = 1_000_000
TIMINGS = 7


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def start_peak() -> float:
    """Reset the process's peak RSS to its current RSS and return that (the baseline).

    ru_maxrss never goes down: after `import torch` (whose start-up peaks above what
    it keeps) it would hide the plan's memory entirely.
    """
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def peak_mb() -> float:
    return _status_mb("VmHWM")


def synthetic_child(rows: int, mode: str) -> dict:
    import numpy as np

    from loaderkit.runtime.samplers import make_sampler
    from loaderkit.runtime.spec import SamplerSpec
    from loaderkit.runtime.universe import Universe

    def first_task() -> None:
        fragments = -(-rows // FRAGMENT)
        sizes = np.full(fragments, FRAGMENT, dtype=np.int64)
        sizes[-1] = rows - FRAGMENT * (fragments - 1)
        universe = Universe(np.arange(fragments, dtype=np.int64), sizes, None)
        spec = SamplerSpec(**MODES[mode], seed=1, rank=3, world_size=8)
        next(iter(make_sampler(spec, universe, 1024, True).tasks(0)))

    baseline = start_peak()
    times = []
    for _ in range(TIMINGS):  # a millisecond's work: the best of a few, not one sample
        start = time.perf_counter()
        first_task()
        times.append(time.perf_counter() - start)
    return {"seconds": min(times), "peak_above_mb": peak_mb() - baseline}


def ensure_real(out: Path, rows: int) -> Path:
    import lance
    import numpy as np
    import pyarrow as pa

    path = out / f"tiny_rows_{rows}.lance"
    if path.exists() and lance.dataset(str(path)).count_rows() == rows:
        return path
    print(f"writing {rows:,} one-byte rows to {path} ...", flush=True)
    t = time.perf_counter()
    schema = pa.schema([("v", pa.uint8())])

    def batches():
        for start in range(0, rows, 1 << 22):
            n = min(1 << 22, rows - start)
            yield pa.record_batch([pa.array((np.arange(start, start + n) % 256)
                                            .astype(np.uint8))], schema=schema)

    lance.write_dataset(pa.RecordBatchReader.from_batches(schema, batches()), str(path),
                        mode="overwrite", max_rows_per_file=8_000_000)
    print(f"  done in {time.perf_counter() - t:.0f} s", flush=True)
    return path


def real_child(path: str, mode: str, filtered: bool) -> dict:
    import warnings

    import torch  # noqa: F401  (the baseline includes what every loader imports)
    import yaml

    from loaderkit import load_recipe

    recipe = {"loaderkit": 1, "source": {"uri": path}, "columns": ["v"],
              "sampler": {**MODES[mode], "seed": 1, "rank": 3, "world_size": 8},
              "loader": {"batch_size": 1024, "drop_last": True}}
    if filtered:
        recipe["filter"] = "v % 2 = 0"
    file = Path(path).parent / f"epoch_{mode}_{filtered}.yaml"
    file.write_text(yaml.safe_dump(recipe))
    baseline = start_peak()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = load_recipe(str(file))
    first = next(iter(loader))
    return {"seconds": time.perf_counter() - start, "peak_above_mb": peak_mb() - baseline,
            "rows_in_batch": len(first["v"]),
            "plan_mb": loader.row_sampler.universe.nbytes / 2**20}


def run(*args: str) -> dict:
    result = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *args],
                            capture_output=True, text=True, timeout=3600,
                            env=dict(os.environ, LANCE_LOG="error", PYTHONWARNINGS="ignore"))
    if result.returncode != 0:
        raise SystemExit(f"{args} failed:\n{result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real-rows", default="20000000,200000000",
                    help="comma-separated sizes of the on-disk datasets")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--child", nargs="*")
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "synthetic":
            print(json.dumps(synthetic_child(int(rest[0]), rest[1])))
        else:
            print(json.dumps(real_child(rest[0], rest[1], rest[2] == "1")))
        return
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    import statistics

    def median(samples: list[dict], key: str) -> float:
        return statistics.median(s[key] for s in samples)

    synthetic: dict[tuple[str, int], list[dict]] = {}
    for _ in range(args.reps):
        for mode in MODES:
            for rows in SYNTHETIC:
                synthetic.setdefault((mode, rows), []).append(run("synthetic", str(rows), mode))
    sizes = sorted(int(r) for r in args.real_rows.split(","))
    paths = {rows: ensure_real(out, rows) for rows in sizes}
    real: dict[tuple[int, str, bool], list[dict]] = {}
    for _ in range(args.reps):
        for rows, path in paths.items():
            for mode in ("block", "exact"):
                for filtered in (False, True):
                    real.setdefault((rows, mode, filtered), []).append(
                        run("real", str(path), mode, "1" if filtered else "0"))
    largest = sizes[-1]
    lines = ["# epoch start cost (rank 3 of 8, batch 1024; medians of "
             f"{args.reps} fresh processes)", "",
             "| universe | sampler | first task s | peak memory +MB |",
             "| --- | --- | ---: | ---: |"]
    for (mode, rows), samples in synthetic.items():
        lines.append(f"| synthetic {rows:,} rows | {mode} | {median(samples, 'seconds'):.4f} | "
                     f"{median(samples, 'peak_above_mb'):.1f} |")
    lines += ["", "| one-byte rows on disk | sampler | load_recipe -> first "
                  "batch s | peak memory +MB | plan MB |", "| --- | --- | ---: | ---: | ---: |"]
    for (rows, mode, filtered), samples in real.items():
        lines.append(f"| {rows:,}, {'filter keeps half' if filtered else 'unfiltered'} | {mode} | "
                     f"{median(samples, 'seconds'):.2f} | {median(samples, 'peak_above_mb'):.0f} "
                     f"| {median(samples, 'plan_mb'):.1f} |")
    targets = []
    for mode in MODES:
        # Floors, as for memory: a first task of ~0.1 ms swings 2x from run to run (the
        # timer and the scheduler, not the plan), so times under 1 ms count as 1 ms.
        t = [max(0.001, median(synthetic[mode, r], "seconds")) for r in SYNTHETIC]
        m = [max(1.0, median(synthetic[mode, r], "peak_above_mb")) for r in SYNTHETIC]
        targets.append((f"{mode}: 10x the rows costs <= 1.5x the time (worst step; "
                        "under 1 ms counts as 1 ms)", max(t[1] / t[0], t[2] / t[1]), 1.5))
        targets.append((f"{mode}: 10x the rows costs <= 1.5x the memory (worst step)",
                        max(m[1] / m[0], m[2] / m[1]), 1.5))
    for mode in ("block", "exact"):
        first = [median(real[rows, mode, False], "seconds") for rows in sizes]
        targets.append((f"{mode}, on disk: 10x the rows costs <= 1.5x the time to the first "
                        "batch (worst step)",
                        max([b / a for a, b in itertools.pairwise(first)],
                            default=1.0), 1.5))
        targets.append((f"{largest:,} rows, {mode}: first batch <= 1 s",
                        median(real[largest, mode, False], "seconds"), 1.0))
        targets.append((f"{largest:,} rows, {mode}: plan memory <= 64 MB",
                        median(real[largest, mode, False], "plan_mb"), 64.0))
        targets.append((f"{largest:,} rows, filter keeps half, {mode}: first batch <= 10 s",
                        median(real[largest, mode, True], "seconds"), 10.0))
        targets.append((f"{largest:,} rows, filter keeps half, {mode}: <= 600 MB above "
                        "baseline", median(real[largest, mode, True], "peak_above_mb"), 600.0))
    lines += ["", "| target | measured | verdict |", "| --- | ---: | --- |"]
    lines += [f"| {text} | {value:.2f} | {'PASS' if value <= bar else 'FAIL'} |"
              for text, value, bar in targets]
    lines += ["", f"Machine: {info['nproc']} cores, {info['cpu']}, {info['ram_gb']} GB RAM; "
                  f"{info['date']}."]
    text = "\n".join(lines)
    print(text)
    (out / "epochs.md").write_text(text + "\n")
    (out / "epochs.json").write_text(json.dumps({
        "synthetic": {f"{k[0]} {k[1]}": v for k, v in synthetic.items()},
        "real": {f"{k[0]} {k[1]} {k[2]}": v for k, v in real.items()}, "machine": info},
        indent=1))
    chart(synthetic, out / "epochs.png")


def chart(synthetic: dict[tuple[str, int], list[dict]], path: Path) -> None:
    import statistics

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.4), dpi=90)
    for mode in MODES:
        t = [statistics.median(s["seconds"] for s in synthetic[mode, r]) for r in SYNTHETIC]
        m = [statistics.median(s["peak_above_mb"] for s in synthetic[mode, r]) for r in SYNTHETIC]
        left.plot(SYNTHETIC, t, marker="o", label=mode)
        right.plot(SYNTHETIC, m, marker="o", label=mode)
    for ax, label in ((left, "first task (s)"), (right, "peak memory (+MB)")):
        ax.set_xscale("log")
        ax.set_xlabel("rows in the universe")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle("Planning an epoch: rank 3 of 8, batch 1024", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
