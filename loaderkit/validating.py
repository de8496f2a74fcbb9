"""Stage 3, validate: the resolved data against the models, plus cross-field rules.

Every pydantic error is mapped back to the YAML position of the offending key
or value. Cross-field rules run on the raw data too, so that a recipe with a
type error still reports its other problems in the same pass.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import typing
from collections.abc import Callable, Iterator
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from loaderkit import caching, sql, texts
from loaderkit.errors import Diagnostic, inside_value
from loaderkit.models import WEIGHT_MAX, WEIGHT_RATIO_MAX, Recipe
from loaderkit.reading import Document, KeyPath
from loaderkit.resolving import is_secret_path, iter_strings, source_paths
from loaderkit.rules import rule
from loaderkit.vocabulary import DECODABLE_FORMATS, ENV_REFERENCE, env_reference

REFERENCE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:"
                       r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
SUPPORTED_VERSIONS = (1,)


def validate(document: Document, *, live_source: bool | None = None
             ) -> tuple[Recipe | None, list[Diagnostic]]:
    """`live_source`: whether `load_recipe(source=...)` gives the source (then the recipe
    needs none); None where that is not known (lint)."""
    data, from_env = _typed_env(document.data)
    problems = list(_cross_field(document, data, from_env))
    problems += _source_section(document, data, live_source)
    if data.get("columns") in ([], {}):
        problems.append(rule("LK202").at(document.locate(("columns",)),
                                         f"columns: {data['columns']} selects no column",
                                         "list the columns to read, or remove `columns` to "
                                         "read them all"))
    if "source" not in data and "sources" not in data and not live_source \
            and document.complete:
        problems.append(rule("LK203").at(document.locate(()), "missing required key 'source'",
                                         "name the data: source: {uri: ...}, or several "
                                         "sources: {NAME: {uri: ...}}; or source: {live: true} "
                                         "for a source given to load_recipe(source=...)"))
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        return None, problems + _map_errors(exc, document, data, from_env)
    return recipe, problems


# --- `source`: a uri, or `live: true` ----------------------------------------------------

def _source_section(document: Document, data: dict[str, Any],
                    live_source: bool | None) -> Iterator[Diagnostic]:
    """`source.uri` is required unless `source.live` is true: the rows then come from the
    object given to `load_recipe(path, source=...)`, and the section holds nothing else."""
    sources = data.get("sources")
    for name in sources if isinstance(sources, dict) else ():
        if _get(data, "sources", name, "live") is not None:
            yield rule("LK220").at(document.locate(("sources", name, "live"), key=True),
                                   f"'sources.{name}.live': a mixture's sources each name "
                                   "their data", "give it a uri; `live` is for `source`")
    source = data.get("source")
    if not isinstance(source, dict):
        return
    if source.get("live") is not True:
        # (a `live` that is no boolean is LK202, not also a missing uri)
        if "uri" not in source and isinstance(source.get("live", False), bool) \
                and document.complete:
            yield rule("LK203").at(document.locate(("source",), key=True),
                                   "missing required key 'uri' in 'source'",
                                   "name the data: uri: ...; or live: true for a source given "
                                   "to load_recipe(source=...)")
        return
    others = ", ".join(repr(str(key)) for key in source if key != "live")
    if others:
        yield rule("LK220").at(document.locate(("source", "live"), key=True),
                               "`source.live: true` takes the rows from load_recipe(source=...); "
                               f"{others} would be ignored",
                               f"remove {others}, or remove `live` to read the recipe's own "
                               "source")
    elif live_source is False:
        yield rule("LK220").at(document.locate(("source", "live"), key=True),
                               "this recipe's source is live, and no source was given to load "
                               "it", "load it in Python: load_recipe(path, source=table), with "
                                     "a LanceDB Table or a lance.LanceDataset")


# --- ${env:...} in fields that take no free text ------------------------------------------

def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field's annotation holds, directly or as the values of a mapping."""
    for a in (annotation, *typing.get_args(annotation)):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def _named_sections(annotation: Any) -> type[BaseModel] | None:
    """For `dict[str, Model]` (named sections, such as `sources`), the Model."""
    for a in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(a) is dict:
            return _section_model(typing.get_args(a)[1])
    return None


