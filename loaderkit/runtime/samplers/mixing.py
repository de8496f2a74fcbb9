"""A mixture's epoch: its sources interleaved by weight, in proportion at every point.

Row j of source i is given the time (j + phase_i) / p_i, where p_i is the source's
share of the weights and phase_i a random offset in [0, 1) drawn from (seed,
epoch); the epoch is every source's rows in the order of their times. At any point
of the epoch each source has delivered its share of the rows so far to within one
row (systematic sampling), so a run stopped early, or resumed, still saw the
mixture; which rows of a source come in what order is the sampler's own order of
that source. `first_exhausted` ends the epoch with the first source's last row;
`all_exhausted` runs until every source has delivered all its rows, starting a
source's order again (a new one) each time it runs out.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from loaderkit.runtime.samplers.ordering import Segment, positions
from loaderkit.runtime.universe import Mixture

# Tolerance on the times: a row whose time equals the end is in the epoch.
_EPS = 1e-9


def counts(mixture: Mixture, phase: np.ndarray) -> np.ndarray:
    """Rows each source delivers in an epoch, given the phases."""
    sizes = np.array(mixture.sizes, dtype=np.float64)
    weights = np.array(mixture.weights, dtype=np.float64) * (sizes > 0)
    if weights.sum() == 0 or (mixture.stop == "first_exhausted" and (sizes == 0).any()):
        return np.zeros(len(sizes), dtype=np.int64)
    share = weights / weights.sum()
    live = share > 0
    last = (sizes[live] - 1 + phase[live]) / share[live]  # each source's last row's time
    end = last.min() if mixture.stop == "first_exhausted" else last.max()
    out = np.zeros(len(sizes), dtype=np.int64)
    out[live] = np.floor(end * share[live] - phase[live] + _EPS).astype(np.int64) + 1
    return np.maximum(out, 0)


def interleave(mixture: Mixture, order_of: Callable[[int, int], Segment],
               rng: np.random.Generator) -> np.ndarray:
    """The epoch's universe positions. `order_of(source, cycle)` is the order of a source's
    own positions (0 .. its size - 1) for that pass over it."""
    phase = rng.random(len(mixture.sizes))
    taken = counts(mixture, phase)
    sizes = np.array(mixture.sizes, dtype=np.float64)
    weights = np.array(mixture.weights, dtype=np.float64) * (sizes > 0)
    share = weights / weights.sum() if weights.sum() else weights
    times, rows = [], []
    for i, (start, size, n) in enumerate(zip(mixture.starts, mixture.sizes, taken, strict=True)):
        if n == 0:
            continue
        times.append((np.arange(n) + phase[i]) / share[i])
        cycles = [positions([order_of(i, cycle)]) for cycle in range(math.ceil(n / size))]
        rows.append(np.concatenate(cycles)[:n] + start)
    if not rows:
        return np.zeros(0, dtype=np.int64)
    sources = np.repeat(np.arange(len(times)), [len(t) for t in times])
    # By time; a tie goes to the source listed first.
    order = np.lexsort((sources, np.concatenate(times)))
    return np.concatenate(rows)[order]


def source_of(mixture: Mixture, where: np.ndarray) -> np.ndarray:
    """The source index of each universe position."""
    return np.searchsorted(mixture.starts, where, side="right") - 1
