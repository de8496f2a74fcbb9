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
from loaderkit.runtime.spec import LoaderSpec, SamplerSpec
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
    too_long = _epoch_too_long(plan, universe)
    if too_long:
        return None, too_long
    _show_rows(plan, universe, loader)
    problems = _empty(plan, universe)
    if plan.read.pack is None:  # packed steps are equal by construction (runtime/packing.py)
        problems += _equal_steps(plan, universe)
    return loader, problems


def _epoch_too_long(plan: Plan, universe: Universe) -> list[Diagnostic]:
    """LK415 for a mixture whose epoch would run past mixing.EPOCH_ROWS_MAX rows: under
    all_exhausted, until the source with the most rows per share of the weights ran out."""
    from loaderkit.runtime.samplers import mixing

    mixture = universe.mixture
    if mixture is None:
        return []
    rows, ending = mixing.epoch_rows(mixture)
    if ending is None or rows <= mixing.EPOCH_ROWS_MAX:
        return []
    name = mixture.names[ending]
    total = sum(w for w, n in zip(mixture.weights, mixture.sizes, strict=True) if n)
    share = mixture.weights[ending] / total
    key = ("sources", name, "weight")
    where = plan.locate(*key) if key in plan.document.values else plan.locate("sources", name)
    return [rule("LK415").at(where, f"with stop: {mixture.stop} an epoch runs until source "
                                    f"'{name}' ({mixture.sizes[ending]} rows at a share of "
                                    f"{share:.3g}) has delivered all its rows: about "
                                    f"{rows:.3g} rows, more than 2**40 ({mixing.EPOCH_ROWS_MAX})",
                             f"raise sources.{name}.weight, or set mixture.stop: "
                             "first_exhausted, or filter the source's rows")]


def _show_rows(plan: Plan, universe: Universe, loader: RecipeLoader) -> None:
    """Rows per source (and each source's share of the mixture) and per split, in the graph."""
    plan.node("columns").settings["rows"] = universe.size
    settings = plan.node("loader").settings
    settings["rows_per_epoch_on_this_rank"] = loader.row_sampler.rows()
    settings["batches_per_epoch_on_this_rank"] = len(loader) if plan.read.pack is None else \
        "equal on every rank; the number depends on the epoch's tokens"  # (LK414)
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


def _per_rank(universe: Universe, sampler: SamplerSpec, loader: LoaderSpec
              ) -> list[tuple[int, int]]:
    """(rows, batches) of each rank in an epoch under `sampler` and `loader`, computed by the
    runtime's own samplers."""
    from loaderkit.runtime.samplers import make_sampler

    # Counts do not depend on the order: plan a shuffle as the full scan it permutes,
    # which costs O(ranges) instead of a permutation of every row per rank.
    kind = "full_scan" if sampler.type == "shuffle" else sampler.type
    out = []
    for r in range(sampler.world_size):
        ranked = make_sampler(replace(sampler, type=kind, rank=r), universe,
                              loader.batch_size, loader.drop_last)
        out.append((ranked.rows(), ranked.batches()))
    return out


def _equal(steps: list[int]) -> bool:
    return min(steps) > 0 and len(set(steps)) == 1


def _equal_steps(plan: Plan, universe: Universe) -> list[Diagnostic]:
    """LK414 where a rank would take no step in an epoch, or where the default cannot give
    every rank the same number of steps without a row twice; LK407 where `uneven: allow`
    lets the ranks' steps differ."""
    spec = plan.sampler
    whole = _per_rank(universe, replace(spec, world_size=1, uneven="allow"),
                      replace(plan.loader, drop_last=False))[0][0]
    if whole == 0:  # nothing selected, or a mixture's empty source ends it: LK410 says so
        return []
    ranks = _per_rank(universe, spec, plan.loader)
    steps = [b for _, b in ranks]
    if _equal(steps):
        return []
    shares = ", ".join(f"rank {r}: {n} rows ({b} batches)" for r, (n, b) in enumerate(ranks[:8]))
    shares += f", and {len(ranks) - 8} more ranks" if len(ranks) > 8 else ""
    fixes = _fixes(plan, universe, whole)
    hint = ", or ".join(fixes) if fixes else None
    ranks_shown = plan.shown(spec.world_size, "sampler", "world_size")
    what = f"'{plan.shown(spec.type, 'sampler', 'type')}' over {ranks_shown} " \
        f"rank{'s' if spec.world_size > 1 else ''}"
    if min(steps) == 0:
        empty = [r for r, b in enumerate(steps) if b == 0]
        who = "its only rank" if len(steps) == 1 else "every rank" \
            if len(empty) == len(steps) else \
            "rank " + ", ".join(map(str, empty[:8])) + (", ..." if len(empty) > 8 else "")
        key, why = _why_empty(plan, whole)
        return [rule("LK414").at(plan.locate(*_key(plan, key)),
                                 f"{what} leaves {who} with no batch in an epoch ({why}): "
                                 f"{shares}", hint)]
    if spec.uneven == "allow":
        return [rule("LK407").at(plan.locate(*_key(plan, ("sampler", "uneven"))),
                                 f"{what} with uneven: allow gives the ranks different numbers "
                                 f"of batches: {shares}", hint)]
    key = ("sampler", "type") if spec.type == "sharded_fragment" else ("loader", "batch_size")
    return [rule("LK414").at(plan.locate(*_key(plan, key)),
                             f"{what} cannot give every rank the same number of batches "
                             f"without delivering a row twice: {shares}", hint)]