def _annotation_at(path: KeyPath) -> Any:
    """The model annotation of the value at `path`, or None where the models have none."""
    model: type[BaseModel] | None = Recipe
    annotation: Any = None
    parts = list(path)
    while parts:
        part = parts.pop(0)
        field = model.model_fields.get(str(part)) if model is not None else None
        if field is None:
            return None
        annotation = field.annotation
        named = _named_sections(annotation)
        if named is not None and parts:
            parts.pop(0)  # the section's name: `sources.web`
            model, annotation = named, named
            continue
        model = _section_model(annotation)
        if model is None and parts:
            return None  # inside a list or a mapping of plain values: they take text
    return annotation


def _takes_text(annotation: Any) -> bool:
    """Whether a field holds free text (then a reference stays one, read where it is used)."""
    if annotation is str or typing.get_origin(annotation) in (list, dict):
        return True
    return any(_takes_text(a) for a in typing.get_args(annotation)
               if typing.get_origin(annotation) is not typing.Literal)


def _typed_env(data: dict[str, Any]) -> tuple[dict[str, Any], dict[KeyPath, str]]:
    """`data` with each `${env:...}` in a number, boolean or fixed-name field replaced by its
    value (the environment's, else the default), read as YAML reads a scalar: cluster jobs
    set `batch_size` or `num_workers` this way. An unset variable without a default leaves
    the field out: resolving already reported it (LK103 at build, LK106 in lint).

    Also returns the reference each replaced value came from, by path, for messages.
    """
    typed = copy.deepcopy(data)
    from_env: dict[KeyPath, str] = {}
    for path, text in iter_strings(data):
        reference = env_reference(text)
        annotation = _annotation_at(path)
        if reference is None or annotation is None or _takes_text(annotation):
            continue
        name, default = reference
        value = os.environ.get(name, default)
        parent = _lookup(typed, path[:-1])
        if value is None:
            del parent[path[-1]]
            continue
        try:
            parent[path[-1]] = yaml.safe_load(value) if value.strip() else value
        except (yaml.YAMLError, ValueError):  # ValueError: an int of more than 4300 digits
            parent[path[-1]] = value
        from_env[path] = text.strip()
    return typed, from_env


# --- pydantic errors -> located diagnostics -----------------------------------------------

def _child(data: Any, part: int | str) -> tuple[bool, Any]:
    """(True, data[part]) when `part` addresses an item of `data`, else (False, None)."""
    if isinstance(data, dict) and part in data:
        return True, data[part]
    if isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
        return True, data[part]
    return False, None


def _data_path(data: Any, loc: tuple[int | str, ...]) -> tuple[KeyPath, bool]:
    """The part of a pydantic `loc` that addresses the data; union member tags are skipped."""
    path: list[str | int] = []
    through_union = False
    for part in loc:
        found, item = _child(data, part)
        if found:
            data = item
            path.append(part)
        else:
            through_union = True
    return tuple(path), through_union


def _map_errors(exc: ValidationError, document: Document, data: dict[str, Any],
                from_env: dict[KeyPath, str]) -> list[Diagnostic]:
    groups: dict[KeyPath, list[tuple[KeyPath, dict[str, Any]]]] = {}
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append(_unknown_key(loc, document))
            continue
        if error["type"] == "missing":
            if not document.complete:
                continue  # the base that would have given it failed to load
            parent = loc[:-1]
            where = document.locate(parent, key=True)
            section = f" in '{_dotted(parent)}'" if parent else ""
            problems.append(rule("LK203").at(where, f"missing required key '{loc[-1]}'{section}",
                                             _MISSING_HINTS.get(loc)))
            continue
        path, _ = _data_path(data, loc)
        head = _union_head(loc, data)
        groups.setdefault(head if head is not None else path, []).append((path, dict(error)))
    for head, errors in groups.items():
        if not any(_malformed_reference(_lookup(data, path)) for path, _ in errors):
            problems.append(_invalid_value(head, errors, document, data, from_env))
    return problems


