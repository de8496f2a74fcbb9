"""Stage 5a, bind: check a plan against the real data and pin the dataset version.

Opens the source once in this process (never in a worker), so that a missing
dataset, table, column or version, or a filter Lance cannot parse, becomes a
located diagnostic before any worker starts.
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from loaderkit import caching, sql, texts
from loaderkit.errors import (
    Diagnostic,
    Location,
    UserCodeError,
    engine_message,
    inside_value,
    unique,
)
from loaderkit.planning import Plan, shown
from loaderkit.references import USER_FAILURES, import_reference, user_frames, why_not_imported
from loaderkit.rules import rule
from loaderkit.runtime.sources.reader import SourceChecks
from loaderkit.runtime.spec import SourceSpec
from loaderkit.vocabulary import RANDOM_SPLIT, EnvValue, Text, resolve_text


def bind(plan: Plan, handle: Any = None) -> tuple[Plan, list[Diagnostic]]:
    """Returns the plan with its version(s) pinned, and what the data says about it.

    `handle`: the live object given to `load_recipe(source=...)`, already open. A
    mixture's sources are each opened, pinned and checked, each problem located in
    that source's entry.
    """
    problems = list(_references(plan))
    if problems:
        return plan, problems  # a factory that does not import cannot open the source
    opener = _open_parts if plan.read.source.parts else _open_source
    plan, checked, found = opener(plan, handle)
    if has_errors(found):
        return plan, found
    problems += found
    schemas: list[tuple[Prefix, pa.Schema | None]] = []
    for prefix, checks, own_filter, spec, opened in checked:
        found, schema = _check_data(plan, checks, prefix, own_filter)
        problems += found
        problems += caching.build_report(plan, prefix, spec, opened)
        schemas.append((prefix, schema))
    if not has_errors(problems):
        problems += _same_types(plan, schemas)
    problems += texts.build_rules(plan.read.tokenize, plan.document, schemas)  # issue 25
    problems += _live_with_workers(plan)
    problems += _workers_without_transform(plan)
    return plan, unique(problems)


Prefix = tuple[str, ...]
# What bind checks of each source: (its recipe key, its checks, its own filter).
# (recipe key, bind's questions to it, its own filter, its spec, its open handle)
Checked = list[tuple[Prefix, SourceChecks, Text | None, SourceSpec, Any]]


def _open_source(plan: Plan, handle: Any) -> tuple[Plan, Checked, list[Diagnostic]]:
    """The recipe's one source opened (unless given, live) and pinned."""
    if handle is None:
        pinned, handle, found = _open(plan, plan.read.source, ("source",))
        if found:
            return plan, [], found
        plan = replace(plan, read=replace(plan.read, source=pinned))
    plan.node("source").settings["version"] = shown(plan.read.source.version, ())
    source = plan.read.source
    return plan, [(("source",), _checks(source, handle), None, source, handle)], []


def _open_parts(plan: Plan, handle: Any) -> tuple[Plan, Checked, list[Diagnostic]]:
    """Each source of a mixture opened and pinned; every problem said at once."""
    source, problems, parts, checked = plan.read.source, [], [], []
    for part in source.parts:
        prefix: Prefix = ("sources", part.name)
        pinned, opened, found = _open(plan, part.source, prefix)
        problems += found
        parts.append(replace(part, source=pinned))
        if opened is not None:
            plan.node(*prefix).settings["version"] = shown(pinned.version, ())
            checked.append((prefix, _checks(pinned, opened), part.filter, pinned, opened))
    if has_errors(problems):
        return plan, [], problems
    plan = replace(plan, read=replace(plan.read, source=replace(source, parts=tuple(parts))))
    return plan, checked, problems




def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