def _why_empty(plan: Plan, rows: int) -> tuple[tuple[str, str], str]:
    """(the key of the setting that leaves a rank empty, why), for the message."""
    spec, loader = plan.sampler, plan.loader
    if loader.drop_last and spec.type == "sharded_fragment":
        return ("loader", "drop_last"), ("drop_last keeps the smallest rank's whole batches, "
                                         "and a rank has fewer rows than one batch")
    if loader.drop_last:
        batch = plan.shown(loader.batch_size, "loader", "batch_size")
        step = f"{batch} x {plan.shown(spec.world_size, 'sampler', 'world_size')}" \
            if spec.world_size > 1 else batch
        return ("loader", "drop_last"), (f"drop_last keeps whole steps of {step} rows; the "
                                         f"epoch has {_rows_shown(plan, rows)}")
    if spec.type == "sharded_fragment":
        return ("sampler", "type"), "it deals whole fragments, and a rank has too few rows"
    if spec.uneven == "allow":
        return ("sampler", "uneven"), "uneven: allow deals whole batches in turn"
    return ("sampler", "world_size"), f"{_rows_shown(plan, rows)} rows are fewer than the ranks"


def _rows_shown(plan: Plan, rows: int) -> str:
    """An epoch's rows as a message prints them: a `limit` read from the environment is
    shown as its reference where it is what caps the epoch."""
    return plan.shown(rows, "limit") if rows == plan.sampler.limit else str(rows)


def _key(plan: Plan, key: tuple[str, str]) -> tuple[str, ...]:
    """`key` where the recipe sets it, else the sampler's world size (where a rank count
    comes from), else the sampler."""
    for found in (key, ("sampler", "world_size"), ("sampler", "type")):
        if found in plan.document.values:
            return found
    return ("sampler",)


def _fixes(plan: Plan, universe: Universe, rows: int) -> list[str]:
    """The settings that would give every rank the same number of batches, none empty, each
    checked with the runtime's own samplers (a hint never suggests one that empties a
    rank), best first."""
    spec, settings = plan.sampler, plan.loader
    world = spec.world_size
    candidates: list[tuple[str, SamplerSpec, LoaderSpec]] = []
    if settings.drop_last or spec.uneven != "split":
        default = "loader.drop_last: false" if settings.drop_last else \
            "sampler.uneven: split (the default)"
        candidates.append(("set " + default, replace(spec, uneven="split"),
                           replace(settings, drop_last=False)))
    if spec.type == "sharded_fragment":
        candidates.append(("set sampler.type: sharded_batch (it deals batches, not fragments)",
                           replace(spec, type="sharded_batch"), settings))
    if settings.batch_size == 1:
        candidates.append(("set loader.batch_size: 2 or more", spec,
                           replace(settings, batch_size=2)))
    if not settings.drop_last:
        candidates.append(("set loader.drop_last: true", spec, replace(settings, drop_last=True)))
    smaller = rows // max(1, world)
    if settings.drop_last and 0 < smaller < settings.batch_size:
        candidates.append((f"set loader.batch_size: {smaller} or less", spec,
                           replace(settings, batch_size=smaller)))
    if world > 1 and (spec.uneven != "pad" or settings.drop_last):
        also = " and loader.drop_last: false" if settings.drop_last else ""
        candidates.append((f"set sampler.uneven: pad{also} (it repeats rows)",
                           replace(spec, uneven="pad"), replace(settings, drop_last=False)))
    fixes = []
    for text, sampler, loader in candidates:
        if _equal([b for _, b in _per_rank(universe, sampler, loader)]):
            fixes.append(text)
    if rows < world:
        fixes.append(f"run at most {_rows_shown(plan, rows)} ranks")
    return fixes
