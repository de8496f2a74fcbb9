"""The loader's processes at the edges: a worker killed mid-epoch, a loader dropped before
its spawn probe answered, a training process killed outright, and a normal exit. No
process outlives the one that needs it, and a clean exit prints nothing.
"""

from __future__ import annotations

import gc
import os
import re
import signal
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest

import loaderkit
from loaderkit import LoaderkitError, RuntimeFailure, WorkerDied
from loaderkit.compiler import compile_recipe
from tests.reliability.support import (
    HERE,
    PYTHON,
    ROWS,
    alive,
    children_of,
    cmdline,
    make_table,
    subprocess_env,
    wait_until,
    write_local_dataset,
    write_recipe,
)

SPAWNED = "spawn_main"  # in the command line of a spawn worker or probe


def _recipe(tmp_path: Path, dataset: Path, *, workers: int = 2, extra: str = "") -> Path:
    prefetch = "\n          prefetch_factor: 1" if workers else ""
    return write_recipe(tmp_path / f"recipe-{workers}.yaml", f"""
        loaderkit: 1
        source:
          uri: {dataset}
        columns: [id]
        sampler:
          type: full_scan
          chunk_rows: 100
        loader:
          batch_size: 10
          num_workers: {workers}{prefetch}{extra}
        """)


def _build(recipe: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LK408: workers without a transform
        return compile_recipe(str(recipe), probe=False).loader


def _spawned_children() -> set[int]:
    return {pid for pid in children_of(os.getpid()) if SPAWNED in cmdline(pid)}


# --- a worker killed mid-epoch (the OOM killer's SIGKILL) ----------------------------------

@pytest.fixture(scope="module")
def killed_worker(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An epoch whose worker is SIGKILLed once the workers read; what the loader said."""
    tmp_path = tmp_path_factory.mktemp("killed")
    dataset = write_local_dataset(tmp_path / "data.lance", rows_per_file=100)
    loader = _build(_recipe(tmp_path, dataset))
    iterator = iter(loader)
    delivered = [next(iterator)]
    assert wait_until(lambda: loader.workers.all_up, 180, step=0.1), "the workers never came up"
    for _ in range(20):  # past the hand-over: the workers read every batch from here on
        delivered.append(next(iterator))
    pid = loader.workers._current()._workers[0].pid
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerDied) as caught:
        for batch in iterator:
            delivered.append(batch)
    state = loader.state_dict()
    loader.shutdown_workers()
    return {"error": caught.value, "pid": pid, "state": state, "dataset": dataset,
            "delivered": [i for batch in delivered for i in batch["id"].tolist()],
            "tmp_path": tmp_path}


def test_killed_worker_is_a_worker_died_runtime_failure(killed_worker: dict[str, Any]) -> None:
    error = killed_worker["error"]
    assert isinstance(error, RuntimeFailure) and isinstance(error, LoaderkitError)
    assert loaderkit.WorkerDied is WorkerDied


def test_worker_died_names_the_worker_its_pid_and_the_signal(
        killed_worker: dict[str, Any]) -> None:
    error, pid = killed_worker["error"], killed_worker["pid"]
    assert (error.worker_id, error.pid, error.signal) == (0, pid, "SIGKILL")
    assert str(error).startswith(f"DataLoader worker 0 (pid {pid}) was killed by SIGKILL: ")


def test_worker_died_by_sigkill_names_the_oom_killer_and_the_resume(
        killed_worker: dict[str, Any]) -> None:
    message = str(killed_worker["error"])
    assert "out of memory" in message and "OOM killer" in message, message
    assert "loader.state_dict() resumes this epoch exactly" in message, message
    assert "Traceback" not in message


def test_state_dict_after_a_killed_worker_resumes_the_epoch_exactly(
        killed_worker: dict[str, Any]) -> None:
    fresh = _build(_recipe(killed_worker["tmp_path"], killed_worker["dataset"], workers=0))
    fresh.load_state_dict(killed_worker["state"])
    resumed = [i for batch in fresh for i in batch["id"].tolist()]
    delivered = killed_worker["delivered"]
    assert delivered and resumed
    assert sorted(delivered + resumed) == list(range(ROWS))  # every row once


# --- a spawn probe ends with its loader ----------------------------------------------------

@pytest.fixture
def blocking_probe_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """500 rows read through a connection factory that never returns in a spawn probe: the
    probe answers only when it is ended (after 120 s, unless its loader ends it)."""
    import lancedb

    database = tmp_path / "db"
    lancedb.connect(str(database)).create_table("items", make_table(500))
    monkeypatch.setenv("LK_RELIABILITY_DB", str(database))
    return write_recipe(tmp_path / "recipe.yaml", f"""
        loaderkit: 1
        source:
          uri: {database}
          table: items
          connection_factory: tests.reliability.probe_blocker:open_table
        columns: [id]
        loader:
          batch_size: 100
          num_workers: 2
        """)


def _one_short_epoch(recipe: Path) -> None:
    """A loader whose probe runs in the background, and one epoch that this process reads
    alone (the workers wait for the probe); then the loader is dropped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = loaderkit.load_recipe(str(recipe))
    assert sum(len(batch["id"]) for batch in loader) == 500
    assert not loader.workers.started


def test_dropped_loaders_end_their_spawn_probes(blocking_probe_recipe: Path) -> None:
    before = _spawned_children()
    for _ in range(6):
        _one_short_epoch(blocking_probe_recipe)
    gc.collect()
    assert wait_until(lambda: not _spawned_children() - before, 30, step=0.1), \
        f"spawn probes still running: {_spawned_children() - before}"


def test_a_dropped_loader_is_freed_at_once_and_ends_its_probe(
        blocking_probe_recipe: Path) -> None:
    import weakref

    before = _spawned_children()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = loaderkit.load_recipe(str(blocking_probe_recipe))
    assert wait_until(lambda: _spawned_children() - before, 60, step=0.05), "no probe started"
    dropped = weakref.ref(loader)
    del loader  # no garbage collection: nothing but reference counts
    assert dropped() is None, gc.get_referrers(dropped())
    assert wait_until(lambda: not _spawned_children() - before, 30, step=0.1)


# --- workers end with the training process -------------------------------------------------

@pytest.mark.parametrize("killed_when", ["spawned", "up"])
def test_sigkilled_training_process_leaves_no_workers_or_resource_tracker(
        tmp_path: Path, killed_when: str) -> None:
    # "spawned": killed while its workers still import torch. DataLoader's own watchdog
    # starts after that, sees the new parent (PID 1) as the one to watch, and never fires.
    dataset = write_local_dataset(tmp_path / "data.lance", rows_per_file=100)
    recipe = _recipe(tmp_path, dataset)
    child = subprocess.Popen([PYTHON, str(HERE / "orphan_child.py"), str(recipe)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=subprocess_env())
    left: list[int] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == killed_when:
                break
        assert child.poll() is None, "the training process ended by itself"
        processes = children_of(child.pid)
        assert len([p for p in processes if SPAWNED in cmdline(p)]) == 2, processes
        assert any("resource_tracker" in cmdline(p) for p in processes), processes
        child.kill()
        child.wait()
        wait_until(lambda: not any(alive(p) for p in processes), 30, step=0.1)
        left = [p for p in processes if alive(p)]
        assert left == [], [cmdline(p) for p in left]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pid in left:
            os.kill(pid, signal.SIGKILL)


# --- a clean exit prints nothing -----------------------------------------------------------

# Known, not yet fixed: in about 1 exit in 30 where workers were still starting when the
# pass ended, multiprocessing's resource tracker reports a semaphore it was never told was
# released ("leaked semaphore objects ... No such file or directory"), printed by the
# tracker process after this one has gone. Everything else an exit can print (an ignored
# exception, "killed by signal", a traceback) is asserted absent.
_TRACKER_NOTE = re.compile(
    r".*multiprocessing/resource_tracker\.py:\d+: UserWarning: resource_tracker: .*\n"
    r"  warnings\.warn\(.*\n")


def _printed_at_exit(stderr: str) -> str:
    return _TRACKER_NOTE.sub("", stderr)

@pytest.mark.parametrize("epochs, budget, step_seconds", [
    (2, 0, 0.0),  # two whole epochs: the workers may still be starting when they end
    (2, 0, 0.0),
    (2, 0, 0.0),
    (2, 400, 0.01),  # stops at its step budget in the middle of the second epoch
])
def test_a_normal_exit_prints_nothing(tmp_path: Path, epochs: int, budget: int,
                                      step_seconds: float) -> None:
    dataset = write_local_dataset(tmp_path / "data.lance", rows_per_file=500)
    recipe = _recipe(tmp_path, dataset)
    result = subprocess.run(
        [PYTHON, str(HERE / "exit_child.py"), str(recipe), str(epochs), str(budget),
         str(step_seconds)], capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert (result.returncode, _printed_at_exit(result.stderr)) == (0, "")


@pytest.mark.parametrize("path", ["load_recipe", "probe_first"])
def test_an_exit_with_a_pass_still_open_prints_nothing(tmp_path: Path, path: str) -> None:
    dataset = write_local_dataset(tmp_path / "data.lance", rows_per_file=500)
    recipe = _recipe(tmp_path, dataset)
    result = subprocess.run(
        [PYTHON, str(HERE / "open_pass_child.py"), str(recipe), path], capture_output=True,
        text=True, timeout=300, env=subprocess_env())
    assert (result.returncode, _printed_at_exit(result.stderr)) == (0, "")
