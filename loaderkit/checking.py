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

import atexit
import inspect
import multiprocessing
import pickle
import threading
import time
import weakref
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

from loaderkit.binding import references
from loaderkit.errors import Diagnostic, RecipeError, engine_message
from loaderkit.planning import Plan
from loaderkit.references import USER_FAILURES, import_reference
from loaderkit.rules import rule
from loaderkit.runtime.workers import sigint_blocked
from loaderkit.safety_report import Crossing, SafetyReport
from loaderkit.vocabulary import EnvValue, Redactor

LARGE_PAYLOAD = 8 << 20
PROBE_TIMEOUT = 120.0


def check_references(plan: Plan) -> SafetyReport:
    """The static half of the check: what `transform` and `connection_factory` name.

    Needs no loader, so it runs before the loader is built and before any process starts.
    """
    report = SafetyReport(plan.loader.multiprocessing_context, plan.loader.num_workers)
    report.diagnostics += _static(plan, report)
    return report


def check(plan: Plan, loader: Any, *, probe: bool = True, background: bool = False,
          report: SafetyReport | None = None) -> SafetyReport:
    """Every check; `report` is `check_references`' report when the static half already ran.

    With `background`, the spawn probe (seconds: a fresh interpreter imports torch
    and lance) runs on a thread and `report.pending_probe` is its outcome.
    """
    if report is None:
        report = check_references(plan)
    report.task_rows, report.per_batch = loader.task_rows, loader.per_batch
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
    elif any(d.is_error for d in report.diagnostics):
        report.checks.append(("spawn probe", "skipped: fix the errors above first"))
    elif background:
        report.pending_probe = _probe_in_background(plan, payload, report)
    else:
        report.diagnostics += _spawn_probe(plan, payload, report)
    return report


# --- static rules on the referenced callables ---------------------------------------------

def _static(plan: Plan, report: SafetyReport) -> list[Diagnostic]:
    problems = []
    for path, reference in references(plan):
        key = ".".join(path)
        where = plan.locate(*path)
        try:
            target = import_reference(reference)
        except USER_FAILURES:  # user code: binding reports it (LK405) where it is named
            continue
        if not callable(target):
            continue  # binding reports it (LK405), a LanceDB table or connection included
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


def _secret_references(plan: Plan) -> list[tuple[tuple[str, ...], EnvValue]]:
    """Each `${env:}` secret the source reads (every source of a mixture), with the recipe
    key that holds it: the source kind says which of its settings may hold one."""
    from loaderkit.runtime.sources import kind_of

    read = plan.read
    found = [*kind_of(read.source).secrets(read.source), (("filter",), read.filter),
             *((_column_key(plan, name), v) for name, v in (read.columns or {}).items())]
    return [(path, v) for path, v in found if isinstance(v, EnvValue) and v.is_secret]


def _column_key(plan: Plan, name: str) -> tuple[str, ...]:
    """The recipe key of output column `name` of a `columns` mapping (a reference is only
    taken there)."""
    return ("columns", name) if isinstance(plan.document.data.get("columns"), dict) \
        else ("columns",)


def _secrets(plan: Plan, payload: bytes, report: SafetyReport) -> list[Diagnostic]:
    problems = []
    secrets = _secret_references(plan)
    for path, reference in secrets:
        value = reference.resolve()
        if len(value) >= 4 and (value.encode() in payload or value.encode("utf-16-le") in payload):
            problems.append(rule("LK504").at(
                plan.locate(*path), f"the value of ${{env:{reference.name}}} is inside what "
                                    "is pickled to workers",
                "let workers read it from their environment, or load it in a connection "
                "factory"))
    report.checks.append(("secrets absent from the payload",
                          "failed" if problems else f"ok ({len(secrets)} secret(s) scanned)"))
    return problems


# --- the spawn probe -------------------------------------------------------------------

def _answered(receive: Connection, abandoned: threading.Event | None, deadline: float) -> bool:
    """Whether the probe answered (or died) before `deadline`; False once `abandoned`."""
    while abandoned is None or not abandoned.is_set():
        left = deadline - time.perf_counter()
        if left <= 0:
            return False
        if receive.poll(left if abandoned is None else min(left, 0.25)):
            return True
    return False


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


