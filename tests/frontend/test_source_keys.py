"""Every key of a recipe's `source` section reaches the runtime's spec: the source kinds
declare the keys they add (`SourceKind.recipe_keys`), and the planner carries exactly
those, so a key a kind adds cannot be dropped on the way without a test saying so."""

from __future__ import annotations

from loaderkit.models import Source
from loaderkit.planning import source_spec
from loaderkit.runtime.sources import KINDS, source_keys
from loaderkit.runtime.sources.kind import SHARED_KEYS
from loaderkit.vocabulary import EnvValue

# `live: true` names no data: the source is the object given to load_recipe(source=...).
NOT_CARRIED = {"live"}


def test_every_source_key_of_the_recipe_is_declared_by_a_source_kind() -> None:
    assert set(Source.model_fields) - NOT_CARRIED == set(source_keys())


def test_each_kind_declares_only_keys_it_adds() -> None:
    for kind in KINDS.values():
        assert not set(kind.recipe_keys) & set(SHARED_KEYS), kind.name


def test_the_planner_carries_every_source_key_onto_the_spec() -> None:
    src = Source(uri="${env:LK_URI}", table="items", version="${env:LK_TAG}",
                 storage_options={"aws_region": "${env:LK_REGION}", "allow_http": True},
                 connection_factory="pkg.mod:open_table", api_key="${env:LK_KEY}",
                 region="us-east-1", host_override="${env:LK_HOST}")
    spec = source_spec(src)
    assert (spec.uri, spec.table, spec.version) == (EnvValue("LK_URI"), "items",
                                                    EnvValue("LK_TAG"))
    assert spec.storage_options == {"aws_region": EnvValue("LK_REGION"), "allow_http": "true"}
    assert (spec.connection_factory, spec.api_key, spec.region, spec.host_override) == (
        "pkg.mod:open_table", EnvValue("LK_KEY"), "us-east-1", EnvValue("LK_HOST"))


def test_an_unset_key_stays_unset_on_the_spec() -> None:
    spec = source_spec(Source(uri="data/items.lance"))
    assert (spec.table, spec.version, spec.api_key, spec.connection_factory) == (None,) * 4
    assert spec.storage_options == {}
