"""The command line: `loaderkit lint`, `loaderkit build`, `loaderkit schema`.

argparse rather than a CLI library: it is in the standard library, exits 2 on
misuse as docs/cli.md promises, and starts fast, which a pre-commit hook
needs. torch and lance are imported only by `build`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from loaderkit.errors import RecipeError
from loaderkit.report import FORMATS, render


def _positive(text: str) -> int:
    """`--take N`: a whole number of batches, at least 1 (argparse exits 2 otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    from loaderkit import __version__

    parser = argparse.ArgumentParser(
        prog="loaderkit",
        description="Compile YAML recipes into safe PyTorch DataLoaders over Lance data.",
        epilog="Exit status: 0 success; 1 the recipe has errors; 2 the command was misused. "
               "Reference: docs/cli.md.")
    parser.add_argument("--version", action="version", version=f"loaderkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lint = commands.add_parser("lint", help="check recipes offline (no data opened)",
                               description="Check recipes without opening data or starting "
                                           "processes; exit 1 if any has an error.")
    lint.add_argument("paths", nargs="+", metavar="PATH",
                      help="recipe files, or directories searched for *.yaml and *.yml")
    lint.add_argument("--format", choices=FORMATS, default="text", dest="output",
                      help="how to print diagnostics: text (default), json (one array), "
                           "github (workflow commands) or sarif (SARIF 2.1.0)")
    lint.add_argument("--skip-non-recipes", action="store_true",
                      help="skip named files without a top-level `loaderkit:` key too, as in "
                           "directories (for hooks handed every YAML file by name)")

    build = commands.add_parser("build", help="compile a recipe against its data",
                                description="Compile a recipe against the real data, print "
                                            "the DataLoader's object graph and the safety "
                                            "report; exit 1 on any error.")
    build.add_argument("recipe", metavar="RECIPE", help="the recipe file")
    build.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       dest="overrides", help="override a recipe key, e.g. loader.num_workers=8")
    build.add_argument("--take", type=_positive, metavar="N",
                       help="pull N batches through the real loader; report start-up (to the "
                            "first batch) and the steady rate (batches 2..N) apart")
    build.add_argument("--json", action="store_true", help="print the graph and report as JSON")
    build.add_argument("--no-probe", action="store_true",
                       help="skip the spawn probe (the other safety checks still run)")

    commands.add_parser("schema", help="print the recipe JSON Schema",
                        description="Print the recipe's JSON Schema (the same as "
                                    "schema/recipe.schema.json).")

    demo = commands.add_parser("demo", help="write a demo dataset, then build and run a recipe",
                               description="Write a small image-and-prompt demo dataset, a "
                                           "recipe over it, and pull batches through it.")
    demo.add_argument("--dir", default="demo", help="where to write the demo data (./demo)")
    demo.add_argument("--rows", type=_positive, default=20_000,
                      help="rows of demo data (20000)")
    demo.add_argument("--take", type=_positive, default=20,
                      help="batches to pull through the demo recipe's loader (20)")
    return parser


def _import_from_working_directory() -> None:
    """`module:attribute` references import from the working directory, as under `python -m
    loaderkit`: the console script's sys.path starts with its own bin directory instead.
    Spawned workers inherit this sys.path."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _import_from_working_directory()
    if args.command == "lint":
        return _lint(args.paths, args.output, args.skip_non_recipes)
    if args.command == "schema":
        from loaderkit.schema import schema_text

        sys.stdout.write(schema_text())
        return 0
    if args.command == "demo":
        return _demo(args)
    return _build(args)


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from loaderkit.demo import write_demo

    recipe = write_demo(Path(args.dir), args.rows)
    print(f"wrote {args.rows} demo rows under {args.dir}/; building {recipe}", file=sys.stderr)
    return main(["build", str(recipe), "--take", str(args.take)])


def _lint(paths: list[str], output: str, skip_named: bool = False) -> int:
    from loaderkit.compiler import find_recipes, has_errors, lint

    found = find_recipes(paths, skip_named=skip_named)
    diagnostics = lint(found.recipes)
    sys.stdout.write(render(diagnostics, output))
    # On stderr, so that stdout holds nothing but the report a tool parses.
    skipped = (f"skipped {len(found.skipped)} YAML file(s) without a top-level `loaderkit:` "
               "key: not recipes")
    if output == "text":
        errors = sum(d.is_error for d in diagnostics)
        summary = f"{errors} error(s), {len(diagnostics) - errors} warning(s)"
        print(summary + (f"; {skipped}" if found.skipped else ""), file=sys.stderr)
    elif found.skipped:
        print(f"loaderkit lint: {skipped}", file=sys.stderr)
    return 1 if has_errors(diagnostics) else 0


def _build(args: argparse.Namespace) -> int:
    from loaderkit.compiler import compile_recipe, redacted
    from loaderkit.showing import show_build, take_batches
    from loaderkit.vocabulary import Redactor

    try:
        compiled = compile_recipe(args.recipe, args.overrides, probe=not args.no_probe)
    except RecipeError as exc:
        sys.stdout.write(render(exc.diagnostics, "json" if args.json else "text"))
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    throughput = None
    status = 0
    if args.take is not None:
        from loaderkit.binding import user_code_raised
        from loaderkit.errors import RuntimeFailure, UserCodeError

        try:
            # Ctrl-C stops between batches; take_batches stops the workers, then raises.
            throughput = take_batches(compiled.loader, args.take, quiet=args.json)
        except KeyboardInterrupt:
            print("interrupted; workers stopped", file=sys.stderr)
            return 130
        except UserCodeError as exc:  # after the graph and the report, at the key that named it
            compiled.diagnostics += redacted(compiled.plan.document,
                                             [user_code_raised(compiled.plan, exc)])
            status = 1
        except RuntimeFailure as exc:  # the data failed mid-epoch: a message, not a traceback
            text = Redactor.of_data(compiled.plan.document.data)(str(exc))
            print(f"{args.recipe}: error while taking batches: {text}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(show_build(compiled, throughput, as_json=True), indent=2, default=str))
    else:
        sys.stdout.write(show_build(compiled, throughput, as_json=False))
    return status
