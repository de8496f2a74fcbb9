"""A process reading a recipe with `source.cache`: the tests' second process on one machine.

    python cache_child.py RECIPE CACHE_DIR MODE [PIECE_BYTES]

MODE `epoch`: read one epoch, wait until the cache holds the version whole, print the ids (JSON).
MODE `hold`: as `epoch`, then stay alive (a run still reading the copy) until killed.
MODE `fill`: build the loader (which starts filling the cache) and wait, never reading: the
test kills it mid-download.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path


def main() -> None:
    recipe, cache_dir, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    from loaderkit.runtime import object_cache

    if len(sys.argv) > 4:  # small pieces: a download the test can catch half-way
        object_cache.PIECE_BYTES = int(sys.argv[4])
    from loaderkit import load_recipe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = load_recipe(recipe)
    if mode == "fill":
        time.sleep(600)
        return
    ids = [i for batch in loader for i in batch["id"].tolist()]
    deadline = time.monotonic() + 120
    # This recipe's own datasets: another dataset already whole in a shared cache dir says
    # nothing about these (their downloads would die with this process).
    markers = [cache_dir / object_cache.dataset_key(uri) / object_cache.MARKER_DIR
               for uri in _uris(recipe)]
    while not all(list(marker.glob("*.json")) for marker in markers):
        if time.monotonic() > deadline:
            raise SystemExit("the cache never held the version whole")
        time.sleep(0.05)
    print(json.dumps(ids), flush=True)
    if mode == "hold":  # keep reading the copy (a long training run) until killed
        time.sleep(600)


def _uris(recipe: str) -> list[str]:
    import yaml

    data = yaml.safe_load(Path(recipe).read_text())
    if "sources" in data:
        return [part["uri"] for part in data["sources"].values()]
    return [data["source"]["uri"]]


if __name__ == "__main__":
    main()
