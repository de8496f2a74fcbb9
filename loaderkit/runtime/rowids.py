"""The layouts of a row id, each in one place: what `Universe.ids` gives a reader.

A Lance row address is `fragment_id << 32 | offset` (the engine's own layout: the
offset of a row in its fragment in the low 32 bits). A mixture's row id carries the
index of its source above `SOURCE_SHIFT` and that source's own id below it.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

Ids = TypeVar("Ids", int, np.ndarray)  # one id, or an array of them

# Lance: a row address's fragment id is above this bit, its offset in the fragment below.
FRAGMENT_SHIFT = 32
OFFSET_MASK = (1 << FRAGMENT_SHIFT) - 1

# A mixture: the source's index above this bit, the source's own row id below.
SOURCE_SHIFT = 56
LOCAL_MASK = (1 << SOURCE_SHIFT) - 1


def address(fragment: int | np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The Lance row addresses of rows `offsets` of fragment(s) `fragment`."""
    return (np.int64(fragment) << FRAGMENT_SHIFT) | offsets if isinstance(fragment, int) \
        else (fragment << FRAGMENT_SHIFT) | offsets


def fragment_of(addresses: Ids) -> Ids:
    """The fragment id of each Lance row address."""
    return addresses >> FRAGMENT_SHIFT


def offset_of(addresses: Ids) -> Ids:
    """The offset in its fragment of each Lance row address."""
    return addresses & OFFSET_MASK


def mixed(source: int, ids: np.ndarray) -> np.ndarray:
    """The mixture's ids of source `source`'s own row ids `ids`."""
    return ids | (np.int64(source) << SOURCE_SHIFT)


def source_of(ids: Ids) -> Ids:
    """The index (in `sources`) of each mixture row id's source."""
    return ids >> SOURCE_SHIFT


def local_of(ids: Ids) -> Ids:
    """Each mixture row id as its own source's row id."""
    return ids & LOCAL_MASK
