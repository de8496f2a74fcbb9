"""The front end of `tokenize:` and `pack:` (issue 25): lint rules, specs, build checks.

Lint (`lint_rules`) sees only the recipe; `specs` turns the validated recipe into the
runtime's TokenizeSpec / PackSpec (a tokenizer path relative to the file that names it);
`build_rules` checks them against the real data and the tokenizer file. Nothing here
imports torch or lance; `tokenizers` is imported only by the build checks.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loaderkit.errors import Diagnostic, Location
from loaderkit.models import Recipe
from loaderkit.reading import Document
from loaderkit.rules import rule
from loaderkit.runtime.spec import PackSpec, TokenizeSpec
from loaderkit.vocabulary import DECODABLE_FORMATS, PACKED_FORMATS


def lint_rules(document: Document, data: dict[str, Any]) -> Iterator[Diagnostic]:
    """LK225-LK229: what the recipe alone shows wrong about `tokenize` and `pack`."""
    tokenize, pack, columns = data.get("tokenize"), data.get("pack"), data.get("columns")
    named = [str(c) for c in columns] if isinstance(columns, list | dict) and columns else None
    if isinstance(tokenize, dict):
        for column in tokenize:
            if named is not None and column not in named:
                close = difflib.get_close_matches(str(column), named, n=1)
                yield rule("LK225").at(document.locate(("tokenize", column), key=True),
                                       f"tokenize names '{column}', which is not an output "
                                       "column", f"did you mean '{close[0]}'?" if close else
                                       "output columns: " + ", ".join(named))
    fmt = data.get("format", "torch")
    where_format = ("format",) if "format" in data else None
    if isinstance(pack, dict):
        column = pack.get("column")
        tokenized = list(tokenize) if isinstance(tokenize, dict) else []
        if isinstance(column, str) and column not in tokenized:
            yield rule("LK226").at(document.locate(("pack", "column")),
                                   f"pack reads '{column}', which is not a tokenized column",
                                   f"add tokenize: {{{column}: {{tokenizer: ...}}}}"
                                   if not tokenized else "tokenized columns: "
                                   + ", ".join(map(str, tokenized)))
        if isinstance(fmt, str) and fmt not in PACKED_FORMATS:
            yield rule("LK227").at(document.locate(where_format or ("pack",)),
                                   f"a packed batch comes as torch tensors or numpy arrays, not "
                                   f"format {fmt!r}", "use format: torch or format: numpy")
        if data.get("transform") is not None:
            yield rule("LK228").at(document.locate(("transform",)),
                                   "transform does not run on packed batches: packing happens "
                                   "in the main process, after the workers",
                                   "transform the packed batch in the training loop, or drop "
                                   "pack and transform the tokenized rows")
    elif isinstance(tokenize, dict) and tokenize and isinstance(fmt, str) \
            and fmt not in DECODABLE_FORMATS:
        yield rule("LK229").at(document.locate(where_format or ("tokenize",)),
                               f"format {fmt!r} has no named columns for tokenize to replace",
                               "use one of: " + ", ".join(DECODABLE_FORMATS))


def specs(recipe: Recipe, document: Document) -> tuple[tuple[TokenizeSpec, ...],
                                                          PackSpec | None]:
    """The runtime specs of `tokenize` and `pack`."""
    tokenize = []
    for column, entry in (recipe.tokenize or {}).items():
        holder = document.locate(("tokenize", column, "tokenizer")).file
        base = Path(holder).parent if holder and not holder.startswith("<") else Path.cwd()
        path = os.path.abspath(base / entry.tokenizer)
        packed = recipe.pack is not None and recipe.pack.column == column
        tokenize.append(TokenizeSpec(column, path, entry.add_bos, entry.add_eos,
                                     entry.bos_token, entry.eos_token, entry.pad_token, packed))
    pack = None
    if recipe.pack is not None:
        p = recipe.pack
        pack = PackSpec(p.column, p.seq_len, p.strategy, p.pad_id)
    return tuple(tokenize), pack


def build_rules(tokenize: tuple[TokenizeSpec, ...], document: Document,
                schemas: list[tuple[tuple[str, ...], Any]]) -> list[Diagnostic]:
    """LK419-LK422: each tokenizer loads, names the tokens asked for, reads a string column.
    `schemas`: (recipe key, what it delivers, None: unknown) of each source."""

    def locate(*path: str, key: bool = False) -> Location:
        return document.locate(path, key=key)

    problems: list[Diagnostic] = []
    for spec in tokenize:
        problems += _tokenizer_rules(spec, locate)
        for prefix, schema in schemas:
            problems += _text_column(spec, locate, prefix, schema)
    return problems


def _text_column(spec: TokenizeSpec, locate: Any, prefix: tuple[str, ...], schema: Any
                 ) -> list[Diagnostic]:
    where_source = f" in source '{prefix[1]}'" if prefix[0] == "sources" else ""
    if schema is None:
        return []
    if spec.column not in schema.names:
        names = list(schema.names)
        close = difflib.get_close_matches(spec.column, names, n=1)
        return [rule("LK422").at(locate("tokenize", spec.column, key=True),
                                 f"tokenize names '{spec.column}', which is not a column"
                                 f"{where_source}", f"did you mean '{close[0]}'?" if close
                                 else "columns: " + ", ".join(names))]
    import pyarrow as pa

    kind = schema.field(spec.column).type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or \
            pa.types.is_string_view(kind):
        return []
    return [rule("LK421").at(locate("tokenize", spec.column, key=True),
                             f"tokenize needs text, but column '{spec.column}' holds {kind}"
                             f"{where_source}", "tokenize a string column")]


def _tokenizer_rules(spec: TokenizeSpec, locate: Any) -> list[Diagnostic]:
    from loaderkit.runtime.tokenizing import special_id, tokenizer_file

    path = tokenizer_file(spec.tokenizer)
    at = locate("tokenize", spec.column, "tokenizer")
    if not path.is_file():
        return [rule("LK419").at(at, f"no tokenizer at {path}",
                                 "a tokenizer.json (or a directory holding one), relative to "
                                 "the recipe file; `Tokenizer.save(path)` writes one")]
    try:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises plain Exception for a bad file
        return [rule("LK419").at(at, f"{path} does not load as a tokenizers tokenizer: "
                                     f"{str(exc).splitlines()[0][:200]}",
                                 "save it with tokenizers' `Tokenizer.save`, or "
                                 "transformers' `tokenizer.save_pretrained`")]
    problems = []
    for kind in ("bos", "eos"):
        named = getattr(spec, f"{kind}_token")
        asked = getattr(spec, f"add_{kind}")
        if named is not None and tokenizer.token_to_id(named) is None:
            problems.append(rule("LK420").at(locate("tokenize", spec.column, f"{kind}_token"),
                                             f"the tokenizer has no token {named!r}",
                                             "name a token of its vocabulary"))
        elif asked is True and special_id(tokenizer, path, kind, named) is None:
            problems.append(rule("LK420").at(
                locate("tokenize", spec.column, f"add_{kind}"),
                f"add_{kind} needs a {kind} token, and {path.name} has none (no "
                f"{kind}_token, no tokenizer_config.json naming one, no usual name)",
                f"name it: {kind}_token: \"...\", or set add_{kind}: false"))
    return problems