# What to write for a missing required key.
_MISSING_HINTS: dict[tuple[int | str, ...], str] = {
    ("loaderkit",): "start the recipe with `loaderkit: 1`, the version of the recipe format "
                    "it is written in",
    ("source", "uri"): "name the data: uri: path/to/data.lance, or a LanceDB database "
                       "and its `table`",
}


def _malformed_reference(value: Any) -> bool:
    """A value with a `${env:` that is not a whole reference: resolving reported it (LK105)."""
    return isinstance(value, str) and "${env:" in value and env_reference(value) is None


def _union_head(loc: tuple[int | str, ...], data: Any) -> KeyPath | None:
    """For an error inside a union member, the path of the union-typed value itself."""
    path: list[str | int] = []
    for part in loc:
        found, data = _child(data, part)
        if not found:
            return tuple(path)
        path.append(part)
    return None


def _invalid_value(head: KeyPath, errors: list[tuple[KeyPath, dict[str, Any]]],
                   document: Document, data: dict[str, Any],
                   from_env: dict[KeyPath, str]) -> Diagnostic:
    deepest = max((path for path, _ in errors), key=len)
    where = document.locate(deepest)
    value = _lookup(data, deepest)
    reasons = []
    for path, error in errors:
        reason = error["msg"].replace("Input should be", "expected")
        if path != head and len(path) > len(head):
            reason += f" at '{_dotted(path[len(head):])}'"
        reasons.append(reason)
    secret = _env_secret(from_env, deepest)
    if secret is not None:
        # Neither the value nor anything near it: a pydantic message may quote its input.
        if isinstance(value, str):
            reasons = [r.replace(repr(value), secret).replace(f"'{value}'", secret)
                       for r in reasons]
        source = f" (the value of {secret}, not shown)"
    else:
        source = f" (read from {from_env[deepest]})" if deepest in from_env else ""
    message = (f"invalid value for '{_dotted(head)}'{source}: "
               + "; or ".join(dict.fromkeys(reasons)))
    if secret is None and not is_secret_path(deepest) \
            and isinstance(value, (str, int, float, bool)):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        message += f", got {shown}"
    hint = None
    if head == ("columns",) and isinstance(value, str):
        hint = f"columns is a list: columns: [{value}]"
    literal = [e for _, e in errors if e["type"] == "literal_error"]
    if literal and isinstance(value, str):
        options = re.findall(r"'([^']*)'", literal[0]["ctx"]["expected"])
        close = difflib.get_close_matches(value, options, n=1) if secret is None else []
        hint = f"did you mean '{close[0]}'?" if close else "one of: " + ", ".join(options)
    return rule("LK202").at(where, message, hint)


def _env_secret(from_env: dict[KeyPath, str], path: KeyPath) -> str | None:
    """`${env:NAME}` when the value at `path` was read from a variable that is set (a
    secret, never shown, nor a suggestion near it); None for a written value or a default."""
    reference = env_reference(from_env[path]) if path in from_env else None
    if reference is None or reference[0] not in os.environ:
        return None
    return "${env:" + reference[0] + "}"


# Keys users put in the wrong section, after other loaders' vocabulary: where they belong.
_MOVED: dict[tuple[str, ...], str] = {
    ("loader", "shuffle"): "shuffling is the sampler's: sampler.type: shuffle (and sampler.seed)",
    ("loader", "sampler"): "the sampler is its own section: sampler.type",
    ("loader", "seed"): "the seed is the sampler's: sampler.seed",
    ("loader", "columns"): "columns is a top-level key",
    ("loader", "filter"): "filter is a top-level key",
    ("sampler", "batch_size"): "batch_size is the loader's: loader.batch_size",
    ("sampler", "drop_last"): "drop_last is the loader's: loader.drop_last",
    ("sampler", "shuffle"): "write sampler.type: shuffle",
}


