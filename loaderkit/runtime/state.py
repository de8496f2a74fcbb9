"""Where a loader stands in its epochs: small, versioned, validated when it is loaded.

The convention is torchdata's `StatefulDataLoader`: `state_dict()` mid-epoch, and a
fresh loader given `load_state_dict(state)` delivers exactly the rows of that epoch
not yet delivered. A state holds positions, never rows: the epoch, the ranges of
the epoch's global order the pass started with, and how many batches this rank
delivered of them. It does not depend on `num_workers`; for the samplers with a
global order it does not depend on the world size or the batch size either: a
state saved by rank 0 at world size W resumes at any W' (every rank having taken
the same number of steps), and `merge_states` combines every rank's state when
they did not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from loaderkit.errors import ResumeError
from loaderkit.runtime.samplers.dealing import Deal, deal
from loaderkit.runtime.samplers.ordering import Ranges, drop, total
from loaderkit.runtime.spec import LoaderSpec, ReadSpec, SamplerSpec

STATE_VERSION = 2

# Settings that fix the epoch's global order: a resume under any other value would
# deliver other rows, so it is refused rather than silently wrong.
ORDER_KEYS = ("sampler", "mode", "seed", "block_rows", "chunk_rows", "universe_rows", "limit",
              "mixture", "split", "drop_last", "uneven")
# Rows along a state's `remaining` that its delivered steps covered:
# (epoch, remaining, steps, saved batch_size, saved world_size) -> rows.
Consumed = Callable[[int, Ranges, int, int, int], int]
# What else fixes the order of a sampler whose order belongs to each rank.
RANK_KEYS = ("world_size", "rank", "batch_size")


def settings(sampler: SamplerSpec, loader: LoaderSpec, read: ReadSpec,
             universe_rows: int, elastic: bool) -> dict[str, Any]:
    """What a state records of the recipe: the ORDER_KEYS, the world it was saved in, and the
    worker count (for the reader's information: a state resumes under any)."""
    source, split = read.source, read.split
    mixture = None if not source.parts else {
        "sources": [[p.name, p.weight] for p in source.parts], "stop": source.stop}
    chosen = None if split is None else {
        "by": split.by, "seed": split.seed, "split": split.split,
        "fractions": [[name, fraction] for name, fraction in split.fractions]}
    return {"sampler": sampler.type, "mode": sampler.mode, "seed": sampler.seed,
            "block_rows": sampler.block_rows, "chunk_rows": sampler.chunk_rows,
            "universe_rows": universe_rows, "limit": sampler.limit, "mixture": mixture,
            "split": chosen, "drop_last": loader.drop_last, "uneven": sampler.uneven,
            "elastic": elastic, "world_size": sampler.world_size, "rank": sampler.rank,
            "batch_size": loader.batch_size, "num_workers": loader.num_workers}


class EpochState:
    """The epoch of the pass in progress, what of it the pass started with, the batches it
    delivered, and a pending resume.

    Each pass has a token; only the newest pass moves the position, so an old
    iterator still being drained cannot.
    """

    def __init__(self, epoch_ranges: Callable[[int], Ranges],
                 consumed: Consumed | None = None) -> None:
        self.epoch_ranges = epoch_ranges
        self.consumed = consumed
        self.next_epoch = 0
        self.resume: tuple[int, Ranges] | None = None  # (epoch, what is left of it)
        self.epoch: int | None = None  # epoch of the pass in progress or last started
        self.remaining: Ranges = ()  # what the pass in progress started with
        self.delivered = 0
        self.finished = False
        self.token = 0

    def begin(self) -> tuple[int, Ranges, int]:
        """A new pass: its (epoch, ranges of the global order to deliver, token)."""
        epoch = self.next_epoch
        if self.resume is not None and self.resume[0] == epoch:
            remaining = self.resume[1]
        else:
            remaining = self.epoch_ranges(epoch)
        self.resume = None
        self.token += 1
        self.epoch, self.remaining, self.delivered, self.finished = epoch, remaining, 0, False
        self.next_epoch = epoch + 1
        return epoch, remaining, self.token

    def count(self, token: int) -> None:
        if token == self.token:
            self.delivered += 1

    def finish(self, token: int) -> None:
        if token == self.token:
            self.finished = True

    def position(self) -> tuple[int, Ranges, int]:
        """(epoch, ranges the pass started with, batches delivered of them): of the pass in
        progress, or of the next one."""
        if self.epoch is not None and not self.finished:
            return self.epoch, self.remaining, self.delivered
        if self.resume is not None and self.resume[0] == self.next_epoch:
            return self.resume[0], self.resume[1], 0
        return self.next_epoch, self.epoch_ranges(self.next_epoch), 0

    def as_dict(self, recorded: dict[str, Any], batches_per_epoch: int) -> dict[str, Any]:
        epoch, remaining, delivered = self.position()
        return {"state_version": STATE_VERSION, "epoch": epoch,
                "remaining": [list(r) for r in remaining], "batches_delivered": delivered,
                **recorded, "batches_per_epoch": batches_per_epoch}

    def load(self, state: Mapping[str, Any], recorded: dict[str, Any]) -> None:
        """Make the next pass deliver what the saved epoch has left; ResumeError if this
        loader cannot do so exactly."""
        epoch, left = left_of(state, recorded, self.consumed)
        self.next_epoch = epoch
        self.resume = (epoch, left)
        self.epoch, self.finished = None, False


def _checked(state: Any, recorded: dict[str, Any]) -> tuple[int, Ranges, int]:
    """A state's (epoch, remaining, batches delivered), after checking it fits `recorded`."""
    if not isinstance(state, Mapping):
        raise ResumeError(f"cannot resume: a state is a mapping, got {type(state).__name__}")
    version = state.get("state_version")
    if version != STATE_VERSION:
        raise ResumeError(f"cannot resume: state version {version!r}; this loaderkit reads "
                          f"version {STATE_VERSION}")
    epoch, delivered = state.get("epoch"), state.get("batches_delivered")
    if not (_whole(epoch) and _whole(delivered)):
        raise ResumeError("cannot resume: 'epoch' and 'batches_delivered' must be whole "
                          f"numbers >= 0, got {epoch!r} and {delivered!r}")
    keys = ORDER_KEYS + (() if recorded["elastic"] else RANK_KEYS)
    changed = [f"{k}: saved {state.get(k)!r}, now {recorded[k]!r}"
               for k in keys if state.get(k) != recorded[k]]
    if changed:
        raise ResumeError("cannot resume: settings that fix the epoch order changed ("
                          + "; ".join(changed)
                          + "); resume with the saved settings or start a new epoch")
    try:
        remaining = tuple((int(a), int(b)) for a, b in state["remaining"])
    except (KeyError, TypeError, ValueError):
        raise ResumeError("cannot resume: 'remaining' must be a list of [start, stop] "
                          "ranges") from None
    if any(a < 0 or b < a for a, b in remaining):
        raise ResumeError(f"cannot resume: 'remaining' holds an invalid range: {remaining}")
    return int(epoch), remaining, int(delivered)  # type: ignore[arg-type]


def left_of(state: Mapping[str, Any], recorded: dict[str, Any],
            consumed: Consumed | None = None) -> tuple[int, Ranges]:
    """The saved epoch, and what is left of it: the state's `left` when `merge_states` made
    it, else what remains once every rank took the saved rank's number of steps, dealt as
    the saved run dealt them (`consumed`: the sampler's count of those rows)."""
    epoch, remaining, delivered = _checked(state, recorded)
    if "left" in state:
        return epoch, tuple((int(a), int(b)) for a, b in state["left"])
    size, world = int(state["batch_size"]), int(state["world_size"])
    if consumed is not None:
        rows = consumed(epoch, remaining, delivered, size, world)
    else:
        rows = _deal_of(state, remaining).steps_rows(delivered) if state["elastic"] \
            else delivered * size
    return epoch, drop(remaining, [(0, rows)])


def _deal_of(state: Mapping[str, Any], remaining: Ranges) -> Deal:
    """How the saved run dealt `remaining` (a sampler with a global order)."""
    return deal(total(remaining), int(state["batch_size"]), int(state["world_size"]),
                bool(state["drop_last"]), str(state["uneven"]))


def merge_states(states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One state from every rank's: what no rank delivered, even when ranks took different
    numbers of steps (`uneven: allow`). Give the result to
    `load_state_dict` on every rank of the new run, at any world size."""
    if not states:
        raise ResumeError("merge_states needs the state of every rank, got none")
    first = states[0]
    world = first.get("world_size")
    ranks = sorted(int(s.get("rank", -1)) for s in states)
    if ranks != list(range(int(world or 0))):
        raise ResumeError(f"merge_states needs one state per rank 0..{world} - 1, got ranks "
                          f"{ranks}")
    same = ("epoch", "remaining", "world_size", "batch_size", *ORDER_KEYS)
    for other in states[1:]:
        differ = [k for k in same if other.get(k) != first.get(k)]
        if differ:
            raise ResumeError(f"cannot merge states of different passes: {', '.join(differ)} "
                              "differ")
    if not first.get("elastic"):
        raise ResumeError(f"'{first.get('sampler')}' states do not combine across ranks")
    world = int(first["world_size"])
    remaining = tuple((int(a), int(b)) for a, b in first["remaining"])
    dealt = _deal_of(first, remaining)
    pieces = [(dealt.start(j * world + s["rank"]), dealt.start(j * world + s["rank"] + 1))
              for s in states for j in range(int(s["batches_delivered"]))]
    return {**first, "rank": 0, "batches_delivered": 0,
            "left": [list(r) for r in drop(remaining, pieces)]}


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
