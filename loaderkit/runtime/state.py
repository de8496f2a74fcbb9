"""Where a loader stands in its epochs: small, versioned, validated when it is loaded.

The convention is torchdata's `StatefulDataLoader`: `state_dict()` mid-epoch, and a
fresh loader given `load_state_dict(state)` delivers exactly the batches of that
epoch not yet delivered, in the same order. A state holds positions, never rows,
and does not depend on `num_workers`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loaderkit.errors import ResumeError
from loaderkit.runtime.spec import LoaderSpec, ReadSpec, SamplerSpec

STATE_VERSION = 1

# Settings that fix the order of an epoch: a resume under any other value would
# deliver a different sequence, so it is refused rather than silently wrong.
ORDER_KEYS = ("sampler", "mode", "seed", "world_size", "rank", "batch_size", "drop_last",
              "uneven", "block_rows", "chunk_rows", "rows_per_epoch", "limit", "mixture",
              "split")


def settings(sampler: SamplerSpec, loader: LoaderSpec, read: ReadSpec,
             rows_per_epoch: int) -> dict[str, Any]:
    """What a state records of the recipe: the ORDER_KEYS, and the worker count (for the
    reader's information: a state resumes under any)."""
    source, split = read.source, read.split
    mixture = None if not source.parts else {
        "sources": [[p.name, p.weight] for p in source.parts], "stop": source.stop}
    chosen = None if split is None else {
        "by": split.by, "seed": split.seed, "split": split.split,
        "fractions": [[name, fraction] for name, fraction in split.fractions]}
    values = {"sampler": sampler.type, "mode": sampler.mode, "seed": sampler.seed,
              "world_size": sampler.world_size, "rank": sampler.rank,
              "batch_size": loader.batch_size, "drop_last": loader.drop_last,
              "uneven": sampler.uneven, "block_rows": sampler.block_rows,
              "chunk_rows": sampler.chunk_rows, "rows_per_epoch": rows_per_epoch,
              "limit": sampler.limit, "mixture": mixture, "split": chosen}
    return {**{k: values[k] for k in ORDER_KEYS}, "num_workers": loader.num_workers}


class EpochState:
    """The epoch of the pass in progress, the batches it delivered, and a pending resume.

    Each pass has a token; only the newest pass moves the position, so an old
    iterator still being drained cannot.
    """

    def __init__(self) -> None:
        self.next_epoch = 0
        self.resume: tuple[int, int] | None = None  # (epoch, batches already delivered)
        self.epoch: int | None = None  # epoch of the pass in progress or last started
        self.delivered = 0
        self.finished = False
        self.token = 0

    def begin(self) -> tuple[int, int, int]:
        """A new pass: its (epoch, batches to skip, token)."""
        epoch = self.next_epoch
        skip = self.resume[1] if self.resume and self.resume[0] == epoch else 0
        self.resume = None
        self.token += 1
        self.epoch, self.delivered, self.finished = epoch, skip, False
        self.next_epoch = epoch + 1
        return epoch, skip, self.token

    def count(self, token: int) -> None:
        if token == self.token:
            self.delivered += 1

    def finish(self, token: int) -> None:
        if token == self.token:
            self.finished = True

    def position(self) -> tuple[int, int]:
        """(epoch, batches delivered) of the pass in progress, or of the next one."""
        if self.epoch is not None and not self.finished:
            return self.epoch, self.delivered
        if self.resume is not None and self.resume[0] == self.next_epoch:
            return self.resume
        return self.next_epoch, 0

    def as_dict(self, recorded: dict[str, Any], batches_per_epoch: int) -> dict[str, Any]:
        epoch, delivered = self.position()
        return {"state_version": STATE_VERSION, "epoch": epoch, "batches_delivered": delivered,
                **recorded, "batches_per_epoch": batches_per_epoch}

    def load(self, state: Mapping[str, Any], recorded: dict[str, Any],
             batches_of: Callable[[int], int]) -> None:
        """Make the next pass finish the saved epoch; ResumeError if it cannot exactly."""
        if not isinstance(state, Mapping):
            raise ResumeError(f"cannot resume: a state is a mapping, got {type(state).__name__}")
        version = state.get("state_version", STATE_VERSION)
        if version != STATE_VERSION:
            raise ResumeError(f"cannot resume: state version {version!r}; this loaderkit "
                              f"reads version {STATE_VERSION}")
        epoch, delivered = state.get("epoch"), state.get("batches_delivered")
        if not (_whole(epoch) and _whole(delivered)):
            raise ResumeError("cannot resume: 'epoch' and 'batches_delivered' must be whole "
                              f"numbers >= 0, got {epoch!r} and {delivered!r}")
        epoch, delivered = int(epoch), int(delivered)  # type: ignore[arg-type]
        changed = [f"{k}: saved {state[k]!r}, now {recorded[k]!r}"
                   for k in ORDER_KEYS if k in state and state[k] != recorded[k]]
        if changed:
            raise ResumeError("cannot resume: settings that fix the epoch order changed ("
                              + "; ".join(changed)
                              + "); resume with the saved settings or start a new epoch")
        if delivered > batches_of(epoch):
            raise ResumeError(f"cannot resume: {delivered} batches delivered but an epoch has "
                              f"{batches_of(epoch)}")
        self.next_epoch = epoch
        self.resume = (epoch, delivered)
        self.epoch, self.finished = None, False


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
