"""`source.cache` over a real S3 API (moto on loopback), every request counted at a proxy.

The proxy (benchmarks/latency_proxy.py) logs each request's path, Range and User-Agent; the
cache's own downloads say `agent=loaderkit-cache`, a loader's reads say pylance's agent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from loaderkit import load_recipe
from loaderkit.runtime import object_cache
from tests.reliability.support import (
    BUCKET,
    ENDPOINT_VAR,
    HERE,
    PYTHON,
    REPO,
    ROWS,
    S3,
    free_port,
    recipe_for_s3,
    subprocess_env,
    wait_for_port,
    wait_until,
    write_recipe,
)

CHILD = HERE / "cache_child.py"


@dataclass
class Proxy:
    """The store as the loaders see it: every request logged."""

    log: Path

    def requests(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def clear(self) -> None:
        self.log.write_text("")

    def data_reads(self) -> list[str]:
        """Requests for data files (`data/*.lance`), by anyone."""
        return [line for line in self.requests() if "/data/" in line.split(" ")[1]]

    def downloads(self) -> list[str]:
        """The cache's own requests for data files."""
        return [line for line in self.data_reads() if object_cache.USER_AGENT in line]


@pytest.fixture
def proxy_factory(s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> Iterator[Callable[..., Proxy]]:
    """Start a logging proxy in front of the S3 server (optionally a slow one); recipes
    reach the store through the last one started."""
    processes: list[subprocess.Popen[bytes]] = []
    target = int(s3.endpoint.rsplit(":", 1)[1])

    def start(reply_bytes_per_s: float | None = None) -> Proxy:
        port = free_port()
        log = tmp_path / f"requests-{port}.log"
        rate = ["--reply-bytes-per-s", str(reply_bytes_per_s)] if reply_bytes_per_s else []
        processes.append(subprocess.Popen(
            [PYTHON, str(REPO / "benchmarks" / "latency_proxy.py"), "--listen", str(port),
             "--target", str(target), "--delay-ms", "0", "--log", str(log), *rate]))
        wait_for_port(port)
        monkeypatch.setenv(ENDPOINT_VAR, f"http://127.0.0.1:{port}")
        return Proxy(log)

    yield start
    for process in processes:
        process.kill()
        process.wait()


@pytest.fixture
def proxy(proxy_factory: Callable[..., Proxy]) -> Proxy:
    return proxy_factory()


def _cached_recipe(path: Path, uri: str, cache_dir: Path, *, max_gb: float | None = None,
                   columns: str = "[id]", sampler: str = "shuffle") -> Path:
    bound = f"    max_gb: {max_gb:.12f}\n" if max_gb is not None else ""
    body = recipe_for_s3(uri, workers=0, sampler=sampler)
    body = body.replace("columns: [id]\n", f"  cache:\n    dir: {cache_dir}\n{bound}"
                                            f"columns: {columns}\n", 1)
    return write_recipe(path, body)


def _load(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_recipe(str(path))


def _epoch(loader) -> list[int]:
    return [i for batch in loader for i in batch["id"].tolist()]


def _whole(cache_dir: Path) -> bool:
    return bool(list(cache_dir.glob(f"*/{object_cache.MARKER_DIR}/*.json")))


def _child(recipe: Path, cache_dir: Path, mode: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([PYTHON, str(CHILD), str(recipe), str(cache_dir), mode, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env())


def _finish(process: subprocess.Popen[str]) -> list[int]:
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-3000:]
    return list(json.loads(out.strip().splitlines()[-1]))


def _data_files(s3: S3, uri: str) -> dict[str, int]:
    """The version's data files in the store: name -> size."""
    import lance

    ds = lance.dataset(uri, storage_options=s3.storage_options())
    return {d.path: int(d.file_size_bytes) for f in ds.get_fragments() for d in f.data_files()}


def _write_wide(s3: S3, rows: int = 2000, rows_per_file: int = 500) -> str:
    """A dataset of ~1 KB rows (id + 256 floats): files big enough to catch mid-download."""
    import lance
    import numpy as np
    import pyarrow as pa

    ids = np.arange(rows, dtype=np.int64)
    pad = pa.FixedSizeListArray.from_arrays(
        pa.array(np.repeat(ids.astype(np.float32), 256)), 256)
    uri = f"s3://{BUCKET}/{uuid.uuid4().hex}.lance"
    lance.write_dataset(pa.table({"id": ids, "pad": pad}), uri,
                        storage_options=s3.storage_options(), max_rows_per_file=rows_per_file)
    return uri


def test_epoch_two_reads_no_data_file_from_the_store(s3: S3, proxy: Proxy,
                                                     tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    loader = _load(_cached_recipe(tmp_path / "r.yaml", s3.write_dataset(), cache_dir))
    first = _epoch(loader)
    assert proxy.data_reads()  # epoch 1 read the store
    assert wait_until(lambda: _whole(cache_dir), 60)
    proxy.clear()
    second = _epoch(loader)
    assert sorted(second) == sorted(first) == list(range(ROWS))
    assert proxy.data_reads() == []
    proxy.clear()
    again = _load(tmp_path / "r.yaml")  # a later run on the machine
    assert _epoch(again) == first  # epoch 0 again, from the copy
    assert proxy.data_reads() == []


def test_cached_rows_are_identical_to_uncached(s3: S3, proxy: Proxy, tmp_path: Path) -> None:
    uri = s3.write_dataset()
    plain = write_recipe(tmp_path / "plain.yaml", recipe_for_s3(uri, workers=0).replace(
        "columns: [id]", "columns: [id, x]"))
    cache_dir = tmp_path / "cache"
    cached = _cached_recipe(tmp_path / "cached.yaml", uri, cache_dir, columns="[id, x]")
    for path in (plain, cached):  # the same order (a cache alone defaults to smaller blocks)
        path.write_text(path.read_text().replace("  seed: 7\n", "  seed: 7\n  block_rows: 256\n"))
    _epoch(_load(cached))
    assert wait_until(lambda: _whole(cache_dir), 60)

    def epochs(path: Path) -> list[list[tuple[int, float]]]:
        loader = _load(path)
        return [[(i, x) for batch in loader
                 for i, x in zip(batch["id"].tolist(), batch["x"].tolist(), strict=True)]
                for _ in range(2)]

    proxy.clear()
    from_cache = epochs(cached)
    assert proxy.data_reads() == []  # every row came from the local copy
    assert from_cache == epochs(plain)


def test_two_processes_on_one_machine_download_each_file_once(
        s3: S3, proxy_factory: Callable[..., Proxy], tmp_path: Path) -> None:
    uri = _write_wide(s3)
    cache_dir = tmp_path / "cache"
    recipe = _cached_recipe(tmp_path / "r.yaml", uri, cache_dir)
    proxy = proxy_factory(reply_bytes_per_s=512 << 10)  # ~1 s a file: the downloads overlap
    children = [_child(recipe, cache_dir, "epoch") for _ in range(2)]
    for child in children:
        assert sorted(_finish(child)) == list(range(2000))
    files = _data_files(s3, uri)
    downloaded = [line.split(" ")[1].rsplit("/", 1)[1] for line in proxy.downloads()]
    assert sorted(downloaded) == sorted(files)  # every file, each once


PIECE = 64 << 10  # the children's download piece: a file is 8 of them


def _parts(cache_dir: Path) -> dict[str, int]:
    return {p.name[:-len(object_cache.PART)]: p.stat().st_size
            for p in cache_dir.glob(f"*/data/*{object_cache.PART}")}


def _kill_mid_download(recipe: Path, cache_dir: Path, files: dict[str, int],
                       proxy_factory: Callable[..., Proxy]) -> dict[str, int]:
    """Fill the cache over a slow link and SIGKILL the process mid-file: the bytes of each
    file it kept (complete files, and a part's prefix)."""
    proxy_factory(reply_bytes_per_s=256 << 10)  # ~2 s a file
    filling = _child(recipe, cache_dir, "fill", str(PIECE))
    assert wait_until(lambda: any(size >= 2 * PIECE for size in _parts(cache_dir).values()),
                      120)
    os.kill(filling.pid, signal.SIGKILL)
    filling.wait()
    kept = {name: files[name] for name in files if list(cache_dir.glob(f"*/data/{name}"))}
    kept.update({name: size for name, size in _parts(cache_dir).items() if name not in kept})
    assert any(0 < size < files[name] for name, size in kept.items())  # caught mid-file
    return kept


def test_a_download_killed_mid_file_resumes_and_never_reads_a_partial_file(
        s3: S3, proxy_factory: Callable[..., Proxy], tmp_path: Path) -> None:
    uri = _write_wide(s3)
    files = _data_files(s3, uri)
    cache_dir = tmp_path / "cache"
    recipe = _cached_recipe(tmp_path / "r.yaml", uri, cache_dir)
    kept = _kill_mid_download(recipe, cache_dir, files, proxy_factory)

    fast = proxy_factory()
    ids = _finish(_child(recipe, cache_dir, "epoch", str(PIECE)))
    assert sorted(ids) == list(range(2000))
    # No byte the killed run kept was asked for again by the cache.
    for line in fast.downloads():
        name = line.split(" ")[1].rsplit("/", 1)[1]
        start = int(line.split("bytes=")[1].split("-")[0])
        assert start >= kept.get(name, 0), (line, kept)
    # The copy is the store's files, byte for byte.
    import boto3

    client = boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    key = uri.split(f"s3://{BUCKET}/", 1)[1]
    for name in files:
        (local,) = cache_dir.glob(f"*/data/{name}")
        body = client.get_object(Bucket=BUCKET, Key=f"{key}/data/{name}")["Body"].read()
        assert local.read_bytes() == body


def _fill(recipe: Path, cache_dir: Path) -> None:
    assert _finish(_child(recipe, cache_dir, "epoch"))


def test_max_gb_evicts_the_least_recently_used_files_first(
        s3: S3, proxy: Proxy, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    uris = {name: s3.write_dataset() for name in ("a", "b", "c")}
    size = sum(_data_files(s3, uris["a"]).values())
    # Room for two datasets' files (and their manifests), not three.
    bound = 2.6 * size / 2**30
    recipes = {name: _cached_recipe(tmp_path / f"{name}.yaml", uri, cache_dir, max_gb=bound)
               for name, uri in uris.items()}
    _fill(recipes["a"], cache_dir)
    _fill(recipes["b"], cache_dir)
    _fill(recipes["a"], cache_dir)  # `a` read again: now `b` is the least recently used
    cache_dir_b = cache_dir / object_cache.dataset_key(uris["b"])
    before = set(cache_dir_b.rglob("*.lance"))
    _fill(recipes["c"], cache_dir)
    used = sum(stat.st_size for _, stat in object_cache._cached_files(cache_dir))
    assert used <= bound * 2**30
    assert set(cache_dir_b.rglob("*.lance")) < before  # `b` lost files
    for name in ("a", "c"):  # `a` and `c` are whole
        mirror = object_cache.ObjectCache(uris[name], None, cache_dir, None)
        assert mirror.complete(1) is not None


def test_no_secret_appears_in_any_cache_path_or_file(s3: S3, proxy: Proxy,
                                                     tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    token = f"tok-{uuid.uuid4().hex}"
    recipe = _cached_recipe(tmp_path / "r.yaml", s3.write_dataset(), cache_dir)
    # A secret-looking option value beside the credentials (read from the environment).
    text = recipe.read_text().replace("    aws_region: us-east-1\n",
                                      "    aws_region: us-east-1\n"
                                      "    aws_session_token: ${env:LK_CACHE_TEST_TOKEN}\n")
    recipe.write_text(text)
    os.environ["LK_CACHE_TEST_TOKEN"] = token
    try:
        _epoch(_load(recipe))
        assert wait_until(lambda: _whole(cache_dir), 60)
    finally:
        del os.environ["LK_CACHE_TEST_TOKEN"]
    for secret in (s3.secret, s3.key_id, token):
        for root, dirs, names in os.walk(cache_dir):
            for name in [*dirs, *names]:
                assert secret not in os.path.join(root, name)
                path = Path(root) / name
                if path.is_file() and not name.endswith(".lance"):
                    assert secret.encode() not in path.read_bytes()


def test_the_cache_key_drops_user_info_and_query_strings() -> None:
    plain = object_cache.dataset_key("s3://bucket/train.lance")
    assert object_cache.dataset_key("s3://AKID:s3cr3t@bucket/train.lance?X-Amz-Signature=s3cr3t"
                                    "#frag") == plain
    assert object_cache.dataset_key("s3://bucket/other.lance") != plain
    assert "s3cr3t" not in plain


if sys.platform != "linux":  # fcntl locks and /proc: the machine the suite runs on
    pytestmark = pytest.mark.skip("Linux only")


def _build(recipe: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "loaderkit", "build", str(recipe), *args],
                          capture_output=True, text=True, env=subprocess_env(), timeout=180)


def test_build_says_what_is_cached_and_how_much(s3: S3, proxy: Proxy, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    recipe = _cached_recipe(tmp_path / "r.yaml", s3.write_dataset(), cache_dir)
    before = _build(recipe)
    assert before.returncode == 0, before.stdout + before.stderr
    assert f"cache={cache_dir}" in before.stdout and "cached, version 1 " in before.stdout
    _fill(recipe, cache_dir)
    after = _build(recipe, "--json")
    graph = json.loads(after.stdout)["graph"]
    (source,) = [n for n in graph["children"][0]["children"] if n["kind"] == "source"]
    shown = source["settings"]["cache"]
    assert "whole: read locally" in shown and str(cache_dir) in shown
    assert " 0 files" not in shown and " 0.0 KB" not in shown


def _diagnostics(recipe: Path) -> list:
    from loaderkit.compiler import compile_recipe

    return compile_recipe(recipe).diagnostics


def test_an_unwritable_cache_dir_is_a_located_warning(s3: S3, proxy: Proxy,
                                                      tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    recipe = _cached_recipe(tmp_path / "r.yaml", s3.write_dataset(), blocker)
    (found,) = [d for d in _diagnostics(recipe) if d.code == "LK424"]
    line = recipe.read_text().splitlines().index("  cache:") + 1
    assert (found.line, found.column, found.severity) == (line, 3, "warning")
    assert sorted(_epoch(_load(recipe))) == list(range(ROWS))  # read from the store instead


def test_a_cache_smaller_than_the_version_is_a_warning_with_the_size_needed(
        s3: S3, proxy: Proxy, tmp_path: Path) -> None:
    recipe = _cached_recipe(tmp_path / "r.yaml", s3.write_dataset(), tmp_path / "cache",
                            max_gb=1e-6)
    (found,) = [d for d in _diagnostics(recipe) if d.code == "LK425"]
    assert "raise cache.max_gb" in (found.hint or "")


def test_a_cache_on_a_uri_from_the_environment_that_is_local_is_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.reliability.support import write_local_dataset

    monkeypatch.setenv("LK_CACHE_TEST_URI", str(write_local_dataset(tmp_path / "d.lance")))
    recipe = write_recipe(tmp_path / "r.yaml", f"""\
        loaderkit: 1
        source:
          uri: ${{env:LK_CACHE_TEST_URI}}
          cache:
            dir: {tmp_path / "cache"}
        columns: [id]
        """)
    (found,) = [d for d in _diagnostics(recipe) if d.code == "LK426"]
    assert (found.line, found.column) == (4, 3)
    assert not (tmp_path / "cache").exists()


def test_a_cached_source_shuffles_in_the_local_disk_block_size(s3: S3, proxy: Proxy,
                                                              tmp_path: Path) -> None:
    from loaderkit.runtime import storage

    uri = s3.write_dataset()
    cached = _load(_cached_recipe(tmp_path / "c.yaml", uri, tmp_path / "cache"))
    plain = _load(write_recipe(tmp_path / "p.yaml", recipe_for_s3(uri, workers=0)))
    # The copy makes small reads cheap: blocks mix as on local disk (docs/s3.md).
    assert cached.row_sampler.spec.block_rows == storage.LOCAL_BLOCK_ROWS
    assert plain.row_sampler.spec.block_rows == storage.OBJECT_STORE_BLOCK_ROWS


def test_a_filter_over_an_indexed_column_runs_from_the_copy(s3: S3, proxy: Proxy,
                                                            tmp_path: Path) -> None:
    import lance

    uri = s3.write_dataset()
    lance.dataset(uri, storage_options=s3.storage_options()).create_scalar_index("id", "BTREE")
    cache_dir = tmp_path / "cache"
    recipe = _cached_recipe(tmp_path / "r.yaml", uri, cache_dir)
    recipe.write_text(recipe.read_text() + "filter: id < 700\n")
    _fill(recipe, cache_dir)
    assert list(cache_dir.glob("*/_indices/*/*"))  # the index came with the copy
    proxy.clear()
    assert sorted(_epoch(_load(recipe))) == list(range(700))
    assert proxy.data_reads() == []


def test_build_of_a_local_dataset_with_a_cache_says_it_is_not_cached(tmp_path: Path) -> None:
    from tests.reliability.support import write_local_dataset

    data = write_local_dataset(tmp_path / "d.lance")
    recipe = write_recipe(tmp_path / "r.yaml", f"""\
        loaderkit: 1
        source:
          uri: {data}
          cache:
            dir: {tmp_path / "cache"}
        columns: [id]
        """)
    result = _build(recipe)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cache=none: its files are already on this machine" in result.stdout
    assert f"{recipe}:4:3: warning LK230" in result.stdout


def test_a_part_left_by_a_killed_download_counts_against_max_gb(
        s3: S3, proxy_factory: Callable[..., Proxy], tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    wide = _write_wide(s3)
    _kill_mid_download(_cached_recipe(tmp_path / "w.yaml", wide, cache_dir), cache_dir,
                       _data_files(s3, wide), proxy_factory)
    small = s3.write_dataset()
    bound = 1.5 * sum(_data_files(s3, small).values()) / 2**30  # room for `small` alone
    proxy_factory()
    _fill(_cached_recipe(tmp_path / "s.yaml", small, cache_dir, max_gb=bound), cache_dir)
    assert _parts(cache_dir) == {}  # the dead download's part left first (it was oldest)
    on_disk = sum(p.stat().st_size for p in cache_dir.rglob("*") if p.is_file()
                  and not p.name.endswith((object_cache.LOCK, ".json")))
    assert on_disk <= bound * 2**30


def test_the_default_cache_dir_is_loaderkit_cache_from_the_environment(
        s3: S3, proxy: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_dir = tmp_path / "from-env"
    monkeypatch.setenv(object_cache.CACHE_ENV, str(cache_dir))
    body = recipe_for_s3(s3.write_dataset(), workers=0).replace(
        "columns: [id]\n", "  cache: {}\ncolumns: [id]\n", 1)
    _epoch(_load(write_recipe(tmp_path / "r.yaml", body)))
    assert wait_until(lambda: _whole(cache_dir), 60)


def test_each_cached_source_of_a_mixture_reads_its_copy(s3: S3, proxy: Proxy,
                                                       tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    options = recipe_for_s3("X", workers=0).split("  storage_options:\n")[1].split("columns:")[0]
    entries = "".join(
        f"  {name}:\n    uri: {s3.write_dataset()}\n    cache: {{dir: {cache_dir}}}\n"
        f"    storage_options:\n" + options.replace("    ", "      ")
        for name in ("a", "b"))
    recipe = write_recipe(tmp_path / "m.yaml", "loaderkit: 1\nsources:\n" + entries
                          + "columns: [id]\nsampler: {type: shuffle, seed: 3}\n"
                            "loader: {batch_size: 100}\n")
    loader = _load(recipe)
    first = _epoch(loader)
    assert wait_until(lambda: len(list(cache_dir.glob("*/_loaderkit/*.json"))) == 2, 60)
    proxy.clear()
    assert _epoch(_load(recipe)) == first
    assert proxy.data_reads() == []


def test_files_of_a_dataset_another_process_reads_are_never_evicted(
        s3: S3, proxy: Proxy, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    uris = {name: s3.write_dataset() for name in ("a", "b", "c")}
    bound = 2.6 * sum(_data_files(s3, uris["a"]).values()) / 2**30  # two datasets, not three
    recipes = {name: _cached_recipe(tmp_path / f"{name}.yaml", uri, cache_dir, max_gb=bound)
               for name, uri in uris.items()}
    _fill(recipes["a"], cache_dir)
    _fill(recipes["b"], cache_dir)
    reader = _child(recipes["a"], cache_dir, "hold")
    try:
        assert reader.stdout is not None and json.loads(reader.stdout.readline())
        mirror_a = cache_dir / object_cache.dataset_key(uris["a"])
        for path in mirror_a.rglob("*.lance"):  # `a` is now the least recently used...
            os.utime(path, (1_000_000, path.stat().st_mtime))
        _fill(recipes["c"], cache_dir)  # ...but a process reads it: `b` leaves instead
        for name in ("a", "c"):
            mirror = object_cache.ObjectCache(uris[name], None, cache_dir, None)
            assert mirror.complete(1) is not None, name
    finally:
        reader.kill()
        reader.communicate()


def test_a_cache_dir_read_from_the_environment_is_used_and_never_printed(
        s3: S3, proxy: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_dir = tmp_path / f"private-{uuid.uuid4().hex}"
    monkeypatch.setenv("LK_CACHE_TEST_DIR", str(cache_dir))
    body = recipe_for_s3(s3.write_dataset(), workers=0).replace(
        "columns: [id]\n", "  cache:\n    dir: ${env:LK_CACHE_TEST_DIR}\ncolumns: [id]\n", 1)
    recipe = write_recipe(tmp_path / "r.yaml", body)
    _fill(recipe, cache_dir)
    result = _build(recipe)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cache=${env:LK_CACHE_TEST_DIR}/" in result.stdout
    assert cache_dir.name not in result.stdout + result.stderr
