"""Stage 5a, bind: check a plan against the real data and pin the dataset version.

Opens the source once in this process (never in a worker), so that a missing
dataset, table, column or version, or a filter Lance cannot parse, becomes a
located diagnostic before any worker starts.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Any

import pyarrow as pa

from loaderkit.errors import (
    Diagnostic,
    engine_message,  # also imported from here by checking
)
from loaderkit.planning import Plan
from loaderkit.rules import rule


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
        tables = _other_tables(plan)
        if tables:  # the database is there; the table is not: point at `table`
            return plan, [rule("LK401").at(plan.locate("source", "table"),
                                           f"no table '{source.table}' in {source.uri!r}",
                                           "tables there: " + ", ".join(tables[:10])
                                           + (", ..." if len(tables) > 10 else ""))]
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
    if plan.sampler.world_size > 1 and not any(d.is_error for d in problems):
        problems += _uneven_ranks(plan, handle)
    return plan, problems


def _other_tables(plan: Plan) -> list[str]:
    """The tables of a local LanceDB database that lacks the recipe's table, else []."""
    source = plan.read.source
    if source.table is None or source.connection_factory is not None:
        return []
    from loaderkit.vocabulary import resolve_text

    try:
        uri = resolve_text(source.uri)
        if uri.startswith(("db://", "memory://")):
            return []
        import lancedb

        options = {k: resolve_text(v) for k, v in source.storage_options.items()} or None
        names = list(lancedb.connect(uri, storage_options=options).list_tables().tables)
    except Exception:  # no database there either: the uri is what is wrong
        return []
    return sorted(names) if source.table not in names else []


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
        if type(target).__module__.startswith("lancedb"):
            problems.append(rule("LK405").at(
                plan.locate(*path),
                f"'{reference}' is a LanceDB {type(target).__name__} object, not a function; "
                "LanceDB tables and connections cannot be shipped to workers",
                "name a function that opens the table inside the worker: "
                "def open_table(name): return lancedb.connect(...).open_table(name)"))
        elif not callable(target):
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
            # Lance checks a projection lazily: asking for the schema is what raises.
            dataset.scanner(columns={name: expression}, limit=0).projected_schema  # noqa: B018
        except Exception as exc:
            path = ("columns", name) if isinstance(plan.document.data.get("columns"), dict) \
                else ("columns", list(read.columns or {}).index(name))
            problems.append(rule("LK402").at(plan.locate(*path),
                                             f"column '{expression}': {engine_message(exc)}"))
    if read.filter is not None:
        try:
            dataset.scanner(columns=[], filter=read.filter, limit=0,  # noqa: B018
                            with_row_id=True).projected_schema
        except Exception as exc:
            problems.append(rule("LK403").at(plan.locate("filter"),
                                             f"invalid filter: {engine_message(exc)}"))
    if problems:
        return problems
    schema: pa.Schema = dataset.scanner(columns=read.columns, limit=0).projected_schema
    # At `format` where it is written; else at what chose the columns (the default format
    # with the dataset's own columns).
    data = plan.document.data
    key = ("format",) if "format" in data else ("columns",) if "columns" in data else \
        ("source", "uri")
    for column in unsupported_columns(schema, read.format):
        problems.append(rule("LK404").at(
            plan.locate(*key),
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


def rows_per_rank(plan: Plan, handle: Any) -> list[int]:
    """Rows each rank reads in an epoch, computed by the runtime's own planner."""
    from loaderkit.runtime.plans import ChunkPlan
    from loaderkit.runtime.sources import reader_for

    universe = reader_for(handle).universe(plan.read.filter)
    # Row counts do not depend on the order: plan a shuffle as the full scan it permutes,
    # which costs O(ranges) instead of a permutation of every row per rank.
    kind = "full_scan" if plan.sampler.type == "shuffle" else plan.sampler.type
    return [ChunkPlan(replace(plan.sampler, type=kind, rank=r), universe,
                      plan.loader.batch_size, plan.loader.drop_last).rows()
            for r in range(plan.sampler.world_size)]


def _uneven_ranks(plan: Plan, handle: Any) -> list[Diagnostic]:
    try:
        rows = rows_per_rank(plan, handle)
    except Exception:  # the same problem surfaces, located, when the loader is built
        return []
    if len(set(rows)) <= 1:
        return []
    size = plan.loader.batch_size
    batches = [-(-n // size) for n in rows]
    shares = ", ".join(f"rank {r}: {n} rows ({b} batches)"
                       for r, (n, b) in enumerate(zip(rows, batches, strict=True)))
    key = ("sampler", "type") if plan.sampler.type == "sharded_fragment" else \
        ("sampler", "world_size")
    steps = "and different numbers of batches" if len(set(batches)) > 1 else \
        "(the same number of batches, but a short last batch on some)"
    return [rule("LK407").at(plan.locate(*key),
                             f"'{plan.sampler.type}' over {plan.sampler.world_size} ranks gives "
                             f"them unequal rows {steps}: {shares}",
                             "set loader.drop_last: true, or sampler.uneven: pad, so every rank "
                             "takes the same number of steps")]