class BackgroundProbe(Future[None]):
    """The spawn probe running on a thread: fails with the probe's RecipeError.

    `abandon()` ends the probe process early: its loader was dropped, and no one
    waits for the answer (a probe holds a whole interpreter with torch and lance).
    """

    def __init__(self) -> None:
        super().__init__()
        self.abandoned = threading.Event()
        self.thread: threading.Thread | None = None
        _RUNNING_PROBES.add(self)

    def abandon(self) -> None:
        self.abandoned.set()


_RUNNING_PROBES: weakref.WeakSet[BackgroundProbe] = weakref.WeakSet()


@atexit.register
def _end_probes_at_exit() -> None:
    # The probe's thread is a daemon (an exit must not wait for the probe's answer), but
    # it must not run on into the interpreter's finalization: end it while all is alive.
    for probe in list(_RUNNING_PROBES):
        probe.abandon()
        if probe.thread is not None:
            probe.thread.join(5)


def _probe_in_background(plan: Plan, payload: bytes, report: SafetyReport) -> Future[None]:
    """The spawn probe on a daemon thread; the future fails with the probe's RecipeError."""
    outcome = BackgroundProbe()
    outcome.set_running_or_notify_cancel()
    report.checks.append(("spawn probe", "running in the background"))

    def run() -> None:
        try:
            # The thread's mask crosses to the probe process: a Ctrl-C meant for the
            # training loop must not kill it mid-import with a traceback.
            with sigint_blocked(multiprocessing.get_context(
                    plan.loader.multiprocessing_context).get_start_method()):
                found = _spawn_probe(plan, payload, report, outcome.abandoned)
        except BaseException as exc:  # the probe could not even start
            outcome.set_exception(exc)
            return
        if found:
            outcome.set_exception(RecipeError(found))
        else:
            outcome.set_result(None)

    # A daemon: a script that exits before the probe answers must not wait for it.
    outcome.thread = threading.Thread(target=run, name="loaderkit-spawn-probe", daemon=True)
    outcome.thread.start()
    return outcome


def _spawn_probe(plan: Plan, payload: bytes, report: SafetyReport,
                 abandoned: threading.Event | None = None) -> list[Diagnostic]:
    context = multiprocessing.get_context(plan.loader.multiprocessing_context)
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_probe_child, args=(payload, send), daemon=True)
    started = time.perf_counter()
    process.start()
    send.close()
    outcome: tuple[str, str] = ("error", f"no answer within {PROBE_TIMEOUT:.0f} s (a hang?)")
    died = False
    try:
        if _answered(receive, abandoned, started + PROBE_TIMEOUT):
            outcome = receive.recv()
    except EOFError:
        died = True
    finally:
        if abandoned is not None and abandoned.is_set():
            process.kill()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
        receive.close()
    if abandoned is not None and abandoned.is_set():
        return []  # no one asks any more
    if died:  # the exit code is known only after the join
        outcome = ("error", f"the probe process exited with code {process.exitcode} before it "
                            "answered (a crash, or a script re-run without a main guard: see "
                            "its message above)")
    seconds = time.perf_counter() - started
    status, detail = outcome
    detail = Redactor.of_data(plan.document.data)(detail)  # the child's text may quote a secret
    report.checks = [c for c in report.checks if c[0] != "spawn probe"]
    if status == "ok":
        report.checks.append(("spawn probe", f"ok in {seconds:.1f} s ({detail})"))
        return []
    report.checks.append(("spawn probe", "failed"))
    factories = [path for path, _ in references(plan) if path[-1] == "connection_factory"]
    key = factories[0] if len(factories) == 1 else \
        ("sources",) if plan.read.source.parts else ("source",)
    return [rule("LK503").at(plan.locate(*key),
                             f"a fresh {context.get_start_method()} process could not open the "
                             f"source from the worker payload: {detail}",
                             "the connection factory and transform must work in a fresh "
                             "interpreter: no state from the training script")]