def _open(plan: Plan, source: SourceSpec, prefix: Prefix
          ) -> tuple[SourceSpec, Any, list[Diagnostic]]:
    """`source` opened and pinned: (pinned spec, handle, []), or (source, None, problems)."""
    from loaderkit import runtime

    try:
        handle = runtime.open_source(replace(source, version=None))
    except UserCodeError as exc:
        return source, None, [user_code_raised(plan, exc, prefix)]
    except Exception as exc:  # the engines raise ValueError, OSError, RuntimeError...
        return source, None, [_not_opened(plan, source, prefix, exc)]
    if source.version is None and not source.parts:  # pinned where it was just opened
        return runtime.pinned(source, handle), handle, []
    try:
        pinned = runtime.pin_version(source)
        return pinned, runtime.open_source(pinned), []
    except Exception as exc:
        return source, None, [rule("LK406").at(plan.locate(*prefix, "version"),
                                               f"cannot open version {source.version!r}: "
                                               f"{_engine_text(exc)}")]


def _engine_text(exc: BaseException) -> str:
    """What the engine said, secrets redacted (a SourceError's `reason`), else the text of
    what was raised."""
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) else engine_message(exc.__cause__ or exc)


def user_code_raised(plan: Plan, exc: UserCodeError, prefix: Prefix = ("source",)
                     ) -> Diagnostic:
    """LK411 at the recipe key that named the function, with the user's own frames.

    `prefix`: the source section whose connection factory it was (a mixture has several).
    """
    frames = exc.frames
    key = (exc.recipe_key,) if exc.recipe_key == "transform" else (*prefix,
                                                                   "connection_factory")
    return rule("LK411").at(plan.locate(*key), exc.summary,
                            f"in your code:\n{frames}" if frames else None)


def _not_opened(plan: Plan, source: SourceSpec, prefix: Prefix,
                exc: BaseException) -> Diagnostic:
    """LK401, saying what is missing and, for a relative path, where it was looked for."""
    tables = _other_tables(source)
    if tables:  # the database is there; the table is not: point at `table`
        return rule("LK401").at(plan.locate(*prefix, "table"),
                                f"no table '{source.table}' in {source.uri!r}",
                                "tables there: " + ", ".join(tables[:10])
                                + (", ..." if len(tables) > 10 else ""))
    reason = _engine_text(exc)
    where = plan.locate(*prefix, "uri")
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


def _other_tables(source: SourceSpec) -> list[str]:
    """The tables of a local LanceDB database that lacks the recipe's table, else []."""
    if source.table is None or source.connection_factory is not None:
        return []
    try:
        uri = resolve_text(source.uri)
        if uri.startswith(("db://", "memory://")):
            return []
        import lancedb

        options = {k: resolve_text(v) for k, v in source.storage_options.items()} or None
        names = list(lancedb.connect(uri, storage_options=options).list_tables().tables)
    except Exception:  # no database there either: the uri is what is wrong
        return []
    return sorted(names) if resolve_text(source.table) not in names else []


def references(plan: Plan) -> list[tuple[tuple[str, ...], str]]:
    """(recipe key, "module:attribute") of the transform and of every connection factory."""
    source = plan.read.source
    sections: list[tuple[Prefix, SourceSpec]] = [
        (("sources", p.name), p.source) for p in source.parts] or [(("source",), source)]
    found: list[tuple[Prefix, str | None]] = [(("transform",), plan.read.transform)]
    found += [((*key, "connection_factory"), s.connection_factory) for key, s in sections]
    return [(path, reference) for path, reference in found if reference is not None]


def _references(plan: Plan) -> list[Diagnostic]:
    problems = []
    for path, reference in references(plan):
        try:
            target = import_reference(reference)
        except USER_FAILURES as exc:  # any import-time error (or exit) is the user's to see
            problems.append(_not_imported(plan.locate(*path), reference, exc))
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


def _not_imported(where: Location, reference: str, exc: BaseException) -> Diagnostic:
    """LK405 for a reference whose import raised or exited, with the user's frames."""
    frames = user_frames(exc)
    hint = ("a script's top level runs when it is imported: put it under "
            "`if __name__ == \"__main__\":`"
            if isinstance(exc, SystemExit) else None)
    if frames:
        hint = (f"{hint}\n" if hint else "") + f"in your code:\n{frames}"
    return rule("LK405").at(where, f"cannot import '{reference}': "
                                   f"{why_not_imported(reference, exc)}", hint)


