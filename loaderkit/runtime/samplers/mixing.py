"""A mixture's epoch: its sources interleaved by weight, in proportion at every point.

Row j of source i is given the time (j + phase_i) / p_i, where p_i is the source's
share of the weights and phase_i a random offset in [0, 1) drawn from (seed,
epoch); the epoch is every source's rows in the order of their times (a tie to the
source listed first). At any point of the epoch each source has delivered its
share of the rows so far to within a row per source (systematic sampling), so a
run stopped early, or resumed, still saw the mixture. Which rows of a source come
in what order is the sampler's own order of that source. `first_exhausted` ends
the epoch with the first source's last row; `all_exhausted` runs until every
source has delivered all its rows, starting a source's order again (a new one,
its `cycle`) each time it runs out. Any slice of the epoch is computed alone.

The arithmetic is exact for every epoch of at most EPOCH_ROWS_MAX rows: the source
that ends the epoch delivers exactly its rows (not one fewer where `end * share`
rounds down), and a longer epoch is refused (the build says so, LK415) rather than
counted in a float that no int64 holds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from loaderkit.errors import RuntimeFailure
from loaderkit.runtime.universe import Mixture

# Tolerance on the times: a row whose time equals the end is in the epoch.
_EPS = 1e-9
# A pass's label is source * _PASSES + cycle: sorted labels go source by source, each
# source's cycles in order.
_PASSES = 1 << 40
# The longest epoch a mixture may have: a pass label holds a source's cycle in 40 bits, and
# 2**40 rows (a trillion) are more than any epoch is meant to hold; every count and time of
# such an epoch is an integer (or within 2**-12 of one) in a float64, so counts are exact.
EPOCH_ROWS_MAX = _PASSES
OrderOf = Callable[[int, int, int, int], np.ndarray]  # (source, cycle, lo, hi) -> positions


class Interleave:
    """The epoch's sequence of (source, row of source) for given phases, sliced lazily."""

    def __init__(self, mixture: Mixture, phase: np.ndarray) -> None:
        self.mixture = mixture
        self.phase = phase
        sizes = np.array(mixture.sizes, dtype=np.float64)
        weights = np.array(mixture.weights, dtype=np.float64) * (sizes > 0)
        self.share = weights / weights.sum() if weights.sum() else weights
        rows, _ = epoch_rows(mixture)
        if rows > EPOCH_ROWS_MAX:
            raise RuntimeFailure(f"an epoch of this mixture would hold about {rows:.3g} rows, "
                                 f"more than {EPOCH_ROWS_MAX}")
        self.counts = self._counts(sizes)
        self.total = int(self.counts.sum())

    def _counts(self, sizes: np.ndarray) -> np.ndarray:
        """Rows each source delivers in the epoch."""
        out = np.zeros(len(sizes), dtype=np.int64)
        live = self.share > 0
        if not live.any() or (self.mixture.stop == "first_exhausted" and (sizes == 0).any()):
            return out
        first = self.mixture.stop == "first_exhausted"
        last = (sizes[live] - 1 + self.phase[live]) / self.share[live]  # last rows' times
        end = last.min() if first else last.max()
        counts = np.floor(end * self.share[live] - self.phase[live] + _EPS) + 1
        # `end * share` is off by a rounding error that grows with the rows: the source that
        # ends the epoch gets exactly its rows, and no other one, past what the stop allows.
        counts = np.minimum(counts, sizes[live]) if first else np.maximum(counts, sizes[live])
        ending = int(np.argmin(last) if first else np.argmax(last))
        counts[ending] = sizes[live][ending]
        out[live] = counts.astype(np.int64)
        return np.clip(out, 0, None)

    def _before(self, time: float) -> np.ndarray:
        """Each source's rows with a time below `time`."""
        live = self.share > 0
        out = np.zeros(len(self.share), dtype=np.int64)
        out[live] = np.ceil(time * self.share[live] - self.phase[live] - _EPS).astype(np.int64)
        return np.clip(out, 0, self.counts)

    def taken(self, position: int) -> np.ndarray:
        """How many rows of each source the first `position` rows of the epoch hold."""
        if position <= 0:
            return np.zeros(len(self.share), dtype=np.int64)
        if position >= self.total:
            return self.counts.copy()
        live = self.share > 0
        low, high = 0.0, float(((self.counts[live] + 1) / self.share[live]).max())
        for _ in range(200):  # bisection on the time: counts only grow with it
            middle = (low + high) / 2
            if self._before(middle).sum() <= position:
                low = middle
            else:
                high = middle
            if high - low < 1e-12 * max(1.0, high):
                break
        out = self._before(low)
        for source in np.argsort(self._next_time(out), kind="stable"):  # a tie: in order
            if out.sum() >= position:
                break
            if out[source] < self.counts[source]:
                out[source] += 1
        return out

    def _next_time(self, taken: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.where(self.share > 0, (taken + self.phase) / self.share, np.inf)

    def slice(self, a: int, b: int, order_of: OrderOf) -> np.ndarray:
        """Universe positions of epoch rows a..b: each source's rows by its own order."""
        return self.slice_with_passes(a, b, order_of)[0]

    def slice_with_passes(self, a: int, b: int, order_of: OrderOf
                          ) -> tuple[np.ndarray, np.ndarray]:
        """`slice`, and each row's pass: its source and that source's cycle as one label,
        ordered by source, then cycle. Whatever mixes rows mixes them within a pass only:
        a source's (k+1)-th cycle may start in a chunk that still ends its k-th, and
        one of its rows must not come before all of the k-th cycle did."""
        start, stop = self.taken(a), self.taken(b)
        times, rows, passes = [], [], []
        for i, (lo, hi) in enumerate(zip(start.tolist(), stop.tolist(), strict=True)):
            if hi <= lo:
                continue
            index = np.arange(lo, hi)
            times.append((index + self.phase[i]) / self.share[i])
            rows.append(self._rows(i, lo, hi, order_of) + self.mixture.starts[i])
            passes.append(i * _PASSES + index // self.mixture.sizes[i])
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        label = np.concatenate(passes)
        order = np.lexsort((label, np.concatenate(times)))  # a tie: the source listed first
        return np.concatenate(rows)[order], label[order]

    def _rows(self, source: int, lo: int, hi: int, order_of: OrderOf) -> np.ndarray:
        """Rows lo..hi of a source's part of the epoch: its order, again each cycle."""
        size = self.mixture.sizes[source]
        parts, at = [], lo
        while at < hi:
            cycle, offset = divmod(at, size)
            take = min(hi - at, size - offset)
            parts.append(order_of(source, cycle, offset, offset + take))
            at += take
        return np.concatenate(parts)


def epoch_rows(mixture: Mixture) -> tuple[float, int | None]:
    """An epoch's rows (at most this, and fewer by less than a row per source), from the
    sizes and weights alone, and the source whose last row ends it (None: no row)."""
    live = [i for i, (n, w) in enumerate(zip(mixture.sizes, mixture.weights, strict=True))
            if n > 0 and w > 0]
    if not live or (mixture.stop == "first_exhausted" and 0 in mixture.sizes):
        return 0.0, None
    total = sum(mixture.weights[i] for i in live)
    ends = {i: mixture.sizes[i] * (total / mixture.weights[i]) for i in live}
    pick = min if mixture.stop == "first_exhausted" else max
    ending = pick(ends, key=lambda i: ends[i])
    return ends[ending] + len(live), ending


def source_of(mixture: Mixture, where: np.ndarray) -> np.ndarray:
    """The source index of each universe position."""
    return np.searchsorted(mixture.starts, where, side="right") - 1


def mix(rows: np.ndarray, passes: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """`rows` shuffled among themselves; in a mixture, each pass's rows (`passes`, from
    `Interleave.slice_with_passes`) among that pass's places, so the interleave (the
    mixture's proportions at every point) stays and a source's cycles never overlap."""
    if passes is None:
        return rows[rng.permutation(len(rows))]
    # Passes found by one sort, not a scan per pass: a small source may start thousands of
    # cycles in one chunk. In label order, so a chunk inside one cycle of each source mixes
    # as it did before passes.
    out = rows.copy()
    by_pass = np.argsort(passes, kind="stable")
    for places in np.split(by_pass, np.flatnonzero(np.diff(passes[by_pass])) + 1):
        out[places] = rows[places[rng.permutation(len(places))]]
    return out
