"""The words the front end and the runtime share, defined once.

Format names, sampler types and shuffle modes, source kinds, and the
`${env:NAME}` reference. The models validate against these, the runtime's
registries are keyed by them (a test checks each registry against its word
list), and nothing here imports torch or lance, so `lint` stays light.
"""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from loaderkit.errors import Diagnostic, MissingEnvError

FormatName = Literal["arrow", "torch", "torch_col", "numpy", "pandas", "polars", "python",
                     "python_col"]
FORMATS: tuple[str, ...] = get_args(FormatName)

SamplerType = Literal["full_scan", "sharded_fragment", "sharded_batch", "shuffle"]
SAMPLER_TYPES: tuple[str, ...] = get_args(SamplerType)

ShuffleMode = Literal["block", "exact", "cache"]
SHUFFLE_MODES: tuple[str, ...] = get_args(ShuffleMode)

UnevenPolicy = Literal["split", "allow", "pad"]

MultiprocessingContext = Literal["spawn", "forkserver", "fork"]

# `decode:` types (runtime/decoding.py has one decoder per type) and image modes.
DecodeType = Literal["image"]
DECODE_TYPES: tuple[str, ...] = get_args(DecodeType)
ImageMode = Literal["RGB", "L", "RGBA"]

# When a mixture's epoch ends (Hugging Face interleave_datasets' names).
MixtureStop = Literal["first_exhausted", "all_exhausted"]
# `splits.by` that assigns rows from the seed rather than from a column's values.
RANDOM_SPLIT = "random"

# How `pack:` fills sequences (runtime/packing.py), and the formats a packed batch comes in.
PackStrategy = Literal["concat", "first_fit"]
PACKED_FORMATS = ("torch", "numpy")

# Formats whose batches have named columns that `decode:` can replace.
DECODABLE_FORMATS = ("torch", "numpy", "python", "python_col")

# How a source is opened: a Lance dataset by uri; a table of a LanceDB database (a
# directory, memory:// or db://); whatever a user's connection factory returns; a live
# object handed to `load_recipe(source=...)`; several of those mixed by weight (`sources`).
SourceKind = Literal["lance_dataset", "lancedb_table", "factory", "live", "mixture"]
SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)


# --- ${env:NAME} references -----------------------------------------------------------------

ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?:,([^}]*))?\}")
# Storage options named like these hold credentials.
SECRET_NAME = re.compile(r"key|secret|token|password|passwd|credential", re.IGNORECASE)


def env_reference(value: str) -> tuple[str, str | None] | None:
    """`${env:NAME}` / `${env:NAME,default}` as a whole value -> (NAME, default), else None."""
    match = ENV_REFERENCE.fullmatch(value.strip())
    return (match.group(1), match.group(2)) if match else None


@dataclass(frozen=True)
class EnvValue:
    """`${env:NAME}` or `${env:NAME,default}`: resolved where it is used, never stored.

    Pickling an EnvValue ships only the variable's name (and the default, which
    was written in the recipe in clear), so a worker reads the secret from its
    own environment.
    """

    name: str
    default: str | None = None

    def resolve(self) -> str:
        value = os.environ.get(self.name)
        if value is not None:
            return value
        if self.default is not None:
            return self.default
        raise MissingEnvError(f"environment variable {self.name} is not set")

    @property
    def is_secret(self) -> bool:
        """A value read from the environment is a secret; a recipe's own default is not."""
        return self.name in os.environ

    def __repr__(self) -> str:
        return "${env:" + self.name + "}"


Text = str | EnvValue


def parse_env(value: str) -> EnvValue | None:
    """`${env:NAME}` / `${env:NAME,default}` as a whole value, as an EnvValue; else None."""
    reference = env_reference(value)
    return EnvValue(*reference) if reference is not None else None


def resolve_text(value: Text) -> str:
    return value.resolve() if isinstance(value, EnvValue) else value


