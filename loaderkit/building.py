"""Stage 6, build: a bound plan -> the real `torch.utils.data.DataLoader`.

Building computes the rows the recipe reads (filter, split, mixture) once; what
they say (an empty selection, ranks with unequal rows) is reported here, and the
rows of each source and split are written into the graph that `build` prints.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from loaderkit.errors import Diagnostic, engine_message
from loaderkit.planning import Plan
from loaderkit.rules import rule
from loaderkit.runtime import CacheBudgetError, RuntimeFailure, make_loader
from loaderkit.runtime.loader import RecipeLoader
from loaderkit.runtime.universe import Universe


def build(plan: Plan, handle: Any = None) -> tuple[RecipeLoader | None, list[Diagnostic]]:
    """The loader, or the runtime's refusal as a diagnostic at the key that caused it.

    `handle`: the live source given to `load_recipe(source=...)`, already open.
    """
    try:
        loader = make_loader(plan.read, plan.sampler, plan.loader, handle)
    except RuntimeFailure as exc:
        key: tuple[str, ...]
        if isinstance(exc, CacheBudgetError):
            key = ("sampler", "cache_mb") if plan.sampler.cache_mb is not None \
                else ("sampler", "mode")
        else:
            key = ("sources",) if plan.read.source.parts else ("source",)
        return None, [rule("LK409").at(plan.locate(*key), engine_message(exc))]
    universe = loader.row_sampler.universe
    _show_rows(plan, universe, loader)
    problems = _empty(plan, universe)
    if plan.sampler.world_size > 1:
        problems += _uneven_ranks(plan, loader)
    return loader, problems


def _show_rows(plan: Plan, universe: Universe, loader: RecipeLoader) -> None:
    """Rows per source (and each source's share of the mixture) and per split, in the graph."""
    plan.node("columns").settings["rows"] = universe.size
    plan.node("loader").settings["rows_per_epoch_on_this_rank"] = loader.row_sampler.rows()
    mixture = universe.mixture
    if mixture is not None:
        total = sum(w for w, n in zip(mixture.weights, mixture.sizes, strict=True) if n)
        for name, size, weight in zip(mixture.names, mixture.sizes, mixture.weights,
                                      strict=True):
            share = weight / total if size and total else 0.0
            plan.node("sources", name).settings.update(rows=size, share=round(share, 4))
    if universe.split_rows:
        plan.node("splits").settings["rows"] = dict(universe.split_rows)


def _empty(plan: Plan, universe: Universe) -> list[Diagnostic]:
    """LK410 for a selection with no rows: an empty source of a mixture, an empty split,
    or a filter or dataset with none."""
    problems = []
    mixture, split = universe.mixture, plan.read.split
    if mixture is not None:
        result = "every epoch is empty" if mixture.stop == "first_exhausted" else \
            "it takes no part"
        problems += [rule("LK410").at(plan.locate("sources", name),
                                      f"source '{name}' selects no row: with stop: "
                                      f"{mixture.stop} {result}")
                     for name, size in zip(mixture.names, mixture.sizes, strict=True)
                     if size == 0]
    if split is not None and split.split is not None and universe.size == 0:
        counts = ", ".join(f"{name}: {rows}" for name, rows in universe.split_rows)
        problems.append(rule("LK410").at(plan.locate("split"),
                                         f"split '{split.split}' has no row ({counts}): every "
                                         "epoch is empty"))
    if problems or universe.size > 0:
        return problems
    version = plan.read.source.version
    if plan.read.filter is not None:
        return [rule("LK410").at(plan.locate("filter"),
                                 f"the filter matches no row of version {version}: every epoch "
                                 "is empty", "check the filter's values against the data")]
    key = ("sources",) if plan.read.source.parts else ("source", "uri")
    return [rule("LK410").at(plan.locate(*key), "the source has no rows: every epoch is empty")]


def rows_per_rank(plan: Plan, loader: RecipeLoader) -> list[int]:
    """Rows each rank reads in an epoch, computed by the runtime's own sampler."""
    from loaderkit.runtime.samplers import make_sampler

    # Row counts do not depend on the order: plan a shuffle as the full scan it permutes,
    # which costs O(ranges) instead of a permutation of every row per rank.
    kind = "full_scan" if plan.sampler.type == "shuffle" else plan.sampler.type
    universe = loader.row_sampler.universe
    return [make_sampler(replace(plan.sampler, type=kind, rank=r), universe,
                         plan.loader.batch_size, plan.loader.drop_last).rows()
            for r in range(plan.sampler.world_size)]


def _uneven_ranks(plan: Plan, loader: RecipeLoader) -> list[Diagnostic]:
    rows = rows_per_rank(plan, loader)
    if len(set(rows)) <= 1:
        return []
    size = plan.loader.batch_size
    batches = [-(-n // size) for n in rows]
    shares = ", ".join(f"rank {r}: {n} rows ({b} batches)"
                       for r, (n, b) in enumerate(zip(rows, batches, strict=True)))
    key = ("sampler", "type") if plan.sampler.type == "sharded_fragment" else \
        ("sampler", "world_size")
    steps = "and different numbers of batches" if len(set(batches)) > 1 else \
        "(the same number of batches, but a short last batch on some)"
    return [rule("LK407").at(plan.locate(*key),
                             f"'{plan.sampler.type}' over {plan.sampler.world_size} ranks gives "
                             f"them unequal rows {steps}: {shares}",
                             "set loader.drop_last: true, or sampler.uneven: pad, so every rank "
                             "takes the same number of steps")]