def _column_path(plan: Plan, name: str) -> tuple[str | int, ...]:
    """The recipe key of output column `name`: its item in `columns` (a list or a mapping)."""
    columns = plan.document.data.get("columns")
    if isinstance(columns, dict):
        return ("columns", name)
    if isinstance(columns, list) and name in columns:
        return ("columns", columns.index(name))
    return ("format",) if "format" in plan.document.data else ("source", "uri")


def _checks(source: SourceSpec, handle: Any) -> SourceChecks:
    """Bind's questions to `source` (open as `handle`), asked through its kind's reader."""
    from loaderkit.runtime.sources import kind_of

    return kind_of(source).reader(handle, source).checks()


def _unread(checks: SourceChecks, text: str) -> int | None:
    """Where the engine stops reading filter `text` (an offset into it), or None when it
    reads all of it. It parses a filter as one statement's WHERE clause and keeps the
    first complete expression: what follows is ignored, silently. So ask it about the
    filter with a condition on an unknown column appended: only a filter read to its end
    makes it reach that name and refuse it."""
    if not checks.parses_filters:
        return None
    names = checks.schema.names if checks.schema is not None else []
    sentinel = _SENTINEL
    while sentinel in names:
        sentinel += "_"
    code = [t for t in sql.tokens(text) if not t.is_comment]
    while code and code[-1].text == ";":  # a trailing ';' ends the statement, no more
        code.pop()
    if not code:
        return None

    def refusal(end: int) -> str | None:
        return checks.filter_problem(f"{text[:end]}\n AND {sentinel}")

    if refusal(code[-1].end) is not None:
        return None  # read to its end (any refusal: it got that far, conservatively)
    # The parser stops at the same token for every longer prefix: the last prefix read
    # to its end is what runs, and the token after it is where the rest begins.
    for before, after in reversed(list(itertools.pairwise(code))[-_CUTS:]):
        if sentinel in (refusal(before.end) or ""):
            return after.start
    return code[0].start


# The column a filter's read-to-the-end question names (`_unread`), and how many
# places it looks for the end of what the engine reads, from the filter's end back.
_SENTINEL = "loaderkit_end_of_filter"
_CUTS = 64


def _check_data(plan: Plan, checks: SourceChecks, prefix: Prefix, own_filter: Text | None
                ) -> tuple[list[Diagnostic], pa.Schema | None]:
    """One source's columns, filters, split column and types against its data; and the
    schema it delivers (None when a problem prevents reading it)."""
    where_source = f" in source '{prefix[1]}'" if prefix[0] == "sources" else ""
    names = list(checks.schema.names) if checks.schema is not None else []
    problems = _column_problems(plan, checks, prefix, names, where_source)
    for value, key in ((plan.read.filter, ("filter",)), (own_filter, (*prefix, "filter"))):
        if value is not None:
            problems += _filter_problems(plan, checks, value, key, names, where_source)
    problems += _split_problems(plan, checks, names, where_source)
    if problems:
        return problems, None
    schema = checks.delivered(plan.read.engine_columns)
    if schema is None:  # an object with no engine to ask: its own reads will tell
        return problems, None
    return _delivered_problems(plan, schema, where_source), schema


def _column_problems(plan: Plan, checks: SourceChecks, prefix: Prefix, names: list[str],
                     where_source: str) -> list[Diagnostic]:
    """LK402 for each output column the source cannot read."""
    problems = []
    for name, expression in (plan.read.columns or {}).items():
        text = resolve_text(expression)
        reason = _placeholder(text) or checks.column_problem(name, text)
        if reason is None:
            continue
        if isinstance(expression, EnvValue):
            problems.append(_unreadable_reference(plan, _column_key(plan, prefix, name),
                                                  f"column '{name}'", expression, reason, names,
                                                  where_source))
        else:
            problems.append(_unknown_column(plan, prefix, name, expression, reason, names))
    return problems


