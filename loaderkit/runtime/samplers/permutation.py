"""A keyed permutation of 0 .. n-1 computed position by position: any slice of an epoch's
order without materialising the order (Grain's index shuffle does the same).

A balanced Feistel network permutes the integers below the smallest even power of
two >= n; positions it maps outside [0, n) are mapped again until they land
inside ("cycle walking"), which keeps it a bijection of [0, n). Vectorised over
numpy arrays; the round function is SplitMix64's finaliser of (key, round, half).
Where a C compiler was found at install, `_feistel.c` computes the same network a
position at a time (~10x faster: a per-row plan of a cache-mode epoch was a third of it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

compiled_walk: Callable[[Any, Any, int, int, Any, bool], None] | None
try:
    from loaderkit.runtime.samplers._feistel import walk as compiled_walk
except ImportError:  # no C compiler at install: the numpy network, same result
    compiled_walk = None

ROUNDS = 6
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective 64-bit mixer (neighbouring inputs spread evenly)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _MIX1
        x = x ^ (x >> np.uint64(27))
        x = x * _MIX2
        return x ^ (x >> np.uint64(31))


class Permutation:
    """A bijection of [0, n) keyed by `key` (a sequence of ints: seed, epoch, stream)."""

    def __init__(self, n: int, key: tuple[int, ...]) -> None:
        self.n = n
        bits = max(2, (max(n - 1, 1)).bit_length())
        self.half = (bits + 1) // 2  # each half of the (even) bit width
        self.mask = np.uint64((1 << self.half) - 1)
        seed = np.uint64(0)
        for part in key:
            with np.errstate(over="ignore"):
                seed = splitmix64(np.array([seed ^ np.uint64(part % 2**64)], dtype=np.uint64))[0]
        with np.errstate(over="ignore"):
            self.keys = splitmix64(seed + _GOLDEN * np.arange(1, ROUNDS + 1, dtype=np.uint64))

    def _round(self, x: np.ndarray, inverse: bool) -> np.ndarray:
        shift, mask = np.uint64(self.half), self.mask
        left, right = x >> shift, x & mask
        keys = self.keys[::-1] if inverse else self.keys
        for key in keys:
            if inverse:
                left, right = right ^ (splitmix64(left ^ key) & mask), left
            else:
                left, right = right, left ^ (splitmix64(right ^ key) & mask)
        return (left << shift) | right

    def _walk(self, positions: np.ndarray, inverse: bool) -> np.ndarray:
        if compiled_walk is not None:
            x = np.ascontiguousarray(positions, dtype=np.int64)
            out = np.empty_like(x)
            compiled_walk(x, out, self.n, self.half, self.keys, inverse)
            return out
        x = np.asarray(positions, dtype=np.uint64)
        out = self._round(x, inverse)
        outside = out >= np.uint64(self.n)
        while outside.any():  # at most a few rounds: the domain is < 4n
            out[outside] = self._round(out[outside], inverse)
            outside = out >= np.uint64(self.n)
        return out.astype(np.int64)

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """Where each of `positions` (in [0, n)) goes."""
        return self._walk(positions, inverse=False)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Which position goes to each of `values`."""
        return self._walk(values, inverse=True)
