"""A training process for the orphan tests: builds a loader whose workers start the way
`build --take` starts them (the spawn probe first: `compile_recipe(..., probe=True)`),
says when its workers are spawned and when they are up, and reads until it is killed.

    python orphan_child.py RECIPE
"""

from __future__ import annotations

import sys
import time
import warnings

from loaderkit.compiler import compile_recipe


def main(recipe: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LK408: workers without a transform
        loader = compile_recipe(recipe, probe=True).loader
    said = set()
    while True:
        for _ in loader:
            for news, now in (("spawned", loader.workers.started),
                              ("up", loader.workers.all_up)):
                if now and news not in said:
                    print(news, flush=True)
                    said.add(news)
            time.sleep(0.05)  # slow enough for the workers to take over


if __name__ == "__main__":
    main(sys.argv[1])
