"""What `loaderkit build` prints: the object graph, the safety report, and `--take` throughput."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loaderkit.planning import PlanNode, shown

if TYPE_CHECKING:
    from loaderkit.compiler import Compiled


@dataclass
class Throughput:
    """What `--take` measured. The first batch waits for start-up (opening the data, starting
    workers: seconds); the batches after it show the rate a training loop sees."""

    batches: int
    rows: int
    megabytes: float
    seconds: float  # from iter(loader) to the last batch taken
    first_batch_seconds: float
    first_batch_rows: int = 0
    first_batch_megabytes: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def steady_seconds(self) -> float:
        """From the first batch to the last: the time batches 2..N took."""
        return self.seconds - self.first_batch_seconds

    @property
    def steady_rows_per_second(self) -> float | None:
        """Rows/s over batches 2..N; None with one batch (no batch after the first)."""
        if self.batches < 2 or self.steady_seconds <= 0:
            return None
        return (self.rows - self.first_batch_rows) / self.steady_seconds

    @property
    def steady_megabytes_per_second(self) -> float | None:
        if self.batches < 2 or self.steady_seconds <= 0:
            return None
        return (self.megabytes - self.first_batch_megabytes) / self.steady_seconds

    def as_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "rows": self.rows, "seconds": self.seconds,
                "rows_per_second": self.rows_per_second, "megabytes": self.megabytes,
                "first_batch_seconds": self.first_batch_seconds,
                "steady_seconds": self.steady_seconds if self.batches > 1 else None,
                "steady_rows_per_second": self.steady_rows_per_second,
                "steady_megabytes_per_second": self.steady_megabytes_per_second}

    def __str__(self) -> str:
        head = (f"took {self.batches} batches, {self.rows} rows in {self.seconds:.2f} s: "
                f"start-up {self.first_batch_seconds:.3f} s to the first batch")
        steady, mb_s = self.steady_rows_per_second, self.steady_megabytes_per_second
        if steady is None or mb_s is None:
            return head + "; no steady rate from one batch (--take 2 or more)"
        return (head + f", then {steady:,.0f} rows/s, {mb_s:,.1f} MB/s over batches "
                       f"2-{self.batches}")


def batch_size_of(batch: Any) -> tuple[int, int]:
    """(rows, bytes) of a batch in any output format; bytes is 0 where it is unknowable, and
    both are 0 for what a transform returned that has no size (a number, an object)."""
    try:
        return _measured(batch)
    except Exception:  # a transform may return anything; counting it must not fail
        return 0, 0


def _measured(batch: Any) -> tuple[int, int]:
    import numpy as np
    import pyarrow as pa
    import torch

    if isinstance(batch, pa.RecordBatch | pa.Table):
        return batch.num_rows, batch.nbytes
    if isinstance(batch, torch.Tensor):
        return batch.shape[0], batch.nbytes
    if isinstance(batch, dict):
        values = list(batch.values())
        rows = len(values[0]) if values else 0
        size = sum(v.nbytes for v in values if isinstance(v, torch.Tensor | np.ndarray))
        return rows, size
    if isinstance(batch, list):
        return len(batch), 0
    if hasattr(batch, "estimated_size"):  # polars
        return len(batch), int(batch.estimated_size())
    if hasattr(batch, "memory_usage"):  # pandas
        return len(batch), int(batch.memory_usage(deep=False).sum())
    return len(batch), 0


class _CtrlC:
    """Ctrl-C while taking batches: the first asks to stop after the batch in flight.

    Stopping between batches, rather than wherever KeyboardInterrupt lands, never
    cuts a batch off halfway through its transfer from a worker (which makes the
    worker print a ConnectionResetError traceback). A second Ctrl-C, for a loader
    that delivers nothing, raises KeyboardInterrupt at once, unless the workers are
    already being stopped (an exception there would only interrupt the stopping).
    """

    def __init__(self) -> None:
        self.requested = False
        self.stopping = False

    def __call__(self, signum: int, frame: Any) -> None:
        if self.requested and not self.stopping:
            raise KeyboardInterrupt
        self.requested = True


@contextlib.contextmanager
def _ctrl_c_stops_between_batches() -> Iterator[_CtrlC]:
    ctrl_c = _CtrlC()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield ctrl_c  # no handler can be installed here: Ctrl-C stays KeyboardInterrupt
        return
    signal.signal(signal.SIGINT, ctrl_c)
    try:
        yield ctrl_c
    finally:
        signal.signal(signal.SIGINT, previous)


def take_batches(loader: Iterable[Any], count: int, *, quiet: bool = False) -> Throughput:
    """Pull `count` batches through the real loader, with a progress bar on a terminal.

    On Ctrl-C the workers are stopped (and waited for) before KeyboardInterrupt is
    raised, so the caller can report it without leaving processes behind.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    rows = size = batches = 0
    start = time.perf_counter()
    first = last = 0.0
    first_rows = first_size = 0
    with _ctrl_c_stops_between_batches() as ctrl_c, \
            Progress(TextColumn("taking batches"), BarColumn(), MofNCompleteColumn(),
                     TextColumn("{task.fields[rate]}"), disable=quiet,
                     transient=True) as progress:
        task = progress.add_task("take", total=count, rate="")
        iterator = iter(loader)
        try:
            for batch in iterator:
                last = time.perf_counter() - start
                n, b = batch_size_of(batch)
                if batches == 0:
                    first, first_rows, first_size = last, n, b
                rows, size, batches = rows + n, size + b, batches + 1
                progress.update(task, advance=1, rate=f"{rows / max(last, 1e-9):,.0f} rows/s")
                if batches >= count or ctrl_c.requested:
                    break
        finally:
            ctrl_c.stopping = True
            _shutdown(loader, iterator)
    if ctrl_c.requested:
        raise KeyboardInterrupt
    # `last`, not now: stopping the workers afterwards is not part of the rate.
    return Throughput(batches, rows, size / 1e6, last, first, first_rows, first_size / 1e6)


