"""Samplers: one class per `sampler.type`, each in its own module of this package.

A sampler decides an epoch: which universe positions are read, in which order,
by which rank, and how a rank's part is cut into tasks for the workers. It is
pure numpy and the main process's alone, which is what makes the order
independent of the worker count and lets a resume go straight to a position.

Most samplers (`GlobalSampler`) define one *global order* of the epoch from
(seed, epoch), computed lazily piece by piece (a keyed permutation, blocks in a
permuted order), so that planning costs the same for a million rows as for a
billion. Ranks take its batches in turn: global batch J goes to rank J % world_size;
every whole step (batch_size x world_size rows) holds the same rows at every world
size, and by default the rows after the last whole step are split over the ranks so
that every rank takes the same number of steps (`dealing.py`). A resume at another
world size, worker count or batch size deals the rows no rank delivered. An epoch
in progress is the `Ranges` of the global order still to deliver.

`sharded_fragment` (`RankSampler`) deals whole fragments; its order belongs to
each rank and resumes only at the same world size. By default each rank cuts its
rows into as many batches as the largest rank takes.

Each sampler type's module defines one subclass (of base.py's contracts) with a `name`
from `vocabulary.SAMPLER_TYPES`, and is listed below (docs/architecture.md).
"""

from __future__ import annotations

from loaderkit.errors import SamplerError
from loaderkit.runtime.samplers import full_scan, sharded_batch, sharded_fragment, shuffle
from loaderkit.runtime.samplers.base import (
    SAMPLERS,
    GlobalSampler,
    RankSampler,
    Sampler,
    ScanGlobalSampler,
)
from loaderkit.runtime.spec import SamplerSpec
from loaderkit.runtime.universe import Universe

# The sampler types, each registered in SAMPLERS by defining its class.
TYPES = (full_scan.FullScan, sharded_batch.ShardedBatch, sharded_fragment.ShardedFragment,
         shuffle.Shuffle)


def make_sampler(spec: SamplerSpec, universe: Universe, batch_size: int, drop_last: bool,
                 row_bytes: int = 0) -> Sampler:
    """The sampler of `spec.type` for one rank."""
    try:
        kind = SAMPLERS[spec.type]
    except KeyError:
        raise SamplerError(f"unknown sampler type {spec.type!r}") from None
    return kind.create(spec, universe, batch_size, drop_last, row_bytes)


__all__ = ["SAMPLERS", "TYPES", "GlobalSampler", "RankSampler", "Sampler", "ScanGlobalSampler",
           "make_sampler"]