def resolve_optional(value: Text | None) -> str | None:
    """`value` as an engine reads it: a reference resolved in this process, never stored."""
    return None if value is None else resolve_text(value)


def resolve_version(value: int | Text | None) -> int | str | None:
    """A version pin as an engine reads it: a reference to a number is a version number."""
    if not isinstance(value, EnvValue):
        return value
    text = value.resolve().strip()
    return int(text) if text.isdigit() else text


# --- redaction: the values read through ${env:NAME}, kept out of every text passed on ------

# Values that cannot be told from ordinary words of a message: replacing them would garble
# the text, and they hold no secret. So do values under REDACT_MIN characters.
_PLAIN_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "null", "none"})
REDACT_MIN = 4


class Redactor:
    """Replaces each value read from the environment, in any text, by its `${env:NAME}`.

    Built from the references a recipe (or a source spec) holds, in the process that
    resolved them: a worker builds its own from the values it read. Only a variable that
    is set is a secret (a default is written in the recipe in clear).
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.values: dict[str, str] = {}  # the text to replace -> the reference shown
        for name in dict.fromkeys(names):
            value = os.environ.get(name)
            if value is None or not _redactable(value):
                continue
            shown = "${env:" + name + "}"
            # Lance names a local path without its leading '/' (an object-store key).
            forms = (value, value.strip(), value.strip().lstrip("/"), repr(value)[1:-1],
                     *_url_parts(value.strip()), *_path_forms(value.strip()))
            for form in forms:
                if _redactable(form):
                    self.values.setdefault(form, shown)
        # One pass, longest first: a value that contains another is replaced whole, and no
        # reference put in is searched again.
        order = sorted(self.values, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, order))) if order else None

    @classmethod
    def of_data(cls, data: Any) -> Redactor:
        """For every `${env:NAME}` anywhere in a recipe's data, whole value or not."""
        return cls(name for text in _strings(data) for name, _ in ENV_REFERENCE.findall(text))

    @classmethod
    def of_texts(cls, texts: Iterable[Any]) -> Redactor:
        """For the EnvValues among `texts` (a source spec's uri, options, api key)."""
        return cls(t.name for t in texts if isinstance(t, EnvValue))

    def __bool__(self) -> bool:
        return bool(self.values)

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self.values[m.group(0)], text)

    def diagnostic(self, diagnostic: Diagnostic) -> Diagnostic:
        hint = self(diagnostic.hint) if diagnostic.hint else diagnostic.hint
        return dataclasses.replace(diagnostic, message=self(diagnostic.message), hint=hint)

    def diagnostics(self, diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
        return [self.diagnostic(d) for d in diagnostics] if self else list(diagnostics)


def _url_parts(value: str) -> list[str]:
    """The parts of a url an engine quotes apart: an object store's request names the
    bucket (host) and the key (path, percent-encoded too) of `s3://bucket/key` on their own."""
    if "://" not in value:
        return []
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return []
    path = parts.path.strip("/")
    return [parts.netloc, path, urllib.parse.quote(path, safe=""), urllib.parse.quote(path)]


def _path_forms(value: str) -> list[str]:
    """The spellings an engine gives a local path: absolute and normalised (`./x` is quoted
    as `/cwd/x`, `a//b/` as `a/b`), links resolved, each also without its leading '/' (an
    object-store key). Only for a value that is a path: no scheme, or `file://`."""
    path = value[len("file://"):] if value.startswith("file://") else value
    if not path or "://" in path:
        return []
    forms = {os.path.normpath(path), os.path.abspath(path), os.path.realpath(path)}
    return [spelling for form in forms for spelling in (form, form.lstrip("/"))]


def _redactable(value: str) -> bool:
    return len(value) >= REDACT_MIN and value.lower() not in _PLAIN_WORDS


def _strings(data: Any) -> Iterable[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)
    elif isinstance(data, str):
        yield data
