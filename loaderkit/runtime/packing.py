"""`pack:` tokenized documents into sequences of `seq_len`, exact, resumable and elastic.

The design (docs/text.md, "How packing stays exact"):

- Every rank reads and tokenizes the epoch's *global* document order: the recipe's
  sampler at world size 1, so the order (seed, epoch, mixture, split, limit) is the one
  every other loader of the recipe has. Tokenizing runs where decode runs (workers or
  this process); packing runs here, in the main process, over that stream, so it never
  depends on `num_workers`.
- The packer numbers the sequences of the epoch 0, 1, 2, ...; with `W` ranks and `B`
  sequences per batch, global step k holds sequences kWB .. kWB + WB - 1 and rank r takes
  kWB + rB .. kWB + rB + B - 1 of them. The `r < WB` sequences after the last whole step
  are the last step, `ceil(r / W)` per rank, in rank order, filled up with all-padding
  sequences; with `drop_last` it is dropped. So every rank takes the same number of
  steps, each token is delivered once, and step k holds the same sequences at every
  world size with the same global batch. The price: each rank reads and tokenizes every
  document (W times the work of a rank-sharded read).
- A resume point (`Where`) is a place in the pass's document order and a small count:
  with `concat`, tokens of that document already delivered; with `first_fit`, bins of the
  window that starts there already delivered (a window is packed again and its first
  bins skipped). A state holds it after whole global steps (every rank having taken the
  saved rank's steps), so it resumes at any world size, worker count or batch size.

A packer holds at most the sequences of one step and one `first_fit` window of
documents; a worker holds only its task's documents.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from loaderkit.errors import ResumeError
from loaderkit.runtime.dataset import ChunkDataset
from loaderkit.runtime.loader import _OPEN_PASSES, RecipeLoader
from loaderkit.runtime.samplers import Sampler
from loaderkit.runtime.samplers.ordering import Ranges, drop
from loaderkit.runtime.spec import LoaderSpec, ReadSpec, SamplerSpec
from loaderkit.runtime.state import STATE_VERSION, _checked
from loaderkit.runtime.tokenizing import TokenLists, load

# Documents per read task: each is tokenized at once (encode_batch's threads share it).
DOC_BATCH = 512
# A first_fit window closes at this many tokens (x seq_len) or documents: enough bins that
# first-fit-decreasing leaves little padding, few enough that memory stays bounded.
WINDOW_SEQUENCES = 64
WINDOW_DOCS = 16384
PAD_LABEL = -100
PACKED_COLUMNS = ("input_ids", "labels", "attention_mask", "position_ids", "document_ids")


@dataclass(frozen=True)
class Where:
    """A resume point: `document` documents of the pass before it, and `skip` (concat:
    tokens of that document delivered; first_fit: bins of its window delivered)."""

    document: int
    skip: int = 0


@dataclass
class Block:
    """Sequences: token ids and absolute document indices (-1: padding), [k, seq_len], and
    the resume point after each."""

    ids: np.ndarray
    docs: np.ndarray
    after: list[Where]


def document_read(read: ReadSpec, sampler: SamplerSpec) -> tuple[ReadSpec, SamplerSpec]:
    """What the loader reads when it packs: only the packed column, tokenized, as python
    columns, in the global document order (world size 1) that every rank packs."""
    pack = read.pack
    assert pack is not None
    expression = read.columns[pack.column] if read.columns else pack.column
    tokenize = tuple(dataclasses.replace(t, packed=True) for t in read.tokenize
                     if t.column == pack.column)
    inner = dataclasses.replace(read, columns={pack.column: expression}, format="python_col",
                                tokenize=tokenize, decode=(), transform=None)
    return inner, dataclasses.replace(sampler, rank=0, world_size=1)


# ---- packers: documents in, sequences out ------------------------------------------------


def concat(batches: Iterator[Any], column: str, seq_len: int, start: Where) -> Iterator[Block]:
    """Documents end to end, cut every `seq_len` tokens; the last sequence padded."""
    ids = np.zeros(0, dtype=np.int64)
    docs = pos = ids
    d, skip = start.document, start.skip
    for batch in batches:
        tokens: TokenLists = batch[column]
        n, lengths = len(tokens), tokens.lengths()
        here_docs = np.repeat(np.arange(d, d + n, dtype=np.int64), lengths)
        here_pos = np.arange(len(tokens.values), dtype=np.int64) - np.repeat(
            tokens.offsets[:-1], lengths)
        ids = np.concatenate([ids, tokens.values[skip:]])
        docs = np.concatenate([docs, here_docs[skip:]])
        pos = np.concatenate([pos, here_pos[skip:]])
        skip, d = 0, d + n
        k = len(ids) // seq_len
        if k:
            cut = k * seq_len
            nxt = np.arange(1, k + 1) * seq_len
            after = [Where(int(docs[t]), int(pos[t])) if t < len(ids) else Where(d)
                     for t in nxt.tolist()]
            yield Block(ids[:cut].reshape(k, seq_len), docs[:cut].reshape(k, seq_len), after)
            ids, docs, pos = ids[cut:], docs[cut:], pos[cut:]
    if len(ids):
        pad = seq_len - len(ids)
        yield Block(np.pad(ids, (0, pad))[None], np.pad(docs, (0, pad), constant_values=-1)[None],
                    [Where(d)])


def first_fit(batches: Iterator[Any], column: str, seq_len: int, start: Where
              ) -> Iterator[Block]:
    """Whole documents in bins of `seq_len` (first fit, longest first), over windows of
    documents that close at a fixed size from where they start."""
    window: list[np.ndarray] = []
    held, begin, skip = 0, start.document, start.skip
    for batch in batches:
        tokens: TokenLists = batch[column]
        for i in range(len(tokens)):
            row = tokens.row(i)
            window.append(row)
            held += len(row)
            if held >= WINDOW_SEQUENCES * seq_len or len(window) >= WINDOW_DOCS:
                yield from _bins(window, begin, seq_len, skip)
                begin, skip, window, held = begin + len(window), 0, [], 0
    if window:
        yield from _bins(window, begin, seq_len, skip)


def _bins(window: list[np.ndarray], begin: int, seq_len: int, skip: int) -> Iterator[Block]:
    """One window's bins, in the order they opened; each bin's pieces in document order."""
    pieces: list[tuple[int, np.ndarray]] = []
    for j, row in enumerate(window):
        pieces += [(begin + j, row[a:a + seq_len]) for a in range(0, len(row), seq_len)]
    lengths = np.array([len(p) for _, p in pieces], dtype=np.int64)
    room = np.zeros(len(pieces), dtype=np.int64)
    members: list[list[int]] = []
    for index in np.argsort(-lengths, kind="stable").tolist():
        fits = np.flatnonzero(room[:len(members)] >= lengths[index])
        if len(fits):
            b = int(fits[0])
        else:
            b = len(members)
            members.append([])
            room[b] = seq_len
        members[b].append(index)
        room[b] -= lengths[index]
    count = len(members)
    if skip >= count:
        return
    ids = np.zeros((count - skip, seq_len), dtype=np.int64)
    docs = np.full((count - skip, seq_len), -1, dtype=np.int64)
    for out, chosen in enumerate(members[skip:]):
        at = 0
        for index in sorted(chosen):
            doc, piece = pieces[index]
            ids[out, at:at + len(piece)] = piece
            docs[out, at:at + len(piece)] = doc
            at += len(piece)
    after = [Where(begin, b + 1) for b in range(skip, count - 1)] + \
        [Where(begin + len(window))]
    yield Block(ids, docs, after)


PACKERS = {"concat": concat, "first_fit": first_fit}


# ---- steps: the global sequence stream dealt to ranks ---------------------------------------


def rank_batches(blocks: Iterator[Block], rank: int, world: int, batch: int, drop_last: bool,
                 seq_len: int) -> Iterator[tuple[np.ndarray, np.ndarray, Where | None]]:
    """This rank's batches (ids, docs) of the global sequence stream, and the resume point
    after the step each belongs to (None: the epoch's end)."""
    step = world * batch
    wanted = (rank + 1) * batch  # of a step, only sequences before this can be this rank's
    held_ids: list[np.ndarray] = []
    held_docs: list[np.ndarray] = []
    count = 0
    for block in blocks:
        for j in range(len(block.after)):
            if count < wanted:
                held_ids.append(block.ids[j])
                held_docs.append(block.docs[j])
            count += 1
            if count == step:
                mine = slice(rank * batch, wanted)
                yield np.stack(held_ids[mine]), np.stack(held_docs[mine]), block.after[j]
                held_ids, held_docs, count = [], [], 0
    if count == 0 or drop_last:
        return
    each = -(-count // world)  # the last step: ceil(count / W) sequences per rank
    lo, hi = rank * each, min(rank * each + each, count)
    ids = np.zeros((each, seq_len), dtype=np.int64)
    docs = np.full((each, seq_len), -1, dtype=np.int64)
    if lo < hi:
        ids[:hi - lo] = np.stack(held_ids[lo:hi])
        docs[:hi - lo] = np.stack(held_docs[lo:hi])
    yield ids, docs, None


def packed_arrays(ids: np.ndarray, docs: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
    """The five arrays of a packed batch (DESIGN.md): from ids and absolute document indices
    (-1 at padding)."""
    real = docs >= 0
    columns = np.arange(ids.shape[1], dtype=np.int64)
    new = real.copy()
    new[:, 1:] &= docs[:, 1:] != docs[:, :-1]
    piece_start = np.maximum.accumulate(np.where(new, columns, 0), axis=1)
    return {
        "input_ids": np.where(real, ids, pad_id),
        "labels": np.where(real, ids, PAD_LABEL),
        "attention_mask": real.astype(np.int64),
        "position_ids": np.where(real, columns - piece_start, 0),
        "document_ids": np.where(real, np.cumsum(new, axis=1) - 1, -1),
    }


# ---- the loader ----------------------------------------------------------------------------


class PackedLoader(RecipeLoader):
    """A RecipeLoader that delivers packed sequences: it reads the global document order
    (its `row_sampler` is the recipe's sampler at world size 1) and deals sequences to
    ranks by global step. `len()` counts by tokenizing the epoch once (it depends on the
    epoch's tokens)."""

    def __init__(self, dataset: ChunkDataset, sampler: Sampler, loader: LoaderSpec,
                 per_batch: bool, ranks: SamplerSpec, delivered: str = "torch") -> None:
        super().__init__(dataset, sampler, loader, per_batch)
        pack = dataset.read.pack
        assert pack is not None
        if pack.pad_id is None:  # the tokenizer's pad token, else 0
            found = [load(t).pad for t in dataset.read.tokenize if t.column == pack.column]
            pack = dataclasses.replace(pack, pad_id=found[0] if found and found[0] is not None
                                       else 0)
        self.pack = pack
        self.torch_format = delivered != "numpy"
        self.ranks = ranks
        self._pending: tuple[int, int] | None = None  # a loaded state's (epoch, skip)
        # The pass in progress: its token, epoch, starting ranges, resume point, and done.
        self._pass: tuple[int, int, Ranges, Where, bool] | None = None
        self._started_skip = 0
        self._length: tuple[tuple[int, Ranges, int], int] | None = None  # len(), cached

    def __len__(self) -> int:
        """Batches this rank takes in the pass in progress (or the next one): counted by
        reading and tokenizing that pass's documents once in this process (cached), since
        they depend on the epoch's tokens. Costly on a large corpus; nothing else needs it."""
        epoch, remaining, skip = self._upcoming()
        key = (epoch, remaining, skip)
        if self._length is None or self._length[0] != key:
            documents = itertools.chain.from_iterable(
                self.dataset[task] for task in self.row_sampler.tasks(epoch, remaining, True))
            pack = self.pack
            blocks = PACKERS[pack.strategy](documents, pack.column, pack.seq_len, Where(0, skip))
            sequences = sum(len(block.after) for block in blocks)
            steps, rest = divmod(sequences, self.ranks.world_size * self._spec.batch_size)
            self._length = (key, steps + (1 if rest and not self._spec.drop_last else 0))
        return self._length[1]

    def _upcoming(self) -> tuple[int, Ranges, int]:
        """(epoch, ranges, skip) the pass in progress started with, or the next pass's."""
        state, current = self._state, self._pass
        if current is not None and current[0] == state.token and not current[4]:
            return current[1], current[2], self._started_skip
        epoch, remaining, _ = state.position()
        pending = self._pending
        return epoch, remaining, pending[1] if pending and pending[0] == epoch else 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        epoch, remaining, token = self._state.begin()
        skip = self._pending[1] if self._pending and self._pending[0] == epoch else 0
        self._pending = None
        self._task_sampler.tasks = self.row_sampler.tasks(epoch, remaining, self.per_batch)
        runs = self.row_sampler.scan_runs(epoch, remaining) if self.num_workers == 0 else None
        documents = self._deliver(token, runs)
        self._pass = (token, epoch, remaining, Where(0, skip), False)
        self._started_skip = skip
        delivering = self._packed(documents, token, epoch, remaining, skip)
        _OPEN_PASSES.add(delivering)
        return delivering

    def _packed(self, documents: Iterator[Any], token: int, epoch: int, remaining: Ranges,
                skip: int) -> Iterator[Any]:
        pack, spec = self.pack, self._spec
        blocks = PACKERS[pack.strategy](documents, pack.column, pack.seq_len, Where(0, skip))
        torch_format = self.torch_format
        try:
            for ids, docs, after in rank_batches(blocks, self.ranks.rank, self.ranks.world_size,
                                                 spec.batch_size, spec.drop_last, pack.seq_len):
                arrays = packed_arrays(ids, docs, int(pack.pad_id or 0))
                batch = {k: torch.from_numpy(v) for k, v in arrays.items()} if torch_format \
                    else arrays
                self._pass = (token, epoch, remaining, after or Where(0), after is None)
                yield batch
        finally:
            documents.close()  # type: ignore[attr-defined]
        self._pass = (token, epoch, remaining, Where(0), True)

    # ---- resume ----------------------------------------------------------------------

    def _pack_settings(self) -> dict[str, Any]:
        pack = self.pack
        tokenize = [[t.column, t.tokenizer, t.add_bos, t.add_eos, t.bos_token, t.eos_token]
                    for t in self.dataset.read.tokenize]  # type: ignore[attr-defined]
        return {"column": pack.column, "seq_len": pack.seq_len, "strategy": pack.strategy,
                "pad_id": pack.pad_id, "tokenize": tokenize}

    def state_dict(self) -> dict[str, Any]:
        """Where the global sequence stream stands after this rank's delivered steps (every
        rank having taken as many): the documents left and a skip count."""
        state = self._state
        current = self._pass
        if current is not None and current[0] == state.token and not current[4]:
            _, epoch, remaining, where, _ = current
        else:
            epoch, remaining, _ = state.position()
            pending = self._pending
            where = Where(0, pending[1] if pending and pending[0] == epoch else 0)
        left = drop(remaining, [(0, where.document)]) if where.document else remaining
        return {"state_version": STATE_VERSION, "epoch": epoch,
                "remaining": [list(r) for r in left], "batches_delivered": 0,
                **self._recorded(), "world_size": self.ranks.world_size,
                "rank": self.ranks.rank, "batch_size": self._spec.batch_size,
                "batches_per_epoch": None, "pack": {**self._pack_settings(), "skip": where.skip}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next pass deliver the sequences of the saved epoch not yet delivered."""
        recorded = {**self._recorded(), "world_size": 1, "rank": 0}
        saved = dict(state) if isinstance(state, Mapping) else state
        if isinstance(saved, dict):
            saved.update(world_size=1, rank=0, batch_size=recorded["batch_size"])
        epoch, remaining, _ = _checked(saved, recorded)
        pack = state.get("pack") if isinstance(state, Mapping) else None
        if not isinstance(pack, Mapping):
            raise ResumeError("cannot resume: the state is not a packed loader's (no 'pack')")
        changed = [f"{k}: saved {pack.get(k)!r}, now {v!r}"
                   for k, v in self._pack_settings().items() if pack.get(k) != v]
        if changed:
            raise ResumeError("cannot resume: settings that fix the packed sequences changed ("
                              + "; ".join(changed) + ")")
        skip = pack.get("skip")
        if not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
            raise ResumeError(f"cannot resume: 'pack.skip' must be a whole number, got {skip!r}")
        self._state.next_epoch = epoch
        self._state.resume = (epoch, remaining)
        self._state.epoch, self._state.finished = None, False
        self._pending = (epoch, skip)
        self._pass = None