def _filter_problems(plan: Plan, checks: SourceChecks, value: Text, key: tuple[str, ...],
                     names: list[str], where_source: str) -> list[Diagnostic]:
    """LK403 for a filter (the recipe's, or a mixture source's own, at `key`) the source
    refuses, or would read only the first part of."""
    text = resolve_text(value)
    reason = _placeholder(text) or checks.filter_problem(text)
    if reason is not None and isinstance(value, EnvValue):
        return [_unreadable_reference(plan, key, "filter", value, reason, names, where_source)]
    if reason is not None:
        return [_invalid_filter(plan, text, reason, names, key, where_source)]
    cut = _unread(checks, text)
    if cut is None:
        return []
    # The same for every source: the recipe's filter is said once.
    return [_partial_filter(plan, text, cut, key, where_source if key != ("filter",) else "")]


def _split_problems(plan: Plan, checks: SourceChecks, names: list[str],
                    where_source: str) -> list[Diagnostic]:
    """LK402 for a split column the source does not have."""
    split = plan.read.split
    if split is None or split.by == RANDOM_SPLIT or checks.schema is None or split.by in names:
        return []
    close = difflib.get_close_matches(split.by, names, n=1)
    return [rule("LK402").at(plan.locate("splits", "by"),
                             f"split column '{split.by}' is not a column{where_source}",
                             f"did you mean '{close[0]}'?" if close else
                             "splits.by names a column, or is `random`")]


def _delivered_problems(plan: Plan, schema: pa.Schema, where_source: str) -> list[Diagnostic]:
    """LK412 for a decoded column that holds no bytes, LK404 for a column the format
    cannot hold."""
    from loaderkit.runtime.formats import unsupported_columns

    read, problems = plan.read, []
    for spec in read.decode:
        if spec.column in schema.names:
            kind = schema.field(spec.column).type
            if not (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)):
                problems.append(rule("LK412").at(
                    plan.locate("decode", spec.column),
                    f"decode '{spec.type}' needs encoded bytes, but column '{spec.column}' "
                    f"holds {kind}{where_source}",
                    "decode a binary, blob or Hugging Face Image column"))
    for column, reason in unsupported_columns(schema, read.format).items():
        problems.append(rule("LK404").at(
            plan.locate(*_column_path(plan, column)),
            f"format '{read.format}' cannot hold column '{column}': {reason}",
            "drop the column, or choose a format that holds it (arrow, numpy, pandas, polars, "
            "python, python_col), or convert it in a transform with format: arrow"))
    return problems


_PLACEHOLDER = "'$' starts a query parameter, which nothing binds in a recipe"


def _placeholder(text: str) -> str | None:
    """The refusal of a text with a query parameter, which the engine is never asked about:
    it panics on one (sql.placeholder)."""
    return _PLACEHOLDER if sql.placeholder(text) is not None else None


def _column_key(plan: Plan, prefix: Prefix, name: str) -> tuple[str | int, ...]:
    return prefix if prefix[0] == "sources" else _column_path(plan, name)


def _unreadable_reference(plan: Plan, key: tuple[str | int, ...], what: str, reference: EnvValue,
                          reason: str, names: list[str], where_source: str = "") -> Diagnostic:
    """LK402/LK403 for a column expression or a filter read through `${env:NAME}`: said
    without the engine's text, which quotes the value (a secret), or any part of it."""
    code, problem = ("LK403", "the engine cannot run it") if what == "filter" else \
        ("LK402", "the engine cannot read it as a column or SQL expression")
    hint = None
    if reason == _PLACEHOLDER:
        problem = "it holds a '$', which starts a query parameter"
    elif _NO_FIELD.search(reason):
        problem = "it names a column the dataset does not have"
        hint = "columns there: " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    elif reason.startswith(("Error parsing statement", "Error tokenizing statement")):
        problem = "it is not a valid SQL expression"
    return rule(code).at(plan.locate(*key),
                         f"invalid {what}{where_source}: the value of {reference!r} is read "
                         f"from the environment and not shown; {problem}", hint)


def _unknown_column(plan: Plan, prefix: Prefix, name: str, expression: str,
                    reason: str, names: list[str]) -> Diagnostic:
    """LK402: at the column's item, or, in a mixture, inside the entry of the source
    that lacks it."""
    missing = _NO_FIELD.search(reason)
    close = difflib.get_close_matches(missing.group(1) if missing else expression, names, n=1)
    hint = f"did you mean '{close[0]}'?" if close else \
        "columns there: " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    if missing:
        reason = f"the dataset has no column '{missing.group(1)}'" \
            if missing.group(1) != expression else "the dataset has no such column"
    if prefix[0] == "sources":
        return rule("LK402").at(plan.locate(*prefix), f"column '{expression}' is not in source "
                                                      f"'{prefix[1]}': {reason}", hint)
    return rule("LK402").at(plan.locate(*_column_path(plan, name)),
                            f"column '{expression}': {reason}", hint)


