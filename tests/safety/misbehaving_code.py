"""User code that misbehaves without raising: it returns nothing or the wrong object, or it
calls sys.exit. A real importable module, so spawn workers import it as a user's project.

The data's paths come from the environment (`LK_TEST_DB`), which spawn children inherit.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from typing import Any

CONNECTION_STRING = "db://team?api_key=sk-not-for-printing-0123456789"


def open_items(name: str) -> Any:
    import lancedb

    return lancedb.connect(os.environ["LK_TEST_DB"]).open_table(name)


# --- connection factories ----------------------------------------------------------------

def returns_none(name: str) -> Any:
    """Opens the table but forgets to return it."""
    open_items(name)


def returns_text(name: str) -> Any:
    return CONNECTION_STRING


def returns_number(name: str) -> Any:
    return 42


def returns_the_connection(name: str) -> Any:
    import lancedb

    return lancedb.connect(os.environ["LK_TEST_DB"])


def returns_none_in_workers(name: str) -> Any:
    """Works in the process that builds the loader; returns None in a spawn child."""
    return open_items(name) if multiprocessing.parent_process() is None else None


def exits_when_opening(name: str) -> Any:
    sys.exit(4)


def reads_an_unset_variable(name: str) -> Any:
    """Fails inside the standard library (os.environ's __getitem__)."""
    return open_items(os.environ["LK_TEST_NEVER_SET"])


def opens_the_recipes_uri(name: str) -> Any:
    """A factory that opens what the recipe's source says, as the recipe wrote it."""
    import lancedb

    from loaderkit.connections import recipe_source
    from loaderkit.vocabulary import resolve_text

    return lancedb.connect(resolve_text(recipe_source().uri)).open_table(name)


# --- transforms --------------------------------------------------------------------------

def edits_in_place(batch: dict[str, Any]) -> None:
    """Changes the batch and forgets to return it."""
    batch["score"] = batch["score"] * 2


def returns_a_count(batch: dict[str, Any]) -> int:
    return 7


def exits_on_a_batch(batch: dict[str, Any]) -> Any:
    sys.exit(3)


def parses_a_bad_caption(batch: dict[str, Any]) -> Any:
    """Fails inside the standard library (json's decoder)."""
    return _parse("{not json")


def _parse(text: str) -> Any:
    return json.loads(text)
