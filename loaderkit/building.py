"""Stage 6, build: a bound plan -> the real `torch.utils.data.DataLoader`."""

from __future__ import annotations

from loaderkit.binding import engine_message
from loaderkit.errors import Diagnostic
from loaderkit.planning import Plan
from loaderkit.rules import rule
from loaderkit.runtime import CacheBudgetError, RuntimeFailure, make_loader
from loaderkit.runtime.loader import RecipeLoader


def build(plan: Plan) -> tuple[RecipeLoader | None, list[Diagnostic]]:
    """The loader, or the runtime's refusal as a diagnostic at the key that caused it."""
    try:
        return make_loader(plan.read, plan.sampler, plan.loader), []
    except RuntimeFailure as exc:
        key: tuple[str, ...]
        if isinstance(exc, CacheBudgetError):
            key = ("sampler", "cache_mb") if plan.sampler.cache_mb is not None \
                else ("sampler", "mode")
        else:
            key = ("source",)
        return None, [rule("LK409").at(plan.locate(*key), engine_message(exc))]
