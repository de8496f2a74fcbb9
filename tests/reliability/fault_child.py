"""Runs one fault scenario in its own process, so a hang or a crash cannot take the test
runner with it. The test runs `python fault_child.py SCENARIO RECIPE [ARG]` under a
timeout and reads the JSON line this prints last.

Each scenario builds the loader, takes the first batch, injects its fault, then reads on
until the loader raises or the epoch ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any


def build(recipe: str) -> Any:
    from loaderkit.compiler import compile_recipe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The spawn probe is exercised by the S3 tests; here it would only add seconds.
        return compile_recipe(recipe, probe=False).loader


def inject(scenario: str, arg: str) -> None:
    if scenario == "stop-server":  # the server stays bound but never answers
        os.kill(int(arg), signal.SIGSTOP)
    elif scenario == "delete":
        shutil.rmtree(arg)
    elif scenario == "corrupt":
        for data_file in sorted((Path(arg) / "data").iterdir()):
            size = data_file.stat().st_size
            data_file.write_bytes(bytes((i * 131 + 7) % 256 for i in range(size)))
    else:
        raise SystemExit(f"unknown scenario {scenario}")


def main(scenario: str, recipe: str, arg: str) -> None:
    loader = build(recipe)
    iterator = iter(loader)
    next(iterator)
    inject(scenario, arg)
    started = time.monotonic()
    batches = 1
    outcome: dict[str, Any] = {"error_type": None, "message": None}
    try:
        for _ in iterator:
            batches += 1
    except Exception as exc:
        outcome = {"error_type": type(exc).__name__,
                   "error_module": type(exc).__module__,
                   "message": str(exc),
                   "is_runtime_failure": _is_runtime_failure(exc),
                   "traceback": "".join(traceback.format_exception_only(type(exc), exc))}
    outcome.update(batches=batches, seconds=time.monotonic() - started)
    print(json.dumps(outcome), flush=True)


def _is_runtime_failure(exc: BaseException) -> bool:
    from loaderkit.runtime import RuntimeFailure

    return isinstance(exc, RuntimeFailure)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
