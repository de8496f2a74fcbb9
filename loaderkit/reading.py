"""Stage 1, read: YAML text -> plain data plus the location of every key and value.

Safe by construction: PyYAML only *composes* the node graph (no constructor
runs, so no tag can build an object), and loaderkit converts nodes itself,
counting as it goes so that aliases cannot expand without bound.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from loaderkit.errors import Diagnostic, Location
from loaderkit.rules import rule

KeyPath = tuple[str | int, ...]

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_NODES = 100_000

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_CORE}{t}" for t in ("null", "bool", "int", "float", "str")}
_TIMESTAMP = f"{_CORE}timestamp"
# libyaml's parser when PyYAML was built with it: the same events, ten times faster.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Document:
    """A recipe's data with the position of each key and value, addressed by key path."""

    file: str
    data: dict[str, Any]
    keys: dict[KeyPath, Location] = field(default_factory=dict)
    values: dict[KeyPath, Location] = field(default_factory=dict)
    # False when a recipe it extends could not be read: a key it would have inherited
    # is then not reported missing (the base's own diagnostic says what is wrong).
    complete: bool = True

    def locate(self, path: KeyPath, *, key: bool = False) -> Location:
        """The position of `path`'s key (or value), else of its nearest located ancestor."""
        table = self.keys if key else self.values
        for end in range(len(path), -1, -1):
            found = table.get(path[:end]) or self.values.get(path[:end])
            if found is not None:
                return found
        return Location(self.file)


class _Budget(Exception):
    def __init__(self, node: yaml.Node, message: str) -> None:
        self.node, self.message = node, message


def _loc(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1) if mark is not None else Location(file)


def decode(raw: bytes, file: str) -> tuple[str | None, list[Diagnostic]]:
    """Bytes -> text. UTF-8 (with or without BOM) and BOM-marked UTF-16 are accepted."""
    if len(raw) > MAX_BYTES:
        return None, [rule("LK005").at(Location(file), f"recipe is {len(raw)} bytes; the limit is "
                                        f"{MAX_BYTES}", "a recipe is a few dozen lines")]
    body, encoding, name = raw, "utf-8", "UTF-8"
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                       (codecs.BOM_UTF16_BE, "utf-16-be")):
        if raw.startswith(bom):
            body, encoding, name = raw[len(bom):], codec, codec[:6].upper()
            break
    try:
        return body.decode(encoding), []
    except UnicodeDecodeError as exc:  # locate the bad bytes in characters, as an editor counts
        before = body[: exc.start].decode(encoding, errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        return None, [rule("LK007").at(Location(file, line, column),
                                       f"byte 0x{body[exc.start]:02x} is not valid {name}",
                                       "save the recipe as UTF-8")]


def _shape_problem(text: str, file: str) -> Diagnostic | None:
    """Measure nesting and size on the event stream first, before anything is built.

    The composer recurses (deep nesting would overflow it) and builds every node
    (a huge flat document would cost seconds and hundreds of MB first).
    """
    depth = 0
    for events, event in enumerate(yaml.parse(text, Loader=_LOADER), start=1):
        if events > MAX_NODES:
            return rule("LK005").at(_loc(file, event.start_mark),
                                    f"the document has more than {MAX_NODES} nodes")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                return rule("LK005").at(_loc(file, event.start_mark),
                                        f"nesting deeper than {MAX_DEPTH} levels")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return None


def read_text(text: str, file: str) -> tuple[Document | None, list[Diagnostic]]:
    try:
        problem = _shape_problem(text, file)
        if problem is not None:
            return None, [problem]
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and "end of stream" in (exc.problem or ""):
            mark = exc.context_mark  # point at where the unterminated thing began
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            message = f"{exc.problem} ({exc.context})"
        if mark is not None and 0 <= mark.index < len(text) and text[mark.index] == "\t":
            message = message.replace("found character ", "found character '\\t' ")
        return None, [rule("LK001").at(_loc(file, mark), message, _syntax_hint(message))]
    except yaml.reader.ReaderError as exc:  # unprintable characters carry an offset, no mark
        before = text[: exc.position]
        where = Location(file, before.count("\n") + 1, exc.position - before.rfind("\n"))
        return None, [rule("LK001").at(where, f"character #x{exc.character:04x} is not allowed in "
                                              "YAML", _syntax_hint("unacceptable character"))]
    if root is None:
        return None, [rule("LK002").at(Location(file), "the recipe is empty",
                                       "start with `loaderkit: 1` and a `source:` section")]
    if not isinstance(root, yaml.MappingNode):
        return None, [rule("LK003").at(_loc(file, root.start_mark),
                                       "the top level of a recipe must be a mapping of keys",
                                       "write `key: value` lines, not a list")]
    converter = _Converter(file)
    try:
        data = converter.convert(root, (), 0)
    except _Budget as exc:
        return None, [rule("LK005").at(_loc(file, exc.node.start_mark), exc.message)]
    return Document(file, data, converter.keys, converter.values), converter.problems


def read_file(path: str | Path) -> tuple[Document | None, list[Diagnostic]]:
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return None, [rule("LK007").at(Location(file), f"cannot read recipe: {reason}")]
    text, problems = decode(raw, file)
    if text is None:
        return None, problems
    return read_text(text, file)


# A top-level `loaderkit:` key written at the start of a line, for text that does not parse.
_MARKER_LINE = re.compile(r"""^(["']?)loaderkit\1[ \t]*:""", re.MULTILINE)


def declares_recipe(path: Path) -> bool:
    """Whether a YAML file found in a directory is a recipe: its top-level mapping has a
    `loaderkit:` key (every recipe does; CI workflows and pre-commit configs do not).

    Only the events up to that key are read, so a large or hostile file costs little. Text
    that does not parse (a recipe with a syntax error to report) or is too large to read
    counts when a line starts with `loaderkit:`. An unreadable file counts, so that lint
    says why it cannot be read.
    """
    try:
        raw = path.read_bytes()
    except (OSError, ValueError):
        return True
    text, _ = decode(raw[:MAX_BYTES], str(path))
    if text is None or len(raw) > MAX_BYTES:
        return bool(_MARKER_LINE.search(raw[:MAX_BYTES].decode("utf-8", errors="replace")))
    try:
        return _top_level_key(text, "loaderkit")
    except yaml.YAMLError:
        return bool(_MARKER_LINE.search(text))


def _top_level_key(text: str, name: str) -> bool:
    """Whether the first document is a mapping with the key `name`, from the event stream."""
    depth, key_slot = 0, False
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent,
                              yaml.ScalarEvent, yaml.AliasEvent)):
            if depth == 0 and not isinstance(event, yaml.MappingStartEvent):
                return False  # a list or a scalar at the top: not a recipe
            if depth == 1:  # a node of the top mapping: keys and values take turns
                key_slot = not key_slot
                if key_slot and isinstance(event, yaml.ScalarEvent) and event.value == name:
                    return True
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
            if depth == 0:
                return False
    return False


