"""Small real data for the safety and build tests: a Lance dataset and a LanceDB table.

300 rows in fragments of 100, 100, 60 and 40 rows (so `sharded_fragment` over two
ranks is uneven), with a float vector, an int label, a float score and a string.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

ROWS = 300
FRAGMENT_ROWS = (100, 100, 60, 40)
DIM = 4
DATASET = "items.lance"
DATABASE = "db"
TABLE = "items"


def table(start: int = 0, rows: int = ROWS):  # type: ignore[no-untyped-def]
    import numpy as np
    import pyarrow as pa

    ids = np.arange(start, start + rows, dtype=np.int64)
    vectors = np.repeat(ids.astype(np.float32)[:, None], DIM, axis=1).reshape(-1)
    return pa.table({
        "id": pa.array(ids),
        "vec": pa.FixedSizeListArray.from_arrays(pa.array(vectors), DIM),
        "label": pa.array((ids % 5).astype(np.int32)),
        "score": pa.array((ids % 10).astype(np.float32)),
        "text": pa.array([f"row {i}" for i in ids], pa.string()),
    })


def write_data(root: Path) -> Path:
    """Write `root/items.lance` (4 fragments, 2 versions) and `root/db` (table `items`)."""
    import lance
    import lancedb

    root.mkdir(parents=True, exist_ok=True)
    start = 0
    for number, rows in enumerate(FRAGMENT_ROWS):
        lance.write_dataset(table(start, rows), root / DATASET,
                            mode="create" if number == 0 else "append")
        start += rows
    lancedb.connect(root / DATABASE).create_table(TABLE, table(), mode="overwrite")
    return root


def recipe(directory: Path, name: str, text: str) -> Path:
    """Write a recipe (dedented) and return its path."""
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def line_col(path: Path, needle: str, *, value: bool = True) -> tuple[int, int]:
    """1-based (line, column) of the first line holding `needle`: of its value by default
    (the text after `key: `), else of the key itself."""
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in text:
            column = text.index(needle)
            if value and ": " in text[column:]:
                column = text.index(": ", column) + 2
            return number, column + 1
    raise AssertionError(f"{needle!r} not in {path}")


class Captured:
    """What a block wrote to file descriptors 1 and 2, child processes included."""

    out: str = ""
    err: str = ""

    @property
    def both(self) -> str:
        return self.out + self.err


@contextlib.contextmanager
def capture_fds() -> Iterator[Captured]:
    """Redirect fds 1 and 2 to files for the block (spawned children inherit them)."""
    captured = Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    py_out, py_err = io.StringIO(), io.StringIO()  # sys.stdout may not be fd 1 (pytest)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            with contextlib.redirect_stdout(py_out), contextlib.redirect_stderr(py_err):
                yield captured
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            for file, name, text in ((out, "out", py_out), (err, "err", py_err)):
                file.seek(0)
                setattr(captured, name,
                        text.getvalue() + file.read().decode("utf-8", "replace"))


class ProcessStarts:
    """Counts `multiprocessing` process starts in this process while installed (a spy: every
    start still happens)."""

    def __init__(self) -> None:
        self.count = 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[ProcessStarts]:
        import multiprocessing.process as mp_process

        original = mp_process.BaseProcess.start

        def start(process: Any) -> None:
            self.count += 1
            original(process)

        mp_process.BaseProcess.start = start  # type: ignore[method-assign, assignment]
        try:
            yield self
        finally:
            mp_process.BaseProcess.start = original  # type: ignore[method-assign]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child interpreter: the repository importable, Lance quiet."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("LANCE_LOG", "error")
    env.update(extra)
    return env
