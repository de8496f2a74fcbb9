"""Splits: each row's split follows from a seeded hash of its `splits.by` value.

A row's hash maps to a point of [0, 1), and each split takes a range of that
interval of the size of its fraction (in the order the fractions are written).
Hashing a row's own value (an id) keeps its split when rows are appended later;
`by: random` hashes the row's position instead, reproducible from the seed but
not stable under appends.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from loaderkit.runtime.samplers.permutation import splitmix64
from loaderkit.runtime.spec import SplitSpec
from loaderkit.vocabulary import RANDOM_SPLIT


def _key(seed: int) -> np.uint64:
    return splitmix64(np.array([seed % 2**64], dtype=np.uint64))[0]


def unit_hash(values: pa.Array | pa.ChunkedArray | np.ndarray, seed: int) -> np.ndarray:
    """Each value's seeded hash as a float in [0, 1): integers and floats vectorised, text
    and bytes by BLAKE2b (stable across processes and Python versions)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        kind = values.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_temporal(kind):
            values = values.to_numpy(zero_copy_only=False)
        else:
            key = int(seed % 2**64).to_bytes(8, "little")
            digests = [hashlib.blake2b(str(v).encode() if not isinstance(v, bytes) else v,
                                       digest_size=8, key=key).digest()
                       for v in values.to_pylist()]
            words = np.frombuffer(b"".join(digests), dtype="<u8")
            return (words >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    array = np.asarray(values)
    if array.dtype.kind == "f":
        array = array.astype(np.float64).view(np.uint64)
    bits = array.astype(np.int64, copy=False).view(np.uint64) ^ _key(seed)
    return (splitmix64(bits) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def assign(values: pa.Array | pa.ChunkedArray | np.ndarray, spec: SplitSpec) -> np.ndarray:
    """The index (in `spec.fractions`) of each value's split, or -1 for rows in none."""
    points = unit_hash(values, spec.seed)
    out = np.full(len(points), -1, dtype=np.int16)
    low = 0.0
    for index, (_, fraction) in enumerate(spec.fractions):
        out[(points >= low) & (points < low + fraction)] = index
        low += fraction
    return out


SplitRows = tuple[tuple[str, int], ...]  # rows per split name, in the order of the fractions


def count_splits(assigned: np.ndarray, spec: SplitSpec) -> np.ndarray:
    """Rows per split, in the order of `spec.fractions` (rows in none are not counted)."""
    return np.bincount(assigned[assigned >= 0].astype(np.int64), minlength=len(spec.fractions))


def named(counts: np.ndarray, spec: SplitSpec | None) -> SplitRows:
    """`count_splits`'s counts (summed over batches) with their split names; () without a
    split."""
    if spec is None:
        return ()
    return tuple((name, int(n)) for (name, _), n in zip(spec.fractions, counts, strict=True))


def chosen(spec: SplitSpec | None) -> bool:
    """Whether the recipe reads one split (not every row): then no scanner reads its rows."""
    return spec is not None and spec.split is not None


def by_column(spec: SplitSpec | None) -> list[str]:
    """The column a split reads (none for `by: random`, or without a split)."""
    return [spec.by] if spec is not None and spec.by != RANDOM_SPLIT else []


def select(values: pa.Array | pa.ChunkedArray | np.ndarray, spec: SplitSpec
           ) -> tuple[np.ndarray | None, np.ndarray]:
    """Whether each row (by its `by` value, or its position) is in the split the recipe
    reads (None: it reads every row), and the rows of each split (`count_splits`)."""
    assigned = assign(values, spec)
    keep = assigned == spec.index if spec.split is not None else None
    return keep, count_splits(assigned, spec)
