"""A training script for the exit-noise tests: workers started the way `build --take`
starts them (the spawn probe first), a loop that stops at its step budget (0: none) and
returns, then a normal interpreter exit, which must print nothing.

    python exit_child.py RECIPE EPOCHS STEP_BUDGET STEP_SECONDS
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any

from loaderkit.compiler import compile_recipe


def train(loader: Any, epochs: int, budget: int, step_seconds: float) -> int:
    steps = 0
    for _ in range(epochs):
        for _batch in loader:
            steps += 1
            time.sleep(step_seconds)
            if steps == budget:
                return steps
    return steps


def main(recipe: str, epochs: int, budget: int, step_seconds: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LK408: workers without a transform
        loader = compile_recipe(recipe, probe=True).loader
    train(loader, epochs, budget, step_seconds)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
