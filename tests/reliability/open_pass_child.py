"""A script for the exit-noise tests that ends with a pass still open: its iterator lives in
a module global (as in a notebook or a short script), so the interpreter's own teardown
would be the one to collect it. The exit must print nothing all the same.

    python open_pass_child.py RECIPE PATH   (PATH: load_recipe | probe_first)
"""

from __future__ import annotations

import sys
import warnings

from loaderkit import load_recipe
from loaderkit.compiler import compile_recipe

if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LK408: workers without a transform
        if sys.argv[2] == "load_recipe":
            LOADER = load_recipe(sys.argv[1])
        else:
            LOADER = compile_recipe(sys.argv[1], probe=True).loader
    PASS = iter(LOADER)
    for _ in range(3):
        next(PASS)
