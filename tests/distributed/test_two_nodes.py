"""Two torchrun "nodes" on loopback (c10d rendezvous on 127.0.0.1, 2 processes each): every
row once over the 4 ranks in equal steps, and a checkpoint of the 4 ranks resumed by a
2-rank run delivers exactly the rest."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("elastic_run.py")
ROWS, BATCH, CHECKPOINT = 1_024, 16, 6  # 4 ranks x 16 rows: 16 equal steps


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
            "LANCE_LOG": "error"}


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def records(out: Path) -> dict[int, dict]:
    return {r["rank"]: r for r in (json.loads(p.read_text()) for p in out.glob("rank*.json"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("nodes")
    table = pa.table({"id": pa.array(np.arange(ROWS, dtype=np.int64)),
                      "x": pa.array(np.zeros(ROWS, dtype=np.float32))})
    lance.write_dataset(table, tmp / "data.lance", max_rows_per_file=300)
    recipe = tmp / "r.yaml"
    recipe.write_text(f"loaderkit: 1\nsource:\n  uri: {tmp / 'data.lance'}\ncolumns: [id, x]\n"
                      "sampler:\n  type: shuffle\n  seed: 4\n  chunk_rows: 256\n"
                      f"loader:\n  batch_size: {BATCH}\n")
    four, two = tmp / "four", tmp / "two"
    four.mkdir(), two.mkdir()
    port = free_port()
    nodes = [subprocess.Popen(
        torchrun("--nnodes=2", "--nproc-per-node=2", "--rdzv-backend=c10d",
                 f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=loaderkit-test",
                 f"--rdzv-conf=is_host={'true' if node == 0 else 'false'}",
                 "--max-restarts=0", str(SCRIPT), str(recipe), "--out", str(four),
                 "--checkpoint-at", str(CHECKPOINT)),
        env=env(), cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for node in (0, 1)]
    for node in nodes:
        output, _ = node.communicate(timeout=420)
        assert node.returncode == 0, output
    result = subprocess.run(
        torchrun("--standalone", "--nproc-per-node=2", str(SCRIPT), str(recipe), "--out",
                 str(two), "--resume", str(four / "state_rank0.json")),
        env=env(), cwd=tmp, capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, result.stdout + result.stderr
    return {"four": four, "two": two}


def test_four_ranks_on_two_nodes_deliver_every_row_once(runs: dict[str, Path]) -> None:
    found = records(runs["four"])
    assert sorted(found) == [0, 1, 2, 3] and {r["world_size"] for r in found.values()} == {4}
    ids = [i for r in found.values() for step in r["steps"] for i in step]
    assert sorted(ids) == list(range(ROWS))


def test_four_ranks_take_equal_steps(runs: dict[str, Path]) -> None:
    assert {len(r["steps"]) for r in records(runs["four"]).values()} == {ROWS // (4 * BATCH)}


def test_a_two_rank_run_resumes_the_four_rank_checkpoint_with_exactly_the_rest(
        runs: dict[str, Path]) -> None:
    head = [i for r in records(runs["four"]).values() for step in r["steps"][:CHECKPOINT]
            for i in step]
    tail = [i for r in records(runs["two"]).values() for step in r["steps"] for i in step]
    assert sorted(head + tail) == list(range(ROWS))
    assert {r["world_size"] for r in records(runs["two"]).values()} == {2}
