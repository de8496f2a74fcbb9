"""Stage 5a, bind: check a plan against the real data and pin the dataset version.

Opens the source once in this process (never in a worker), so that a missing
dataset, table, column or version, or a filter Lance cannot parse, becomes a
located diagnostic before any worker starts.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import replace
from typing import Any

import pyarrow as pa

from loaderkit.errors import Diagnostic
from loaderkit.planning import Plan
from loaderkit.rules import rule

_ENGINE_LOCATION = re.compile(r",\s*(/|[A-Za-z]:\\)\S+\.rs:\d+:\d+.*$", re.DOTALL)


def engine_message(exc: BaseException) -> str:
    """An engine's error text without the Rust source locations it appends."""
    text = _ENGINE_LOCATION.sub("", str(exc).strip()).strip()
    return text.removeprefix("Invalid user input: ") or type(exc).__name__


def import_reference(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    target: Any = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def bind(plan: Plan) -> tuple[Plan, list[Diagnostic]]:
    """Returns the plan with its version pinned, and what the data says about it."""
    from loaderkit import runtime  # torch and lance load here, never during lint

    problems = list(_references(plan))
    if problems:
        return plan, problems  # a factory that does not import cannot open the source
    source = plan.read.source
    try:
        runtime.open_source(replace(source, version=None))
    except Exception as exc:  # the engines raise ValueError, OSError, RuntimeError...
        table = f"table '{source.table}' in " if source.table else ""
        return plan, [rule("LK401").at(plan.locate("source", "uri"),
                                       f"cannot open {table}{source.uri!r}: "
                                       f"{engine_message(exc)}")]
    try:
        pinned = runtime.pin_version(source)
        handle = runtime.open_source(pinned)
    except Exception as exc:
        return plan, [rule("LK406").at(plan.locate("source", "version"),
                                       f"cannot open version {source.version!r}: "
                                       f"{engine_message(exc)}")]
    plan = replace(plan, read=replace(plan.read, source=pinned))
    plan.root.children[0].children[0].settings["version"] = pinned.version
    dataset = runtime.as_lance_dataset(handle)
    if dataset is not None:
        problems += _columns_and_filter(plan, dataset)
    problems += _workers_without_transform(plan)
    return plan, problems


def _references(plan: Plan) -> list[Diagnostic]:
    problems = []
    for key, reference in (("transform", plan.read.transform),
                           ("connection_factory", plan.read.source.connection_factory)):
        if reference is None:
            continue
        path = (key,) if key == "transform" else ("source", key)
        try:
            target = import_reference(reference)
        except Exception as exc:  # user code: any import-time error is the user's to see
            problems.append(rule("LK405").at(plan.locate(*path), f"cannot import '{reference}': "
                                                                 f"{type(exc).__name__}: {exc}"))
            continue
        if not callable(target):
            problems.append(rule("LK405").at(plan.locate(*path),
                                             f"'{reference}' is a {type(target).__name__}, not "
                                             "a function", "name a function"))
    return problems


def _columns_and_filter(plan: Plan, dataset: Any) -> list[Diagnostic]:
    from loaderkit.runtime.formats import unsupported_columns

    read = plan.read
    problems = []
    for name, expression in (read.columns or {}).items():
        try:
            dataset.scanner(columns={name: expression}, limit=0)
        except Exception as exc:
            path = ("columns", name) if isinstance(plan.document.data.get("columns"), dict) \
                else ("columns", list(read.columns or {}).index(name))
            problems.append(rule("LK402").at(plan.locate(*path),
                                             f"column '{expression}': {engine_message(exc)}"))
    if read.filter is not None:
        try:
            dataset.scanner(columns=[], filter=read.filter, limit=0, with_row_id=True)
        except Exception as exc:
            problems.append(rule("LK403").at(plan.locate("filter"),
                                             f"invalid filter: {engine_message(exc)}"))
    if problems:
        return problems
    schema: pa.Schema = dataset.scanner(columns=read.columns, limit=0).projected_schema
    for column in unsupported_columns(schema, read.format):
        problems.append(rule("LK404").at(
            plan.locate("format"),
            f"format '{read.format}' cannot hold column '{column}' "
            f"({schema.field(column).type})",
            "drop the column, or choose a format that holds it (arrow, numpy, pandas, polars, "
            "python, python_col), or convert it in a transform with format: arrow"))
    return problems


def _workers_without_transform(plan: Plan) -> list[Diagnostic]:
    if plan.loader.num_workers > 0 and plan.read.transform is None:
        return [rule("LK408").at(plan.locate("loader", "num_workers"),
                                 f"{plan.loader.num_workers} workers with no transform only read "
                                 "and ship batches, which is slower than reading in the main "
                                 "process", "set num_workers: 0, or add a transform that needs "
                                            "the parallelism")]
    return []
