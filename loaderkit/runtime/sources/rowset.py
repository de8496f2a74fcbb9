"""The rows a recipe reads of a Lance dataset (its `Universe`): which rows the filter and
the split keep, fragment by fragment, in bounded memory."""

from __future__ import annotations

from collections.abc import Iterator

import lance
import numpy as np
import pyarrow as pa

from loaderkit.runtime import rowids, splits
from loaderkit.runtime.spec import SplitSpec
from loaderkit.runtime.universe import Bitmap, Universe


def lance_universe(ds: lance.LanceDataset, filter: str | None,
                   split: SplitSpec | None) -> Universe:
    """The universe of `ds` under `filter` and `split`."""
    frags = ds.get_fragments()
    frag_ids = np.array([f.fragment_id for f in frags], dtype=np.int64)
    physical = np.array([f.metadata.physical_rows for f in frags], dtype=np.int64)
    deletions = any(f.metadata.deletion_file is not None for f in frags)
    if filter is None and split is None and not deletions and not ds.has_stable_row_ids:
        # Addresses follow from the layout: no per-row array, so a billion-row
        # full scan plans in O(fragments) memory.
        return Universe(frag_ids, physical, None)
    if ds.has_stable_row_ids:
        return _universe_by_ids(ds, frag_ids, filter, split)
    return _universe_by_bitmaps(ds, frag_ids, physical, filter, split)


def _kept_rows(ds: lance.LanceDataset, filter: str | None, split: SplitSpec | None
               ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(row addresses, whether each is kept, rows per split) batch by batch in dataset
    order: the rows the filter selects and, with a split, whether each is in the chosen
    split. One scan, of the split's column alone (or none), in bounded memory."""
    by = splits.by_column(split)
    scanner = ds.scanner(columns=by, filter=filter, with_row_address=True,
                         batch_size=1 << 17, scan_in_order=True)
    seen = 0
    for batch in scanner.to_batches():
        addresses = batch.column("_rowaddr").to_numpy().astype(np.int64)
        keep: np.ndarray | None = None
        counts = np.zeros(0, dtype=np.int64)
        if split is not None:
            values = batch.column(split.by) if by else np.arange(seen, seen + len(addresses))
            keep, counts = splits.select(values, split)
        seen += len(addresses)
        yield addresses, np.ones(len(addresses), dtype=bool) if keep is None else keep, counts


class _Bitmaps:
    """Each fragment's kept rows as a bitmap (or None: all of them), built as the scan goes:
    at most one fragment's flags are held at a time."""

    def __init__(self, frag_ids: np.ndarray, physical: np.ndarray) -> None:
        self.index_of = {int(f): i for i, f in enumerate(frag_ids)}
        self.physical = physical
        self.kept: list[Bitmap | None] = [None] * len(frag_ids)
        self.rows = np.zeros(len(frag_ids), dtype=np.int64)
        self.current, self.flags = -1, np.zeros(0, dtype=bool)

    def add(self, addresses: np.ndarray, keep: np.ndarray) -> None:
        fragments = rowids.fragment_of(addresses)
        for fragment in np.unique(fragments):
            here = fragments == fragment
            index = self.index_of[int(fragment)]
            if index != self.current:
                self.close()
                self.current = index
                self.flags = np.zeros(int(self.physical[index]), dtype=bool)
            self.flags[rowids.offset_of(addresses[here])] = keep[here]

    def close(self) -> None:
        if self.current >= 0:
            count = int(self.flags.sum())
            self.rows[self.current] = count
            self.kept[self.current] = None if count == len(self.flags) else Bitmap(self.flags)

    def finished(self) -> tuple[Bitmap | None, ...]:
        self.close()
        # A fragment the scan never reached keeps no row (a bitmap of none).
        for index in range(len(self.kept)):
            if self.rows[index] == 0 and self.kept[index] is None:
                self.kept[index] = Bitmap(np.zeros(0, dtype=bool))
        return tuple(self.kept)


def _universe_by_bitmaps(ds: lance.LanceDataset, frag_ids: np.ndarray, physical: np.ndarray,
                         filter: str | None, split: SplitSpec | None) -> Universe:
    """Each fragment's kept rows as a bitmap (or all of them)."""
    bitmaps = _Bitmaps(frag_ids, physical)
    split_counts = np.zeros(len(split.fractions) if split else 0, dtype=np.int64)
    for addresses, keep, counts in _kept_rows(ds, filter, split):
        split_counts += counts
        bitmaps.add(addresses, keep)
    kept = bitmaps.finished()
    return Universe(frag_ids, bitmaps.rows, None, scannable=not splits.chosen(split),
                    split_rows=splits.named(split_counts, split), kept=kept)


def _universe_by_ids(ds: lance.LanceDataset, frag_ids: np.ndarray, filter: str | None,
                     split: SplitSpec | None) -> Universe:
    """With stable row ids, rows are read by id, not address: the ids are kept, 8 bytes
    a row (the one universe that grows with the data)."""
    split_rows: splits.SplitRows = ()
    by = splits.by_column(split)
    tbl = ds.to_table(columns=by, with_row_id=True, with_row_address=True, filter=filter)
    if split is not None:
        keep, counts = splits.select(tbl[split.by] if by else np.arange(tbl.num_rows), split)
        split_rows = splits.named(counts, split)
        if keep is not None:
            tbl = tbl.filter(pa.array(keep))
    row_ids = tbl["_rowid"].to_numpy().astype(np.int64)
    frag_of_row = rowids.fragment_of(tbl["_rowaddr"].to_numpy().astype(np.int64))
    # Rows arrive in scan order (fragment by fragment); map fragment ids to
    # dataset-order indices and keep that order stable, defensively.
    index_of = np.full(int(max(frag_ids.max(initial=0), frag_of_row.max(initial=0))) + 1, -1)
    index_of[frag_ids] = np.arange(len(frag_ids))
    row_frag_index = index_of[frag_of_row]
    if row_frag_index.size and np.any(np.diff(row_frag_index) < 0):
        order = np.argsort(row_frag_index, kind="stable")
        row_ids, row_frag_index = row_ids[order], row_frag_index[order]
    rows = np.bincount(row_frag_index, minlength=len(frag_ids)).astype(np.int64)
    return Universe(frag_ids, rows, row_ids, scannable=not splits.chosen(split),
                    split_rows=split_rows)
