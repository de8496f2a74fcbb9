"""Stage 5a, bind: check a plan against the real data and pin the dataset version.

Opens the source once in this process (never in a worker), so that a missing
dataset, table, column or version, or a filter Lance cannot parse, becomes a
located diagnostic before any worker starts.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from loaderkit.errors import Diagnostic, Location, UserCodeError, engine_message
from loaderkit.planning import Plan
from loaderkit.references import import_reference
from loaderkit.rules import rule


def bind(plan: Plan, handle: Any = None) -> tuple[Plan, list[Diagnostic]]:
    """Returns the plan with its version pinned, and what the data says about it.

    `handle`: the live object given to `load_recipe(source=...)`, already open.
    """
    from loaderkit import runtime  # torch and lance load here, never during lint

    problems = list(_references(plan))
    if problems:
        return plan, problems  # a factory that does not import cannot open the source
    source = plan.read.source
    if handle is None:
        try:
            runtime.open_source(replace(source, version=None))
        except UserCodeError as exc:
            return plan, [user_code_raised(plan, exc)]
        except Exception as exc:  # the engines raise ValueError, OSError, RuntimeError...
            return plan, [_not_opened(plan, exc)]
        try:
            pinned = runtime.pin_version(source)
            handle = runtime.open_source(pinned)
        except Exception as exc:
            return plan, [rule("LK406").at(plan.locate("source", "version"),
                                           f"cannot open version {source.version!r}: "
                                           f"{engine_message(exc.__cause__ or exc)}")]
        plan = replace(plan, read=replace(plan.read, source=pinned))
    plan.root.children[0].children[0].settings["version"] = plan.read.source.version
    dataset = runtime.as_lance_dataset(handle)
    if dataset is not None:
        problems += _columns_and_filter(plan, dataset)
    problems += _live_with_workers(plan)
    problems += _workers_without_transform(plan)
    if plan.sampler.world_size > 1 and not any(d.is_error for d in problems):
        problems += _uneven_ranks(plan, handle)
    return plan, problems


def user_code_raised(plan: Plan, exc: UserCodeError) -> Diagnostic:
    """LK411 at the recipe key that named the function, with the user's own frames."""
    frames = exc.frames
    return rule("LK411").at(plan.locate(*exc.recipe_key.split(".")), exc.summary,
                            f"in your code:\n{frames}" if frames else None)


def _not_opened(plan: Plan, exc: BaseException) -> Diagnostic:
    """LK401, saying what is missing and, for a relative path, where it was looked for."""
    source = plan.read.source
    tables = _other_tables(plan)
    if tables:  # the database is there; the table is not: point at `table`
        return rule("LK401").at(plan.locate("source", "table"),
                                f"no table '{source.table}' in {source.uri!r}",
                                "tables there: " + ", ".join(tables[:10])
                                + (", ..." if len(tables) > 10 else ""))
    reason = engine_message(exc.__cause__ or exc)
    where = plan.locate("source", "uri")
    if not isinstance(source.uri, str) or not _NOT_FOUND.search(reason):
        table = f"table '{source.table}' in " if source.table else ""
        return rule("LK401").at(where, f"cannot open {table}{describe_uri(source.uri)}: {reason}")
    what = "LanceDB database" if source.is_lancedb else "Lance dataset"
    return rule("LK401").at(where, f"no {what} at {source.uri!r}", _path_hint(plan, source.uri))


# How Lance and LanceDB say a path holds nothing.
_NOT_FOUND = re.compile(r"was not found|Not found|does not exist|No such file", re.IGNORECASE)


def describe_uri(uri: Any) -> str:
    return repr(uri) if isinstance(uri, str) else str(uri)


def _path_hint(plan: Plan, uri: str) -> str | None:
    """Where a relative `source.uri` was looked for, and where it does exist, if anywhere.

    A relative uri is relative to the working directory (a recipe is often run from
    elsewhere than where it lives), while `extends` is relative to the recipe file.
    """
    if "://" in uri or Path(uri).is_absolute():
        return None
    cwd = Path.cwd()
    recipe_dir = Path(plan.document.file).resolve().parent
    found = [d for d in dict.fromkeys([recipe_dir, *recipe_dir.parents[:2], *cwd.parents[:2]])
             if (d / uri).exists()]
    hint = f"a relative source.uri is relative to the working directory ({cwd})"
    if found:
        return f"{hint}; '{uri}' exists under {found[0]}: run loaderkit from there"
    if Path(uri).parts[:1] == ("demo",):
        return f"{hint}; `loaderkit demo` writes the demo data under ./demo"
    return hint


def _live_with_workers(plan: Plan) -> list[Diagnostic]:
    source = plan.read.source
    if not source.live or plan.loader.num_workers == 0:
        return []
    return [rule("LK210").at(plan.locate("loader", "num_workers"),
                             f"the {str(source.uri).strip('<>')} given to load_recipe(source=...) "
                             "exists in this process only (a memory:// or remote table, or a "
                             "dataset opened with storage options); workers cannot open it",
                             "set loader.num_workers: 0, or write the table to a directory "
                             "and name it in source.uri")]


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


def _column_path(plan: Plan, name: str) -> tuple[str | int, ...]:
    """The recipe key of output column `name`: its item in `columns` (a list or a mapping)."""
    columns = plan.document.data.get("columns")
    if isinstance(columns, dict):
        return ("columns", name)
    if isinstance(columns, list) and name in columns:
        return ("columns", columns.index(name))
    return ("format",) if "format" in plan.document.data else ("source", "uri")


