"""Stage 2, resolve: `extends`, overrides and `${env:...}` references.

Values keep their origin: an inherited value stays located in the base file and
an override's value at the override, so later diagnostics point where the user
must edit. `${env:...}` references are only *checked* here; their values are
read where they are used (and inside each worker), never stored in the recipe.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from loaderkit.errors import Diagnostic, Location
from loaderkit.reading import Document, KeyPath, read_file
from loaderkit.rules import rule
from loaderkit.vocabulary import SECRET_NAME, env_reference

MAX_EXTENDS = 32
Overrides = Mapping[str, Any] | Sequence[str]


def source_paths(data: Any) -> list[KeyPath]:
    """The recipe keys of every source section: `source`, and each of `sources`."""
    paths: list[KeyPath] = [("source",)]
    if isinstance(data, dict) and isinstance(data.get("sources"), dict):
        paths += [("sources", name) for name in data["sources"]]
    return paths


def is_secret_path(path: KeyPath) -> bool:
    """Keys whose values are secrets: `api_key` and storage options named like credentials,
    in `source` or in any of `sources`."""
    head = 1 if path[:1] == ("source",) else 2 if path[:1] == ("sources",) else 0
    if not head or len(path) <= head:
        return False
    rest = path[head:]
    if rest == ("api_key",):
        return True
    return (len(rest) == 2 and rest[0] == "storage_options"
            and bool(SECRET_NAME.search(str(rest[1]))))


def resolve(path: str | Path, overrides: Overrides | None = None, *,
            require_env: bool = True) -> tuple[Document | None, list[Diagnostic]]:
    """Read a recipe with everything it extends, apply overrides and check env references.

    `require_env=False` (lint) makes an unset variable a warning: CI rarely holds secrets.
    """
    problems: list[Diagnostic] = []
    document = _read_with_bases(Path(path), (), None, problems)
    if document is None:
        return None, problems
    document.data.setdefault("name", Path(path).stem)
    _apply_overrides(document, overrides or {}, problems)
    problems += _check_env(document, require_env)
    return document, problems


def _read_with_bases(path: Path, chain: tuple[Path, ...], referrer: Location | None,
                     problems: list[Diagnostic]) -> Document | None:
    if referrer is not None and not _is_file(path):
        problems.append(rule("LK101").at(referrer, f"extended recipe '{path}' does not exist",
                                         "paths in `extends` are relative to the recipe"))
        return None
    if len(chain) >= MAX_EXTENDS:
        problems.append(rule("LK102").at(referrer or Location(str(path)),
                                         f"`extends` chains more than {MAX_EXTENDS} recipes deep",
                                         "flatten the chain of base recipes"))
        return None
    document, found = read_file(path)
    problems += found
    if document is None:
        return None
    base = document.data.get("extends")
    if base is None:
        return document
    where = document.locate(("extends",))
    if not isinstance(base, str):
        return document  # validation reports the wrong type (LK202)
    if env_reference(base) is not None:
        problems.append(rule("LK107").at(where, "'extends' cannot be read from the "
                                                "environment: the base recipe is read offline, "
                                                "with its own references",
                                         "name the base recipe's file"))
        document.complete = False
        return document
    # Shown as the user wrote it (relative to this recipe); compared in canonical form.
    base_path = Path(os.path.normpath(path.parent / base))
    here, there = _canonical(path), _canonical(base_path)
    if there in chain or there == here:
        cycle = " -> ".join(p.name for p in (*chain, here, there))
        problems.append(rule("LK102").at(where, f"recipes extend each other in a cycle: {cycle}"))
        document.complete = False
        return document
    parent = _read_with_bases(base_path, (*chain, here), where, problems)
    if parent is None:
        document.complete = False
        return document
    merged = _merge(parent, document)
    merged.complete = parent.complete
    return merged


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long, a NUL in it
        return False


def _canonical(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a symlink loop
        return Path(os.path.abspath(path))


def _merge(base: Document, child: Document) -> Document:
    """Deep-merge `child` over `base`: mappings merge, everything else (lists too) replaces."""
    merged = Document(child.file, copy.deepcopy(base.data), dict(base.keys), dict(base.values))
    merged.data.pop("extends", None)

    def locate(p: KeyPath) -> tuple[Location | None, Location | None]:
        return child.keys.get(p), child.values.get(p)

    for path in _leaf_paths(child.data):
        value = copy.deepcopy(_get(child.data, path))
        node: dict[Any, Any] = merged.data
        depth = 0
        while depth < len(path) - 1 and isinstance(node.get(path[depth]), dict):
            node, depth = node[path[depth]], depth + 1
        if value == {} and isinstance(node.get(path[depth]), dict):
            continue  # an empty mapping merges into the base's unchanged
        if depth < len(path) - 1 and path[depth] in node:
            path = path[: depth + 1]  # the base has a non-mapping here: the child's replaces it
            value = copy.deepcopy(_get(child.data, path))
        _set(merged, path, value, locate)
    return merged


def _leaf_paths(data: dict[str, Any], prefix: KeyPath = ()) -> Iterator[KeyPath]:
    """Paths to every non-mapping value (and to empty mappings), depth first."""
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _leaf_paths(value, (*prefix, key))
        else:
            yield (*prefix, key)


def _get(data: Any, path: KeyPath) -> Any:
    for key in path:
        data = data[key]
    return data


Locator = Callable[[KeyPath], tuple[Location | None, Location | None]]


def _set(target: Document, path: KeyPath, value: Any, locate: Locator) -> bool:
    """Place `value` at `path`, creating mappings on the way; False if a non-mapping is in it.

    `locate` gives the (key, value) locations of each path written, so that every
    value keeps pointing into the file (or override) it came from.
    """
    node: dict[Any, Any] = target.data
    for depth, key in enumerate(path[:-1]):
        if key not in node:
            node[key] = {}
            _relocate(target, path[: depth + 1], locate)
        if not isinstance(node[key], dict):
            return False
        node = node[key]
    node[path[-1]] = value
    for table in (target.keys, target.values):
        for stale in [p for p in table if p[: len(path)] == path]:
            del table[stale]
    for written in (path, *(path + sub for sub in _all_paths(value))):
        _relocate(target, written, locate)
    return True


def _relocate(target: Document, path: KeyPath, locate: Locator) -> None:
    key, value = locate(path)
    if key is not None:
        target.keys[path] = key
    if value is not None:
        target.values[path] = value


def _all_paths(value: Any, prefix: KeyPath = ()) -> Iterator[KeyPath]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _all_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _all_paths(item, (*prefix, index))


def _fixed(where: Location) -> Locator:
    """A locator that places every path written at one location (an override)."""
    return lambda _: (where, where)


def _apply_overrides(document: Document, overrides: Overrides,
                     problems: list[Diagnostic]) -> None:
    for key, value, where in _parse_overrides(overrides, problems):
        path = tuple(key.split("."))
        if not all(path) or not _set(document, path, value, _fixed(where)):
            problems.append(rule("LK104").at(
                where, f"cannot set '{key}': a key in it is not a mapping in the recipe",
                "use dotted keys into mappings, e.g. loader.num_workers=8"))


def _parse_overrides(overrides: Overrides,
                     problems: list[Diagnostic]) -> Iterator[tuple[str, Any, Location]]:
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            yield str(key), value, Location(f"<overrides[{key!r}]>")
        return
    for text in overrides:
        key, sep, raw = text.partition("=")
        key = key.strip()
        where = Location(f"<--set {key or text}>", 1, len(key) + 2)
        if not sep or not key:
            # Show only the leading dotted name: the rest may be a value typed by mistake.
            name = re.match(r"[\w.]*", text.strip())
            shown = name.group(0) if name and name.group(0) else "?"
            problems.append(rule("LK104").at(Location(f"<--set {shown}>"),
                                             f"override '{shown}...' is not KEY=VALUE",
                                             "write e.g. --set loader.num_workers=8"))
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except (yaml.YAMLError, ValueError):  # ValueError: an int of more than 4300 digits
            value = raw
        if value is None and raw.strip() not in ("null", "~"):
            value = raw  # `--set name=` means the empty string, not null
        yield key, value, where


def iter_strings(data: Any, prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from iter_strings(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from iter_strings(value, (*prefix, index))
    elif isinstance(data, str):
        yield prefix, data


def _unclosed(text: str) -> bool:
    """Whether a `${env:` in `text` has no `}` after it."""
    return "}" not in text[text.rindex("${env:"):]


def _check_env(document: Document, require_env: bool) -> list[Diagnostic]:
    problems = []
    for path, text in iter_strings(document.data):
        if "${env:" not in text:
            continue
        where = document.locate(path)
        reference = env_reference(text)
        if reference is None and _unclosed(text):
            problems.append(rule("LK105").at(
                where, "an ${env:...} reference is not closed: it has no '}'",
                "write ${env:NAME} or ${env:NAME,default}"))
        elif reference is None:
            problems.append(rule("LK105").at(
                where, "an ${env:...} reference must be the whole value, as ${env:NAME} or "
                       "${env:NAME,default}", "move the rest of the value into the variable"))
        elif reference[1] is None and reference[0] not in os.environ:
            code, name = "LK103" if require_env else "LK106", reference[0]
            hint = f"export {name}"
            if not is_secret_path(path):  # a secret must not get a default written in clear
                hint += f", or give a default: ${{env:{name},VALUE}}"
            problems.append(rule(code).at(where, f"environment variable {name} is not set", hint))
    return problems
