"""Benchmark image loading: blob and Hugging Face image columns, decoded to 224 px, batch 64.

    python benchmarks/bench_images.py [--rows 20000] [--reps 3] [--out benchmarks/out]

Writes ~20,000 JPEGs of 256x256 twice (once in a blob column, once as a Hugging
Face `Image` column written with `lance.write_dataset(hf_dataset)`), then runs
every loader in a fresh subprocess, interleaved over `--reps` rounds, and prints
medians and the issue's targets. Each loader decodes every image to a 224x224
uint8 tensor [3, 224, 224] and stacks batches of 64 (prompts beside them):
- loaderkit: a recipe with `decode:` (simplejpeg, resize while decoding);
- pylance: `LanceDataset` with a `to_tensor_fn` decoding with PIL (the pattern of
  the Lance docs), each worker reading its own fragments (`shard_granularity`);
- LanceDB: `Permutation` with a transform decoding with PIL, in a DataLoader.
Rates are measured after the first WARM batches (worker start-up excluded for
everyone: loaderkit's main process decodes until its workers are up, so its clock
waits for that too), over MEASURED batches. Worker peak RSS is sampled from /proc.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench_loaders import fmt_rate, machine, med

BATCH = 64
SIDE = 256
SIZE = 224
WARM = 40  # batches pulled before the clock starts (worker start-up)
MEASURED = 160  # batches timed

CONFIGS: dict[str, tuple[str, str, str, int]] = {  # name -> (label, kind, data, workers)
    "lk_blob_w0": ("loaderkit, blob column, decode, 0 workers", "loaderkit", "blob", 0),
    "lk_blob_w2": ("loaderkit, blob column, decode, 2 spawn workers", "loaderkit", "blob", 2),
    "lk_hf_w0": ("loaderkit, HF Image column, decode, 0 workers", "loaderkit", "hf", 0),
    "lk_hf_w2": ("loaderkit, HF Image column, decode, 2 spawn workers", "loaderkit", "hf", 2),
    "pl_blob_w0": ("pylance LanceDataset + PIL to_tensor_fn, blob, 0 workers", "anchor", "blob",
                   0),
    "pl_blob_w2": ("pylance LanceDataset + PIL to_tensor_fn, blob, 2 spawn", "anchor", "blob", 2),
    "pl_hf_w0": ("pylance LanceDataset + PIL to_tensor_fn, HF Image, 0 workers", "anchor", "hf",
                 0),
    "pl_hf_w2": ("pylance LanceDataset + PIL to_tensor_fn, HF Image, 2 spawn", "anchor", "hf", 2),
    "perm_hf_w0": ("lancedb Permutation + PIL transform, HF Image, 0 workers", "anchor", "hf",
                   0),
    "perm_hf_w2": ("lancedb Permutation + PIL transform, HF Image, 2 spawn", "anchor", "hf", 2),
    "lk_bytes_w0": ("loaderkit, blob bytes without decoding, 0 workers", "loaderkit", "blob", 0),
    "pl_bytes_w0": ("pylance take_blobs + readall, 0 workers", "anchor", "blob", 0),
}
# Loaders compared with each other run back to back (see bench_loaders.RUN_GROUPS).
RUN_GROUPS = [
    ["lk_blob_w2", "pl_blob_w2", "perm_hf_w2", "lk_hf_w2", "pl_hf_w2"],
    ["lk_blob_w0", "lk_hf_w0", "pl_blob_w0", "pl_hf_w0", "perm_hf_w0"],
    ["lk_bytes_w0", "pl_bytes_w0"],
]


# --------------------------------------------------------------------------- data

def jpegs(rows: int) -> list[bytes]:
    """Photo-like 256 px JPEGs (gradients and noise, quality 90: ~40 KB each)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    out = []
    for i in range(rows):
        base = np.stack([(x + i) % 256, (y * 2 + 3 * i) % 256, ((x + y) // 2 + i) % 256], -1)
        pixels = base.astype(np.float32) + rng.normal(0, 24, base.shape)
        buffer = io.BytesIO()
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def data_path(out: Path, rows: int, data: str) -> Path:
    return out / f"images_{rows}" / f"{data}.lance"


def ensure_data(out: Path, rows: int) -> None:
    import datasets
    import lance
    import pyarrow as pa

    paths = {d: data_path(out, rows, d) for d in ("blob", "hf")}
    if all(p.exists() and lance.dataset(str(p)).count_rows() == rows for p in paths.values()):
        return
    print(f"writing {rows:,} JPEGs of {SIDE}x{SIDE} twice under {paths['blob'].parent} ...",
          flush=True)
    t = time.perf_counter()
    images = jpegs(rows)
    prompts = [f"a picture, number {i}" for i in range(rows)]
    per_file = max(1, rows // 8)
    # Blob v1 (2.1 files): pylance's LanceDataset cannot scan a blob v2 column ("ArrowArray
    # struct has 5 children, expected 4"), and the anchors must run.
    schema = pa.schema([pa.field("id", pa.int64()),
                        pa.field("image", pa.large_binary(),
                                 metadata={"lance-encoding:blob": "true"}),
                        pa.field("prompt", pa.string())])
    table = pa.table({"id": pa.array(range(rows), pa.int64()),
                      "image": pa.array(images, pa.large_binary()), "prompt": prompts},
                     schema=schema)
    lance.write_dataset(table, str(paths["blob"]), mode="overwrite", max_rows_per_file=per_file,
                        data_storage_version="2.1")
    hf = datasets.Dataset.from_dict({
        "id": list(range(rows)), "image": [{"bytes": b, "path": None} for b in images],
        "prompt": prompts}).cast_column("image", datasets.Image())
    lance.write_dataset(hf, str(paths["hf"]), mode="overwrite", max_rows_per_file=per_file)
    kb = sum(map(len, images)) / len(images) / 1024
    print(f"  done in {time.perf_counter() - t:.0f} s ({kb:.0f} KB per image)", flush=True)


# --------------------------------------------------------------------------- anchors' code

def pil_decode(data: bytes):
    """What a hand-written loader does per image: PIL decode, convert, resize, to CHW."""
    import numpy as np
    import torch
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def pylance_to_tensor(batch, *, hf_converter=None, use_blob_api=False, **_):
    """pylance's to_tensor_fn: a blob column arrives as BlobFiles (use_blob_api), an HF
    Image column as struct<bytes, path>."""
    import torch

    column = batch["image"]
    if use_blob_api:
        raw = [blob.readall() for blob in column]
    else:
        raw = [row["bytes"] for row in column.to_pylist()]
    return {"image": torch.stack([pil_decode(r) for r in raw]),
            "prompt": batch["prompt"].to_pylist()}


def pylance_bytes(batch, *, hf_converter=None, use_blob_api=False, **_):
    return {"image": [blob.readall() for blob in batch["image"]],
            "prompt": batch["prompt"].to_pylist()}


def permutation_transform(batch):
    import torch

    raw = [row["bytes"] for row in batch.column("image").to_pylist()]
    return {"image": torch.stack([pil_decode(r) for r in raw]),
            "prompt": batch.column("prompt").to_pylist()}


def identity(batch):
    return batch


# --------------------------------------------------------------------------- children

class WorkerRSS:
    """Samples the RSS of this process's child processes (the workers) every 100 ms."""

    def __init__(self) -> None:
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _children(self) -> list[int]:
        pid = os.getpid()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for child in self._children():
                try:
                    with open(f"/proc/{child}/status") as f:
                        rss = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS"))
                except (OSError, StopIteration, ValueError):
                    continue
                self.peak[child] = max(self.peak.get(child, 0), rss * 1024)

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        # Workers only: the resource tracker and the spawn probe stay small.
        return sorted(v / 2**20 for v in self.peak.values() if v > 200 * 2**20)


def reference_rss(uri: str) -> float:
    """RSS of a fresh spawn process that imported what a worker imports and opened the
    data: a worker's baseline, before it holds any batch."""
    code = ("import torch, lance, numpy, PIL.Image, simplejpeg, loaderkit.runtime.dataset\n"
            f"ds = lance.dataset({uri!r}); ds.take([0], columns=['id'])\n"
            "print(int(open('/proc/self/statm').read().split()[1]) * 4096)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    return int(result.stdout.strip()) / 2**20


def measure(loader, rows: int) -> dict:  # type: ignore[no-untyped-def]
    """Rows/s over MEASURED batches after WARM (fewer when the data has fewer batches)."""
    total = rows // BATCH
    warm = min(WARM, total // 5)
    rss = WorkerRSS()
    t0 = time.perf_counter()
    it = iter(loader)
    for _ in range(warm):
        next(it)
    # loaderkit's main process decodes while its workers start (they import for seconds)
    # and hands them the rest once all are up: its clock, too, starts once they decode.
    pool = getattr(loader, "workers", None)
    if getattr(loader, "num_workers", 0) and pool is not None:
        while not pool.all_up and warm < total // 2:
            next(it)
            warm += 1
        for _ in range(2 * loader.num_workers):  # the hand-over, at the next task
            next(it)
            warm += 1
    measured = min(MEASURED, total - warm - 2)
    t_warm = time.perf_counter()
    rows = 0
    for _ in range(measured):
        batch = next(it)
        rows += len(batch["prompt"])
    t_end = time.perf_counter()
    del it
    workers = rss.stop()
    return {"rows": rows, "rows_per_s": rows / (t_end - t_warm), "warm_s": t_warm - t0,
            "warm_batches": warm, "worker_peak_rss_mb": workers}


def child(name: str, out: Path, rows: int) -> dict:
    import lance  # noqa: F401
    import torch  # noqa: F401
    from torch.utils.data import DataLoader

    _label, kind, data, workers = CONFIGS[name]
    uri = str(data_path(out, rows, data))
    spawn = {"multiprocessing_context": "spawn", "persistent_workers": True} if workers else {}
    if kind == "loaderkit":
        import warnings

        import yaml

        from loaderkit import load_recipe

        recipe: dict = {"loaderkit": 1, "source": {"uri": uri}, "columns": ["image", "prompt"],
                        "sampler": {"type": "shuffle", "seed": 0},
                        "loader": {"batch_size": BATCH, "num_workers": workers}}
        if name != "lk_bytes_w0":
            recipe["decode"] = {"image": {"type": "image", "size": [SIZE, SIZE]}}
        path = out / "recipes" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(recipe))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = measure(load_recipe(str(path)), rows)
    elif name.startswith("pl_"):
        from lance.torch.data import LanceDataset

        fn = pylance_bytes if name == "pl_bytes_w0" else pylance_to_tensor
        dataset = LanceDataset(uri, batch_size=BATCH, columns=["image", "prompt"],
                               to_tensor_fn=fn, shard_granularity="fragment")
        result = measure(DataLoader(dataset, batch_size=None, num_workers=workers, **spawn), rows)
    else:
        import lancedb
        from lancedb.permutation import Permutation

        table = lancedb.connect(str(Path(uri).parent)).open_table("hf")
        perm = Permutation.identity(table).select_columns(["image", "prompt"]) \
            .with_transform(permutation_transform)
        result = measure(DataLoader(perm, batch_size=BATCH, shuffle=True, num_workers=workers,
                                    collate_fn=identity, **spawn), rows)
    if workers:
        result["reference_rss_mb"] = reference_rss(uri)
    return result


def run_child(name: str, out: Path, rows: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--rows", str(rows),
           "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200,
                          env=dict(os.environ, PYTHONWARNINGS="ignore", LANCE_LOG="error"))
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-1500:]
        print(f"  !! {name} failed (rc {proc.returncode}):\n{tail}", flush=True)
        return {"error": tail}
    return dict(json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]))


# --------------------------------------------------------------------------- report

def report(runs: dict[str, list[dict]], info: dict, rows: int, reps: int) -> str:
    rate = {n: med(v, "rows_per_s") for n, v in runs.items()}

    def ratio(a: str, b: str) -> float:
        return rate.get(a, float("nan")) / rate.get(b, float("nan"))

    lines = [f"# image loading ({rows:,} JPEGs {SIDE}x{SIDE} -> {SIZE}x{SIZE}, batch {BATCH}; "
             f"medians of {reps} interleaved runs; rows/s over {MEASURED} batches after "
             f"{WARM}, and with workers once all are up)", "",
             "| loader | rows/s | worker peak RSS MB (baseline) |",
             "| --- | ---: | ---: |"]
    for name, (label, _kind, _data, workers) in CONFIGS.items():
        if name not in runs:
            continue
        peaks = [max(r["worker_peak_rss_mb"], default=float("nan")) for r in runs[name]]
        base = med(runs[name], "reference_rss_mb")
        rss = f"{statistics.median(peaks):.0f} ({base:.0f})" if workers and peaks else "-"
        lines.append(f"| `{name}` {label} | {fmt_rate(rate[name])} | {rss} |")
    best_w2 = max((rate[n] for n in ("pl_blob_w2", "pl_hf_w2", "perm_hf_w2") if n in rate),
                  default=float("nan"))
    over = []
    for name in ("lk_blob_w2", "lk_hf_w2"):
        for r in runs.get(name, []):
            base = r.get("reference_rss_mb", float("nan"))
            over += [p - base for p in r["worker_peak_rss_mb"]]
    prefetch_mb = 2 * BATCH * 3 * SIZE * SIZE / 2**20
    targets = [
        ("loaderkit 2 workers >= 1.5x the best hand-written anchor with 2 workers",
         min(rate.get("lk_blob_w2", float("nan")), rate.get("lk_hf_w2", float("nan")))
         / best_w2, 1.5),
        ("loaderkit 2 workers >= 1.7x its own 0-worker rate (blob)",
         ratio("lk_blob_w2", "lk_blob_w0"), 1.7),
        ("loaderkit 2 workers >= 1.7x its own 0-worker rate (HF Image)",
         ratio("lk_hf_w2", "lk_hf_w0"), 1.7),
        (f"each worker's peak RSS <= 300 MB above its baseline + prefetch ({prefetch_mb:.0f} MB)"
         " [MB above baseline, worst]", max(over, default=float("nan")),
         -(300 + prefetch_mb)),
        ("blob bytes without decoding >= pylance's take_blobs path",
         ratio("lk_bytes_w0", "pl_bytes_w0"), 1.0),
    ]
    lines += ["", "| target | measured | verdict |", "| --- | ---: | --- |"]
    for text, value, bar in targets:
        ok = value <= -bar if bar < 0 else value >= bar
        verdict = "n/a" if value != value else ("PASS" if ok else "FAIL")
        lines.append(f"| {text} | {value:.2f} | {verdict} |")
    lines += ["", f"Machine: {info['nproc']} cores, {info['cpu']}, {info['ram_gb']} GB RAM; "
                  f"Python {info['python']}; " + ", ".join(
                      f"{k} {v}" for k, v in info["versions"].items())
              + f"; {info['date']}; load average at start {info['loadavg_start']}."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--only", help="comma-separated subset of loaders")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = args.out.resolve()
    if args.child:
        print(json.dumps(child(args.child, out, args.rows)))
        return
    out.mkdir(parents=True, exist_ok=True)
    ensure_data(out, args.rows)
    names = [n for n in CONFIGS if not args.only or n in args.only.split(",")]
    info = machine()
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for rep in range(args.reps):
        groups = RUN_GROUPS[rep % len(RUN_GROUPS):] + RUN_GROUPS[:rep % len(RUN_GROUPS)]
        for name in [n for g in groups for n in (g if rep % 2 == 0 else g[::-1]) if n in names]:
            res = run_child(name, out, args.rows)
            if "error" not in res:
                runs[name].append(res)
                print(f"[{rep + 1}/{args.reps}] {name:12s} {fmt_rate(res['rows_per_s'])} rows/s"
                      f"  workers' peak RSS {res['worker_peak_rss_mb']}", flush=True)
    text = report(runs, info, args.rows, args.reps)
    print(text)
    (out / "images.md").write_text(text + "\n")
    (out / "images.json").write_text(json.dumps({"runs": runs, "machine": info}, indent=1))


if __name__ == "__main__":
    main()
