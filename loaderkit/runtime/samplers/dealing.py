"""How the rows of an epoch become steps: each rank's batches, and where each begins.

A `Deal` cuts the rows along an epoch's order (the global order, or one rank's own
order) into batches, dealt to the ranks in turn: batch j goes to rank j % world.
Batches 0 .. full-1 hold `batch` rows each, so global step k (batches kW .. kW+W-1)
holds the same rows at every world size; the `tail` batches after them share
`tail_rows` rows as evenly as possible (sizes differ by at most one row).

`uneven` says what happens when the rows do not fill whole steps (docs/ddp.md):
- `split` (the default): the last rows are split over the ranks, so every rank takes
  the same number of steps and no row is delivered twice. With a remainder r of at
  least one row per rank, the last step holds r rows split over the ranks; with
  0 < r < world (and batches of 2 rows or more), the last full step and r share the
  last two steps. With fewer rows than ranks, or one-row batches and a row count the
  ranks do not divide, no such split exists: the rows are dealt as `allow` deals them
  (the build refuses a fresh epoch like that with LK414; a resume deals what is left).
- `allow`: batches of `batch` rows in turn; the ranks may differ by a batch.
- `pad`: whole steps, the epoch's first rows again after its end.
`drop_last` keeps only whole steps.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Deal:
    """`full` batches of `batch` rows, then `tail` batches sharing `tail_rows` rows."""

    batch: int
    world: int
    full: int
    tail: int = 0
    tail_rows: int = 0

    @property
    def count(self) -> int:
        """Batches in all (every rank's)."""
        return self.full + self.tail

    @property
    def covered(self) -> int:
        """Rows the batches hold (more than the order's rows when `pad` repeats some)."""
        return self.full * self.batch + self.tail_rows

    @property
    def equal(self) -> bool:
        """Whether every rank takes the same number of batches."""
        return self.count % self.world == 0

    def start(self, j: int) -> int:
        """Where batch `j` starts along the order (`covered` past the last batch)."""
        if j <= self.full or not self.tail:
            return min(j, self.full) * self.batch
        i = min(j, self.count) - self.full
        q, m = divmod(self.tail_rows, self.tail)
        return self.full * self.batch + i * q + min(i, m)

    def first_from(self, row: int) -> int:
        """The first batch that starts at or after `row`."""
        if row <= self.full * self.batch:
            return -(-row // self.batch)
        if not self.tail:
            return self.count
        x = row - self.full * self.batch
        q, m = divmod(self.tail_rows, self.tail)
        i = -(-x // (q + 1)) if x <= m * (q + 1) else m + -(-(x - m * (q + 1)) // max(q, 1))
        return min(self.full + i, self.count)

    def mine(self, rank: int) -> range:
        """The batches of `rank`."""
        return range(rank, self.count, self.world)

    def rows_of(self, rank: int) -> int:
        """Rows the batches of `rank` hold."""
        full = len(range(rank, self.full, self.world))
        return full * self.batch + sum(self.start(j + 1) - self.start(j)
                                       for j in self.mine(rank)[full:])

    def steps_rows(self, steps: int) -> int:
        """Rows along the order that `steps` steps of every rank cover."""
        return self.start(min(steps * self.world, self.count))


def deal(rows: int, batch: int, world: int, drop_last: bool, uneven: str) -> Deal:
    """The deal of `rows` rows in batches of `batch` to `world` ranks."""
    step = batch * world
    steps, rest = divmod(rows, step)
    if drop_last:
        return Deal(batch, world, steps * world)
    if world > 1 and uneven == "pad":
        return Deal(batch, world, -(-rows // step) * world)
    if world > 1 and uneven == "split" and rest:
        if rest >= world:  # the last step: r rows over the ranks
            return Deal(batch, world, steps * world, world, rest)
        if steps and batch > 1:  # the last full step and r rows over the last two steps
            return Deal(batch, world, (steps - 1) * world, 2 * world, step + rest)
    whole, last = divmod(rows, batch)
    return Deal(batch, world, whole, 1 if last else 0, last)


def spread(rows: int, batch: int, steps: int) -> Deal | None:
    """One rank's `rows` in exactly `steps` batches of at most `batch` rows, as many of
    them whole as can be; None where no such cut exists."""
    if not steps <= rows <= steps * batch:
        return None
    whole = steps if batch == 1 else min(steps, (rows - steps) // (batch - 1))
    return Deal(batch, 1, whole, steps - whole, rows - whole * batch)
