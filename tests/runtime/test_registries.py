"""Each variant is one entry in one table, and each table names exactly the shared words."""

from __future__ import annotations

import subprocess
import sys

from loaderkit.runtime.formats import FORMAT_TABLE
from loaderkit.runtime.samplers import SAMPLERS
from loaderkit.runtime.sources import KINDS
from loaderkit.vocabulary import FORMATS, SAMPLER_TYPES, SOURCE_KINDS


def test_the_format_table_has_exactly_the_format_names() -> None:
    assert tuple(FORMAT_TABLE) == FORMATS


def test_the_sampler_registry_has_exactly_the_sampler_types() -> None:
    assert sorted(SAMPLERS) == sorted(SAMPLER_TYPES)


def test_the_source_kind_registry_has_exactly_the_source_kinds() -> None:
    assert sorted(KINDS) == sorted(SOURCE_KINDS)


def test_the_models_accept_exactly_the_vocabulary() -> None:
    from loaderkit.models import Recipe, Sampler

    schema = Recipe.model_json_schema()
    formats = schema["properties"]["format"]["enum"]
    samplers = Sampler.model_json_schema()["properties"]["type"]["enum"]
    assert tuple(formats) == FORMATS and tuple(samplers) == SAMPLER_TYPES


def test_the_planner_and_the_registries_load_neither_torch_nor_lance() -> None:
    code = ("import sys; import loaderkit.planning, loaderkit.runtime.samplers, "
            "loaderkit.runtime.sources; "
            "print([m for m in ('torch', 'lance', 'lancedb') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
