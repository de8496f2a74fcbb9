"""Stage 6, build: a bound plan -> the real `torch.utils.data.DataLoader`."""

from __future__ import annotations

from typing import Any

from loaderkit.errors import Diagnostic, engine_message
from loaderkit.planning import Plan
from loaderkit.rules import rule
from loaderkit.runtime import CacheBudgetError, RuntimeFailure, make_loader
from loaderkit.runtime.loader import RecipeLoader


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
            key = ("source",)
        return None, [rule("LK409").at(plan.locate(*key), engine_message(exc))]
    return loader, _empty(plan, loader)


def _empty(plan: Plan, loader: RecipeLoader) -> list[Diagnostic]:
    if loader.selected_rows > 0:
        return []
    version = plan.read.source.version
    if plan.read.filter is not None:
        return [rule("LK410").at(plan.locate("filter"),
                                 f"the filter matches no row of version {version}: every epoch "
                                 "is empty", "check the filter's values against the data")]
    return [rule("LK410").at(plan.locate("source", "uri"),
                             f"version {version} of the source has no rows: every epoch is "
                             "empty")]