def _same_types(plan: Plan, schemas: list[tuple[Prefix, pa.Schema | None]]) -> list[Diagnostic]:
    """LK413 for each mixture source whose columns' types differ from the first source's."""
    known = [(prefix, schema) for prefix, schema in schemas if schema is not None]
    if len(known) < 2:
        return []
    (first, reference), problems = known[0], []
    for prefix, schema in known[1:]:
        for f in schema:
            if f.name in reference.names and reference.field(f.name).type != f.type:
                problems.append(rule("LK413").at(
                    plan.locate(*prefix),
                    f"column '{f.name}' is {f.type} in source '{prefix[1]}' but "
                    f"{reference.field(f.name).type} in source '{first[1]}'",
                    "give the column one type in every source, or select a cast: "
                    f"columns: {{{f.name}: \"CAST({f.name} AS ...)\"}}"))
    return problems


# Lance parses a filter as the WHERE clause of this query, and reports positions in it.
_FILTER_QUERY = "SELECT 1 FROM t WHERE "
_NO_FIELD = re.compile(r"No field named (\w+)")
_AT_COLUMN = re.compile(r" at Line: 1, Column: (\d+)")
_FOUND = re.compile(r"found: (\S+)$")


def _invalid_filter(plan: Plan, text: str, reason: str, names: list[str],
                    key: tuple[str, ...] = ("filter",), where_source: str = "") -> Diagnostic:
    """LK403 located inside the filter string, without the query Lance wrapped it in."""
    where = plan.locate(*key)
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
            where = inside_value(where, offset)
    unknown = _NO_FIELD.search(reason)
    if unknown is not None:
        reason = f"no column named '{unknown.group(1)}'"
        close = difflib.get_close_matches(unknown.group(1), names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "columns there: " + ", ".join(names)
        if text.count(unknown.group(1)) >= 1:
            where = inside_value(where, text.index(unknown.group(1)))
    return rule("LK403").at(where, f"invalid filter{where_source}: {reason}", hint)


def _partial_filter(plan: Plan, text: str, cut: int, key: tuple[str, ...] = ("filter",),
                    where_source: str = "") -> Diagnostic:
    """LK403 for a filter the engine would run only the first part of, at the rest (quoted
    only where the recipe holds the text itself, not a reference to a secret)."""
    hint = ("a filter is one SQL expression: balance its parentheses, join conditions with "
            "AND or OR, and leave out ';' and anything after it")
    where = plan.locate(*key)
    if _value_at(plan.document.data, key) != text:
        return rule("LK403").at(where, f"invalid filter{where_source}: Lance would read only "
                                       "its first part and silently ignore the rest", hint)
    read, rest = text[:cut].strip(), text[cut:].strip()
    return rule("LK403").at(
        where if "\n" in text else inside_value(where, cut),
        f"invalid filter{where_source}: Lance reads only {_clip(read)!r} of it and would "
        f"silently ignore the rest, {_clip(rest)!r}", hint)


def _value_at(data: Any, key: tuple[str, ...]) -> Any:
    for part in key:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _clip(text: str, size: int = 60) -> str:
    return text if len(text) <= size else text[:size - 3] + "..."


def _workers_without_transform(plan: Plan) -> list[Diagnostic]:
    if plan.loader.num_workers > 0 and plan.read.transform is None and not plan.read.decode \
            and not plan.read.tokenize:
        return [rule("LK408").at(plan.locate("loader", "num_workers"),
                                 f"{plan.shown(plan.loader.num_workers, 'loader', 'num_workers')}"
                                 " workers with no transform only read "
                                 "and ship batches, which is slower than reading in the main "
                                 "process", "set num_workers: 0, or add a transform that needs "
                                            "the parallelism")]
    return []
