"""Stage 5b, check: prove that what crosses into worker processes survives the crossing.

For each object a DataLoader worker receives, under the recipe's multiprocessing
context: static rules (no lambdas, closures or `__main__` definitions), a real
pickle round trip, a scan of the pickled bytes for every secret, the payload's
size, and a *spawn probe*: a fresh interpreter, started with the recipe's
context, unpickles the payload and opens the source, under a timeout, exactly
as a worker would. Every finding is a diagnostic at the recipe key that put the
object there.
"""

from __future__ import annotations

import inspect
import multiprocessing
import pickle
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from loaderkit.binding import engine_message, import_reference
from loaderkit.errors import Diagnostic
from loaderkit.planning import Plan
from loaderkit.rules import rule

LARGE_PAYLOAD = 8 << 20
PROBE_TIMEOUT = 120.0


@dataclass
class Crossing:
    """One object that each worker receives, and what became of it."""

    what: str
    recipe_key: str
    size: int | None = None
    result: str = "ok"


@dataclass
class SafetyReport:
    context: str | None
    num_workers: int
    crossings: list[Crossing] = field(default_factory=list)
    checks: list[tuple[str, str]] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def payload_bytes(self) -> int:
        return sum(c.size or 0 for c in self.crossings)

    def as_dict(self) -> dict[str, Any]:
        return {"multiprocessing_context": self.context, "num_workers": self.num_workers,
                "payload_bytes_per_worker": self.payload_bytes,
                "crossings": [vars(c) for c in self.crossings],
                "checks": [{"check": name, "result": result} for name, result in self.checks]}

    def __str__(self) -> str:
        if self.num_workers == 0:
            head = "safety: no worker processes; nothing is pickled"
        else:
            head = (f"safety: {self.num_workers} {self.context} workers, each receives "
                    f"{self.payload_bytes:,} bytes")
        lines = [head]
        lines += [f"  crosses: {c.what} (from `{c.recipe_key}`), "
                  f"{'?' if c.size is None else f'{c.size:,} bytes'}: {c.result}"
                  for c in self.crossings]
        lines += [f"  check: {name}: {result}" for name, result in self.checks]
        return "\n".join(lines)


def bootstrapping_script() -> str | None:
    """The script being re-run by a spawn worker's bootstrap, if that is happening now."""
    if not getattr(multiprocessing.current_process(), "_inheriting", False):
        return None
    main = sys.modules.get("__mp_main__") or sys.modules.get("__main__")
    return getattr(main, "__file__", None) or "your script"


def refuse_if_bootstrapping() -> None:
    """Stop a script that lacks the `__main__` guard with one clear message, not a wall."""
    script = bootstrapping_script()
    if script is None:
        return
    raise SystemExit(
        f"loaderkit: {script} is being re-run inside a spawn worker because its top level "
        "starts the loader. Put the training code under a main guard:\n\n"
        "    if __name__ == \"__main__\":\n        main()\n")


def check(plan: Plan, loader: Any, *, probe: bool = True) -> SafetyReport:
    report = SafetyReport(plan.loader.multiprocessing_context, plan.loader.num_workers)
    report.diagnostics += _static(plan, report)
    if plan.loader.num_workers == 0:
        report.checks.append(("pickle and spawn", "skipped: loading runs in this process"))
        return report
    payload = _payload(plan, loader, report)
    if payload is None:
        return report
    report.diagnostics += _secrets(plan, payload, report)
    if len(payload) > LARGE_PAYLOAD:
        report.diagnostics.append(rule("LK505").at(
            plan.locate("source"), f"each worker receives {len(payload):,} bytes of pickled "
                                   "state; workers start slowly", "ship names, not objects"))
    if not probe:
        report.checks.append(("spawn probe", "skipped (--no-probe)"))
    elif not report.diagnostics or not any(d.is_error for d in report.diagnostics):
        report.diagnostics += _spawn_probe(plan, payload, report)
    return report


# --- static rules on the referenced callables ---------------------------------------------

def _static(plan: Plan, report: SafetyReport) -> list[Diagnostic]:
    problems = []
    for key, reference in (("transform", plan.read.transform),
                           ("source.connection_factory", plan.read.source.connection_factory)):
        if reference is None:
            continue
        where = plan.locate(*key.split("."))
        target = import_reference(reference)
        reason = _unshippable(reference, target)
        crossing = Crossing(f"{key.split('.')[-1]} {reference}", key, len(reference))
        report.crossings.append(crossing)
        if reason is not None:
            crossing.result = "refused"
            problems.append(rule("LK501").at(where, f"'{reference}' {reason[0]}", reason[1]))
            continue
        try:
            pickle.loads(pickle.dumps(target))
        except Exception as exc:  # pickle raises TypeError, PicklingError, AttributeError...
            crossing.result = "does not pickle"
            problems.append(rule("LK502").at(where, f"'{reference}' does not pickle: "
                                                    f"{type(exc).__name__}: {exc}",
                                             "make it a plain module-level function"))
    report.checks.append(("importable, module-level callables", "ok" if not problems else "failed"))
    return problems


