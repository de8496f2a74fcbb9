"""Generated documents match their generators, and CI runs what the README says."""

from __future__ import annotations

import re
from pathlib import Path

from loaderkit.schema import reference_text

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    first_block = re.search(r"```\w*\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert first_block is not None
    return [line for line in first_block.group(1).splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_recipe_reference_matches_the_models() -> None:
    assert (ROOT / "docs" / "reference.md").read_text() == reference_text()


def test_readme_first_block_holds_exactly_two_commands() -> None:
    assert len(readme_commands()) == 2


def test_ci_runs_the_readme_test_command() -> None:
    assert readme_commands()[1] in (ROOT / ".ci" / "run").read_text().splitlines()