def _shutdown(loader: Any, iterator: Any) -> None:
    """Stop the workers now (and wait for them) rather than when the iterator is collected."""
    close = getattr(iterator, "close", None)
    if callable(close):
        close()
    for owner, method in ((loader, "shutdown_workers"), (iterator, "_shutdown_workers")):
        stop = getattr(owner, method, None)
        if callable(stop):
            stop()
            return


def _tree(node: PlanNode, prefix: str = "", last: bool = True, top: bool = True) -> list[str]:
    branch = "" if top else ("└── " if last else "├── ")
    settings = ", ".join(f"{k}={v}" for k, v in node.settings.items() if v is not None)
    lines = [f"{prefix}{branch}{node.kind}: {node.label}"
             + (f"  [{settings}]" if settings else "") + f"  ({node.location})"]
    child_prefix = prefix if top else prefix + ("    " if last else "│   ")
    for i, child in enumerate(node.children):
        lines += _tree(child, child_prefix, i == len(node.children) - 1, top=False)
    return lines


def show_build(compiled: Compiled, throughput: Throughput | None, *, as_json: bool) -> Any:
    from loaderkit.report import as_dict

    plan = compiled.plan
    if as_json:
        return {"name": plan.name, "pinned_version": shown(plan.read.source.version, ()),
                "graph": plan.root.as_dict(),
                "safety": compiled.safety.as_dict() if compiled.safety else None,
                "diagnostics": [as_dict(d) for d in compiled.diagnostics],
                "take": None if throughput is None else throughput.as_dict()}
    lines = [f"recipe {plan.name}: pinned to version {plan.read.source.version}", "",
             *_tree(plan.root), ""]
    if compiled.safety is not None:
        lines += [str(compiled.safety), ""]
    lines += [str(d) for d in compiled.diagnostics]
    if throughput is not None:
        lines.append(str(throughput))
    return "\n".join(lines).rstrip("\n") + "\n"
