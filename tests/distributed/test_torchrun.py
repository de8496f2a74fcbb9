"""A real `torchrun --nproc_per_node=2` (gloo, CPU) over a shuffled recipe with spawn workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parents[2]
ROWS, BATCH, RANKS = 1_097, 32, 2


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, int], dict]:
    """Run the DDP guide's script under torchrun for two epochs; each rank records its ids."""
    tmp = tmp_path_factory.mktemp("ddp")
    rng = np.random.default_rng(0)
    table = pa.table({
        "id": pa.array(np.arange(ROWS, dtype=np.int64)),
        "image_emb": pa.FixedSizeListArray.from_arrays(
            pa.array(rng.standard_normal(ROWS * 16, dtype=np.float32)), 16),
        "label": pa.array(rng.integers(0, 10, ROWS, dtype=np.int32)),
    })
    lance.write_dataset(table, tmp / "train.lance", max_rows_per_file=157)
    recipe = tmp / "ddp.yaml"
    recipe.write_text(
        "loaderkit: 1\n"
        f"source:\n  uri: {tmp / 'train.lance'}\n"
        "columns: [id, image_emb, label]\n"
        "sampler:\n  type: shuffle\n  seed: 3\n  rank: auto\n  world_size: auto\n"
        "  chunk_rows: 128\n"
        f"loader:\n  batch_size: {BATCH}\n  num_workers: 2\n  persistent_workers: true\n"
        "  drop_last: true\n")
    out = tmp / "record"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc_per_node={RANKS}", str(ROOT / "docs/examples/ddp_train.py"), str(recipe),
         "--epochs", "2", "--record", str(out)],
        capture_output=True, text=True, timeout=400, env=env, cwd=tmp)
    assert result.returncode == 0, result.stdout + result.stderr
    found = {}
    for file in out.glob("*.json"):
        record = json.loads(file.read_text())
        found[record["rank"], record["epoch"]] = record
    assert len(found) == RANKS * 2
    return found


@pytest.mark.parametrize("epoch", [0, 1])
def test_ranks_read_disjoint_rows(records: dict, epoch: int) -> None:
    first, second = (set(records[rank, epoch]["ids"]) for rank in range(RANKS))
    assert not first & second
    assert len(first) == len(records[0, epoch]["ids"])  # no row twice within a rank either


@pytest.mark.parametrize("epoch", [0, 1])
def test_ranks_cover_the_epoch_up_to_the_documented_drop(records: dict, epoch: int) -> None:
    seen = set().union(*(records[rank, epoch]["ids"] for rank in range(RANKS)))
    assert seen <= set(range(ROWS))
    # drop_last trims each rank to whole batches of each worker's share: less than
    # one batch per worker per rank is dropped.
    assert ROWS - len(seen) < RANKS * 2 * BATCH


@pytest.mark.parametrize("epoch", [0, 1])
def test_ranks_take_equal_steps(records: dict, epoch: int) -> None:
    steps = {records[rank, epoch]["steps"] for rank in range(RANKS)}
    assert len(steps) == 1 and steps.pop() > 0


def test_second_epoch_comes_in_a_different_order(records: dict) -> None:
    for rank in range(RANKS):
        assert records[rank, 0]["ids"] != records[rank, 1]["ids"]