def _unknown_key(loc: tuple[int | str, ...], document: Document) -> Diagnostic:
    path, _ = _data_path(document.data, loc)
    key = str(loc[-1])
    section = path[:-1]
    moved = _MOVED.get((*(str(p) for p in section), key))
    if moved is not None:
        where = document.locate(path, key=True)
        return rule("LK201").at(where, f"unknown key '{key}' in '{_dotted(section)}'", moved)
    known = _known_keys(section)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    where = document.locate(path, key=True)
    place = f"in '{_dotted(section)}'" if section else "at the top level"
    message = f"unknown key '{key}' {place}"
    if close:
        return rule("LK201").at(where, f"{message} (did you mean '{close[0]}'?)",
                                f"rename it to '{close[0]}'")
    return rule("LK201").at(where, message, "known keys: " + ", ".join(known))


def _known_keys(section: KeyPath) -> list[str]:
    model = _annotation_at(section) if section else Recipe
    found = _named_sections(model) or _section_model(model)
    return list(found.model_fields) if found is not None else []


def _lookup(data: Any, path: KeyPath) -> Any:
    for part in path:
        data = data[part]
    return data


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path)


# --- cross-field rules --------------------------------------------------------------------

def _get(data: Any, *path: str | int) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _cross_field(document: Document, data: dict[str, Any],
                 from_env: dict[KeyPath, str] | None = None) -> Iterator[Diagnostic]:
    """Rules across fields, on the data with typed `${env:...}` values read (`_typed_env`);
    a message shows such a value as its `${env:NAME}` (`from_env`: where they were read)."""

    def at(*path: str | int) -> Any:
        return document.locate(path)

    def shown(*path: str | int) -> str:
        return _env_secret(from_env or {}, path) or str(_get(data, *path))

    version = data.get("loaderkit")
    if isinstance(version, int) and not isinstance(version, bool) \
            and version not in SUPPORTED_VERSIONS:
        yield rule("LK204").at(at("loaderkit"),
                               f"unknown recipe format version {shown('loaderkit')}",
                               "this loaderkit reads `loaderkit: 1`")

    references = [("transform",), *((*p, "connection_factory") for p in source_paths(data))]
    for path in references:
        value = _get(data, *path)
        if isinstance(value, str) and not REFERENCE.fullmatch(value) \
                and env_reference(value) is None:  # LK107 says why a reference cannot be
            yield rule("LK205").at(at(*path), f"'{_dotted(path)}' must be 'module:attribute', got "
                                              f"{value!r}",
                                   "name an importable module and a function in it, e.g. "
                                   "my_project.data:decode")

    written = _get(data, "loader", "num_workers")
    workers = written if isinstance(written, int) else 0
    if written is None or written == 0:  # not when num_workers itself is refused (LK202)
        for key in ("persistent_workers", "prefetch_factor"):
            value = _get(data, "loader", key)
            if value not in (None, False):
                yield rule("LK206").at(at("loader", key),
                                       f"'loader.{key}' needs num_workers > 0",
                                       f"set loader.num_workers, or remove {key}")
    context = _get(data, "loader", "multiprocessing_context")
    if context == "fork" and workers > 0:
        if _get(data, "loader", "allow_fork") is True:
            yield rule("LK506").at(at("loader", "multiprocessing_context"),
                                   "fork with workers is allowed by loader.allow_fork; forked "
                                   "workers over Lance segfault or hang in 10-50% of runs",
                                   "use spawn or forkserver")
        else:
            yield rule("LK207").at(at("loader", "multiprocessing_context"),
                                   "fork with num_workers > 0 is refused: Lance is not fork-safe "
                                   "(forked workers segfault or hang)",
                                   "use spawn (the default) or forkserver")

    rank, world = _get(data, "sampler", "rank"), _get(data, "sampler", "world_size")
    # Each out of its own bounds is LK202 (models.py); LK208 is a rank beyond the world.
    if isinstance(rank, int) and isinstance(world, int) and rank >= 0 and 1 <= world <= rank:
        yield rule("LK208").at(at("sampler", "rank"),
                               f"rank {shown('sampler', 'rank')} is outside world_size "
                               f"{shown('sampler', 'world_size')}",
                               "ranks count from 0 to world_size - 1")

    yield from _untaken_references(document, data)
    yield from _decode_rules(document, data, shown("format"))
    yield from texts.lint_rules(document, data)  # issue 25: tokenize and pack
    yield from _mixture_rules(document, data)
    yield from _weight_ratio(document, data, shown)
    yield from _split_rules(document, data)
    yield from _filter_rules(document, data)

    for section in source_paths(data):
        uri, table = _get(data, *section, "uri"), _get(data, *section, "table")
        if isinstance(uri, str):
            yield from _source_rules(document, data, section, uri, table, workers)
        yield from caching.lint_rules(document, data, section)
    yield from _secrets_in_clear(document, data)