def _unshippable(reference: str, target: Any) -> tuple[str, str] | None:
    """Why a worker could not receive `target` (message, hint), or None."""
    module = getattr(target, "__module__", None) or reference.partition(":")[0]
    kind = type(target).__module__
    if kind.startswith("lancedb"):
        return ("is a LanceDB object, and LanceDB tables and connections do not pickle",
                "name a function that opens the table: def open_table(name): ...")
    if module in ("__main__", "__mp_main__") or reference.startswith("__main__:"):
        return ("is defined in __main__ (a script or notebook), which spawn workers cannot "
                "import", "move it into an importable module, e.g. my_project/data.py")
    if getattr(target, "__name__", None) == "<lambda>":
        return ("is a lambda, which pickle cannot ship",
                "define it with `def` at the top level of its module")
    if "<locals>" in getattr(target, "__qualname__", ""):
        return ("is a nested function or closure, which pickle cannot ship",
                "define it at the top level of its module; pass settings through the batch "
                "or the environment")
    if inspect.ismethod(target):
        try:
            pickle.dumps(target.__self__)
        except Exception as exc:
            return (f"is a bound method of an object that does not pickle ({exc})",
                    "use a module-level function")
    return None


# --- the payload each worker receives ---------------------------------------------------

def _payload(plan: Plan, loader: Any, report: SafetyReport) -> bytes | None:
    """Pickle what DataLoader sends to each worker, the way it sends it (ForkingPickler)."""
    from multiprocessing.reduction import ForkingPickler

    parts = {"dataset": (loader.dataset, "source"), "collate_fn": (loader.collate_fn, "loader"),
             "worker_init_fn": (loader.worker_init_fn, "loader")}
    blobs = []
    for what, (obj, key) in parts.items():
        if obj is None:
            continue
        crossing = Crossing(f"{what} {type(obj).__name__}", key)
        report.crossings.append(crossing)
        try:
            blob = bytes(ForkingPickler.dumps(obj))
            pickle.loads(blob)
        except Exception as exc:
            crossing.result = "does not pickle"
            report.diagnostics.append(rule("LK502").at(
                plan.locate(key), f"the {what} sent to workers does not pickle: "
                                  f"{type(exc).__name__}: {exc}",
                "use a connection factory, and module-level functions"))
            return None
        crossing.size = len(blob)
        blobs.append(blob)
    report.checks.append(("pickle round trip", "ok"))
    return pickle.dumps(blobs)


def _secrets(plan: Plan, payload: bytes, report: SafetyReport) -> list[Diagnostic]:
    problems = []
    for reference in plan.env_references():
        if not reference.is_secret:
            continue
        value = reference.resolve()
        if len(value) >= 4 and (value.encode() in payload or value.encode("utf-16-le") in payload):
            problems.append(rule("LK504").at(
                plan.locate("source"), f"the value of ${{env:{reference.name}}} is inside what "
                                       "is pickled to workers",
                "let workers read it from their environment, or load it in a connection "
                "factory"))
    secrets = sum(1 for r in plan.env_references() if r.is_secret)
    report.checks.append(("secrets absent from the payload",
                          "failed" if problems else f"ok ({secrets} secret(s) scanned)"))
    return problems


# --- the spawn probe -------------------------------------------------------------------

def _probe_child(payload: bytes, conn: Connection) -> None:
    """Runs in the fresh interpreter: unpickle the payload, open the source, read one row."""
    try:
        blobs = pickle.loads(payload)
        dataset = pickle.loads(blobs[0])
        from loaderkit.runtime import probe_dataset

        conn.send(("ok", probe_dataset(dataset)))
    except BaseException as exc:  # everything must reach the parent as text
        conn.send(("error", f"{type(exc).__name__}: {engine_message(exc)}"))
    finally:
        conn.close()


def _spawn_probe(plan: Plan, payload: bytes, report: SafetyReport) -> list[Diagnostic]:
    context = multiprocessing.get_context(plan.loader.multiprocessing_context or "spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_probe_child, args=(payload, send), daemon=True)
    started = time.perf_counter()
    process.start()
    send.close()
    outcome: tuple[str, str] = ("error", f"no answer within {PROBE_TIMEOUT:.0f} s (a hang?)")
    try:
        if receive.poll(PROBE_TIMEOUT):
            outcome = receive.recv()
    except EOFError:
        outcome = ("error", f"the probe process died (exit code {process.exitcode})")
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
    seconds = time.perf_counter() - started
    status, detail = outcome
    if status == "ok":
        report.checks.append(("spawn probe", f"ok in {seconds:.1f} s ({detail})"))
        return []
    report.checks.append(("spawn probe", "failed"))
    key = ("source", "connection_factory") if plan.read.source.connection_factory else ("source",)
    return [rule("LK503").at(plan.locate(*key),
                             f"a fresh {context.get_start_method()} process could not open the "
                             f"source from the worker payload: {detail}",
                             "the connection factory and transform must work in a fresh "
                             "interpreter: no state from the training script")]
