"""What the check stage found about the crossing into workers, and how `build` shows it."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from loaderkit.errors import Diagnostic


@dataclass
class Crossing:
    """One object that each worker receives, and what became of it."""

    what: str
    recipe_key: str
    size: int | None = None
    result: str = "ok"


@dataclass
class SafetyReport:
    context: str | None
    num_workers: int
    crossings: list[Crossing] = field(default_factory=list)
    checks: list[tuple[str, str]] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # The spawn probe when it runs in the background: fails with its RecipeError.
    pending_probe: Future[None] | None = None
    # Rows per task (what a worker reads and processes at once), and whether that is one
    # batch (decoding or a transform shared evenly by the workers) or a chunk.
    task_rows: int | None = None
    per_batch: bool = False

    @property
    def payload_bytes(self) -> int:
        return sum(c.size or 0 for c in self.crossings)

    def as_dict(self) -> dict[str, Any]:
        return {"multiprocessing_context": self.context, "num_workers": self.num_workers,
                "payload_bytes_per_worker": self.payload_bytes, "task_rows": self.task_rows,
                "task_is_one_batch": self.per_batch,
                "crossings": [vars(c) for c in self.crossings],
                "checks": [{"check": name, "result": result} for name, result in self.checks]}

    def __str__(self) -> str:
        if self.num_workers == 0:
            head = "safety: no worker processes; nothing is pickled"
        else:
            head = (f"safety: {self.num_workers} {self.context} workers, each receives "
                    f"{self.payload_bytes:,} bytes")
        lines = [head]
        if self.num_workers and self.task_rows is not None:
            unit = (f"one batch ({self.task_rows:,} rows), so the workers share the work "
                    "evenly and each holds only what it prefetches") if self.per_batch else \
                f"a chunk of up to {self.task_rows:,} rows"
            lines.append(f"  each task: {unit}")
        lines += [f"  crosses: {c.what} (from `{c.recipe_key}`), "
                  f"{'?' if c.size is None else f'{c.size:,} bytes'}: {c.result}"
                  for c in self.crossings]
        lines += [f"  check: {name}: {result}" for name, result in self.checks]
        return "\n".join(lines)
