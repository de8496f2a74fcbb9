"""The DDP guide's example under a real `torchrun --nproc_per_node=2` (gloo, CPU) ends cleanly,
run after run: exit status 0 and no abort ("terminate called without an active exception")
or ignored exception at interpreter exit. 30 runs in a row passed by hand; CI runs a few.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest

from tests.reliability.support import REPO, write_recipe

ROWS = 1_097
RUNS = 3


@pytest.fixture(scope="module")
def ddp_recipe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("ddp-exit")
    rng = np.random.default_rng(0)
    lance.write_dataset(pa.table({
        "id": pa.array(np.arange(ROWS, dtype=np.int64)),
        "image_emb": pa.FixedSizeListArray.from_arrays(
            pa.array(rng.standard_normal(ROWS * 16, dtype=np.float32)), 16),
        "label": pa.array(rng.integers(0, 10, ROWS, dtype=np.int32)),
    }), tmp / "train.lance", max_rows_per_file=157)
    return write_recipe(tmp / "ddp.yaml", f"""
        loaderkit: 1
        source:
          uri: {tmp / "train.lance"}
        columns: [id, image_emb, label]
        sampler:
          type: shuffle
          seed: 3
          rank: auto
          world_size: auto
          chunk_rows: 128
        loader:
          batch_size: 32
          num_workers: 2
          persistent_workers: true
          drop_last: true
        """)


@pytest.mark.parametrize("run", range(RUNS))
def test_ddp_example_exits_cleanly(ddp_recipe: Path, run: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "LANCE_LOG": "error", "PYTHONFAULTHANDLER": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(REPO / "docs/examples/ddp_train.py"), str(ddp_recipe), "--epochs", "2"],
        capture_output=True, text=True, timeout=300, env=env, cwd=ddp_recipe.parent)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    for noise in ("terminate called", "Fatal Python error", "Exception ignored", "Traceback"):
        assert noise not in output, output[-4000:]
    assert output.count("epoch 1:") == 2, output[-4000:]
