"""A script whose top level starts spawn workers without a `__main__` guard: every spawn
worker re-runs that top level (and would start workers of its own). Found in the parent,
before any worker starts, by reading the script's source; and in a spawn child re-running
it, which stops with the same one message.
"""

from __future__ import annotations

import ast
import multiprocessing
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loaderkit.planning import Plan


def bootstrapping_script() -> str | None:
    """The script being re-run by a spawn worker's bootstrap, if that is happening now."""
    if not getattr(multiprocessing.current_process(), "_inheriting", False):
        return None
    main = sys.modules.get("__mp_main__") or sys.modules.get("__main__")
    return getattr(main, "__file__", None) or "your script"


def guard_message(script: str) -> str:
    """The one message a script without a `__main__` guard gets, in the parent or a child."""
    return (f"loaderkit: {script} starts DataLoader workers from its top level, and every "
            "spawn worker re-runs that top level (so each worker would start workers of its "
            "own). Put the training code under a main guard:\n\n"
            "    if __name__ == \"__main__\":\n        main()\n")


def refuse_if_bootstrapping() -> None:
    """Stop a script that lacks the `__main__` guard with one clear message, not a wall."""
    script = bootstrapping_script()
    if script is None:
        return
    raise SystemExit(guard_message(script))


def _is_main_test(test: ast.expr) -> bool:
    """`__name__ == "__main__"` in any spelling (either side, inside `and`/`or`)."""
    names = {n.id for n in ast.walk(test) if isinstance(n, ast.Name)}
    strings = {n.value for n in ast.walk(test) if isinstance(n, ast.Constant)}
    return "__name__" in names and "__main__" in strings


def _rerun_by_spawn(main: Any) -> bool:
    """Whether a spawn child re-runs `main`'s top level (multiprocessing.spawn's own rule: a
    package's `__main__` run with `python -m` is not re-run, nor an IPython entry point)."""
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        return not (name == "__main__" or name.endswith(".__main__"))
    return Path(str(main.__file__)).stem != "ipython"


def unguarded_script(frame: FrameType | None = None) -> str | None:
    """The `__main__` script whose top level, outside any `if __name__ == "__main__":` block,
    is running this call, or None (guarded, a notebook, `python -c`, unreadable source)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path or not _rerun_by_spawn(main):
        return None
    frame = frame or sys._getframe()
    while frame is not None and not (frame.f_code.co_name == "<module>"
                                     and frame.f_globals is vars(main)):
        frame = frame.f_back
    if frame is None:
        return None
    try:
        tree = ast.parse(Path(frame.f_code.co_filename).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None  # nothing to judge by: the spawn child's refusal still catches it
    line = frame.f_lineno
    for node in ast.walk(tree):
        if (isinstance(node, ast.If) and _is_main_test(node.test)
                and node.lineno <= line <= (node.end_lineno or node.lineno)):
            return None
    return str(path)


def refuse_unguarded_main(plan: Plan) -> None:
    """In the parent: refuse, before any worker starts, a script that would re-run itself in
    every spawn/forkserver worker (its top level starts the loader, with no main guard)."""
    if plan.loader.num_workers == 0 or plan.loader.multiprocessing_context == "fork":
        return
    script = unguarded_script()
    if script is not None:
        raise SystemExit(guard_message(script))