def _source_rules(document: Document, data: dict[str, Any], section: KeyPath, uri: str,
                  table: Any, workers: int) -> Iterator[Diagnostic]:
    name = _dotted(section)
    remote = uri.startswith("db://")
    if (remote or uri.startswith("memory://")) and table is None:
        yield rule("LK209").at(document.locate((*section, "uri")),
                               f"'{uri}' is a LanceDB database: name the table with "
                               f"`{name}.table`")
    if uri.startswith("memory://") and workers > 0:
        yield rule("LK210").at(document.locate((*section, "uri")),
                               "a memory:// database exists in one process; workers cannot see "
                               "it", "set loader.num_workers: 0, or write the table to a "
                                     "directory")
    if not remote:
        for key in ("api_key", "region", "host_override"):
            if _get(data, *section, key) is not None:
                yield rule("LK211").at(document.locate((*section, key), key=True),
                                       f"'{name}.{key}' only applies to db:// databases")
    if table is not None and uri.rstrip("/").endswith(".lance"):
        yield rule("LK211").at(document.locate((*section, "table"), key=True),
                               f"'{uri}' looks like a Lance dataset, but `table` makes it a "
                               "LanceDB database", "remove `table`, or point uri at the "
                                                   "database directory")


def _mixture_rules(document: Document, data: dict[str, Any]) -> Iterator[Diagnostic]:
    sources = data.get("sources")
    if "source" in data and sources is not None:
        yield rule("LK217").at(document.locate(("sources",), key=True),
                               "a recipe reads `source` or `sources`, not both",
                               "keep `source` for one dataset, or move it into `sources`")
    if "mixture" in data and sources is None:
        yield rule("LK218").at(document.locate(("mixture",), key=True),
                               "`mixture` has no effect without `sources`")
    if isinstance(sources, dict) and not sources:
        yield rule("LK202").at(document.locate(("sources",)), "sources: {} names no source",
                               "name each source: sources: {web: {uri: ...}}")
    sampler = _get(data, "sampler", "type")
    if isinstance(sources, dict) and sources and sampler == "sharded_fragment":
        yield rule("LK219").at(document.locate(("sampler", "type")),
                               "sharded_fragment deals whole fragments of one dataset; a "
                               "mixture's rows come from several",
                               "use full_scan, sharded_batch or shuffle with `sources`")


