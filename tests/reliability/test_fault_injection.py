"""Faults mid-epoch: a dead storage server, a killed worker, data that vanishes or rots,
Ctrl-C, a concurrent writer. Each must end in a clear error (or a consistent epoch),
never a hang, a segfault or orphaned worker processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import boto3
import pytest

from loaderkit.compiler import compile_recipe
from loaderkit.errors import WorkerDied
from tests.reliability.support import (
    BUCKET,
    ENDPOINT_VAR,
    HERE,
    KEY_ID_VAR,
    PYTHON,
    ROWS,
    S3,
    SECRET_VAR,
    free_port,
    group_members,
    make_table,
    recipe_for_s3,
    start_moto_subprocess,
    subprocess_env,
    wait_until,
    worker_pids,
    write_local_dataset,
    write_recipe,
)


def _local_recipe(tmp_path: Path, dataset: Path, *, workers: int, sampler: str = "full_scan",
                  batch_size: int = 10) -> Path:
    prefetch = "\n          prefetch_factor: 1" if workers else ""
    return write_recipe(tmp_path / "recipe.yaml", f"""
        loaderkit: 1
        source:
          uri: {dataset}
        columns: [id]
        sampler:
          type: {sampler}
          chunk_rows: 100
        loader:
          batch_size: {batch_size}
          num_workers: {workers}{prefetch}
        """)


def _build(recipe: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LK408: workers without a transform
        return compile_recipe(str(recipe), probe=False).loader


def _run_child(scenario: str, recipe: Path, arg: str, *, timeout: float,
               env: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        result = subprocess.run([PYTHON, str(HERE / "fault_child.py"), scenario, str(recipe), arg],
                                capture_output=True, text=True, timeout=timeout,
                                env=env or subprocess_env())
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{scenario}: no result within {timeout} s (a hang?)\n{exc.stderr!r}")
    assert result.returncode == 0, (f"{scenario}: exit status {result.returncode} (a crash?)\n"
                                    f"{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- object storage ------------------------------------------------------------------------

@pytest.fixture
def killable_s3(tmp_path: Path) -> Any:
    """A moto server in its own process (so it can be stopped), with one dataset on it."""
    port = free_port()
    server = start_moto_subprocess(port)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        creds = S3(endpoint, "AKIDFAULTS", "fault-secret-value")
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="setup", aws_secret_access_key="setup"
                     ).create_bucket(Bucket=BUCKET)
        yield server, creds, creds.write_dataset(rows=ROWS, rows_per_file=100)
    finally:
        server.kill()  # SIGKILL ends a SIGSTOPped process too
        server.wait()


def test_storage_server_that_stops_answering_mid_epoch_raises_within_bounded_time(
        killable_s3: Any, tmp_path: Path) -> None:
    server, creds, uri = killable_s3
    # Short object-store timeouts and one retry: lance's `timeout`, `connect_timeout`,
    # `client_max_retries` and `client_retry_timeout` storage options.
    body = recipe_for_s3(uri, workers=2, sampler="full_scan", extra_options="""\
        timeout: 3s
        connect_timeout: 2s
        client_max_retries: "1"
        client_retry_timeout: "3"
        """).replace("batch_size: 100", "batch_size: 10\n  prefetch_factor: 1")
    recipe = write_recipe(tmp_path / "s3.yaml", body.replace("seed: 7", "chunk_rows: 100"))
    env = subprocess_env(**{KEY_ID_VAR: creds.key_id, SECRET_VAR: creds.secret,
                            ENDPOINT_VAR: creds.endpoint})
    outcome = _run_child("stop-server", recipe, str(server.pid), timeout=150, env=env)
    assert outcome["error_type"] is not None, f"the epoch finished from a dead server: {outcome}"
    assert outcome["seconds"] < 60
    dataset_name = uri.rsplit("/", 1)[-1]
    assert dataset_name in outcome["message"], outcome["message"]


# --- workers -------------------------------------------------------------------------------

def test_killed_worker_raises_and_leaves_no_worker_processes(tmp_path: Path) -> None:
    dataset = write_local_dataset(tmp_path / "data.lance", rows_per_file=100)
    loader = _build(_local_recipe(tmp_path, dataset, workers=2))
    iterator = iter(loader)
    next(iterator)
    workers = worker_pids(os.getpid())
    assert len(workers) == 2
    # Killed inside the block: DataLoader's SIGCHLD handler may raise at once.
    with pytest.raises(WorkerDied, match=rf"worker \d \(pid {workers[0]}\) was killed"):
        os.kill(workers[0], signal.SIGKILL)
        for _ in iterator:
            pass
    del iterator
    assert wait_until(lambda: not worker_pids(os.getpid()), 15), worker_pids(os.getpid())


# --- the data changes under the loader -----------------------------------------------------

def test_dataset_deleted_mid_epoch_raises_an_error(tmp_path: Path) -> None:
    dataset = write_local_dataset(tmp_path / "data.lance", rows_per_file=100)
    recipe = _local_recipe(tmp_path, dataset, workers=0)
    outcome = _run_child("delete", recipe, str(dataset), timeout=120)
    assert outcome["error_type"] is not None, f"no error after the data vanished: {outcome}"
    assert "data.lance" in outcome["message"]


def test_corrupted_data_files_mid_epoch_raise_an_error_not_a_crash(tmp_path: Path) -> None:
    dataset = write_local_dataset(tmp_path / "data.lance", rows_per_file=100)
    recipe = _local_recipe(tmp_path, dataset, workers=0)
    outcome = _run_child("corrupt", recipe, str(dataset), timeout=120)
    assert outcome["error_type"] is not None, f"corrupt data read without error: {outcome}"


def test_read_failure_mid_epoch_is_a_source_error_naming_the_source(tmp_path: Path) -> None:
    dataset = write_local_dataset(tmp_path / "data.lance", rows_per_file=100)
    recipe = _local_recipe(tmp_path, dataset, workers=0)
    outcome = _run_child("delete", recipe, str(dataset), timeout=120)
    assert outcome["is_runtime_failure"], outcome["traceback"]
    assert outcome["error_type"] == "SourceError", outcome["traceback"]
    assert outcome["message"].startswith(f"reading {dataset}: "), outcome["message"]
    assert ".rs:" not in outcome["message"]  # no Rust source locations


def test_read_failure_names_an_env_uri_by_its_reference_not_its_value(tmp_path: Path) -> None:
    dataset = write_local_dataset(tmp_path / "secret-place.lance", rows_per_file=100)
    recipe = _local_recipe(tmp_path, dataset, workers=0)
    recipe.write_text(recipe.read_text().replace(str(dataset), "${env:LK_RELIABILITY_URI}"))
    outcome = _run_child("delete", recipe, str(dataset), timeout=120,
                         env=subprocess_env(LK_RELIABILITY_URI=str(dataset)))
    assert outcome["error_type"] == "SourceError", outcome["traceback"]
    assert outcome["message"].startswith("reading ${env:LK_RELIABILITY_URI}: "), outcome
    assert "secret-place" not in outcome["message"], outcome["message"]


def test_read_failure_in_a_worker_is_a_source_error_with_its_own_message(
        tmp_path: Path) -> None:
    # DataLoader re-raises a worker's error with the worker's whole traceback as its
    # message (the engine's raw error and Rust locations included); the loader keeps
    # the error's own message and says which worker.
    dataset = write_local_dataset(tmp_path / "data.lance", rows_per_file=100)
    recipe = _local_recipe(tmp_path, dataset, workers=2)
    # With a transform the workers read every chunk (the main process reads none).
    recipe.write_text(recipe.read_text() + "transform: tests.reliability.batch_marker:mark\n")
    outcome = _run_child("delete", recipe, str(dataset), timeout=120)
    assert outcome["error_type"] == "SourceError", outcome["traceback"]
    message = outcome["message"]
    # A worker that had not opened the data yet fails to open it instead.
    assert message.startswith((f"reading {dataset}: ", f"cannot open {dataset}: ")), message
    assert "in DataLoader worker process" in message, message
    assert "Traceback" not in message and ".rs:" not in message, message


def test_what_a_signal_handler_raises_while_reading_is_not_a_source_error() -> None:
    # DataLoader's SIGCHLD handler reports a dead worker by raising RuntimeError from
    # wherever the main process is, which may be inside a read of its own.
    from loaderkit.errors import SourceError
    from loaderkit.runtime.sources.failures import reading
    from loaderkit.runtime.spec import SourceSpec

    class DeadWorker:
        def __call__(self, signum: int, frame: Any) -> None:
            raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Killed.")

    def timeout(signum: int, frame: Any) -> None:
        raise TimeoutError("alarm")

    source = SourceSpec(uri="data/train.lance")
    for handler, raised in ((DeadWorker(), RuntimeError), (timeout, TimeoutError)):
        previous = signal.signal(signal.SIGUSR1, handler)
        try:
            with pytest.raises(raised) as caught, reading(source):
                signal.raise_signal(signal.SIGUSR1)
            assert not isinstance(caught.value, SourceError)
        finally:
            signal.signal(signal.SIGUSR1, previous)
    # Lance runs signal handlers while it reads, and may pass on what they raise wrapped.
    crossed = "External error: RuntimeError: DataLoader worker (pid 1) is killed by signal"
    with pytest.raises(RuntimeError, match=r"^DataLoader worker \(pid 1\)"), reading(source):
        raise ValueError(crossed)
    with pytest.raises(KeyboardInterrupt), reading(source):
        raise ValueError("External error: KeyboardInterrupt")
    with pytest.raises(SourceError, match=r"^reading data/train.lance: disk on fire$"), \
            reading(source):
        raise OSError("disk on fire, /rustc/abc/library/core/src/ops/function.rs:250:5")
    with pytest.raises(SourceError, match=r"External error: LanceError\(IO\): gone$"), \
            reading(source):
        raise OSError("External error: LanceError(IO): gone")


def test_concurrent_appends_do_not_change_the_pinned_epoch(tmp_path: Path) -> None:
    import lance

    dataset = write_local_dataset(tmp_path / "data.lance", rows_per_file=100)
    loader = _build(_local_recipe(tmp_path, dataset, workers=2, sampler="shuffle",
                                  batch_size=50))
    # Appended after the build, before the workers open the data: they must not see it.
    lance.write_dataset(make_table(500, start=ROWS), str(dataset), mode="append")
    ids: list[int] = []
    for i, batch in enumerate(loader):
        ids += batch["id"].tolist()
        if i == 3:  # and again in the middle of the epoch
            lance.write_dataset(make_table(500, start=ROWS + 500), str(dataset), mode="append")
    assert sorted(ids) == list(range(ROWS))
    assert lance.dataset(str(dataset)).count_rows() == ROWS + 1000


# --- Ctrl-C --------------------------------------------------------------------------------

def _ctrl_c_build(tmp_path: Path, *, wait_for_batches: bool) -> tuple[int, str, list[int]]:
    """`build --take 100000` with 2 workers, then SIGINT to its process group (what a
    terminal sends on Ctrl-C). Returns (exit status, stderr, processes left in the group)."""
    dataset = write_local_dataset(tmp_path / "data.lance", rows=20_000, rows_per_file=1000)
    recipe = _local_recipe(tmp_path, dataset, workers=2, batch_size=1)
    recipe.write_text(recipe.read_text() + "transform: tests.reliability.batch_marker:mark\n")
    marker = tmp_path / "batches-flowing"
    process = subprocess.Popen(
        [PYTHON, "-m", "loaderkit", "build", str(recipe), "--take", "100000", "--no-probe"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(LK_BATCH_MARKER=str(marker)), start_new_session=True)
    group = process.pid
    try:
        def ready() -> bool:
            if wait_for_batches:
                return marker.exists()
            return len(worker_pids(process.pid)) == 2

        wait_until(lambda: process.poll() is not None or ready(), 120, step=0.1)
        assert process.poll() is None, f"exited early ({process.returncode}): {_tail(process)}"
        assert ready(), "the workers never started"
        if wait_for_batches:
            time.sleep(0.5)
        os.killpg(group, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(group, signal.SIGKILL)
            process.wait()
    wait_until(lambda: not group_members(group), 15)
    return process.returncode, stderr, group_members(group)


def test_ctrl_c_while_batches_flow_exits_cleanly_without_orphans(tmp_path: Path) -> None:
    # The build stops between batches, so no batch is cut off mid-transfer (which made a
    # worker's resource_sharer thread print a ConnectionResetError traceback).
    status, stderr, left = _ctrl_c_build(tmp_path, wait_for_batches=True)
    assert status == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted; workers stopped", stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert left == []


def test_ctrl_c_while_workers_start_exits_cleanly_without_orphans(tmp_path: Path) -> None:
    # Workers start with SIGINT ignored: one still importing torch is not interrupted.
    status, stderr, left = _ctrl_c_build(tmp_path, wait_for_batches=False)
    assert status == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted; workers stopped", stderr
    assert "Traceback" not in stderr, stderr
    assert left == []


def test_workers_ignore_sigint_and_the_main_process_keeps_its_handler(
        tmp_path: Path) -> None:
    # Workers start with SIGINT blocked (then ignore it too); the main process's handler
    # and signal mask must be left as they were, or a training script could no longer be
    # stopped with Ctrl-C.
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    dataset = write_local_dataset(tmp_path / "data.lance", rows_per_file=100)
    loader = _build(_local_recipe(tmp_path, dataset, workers=2))
    others = set(worker_pids(os.getpid()))  # left by another test, if any
    for installed in (signal.default_int_handler, handler):
        previous = signal.signal(signal.SIGINT, installed)
        try:
            iterator = iter(loader)
            next(iterator)
            workers = sorted(set(worker_pids(os.getpid())) - others)
            assert len(workers) == 2
            assert signal.getsignal(signal.SIGINT) is installed
            assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
            for pid in workers:  # blocked from the start (bit SIGINT - 1 of SigBlk)
                status = Path(f"/proc/{pid}/status").read_text()
                blocked = int(status.split("SigBlk:")[1].split()[0], 16)
                assert blocked & (1 << (signal.SIGINT - 1)), f"worker {pid} takes SIGINT"
            assert sum(len(batch["id"]) for batch in iterator) == ROWS - 10
            assert signal.getsignal(signal.SIGINT) is installed
            loader.shutdown_workers()
            assert not set(worker_pids(os.getpid())) - others
        finally:
            signal.signal(signal.SIGINT, previous)


def test_short_passes_never_pile_up_starting_workers(tmp_path: Path) -> None:
    # Each pass below ends before its workers are up; they are stopped in the
    # background, and the next pass waits for that before starting its own.
    dataset = write_local_dataset(tmp_path / "data.lance", rows_per_file=100)
    loader = _build(_local_recipe(tmp_path, dataset, workers=2))
    others = set(worker_pids(os.getpid()))
    for _ in range(3):
        assert sum(len(batch["id"]) for batch in loader) == ROWS
        assert len(set(worker_pids(os.getpid())) - others) <= 2
    loader.shutdown_workers()
    assert not set(worker_pids(os.getpid())) - others


def _tail(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate()
    return (out + err)[-2000:]
