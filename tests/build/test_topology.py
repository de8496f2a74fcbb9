"""`sampler.rank/world_size: auto`: torchrun's RANK and WORLD_SIZE, else a single process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loaderkit.compiler import compile_recipe, front
from loaderkit.planning import distributed_topology, plan

Write = Callable[..., Path]

AUTO = """\
loaderkit: 1
source:
  uri: {data}/items.lance
columns: [id, score]
sampler:
  type: sharded_batch
  rank: auto
  world_size: auto
"""


@pytest.fixture
def no_torchrun(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    return monkeypatch


def sampler_of(path: Path) -> tuple[int, int]:
    document, recipe, problems = front(path)
    assert recipe is not None and document is not None, problems
    made, _ = plan(recipe, document)
    return made.sampler.rank, made.sampler.world_size


def test_torchrun_environment_gives_rank_and_world_size(no_torchrun: pytest.MonkeyPatch) -> None:
    no_torchrun.setenv("RANK", "3")
    no_torchrun.setenv("WORLD_SIZE", "8")
    assert distributed_topology() == (3, 8)


def test_no_torchrun_environment_and_no_process_group_gives_none(
        no_torchrun: pytest.MonkeyPatch) -> None:
    assert distributed_topology() is None


def test_only_one_of_rank_and_world_size_is_not_a_topology(
        no_torchrun: pytest.MonkeyPatch) -> None:
    no_torchrun.setenv("RANK", "1")
    assert distributed_topology() is None


def test_non_integer_torchrun_values_are_not_a_topology(no_torchrun: pytest.MonkeyPatch) -> None:
    no_torchrun.setenv("RANK", "one")
    no_torchrun.setenv("WORLD_SIZE", "2")
    assert distributed_topology() is None


def test_auto_reads_torchrun_environment(write_recipe: Write,
                                         no_torchrun: pytest.MonkeyPatch) -> None:
    no_torchrun.setenv("RANK", "1")
    no_torchrun.setenv("WORLD_SIZE", "2")
    assert sampler_of(write_recipe(AUTO)) == (1, 2)


def test_auto_without_torchrun_is_a_single_process(write_recipe: Write,
                                                   no_torchrun: pytest.MonkeyPatch) -> None:
    assert sampler_of(write_recipe(AUTO)) == (0, 1)


def test_an_explicit_rank_wins_over_the_environment(write_recipe: Write,
                                                    no_torchrun: pytest.MonkeyPatch) -> None:
    no_torchrun.setenv("RANK", "1")
    no_torchrun.setenv("WORLD_SIZE", "4")
    path = write_recipe(AUTO.replace("rank: auto", "rank: 2"))
    assert sampler_of(path) == (2, 4)


def test_auto_rank_outside_an_explicit_world_size_is_lk208(
        write_recipe: Write, no_torchrun: pytest.MonkeyPatch) -> None:
    no_torchrun.setenv("RANK", "3")
    no_torchrun.setenv("WORLD_SIZE", "4")
    path = write_recipe(AUTO.replace("world_size: auto", "world_size: 2"))
    document, recipe, _ = front(path)
    assert recipe is not None and document is not None
    assert [d.code for d in plan(recipe, document)[1]] == ["LK208"]


def test_each_torchrun_rank_reads_its_own_rows(write_recipe: Write,
                                               no_torchrun: pytest.MonkeyPatch) -> None:
    path = write_recipe(AUTO + "loader:\n  batch_size: 50\n")
    seen: list[list[int]] = []
    for rank in (0, 1):
        no_torchrun.setenv("RANK", str(rank))
        no_torchrun.setenv("WORLD_SIZE", "2")
        loader = compile_recipe(path, probe=False).loader
        seen.append([int(i) for batch in loader for i in batch["id"]])
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(300))