def _syntax_hint(message: str) -> str | None:
    if "unacceptable character" in message:
        return "remove control characters such as NUL from the file"
    if "'\\t'" in message:
        return "indent with spaces; YAML does not allow tabs"
    if "end of stream" in message and ("quoted" in message or "scalar" in message):
        return "close the quoted string"
    return None


class _Converter:
    def __init__(self, file: str) -> None:
        self.file = file
        self.keys: dict[KeyPath, Location] = {}
        self.values: dict[KeyPath, Location] = {}
        self.problems: list[Diagnostic] = []
        self.nodes = 0
        self._scalars = yaml.constructor.SafeConstructor()

    def convert(self, node: yaml.Node, path: KeyPath, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Budget(node, f"the document expands to more than {MAX_NODES} nodes "
                                "(aliases repeated too often)")
        if depth > MAX_DEPTH:
            raise _Budget(node, f"nesting deeper than {MAX_DEPTH} levels (a recursive alias?)")
        self.values.setdefault(path, _loc(self.file, node.start_mark))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            self._check_tag(node, f"{_CORE}seq")
            return [self.convert(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _check_tag(self, node: yaml.Node, expected: str) -> None:
        if node.tag != expected:
            self.problems.append(rule("LK006").at(
                _loc(self.file, node.start_mark), f"tag '{node.tag}' is not allowed in a recipe",
                "recipes are plain data: remove the tag"))

    def _scalar(self, node: yaml.Node) -> Any:
        if node.tag == _TIMESTAMP:
            return str(node.value)  # a date-like string stays the string the user wrote
        if node.tag not in _SCALAR_TAGS:
            self._check_tag(node, f"{_CORE}str")
            return str(node.value)
        try:
            return self._scalars.construct_object(node)
        except (yaml.YAMLError, ValueError, KeyError, IndexError):  # e.g. `!!int abc`
            digits = sum(c.isdigit() for c in str(node.value))
            # Python refuses to read an int of thousands of digits: no key takes one.
            if node.tag == f"{_CORE}int" and digits > 1000:
                message = f"an integer of {digits} digits is larger than any recipe key takes"
                hint = "each key's bounds are in docs/reference.md"
            else:
                message = f"the value is not a valid {node.tag.replace(_CORE, '!!')}"
                hint = "write a value of that type, or quote it to make a string"
            self.problems.append(rule("LK001").at(_loc(self.file, node.start_mark), message,
                                                  hint))
            return str(node.value)

    def _mapping(self, node: yaml.MappingNode, path: KeyPath, depth: int) -> dict[str, Any]:
        self._check_tag(node, f"{_CORE}map")
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_loc = _loc(self.file, key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(rule("LK003").at(key_loc, "a key must be a plain name"))
                continue
            if key_node.tag not in _SCALAR_TAGS | {_TIMESTAMP}:
                self._check_tag(key_node, f"{_CORE}str")
            key = str(key_node.value)
            if key in result:
                first = self.keys[(*path, key)]
                self.problems.append(rule("LK004").at(
                    key_loc, f"duplicate key '{key}' (first defined at line {first.line})",
                    "keep one of them; YAML would silently use the last"))
                continue
            self.keys[(*path, key)] = key_loc
            result[key] = self.convert(value_node, (*path, key), depth + 1)
        return result