def _columns_and_filter(plan: Plan, dataset: Any) -> list[Diagnostic]:
    from loaderkit.runtime.formats import unsupported_columns
    from loaderkit.runtime.sources.readers import LanceReader

    read = plan.read
    problems = []
    names = list(dataset.schema.names)
    for name, expression in (read.columns or {}).items():
        try:
            # Lance checks a projection lazily: asking for the schema is what raises.
            dataset.scanner(columns={name: expression}, limit=0).projected_schema  # noqa: B018
        except Exception as exc:
            close = difflib.get_close_matches(expression, names, n=1)
            hint = f"did you mean '{close[0]}'?" if close else \
                "columns there: " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            reason = engine_message(exc)
            if _NO_FIELD.search(reason):
                reason = "the dataset has no such column"
            problems.append(rule("LK402").at(plan.locate(*_column_path(plan, name)),
                                             f"column '{expression}': {reason}", hint))
    if read.filter is not None:
        try:
            dataset.scanner(columns=[], filter=read.filter, limit=0,  # noqa: B018
                            with_row_id=True).projected_schema
        except Exception as exc:
            problems.append(_invalid_filter(plan, read.filter, engine_message(exc), names))
    if problems:
        return problems
    schema: pa.Schema = LanceReader(dataset).schema(read.columns)  # as delivered
    for spec in read.decode:
        if spec.column in schema.names:
            kind = schema.field(spec.column).type
            if not (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)):
                problems.append(rule("LK412").at(
                    plan.locate("decode", spec.column),
                    f"decode '{spec.type}' needs encoded bytes, but column '{spec.column}' "
                    f"holds {kind}", "decode a binary, blob or Hugging Face Image column"))
    for column, reason in unsupported_columns(schema, read.format).items():
        problems.append(rule("LK404").at(
            plan.locate(*_column_path(plan, column)),
            f"format '{read.format}' cannot hold column '{column}': {reason}",
            "drop the column, or choose a format that holds it (arrow, numpy, pandas, polars, "
            "python, python_col), or convert it in a transform with format: arrow"))
    return problems


# Lance parses a filter as the WHERE clause of this query, and reports positions in it.
_FILTER_QUERY = "SELECT 1 FROM t WHERE "
_NO_FIELD = re.compile(r"No field named (\w+)")
_AT_COLUMN = re.compile(r" at Line: 1, Column: (\d+)")
_FOUND = re.compile(r"found: (\S+)$")


def _invalid_filter(plan: Plan, text: str, reason: str, names: list[str]) -> Diagnostic:
    """LK403 located inside the filter string, without the query Lance wrapped it in."""
    where = plan.locate("filter")
    hint = None
    for verb in ("parsing", "tokenizing"):
        wrapped = f"Error {verb} statement: {_FILTER_QUERY}{text} ("
        if reason.startswith(wrapped) and reason.endswith(")"):
            reason = reason[len(wrapped):-1]
            break
    else:
        wrapped = ""
    if wrapped:
        offset: int | None = None
        at = _AT_COLUMN.search(reason)
        found = _FOUND.search(reason)
        if at is not None:
            offset = int(at.group(1)) - 1 - len(_FILTER_QUERY)
            reason = _AT_COLUMN.sub("", reason)
        elif found is not None and found.group(1) == "EOF":
            offset = len(text.rstrip())
            hint = "the filter ends before the expression does"
        elif found is not None and text.count(found.group(1)) == 1:
            offset = text.index(found.group(1))
        if offset is not None and 0 <= offset <= len(text):
            where = _inside_value(where, offset)
    unknown = _NO_FIELD.search(reason)
    if unknown is not None:
        reason = f"no column named '{unknown.group(1)}'"
        close = difflib.get_close_matches(unknown.group(1), names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "columns there: " + ", ".join(names)
        if text.count(unknown.group(1)) >= 1:
            where = _inside_value(where, text.index(unknown.group(1)))
    return rule("LK403").at(where, f"invalid filter: {reason}", hint)


def _inside_value(where: Location, offset: int) -> Location:
    """The location `offset` characters into the single-line scalar that starts at `where`."""
    try:
        line = Path(where.file).read_text(encoding="utf-8").splitlines()[where.line - 1]
    except (OSError, ValueError, IndexError):
        return where  # an override: no file to look into
    start = where.column - 1
    if line[start:start + 1] in ("'", '"'):
        start += 1  # a quoted scalar: its text begins after the quote
    return Location(where.file, where.line, start + offset + 1)


def _workers_without_transform(plan: Plan) -> list[Diagnostic]:
    if plan.loader.num_workers > 0 and plan.read.transform is None and not plan.read.decode:
        return [rule("LK408").at(plan.locate("loader", "num_workers"),
                                 f"{plan.loader.num_workers} workers with no transform only read "
                                 "and ship batches, which is slower than reading in the main "
                                 "process", "set num_workers: 0, or add a transform that needs "
                                            "the parallelism")]
    return []


def rows_per_rank(plan: Plan, handle: Any) -> list[int]:
    """Rows each rank reads in an epoch, computed by the runtime's own planner."""
    from loaderkit.runtime.samplers import make_sampler
    from loaderkit.runtime.sources.readers import reader_for

    universe = reader_for(handle).universe(plan.read.filter)
    # Row counts do not depend on the order: plan a shuffle as the full scan it permutes,
    # which costs O(ranges) instead of a permutation of every row per rank.
    kind = "full_scan" if plan.sampler.type == "shuffle" else plan.sampler.type
    return [make_sampler(replace(plan.sampler, type=kind, rank=r), universe,
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
