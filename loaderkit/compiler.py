"""The pipeline, end to end: read -> resolve -> validate -> plan -> bind -> check -> build.

Each stage returns what it made plus its diagnostics; the driver stops after a
stage that found errors (later stages would only repeat them), and raises
`RecipeError` with everything found so far.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loaderkit.errors import Diagnostic, Location, RecipeError, unique
from loaderkit.models import Recipe
from loaderkit.reading import Document, declares_recipe
from loaderkit.resolving import Overrides, resolve
from loaderkit.rules import rule
from loaderkit.validating import validate
from loaderkit.vocabulary import Redactor

if TYPE_CHECKING:
    from loaderkit.planning import Plan
    from loaderkit.runtime.loader import RecipeLoader
    from loaderkit.safety_report import SafetyReport

RECIPE_SUFFIXES = (".yaml", ".yml")


class LoaderkitWarning(UserWarning):
    """A warning diagnostic raised through `warnings` by `load_recipe`."""


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


def front(path: str | Path, overrides: Overrides | None = None, *, require_env: bool = True,
          live_source: bool | None = None
          ) -> tuple[Document | None, Recipe | None, list[Diagnostic]]:
    """The offline stages: nothing is opened, nothing of the user's is imported.

    `live_source`: whether `load_recipe(source=...)` gives the source; None (lint): not known,
    so a recipe whose source is `live: true` passes.

    No diagnostic holds the value of a variable the recipe reads (`redacted`)."""
    document, problems = resolve(path, overrides, require_env=require_env)
    if document is None:
        return None, None, problems
    recipe, found = validate(document, live_source=live_source)
    if recipe is not None and has_errors(found):
        recipe = None
    # One problem is reported once: a value the reader already refused (LK001: an int of
    # thousands of digits) is not refused again by the model it then fails.
    refused = {d.location for d in problems if d.code == "LK001"}
    found = [d for d in found if d.location not in refused]
    return document, recipe, redacted(document, problems + found)


def redacted(document: Document, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """`diagnostics` with the value of every `${env:NAME}` the recipe reads replaced by the
    reference, wherever it appears: in a value a rule quotes, an engine's error text, a
    user's exception. The one gate every diagnostic of a recipe passes before it is shown."""
    return Redactor.of_data(document.data).diagnostics(diagnostics)


def _exists(path: Path, test: str = "exists") -> bool:
    try:
        return bool(getattr(path, test)())
    except (OSError, ValueError):  # a name too long, a NUL in it
        return False


@dataclass
class Found:
    """What `lint PATH...` reads: `recipes`, and the YAML files it skipped in directories."""

    recipes: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def find_recipes(paths: Iterable[str | Path], *, skip_named: bool = False) -> Found:
    """A file named in `paths` is a recipe, whatever it holds (lint says what it lacks). In
    a directory, every *.yaml and *.yml file below it with a top-level `loaderkit:` key is
    one; other YAML files (CI workflows, pre-commit configs) are skipped.

    `skip_named`: judge named files the same way (a pre-commit hook is handed every staged
    YAML file by name); one that does not exist is still reported."""
    found = Found()
    for path in map(Path, paths):
        if not _exists(path, "is_dir"):
            skip = skip_named and _exists(path) and not declares_recipe(path)
            (found.skipped if skip else found.recipes).append(path)
            continue
        for file in sorted(p for p in path.rglob("*") if p.suffix in RECIPE_SUFFIXES
                           and p.is_file()):
            (found.recipes if declares_recipe(file) else found.skipped).append(file)
    return found


def lint(paths: Iterable[str | Path]) -> list[Diagnostic]:
    """Every recipe under `paths` (`find_recipes`), offline. A base shared by several
    children is reported once, and an unset variable (LK106) not on a line that already
    has an error."""
    problems: list[Diagnostic] = []
    for file in find_recipes(paths).recipes:
        if not _exists(file):
            problems.append(rule("LK007").at(Location(str(file)), "no such file or directory"))
            continue
        problems += front(file, require_env=False)[2]
    errors = {(d.file, d.line) for d in problems if d.is_error}
    return unique([d for d in problems if not (d.code == "LK106" and (d.file, d.line) in errors)])


@dataclass
class Compiled:
    plan: Plan
    loader: RecipeLoader
    safety: SafetyReport | None
    diagnostics: list[Diagnostic] = field(default_factory=list)


def compile_recipe(path: str | Path, overrides: Overrides | None = None, *,
                   source: Any = None, probe: bool = True,
                   background_probe: bool = False) -> Compiled:
    """Every stage; raises RecipeError listing all diagnostics if any is an error.

    Problems found at build are collected together: what the data says (columns,
    filter, formats) does not hide what the safety check says of a transform or a
    factory, and neither waits for the loader. A transform or factory that cannot
    cross into a worker (LK501/LK502), or a script without a main guard, is refused
    before the loader is built and before any process starts.

    `source`: a live LanceDB Table or lance.LanceDataset in place of the recipe's.
    `background_probe`: return without waiting for the spawn probe. The loader reads
    in this process meanwhile and starts its workers only once the probe passed; a
    failed probe's RecipeError is raised by the iteration that would start them.
    """
    from loaderkit.binding import bind
    from loaderkit.building import build
    from loaderkit.checking import check, check_references
    from loaderkit.main_guard import refuse_if_bootstrapping, refuse_unguarded_main
    from loaderkit.planning import plan as make_plan

    refuse_if_bootstrapping()

    document, recipe, problems = front(path, overrides, live_source=source is not None)
    if recipe is None or document is None or has_errors(problems):
        raise RecipeError(problems)
    live = None
    if source is not None:
        from loaderkit.runtime.sources import live_source

        live = live_source(source)
    plan, found = make_plan(recipe, document, live)
    problems += found
    if has_errors(problems):
        raise RecipeError(redacted(document, problems))
    refuse_unguarded_main(plan)
    plan, found = bind(plan, source)
    safety = check_references(plan)
    problems += found + safety.diagnostics
    if has_errors(problems):
        raise RecipeError(redacted(document, problems))
    loader, found = build(plan, source)
    problems += found
    if loader is None:
        raise RecipeError(redacted(document, problems))
    safety = check(plan, loader, probe=probe, background=background_probe, report=safety)
    problems += safety.diagnostics
    if has_errors(problems):
        raise RecipeError(redacted(document, problems))
    if safety.pending_probe is not None:
        loader.start_workers_after(safety.pending_probe)
    return Compiled(plan, loader, safety, redacted(document, unique(problems)))


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None, *,
                source: Any = None) -> RecipeLoader:
    """Compile a recipe into its DataLoader; raises RecipeError on any error diagnostic.

    `source`: a live LanceDB `Table` or `lance.LanceDataset` that takes the place of the
    recipe's source (a notebook's memory:// table, which no other process can open).
    The spawn probe runs in the background (see `compile_recipe`): the first batch
    does not wait seconds for a fresh interpreter to import torch.
    """
    compiled = compile_recipe(path, overrides, source=source, background_probe=True)
    for diagnostic in compiled.diagnostics:
        # stacklevel 3: the caller of loaderkit.load_recipe, which calls this function
        warnings.warn(str(diagnostic), LoaderkitWarning, stacklevel=3)
    return compiled.loader
