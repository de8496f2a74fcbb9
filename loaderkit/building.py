"""Stage 6, build: a bound plan -> the real `torch.utils.data.DataLoader`."""

from __future__ import annotations

from loaderkit.planning import Plan
from loaderkit.runtime import make_loader
from loaderkit.runtime.loader import RecipeLoader


def build(plan: Plan) -> RecipeLoader:
    return make_loader(plan.read, plan.sampler, plan.loader)