def _weight_ratio(document: Document, data: dict[str, Any],
                  shown: Callable[..., str]) -> Iterator[Diagnostic]:
    """LK221 where a mixture's largest weight is over WEIGHT_RATIO_MAX times its smallest
    (each weight out of its own bounds is LK202), at the smallest one where it is written."""
    sources = data.get("sources")
    weights: dict[str, float] = {}
    for name, source in sources.items() if isinstance(sources, dict) else ():
        weight = source.get("weight", 1.0) if isinstance(source, dict) else None
        if isinstance(weight, int | float) and not isinstance(weight, bool) \
                and 0 < weight <= WEIGHT_MAX:
            weights[str(name)] = weight
    if len(weights) < 2:
        return
    small, large = min(weights, key=weights.__getitem__), max(weights, key=weights.__getitem__)
    if weights[large] <= WEIGHT_RATIO_MAX * weights[small]:
        return

    def weight_of(name: str) -> str:
        if _get(data, "sources", name, "weight") is None:
            return "the default 1"
        text = shown("sources", name, "weight")  # `${env:NAME}` for a value read from one
        return text if text.startswith("${") else f"{weights[name]:g}"

    at = small if _get(data, "sources", small, "weight") is not None else large
    yield rule("LK221").at(document.locate(("sources", at, "weight")),
                           f"the weights of sources '{small}' ({weight_of(small)}) and "
                           f"'{large}' ({weight_of(large)}) are more than "
                           f"{WEIGHT_RATIO_MAX:,.0f} times apart",
                           f"'{small}' would deliver next to nothing (and stretch an "
                           "all_exhausted epoch as far): raise its weight, or remove the source")


# Text keys that take no `${env:}` reference, and why: each is read offline, before any
# environment is (lint checks it; a split's rows, the output columns' names and the code to
# import must be the same in every process). A filter, a column expression, a uri, a table,
# a version tag and storage options take one, read where each is used.
_NO_REFERENCE = {
    "name": "the recipe's name is part of what `build` prints",
    "split": "the split is checked against splits.fractions offline",
    "splits.by": "the split column fixes which rows each split holds",
    "transform": "code to import is named in the recipe",
    "connection_factory": "code to import is named in the recipe",
    "columns": "a list of columns names the output columns; read an expression from the "
               "environment in a mapping, {name: ${env:NAME}}",
}


def _untaken_references(document: Document, data: dict[str, Any]) -> Iterator[Diagnostic]:
    """LK107 for an `${env:}` reference under a key that takes none (it would otherwise
    reach the engine or the importer as the literal text `${env:...}`)."""
    paths: list[tuple[KeyPath, str]] = [(("name",), "name"), (("split",), "split"),
                                        (("splits", "by"), "splits.by"),
                                        (("transform",), "transform")]
    paths += [((*p, "connection_factory"), "connection_factory") for p in source_paths(data)]
    columns = data.get("columns")
    values = [(path, key, _get(data, *path)) for path, key in paths]
    if isinstance(columns, list):
        values += [(("columns", i), "columns", item) for i, item in enumerate(columns)]
    for path, key, value in values:
        if isinstance(value, str) and env_reference(value) is not None:
            yield rule("LK107").at(document.locate(path),
                                   f"'{_dotted(path)}' cannot be read from the environment: "
                                   f"{_NO_REFERENCE[key]}",
                                   "write the value itself in the recipe (or set it with "
                                   "--set KEY=VALUE)")


_PLACEHOLDER = "'$' starts a query parameter, which nothing binds in a recipe"
_PLACEHOLDER_HINT = ("write the value itself; to read the whole filter from the environment, "
                     "write filter: ${env:NAME}; quote a column name that holds '$'")


def _filter_rules(document: Document, data: dict[str, Any]) -> Iterator[Diagnostic]:
    """LK403 offline, for what no filter can hold: Lance would run only the part before it
    (the rest, what the engine alone can tell, is found at build: binding.py)."""
    sources = data.get("sources")
    named = list(sources) if isinstance(sources, dict) else []
    for path in [("filter",), *(("sources", name, "filter") for name in named)]:
        text = _get(data, *path)
        if not isinstance(text, str) or env_reference(text) is not None:
            continue  # a reference is read, and its value checked, at build (binding.py)
        dollar = sql.placeholder(text)
        if dollar is not None:
            yield rule("LK403").at(inside_value(document.locate(path), dollar),
                                   f"invalid filter: {_PLACEHOLDER}", _PLACEHOLDER_HINT)
            continue
        found = sql.stray(text)
        if found is not None:
            offset, what = found
            yield rule("LK403").at(
                inside_value(document.locate(path), offset),
                f"invalid filter: {what}; Lance would silently ignore it and everything "
                "after it",
                "a filter is one SQL expression: balance its parentheses, join conditions "
                "with AND or OR, and leave out ';' and anything after it")


def _split_rules(document: Document, data: dict[str, Any]) -> Iterator[Diagnostic]:
    splits, split = data.get("splits"), data.get("split")
    fractions = _get(data, "splits", "fractions")
    if split is not None and splits is None:
        yield rule("LK216").at(document.locate(("split",)),
                               f"split '{split}' is chosen, but no `splits` are declared",
                               "declare them (usually in a base recipe): splits: {by: id, "
                               "fractions: {train: 0.9, val: 0.1}}")
    if not isinstance(fractions, dict):
        return
    if isinstance(split, str) and fractions and split not in fractions \
            and env_reference(split) is None:  # a reference: LK107
        close = difflib.get_close_matches(split, [str(k) for k in fractions], n=1)
        yield rule("LK214").at(document.locate(("split",)), f"no split named '{split}'",
                               f"did you mean '{close[0]}'?" if close else
                               "splits: " + ", ".join(map(str, fractions)))
    values = [v for v in fractions.values() if isinstance(v, int | float)
              and not isinstance(v, bool)]
    for name, value in fractions.items():
        if value in values and not 0 < value <= 1:
            yield rule("LK215").at(document.locate(("splits", "fractions", name)),
                                   f"split '{name}' has fraction {value}; each must be above 0 "
                                   "and at most 1")
    if not fractions:
        yield rule("LK215").at(document.locate(("splits", "fractions")),
                               "`splits.fractions` names no split")
    elif sum(values) > 1 + 1e-9:
        yield rule("LK215").at(document.locate(("splits", "fractions")),
                               f"the split fractions add up to {sum(values):g}, more than 1",
                               "the splits share no row: their fractions add up to 1 at most")


def _decode_rules(document: Document, data: dict[str, Any],
                  format_shown: str) -> Iterator[Diagnostic]:
    decode, columns = data.get("decode"), data.get("columns")
    if not isinstance(decode, dict) or not decode:
        return
    if isinstance(columns, list | dict) and columns:
        names = [str(c) for c in columns]
        for column in decode:
            if column not in names:
                close = difflib.get_close_matches(str(column), names, n=1)
                yield rule("LK212").at(
                    document.locate(("decode", column), key=True),
                    f"decode names '{column}', which is not an output column",
                    f"did you mean '{close[0]}'?" if close else
                    "output columns: " + ", ".join(names))
    fmt = data.get("format", "torch")
    if isinstance(fmt, str) and fmt not in DECODABLE_FORMATS:
        key = ("format",) if "format" in data else ("decode",)
        yield rule("LK213").at(document.locate(key),
                               f"format {format_shown!r} has no named columns for decode to "
                               "replace",
                               "use one of: " + ", ".join(DECODABLE_FORMATS))


def _secrets_in_clear(document: Document, data: dict[str, Any]) -> Iterator[Diagnostic]:
    candidates: list[KeyPath] = []
    for section in source_paths(data):
        candidates.append((*section, "api_key"))
        options = _get(document.data, *section, "storage_options")
        if isinstance(options, dict):
            candidates += [(*section, "storage_options", key) for key in options]
    for path in candidates:
        value = _lookup(document.data, path) if _has(document.data, path) else None
        if value is None or not is_secret_path(path):
            continue
        if isinstance(value, str) and ENV_REFERENCE.fullmatch(value.strip()):
            continue
        name = path[-1]
        yield rule("LK301").at(
            document.locate(path), f"'{_dotted(path)}' holds a secret written in clear",
            f"read it from the environment: {name}: ${{env:{str(name).upper()}}}")


def _has(data: Any, path: KeyPath) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True
