"""Every code example in the README and docs/ runs, so none can rot.

Blocks run in order, per document, in a workspace holding the demo data, a copy of
`recipes/` and `docs/examples/`: Python blocks share one namespace (a later block
may use an earlier block's names), shell lines run as commands, recipe YAML blocks
must lint clean. A block right after `<!-- docs-test: skip (reason) -->` is skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loaderkit.compiler import lint
from loaderkit.demo import write_demo

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GENERATED = {"rules.md", "reference.md"}  # their examples are rule illustrations, bad on purpose
FENCE = re.compile(r"(<!-- docs-test: skip[^>]*-->\s*\n)?```(\w+)[^\n]*\n(.*?)```", re.DOTALL)
SHELL_PROGRAMS = ("loaderkit", "torchrun", "python")


def blocks(doc: Path) -> list[tuple[str, str]]:
    return [(lang, code) for skip, lang, code in FENCE.findall(doc.read_text()) if not skip]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    write_demo(root / "demo", rows=5_000)
    shutil.copytree(ROOT / "recipes", root / "recipes")
    shutil.copytree(ROOT / "schema", root / "schema")
    shutil.copytree(ROOT / "docs" / "examples", root / "docs" / "examples")
    return root


def _shell(line: str, cwd: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": str(ROOT)}
    result = subprocess.run(line, shell=True, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"$ {line}\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("doc", [d for d in DOCS if d.name not in GENERATED],
                         ids=lambda d: d.relative_to(ROOT).as_posix())
def test_examples_run(doc: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workspace)
    saved_environ = dict(os.environ)  # examples may export variables, as a user would
    try:
        _run_blocks(doc, workspace)
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)


def _run_blocks(doc: Path, workspace: Path) -> None:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for index, (lang, code) in enumerate(blocks(doc)):
        if lang == "python":
            exec(compile(code, f"{doc.name}[{index}]", "exec"), namespace)
        elif lang in ("bash", "sh", "console"):
            for line in code.splitlines():
                line = line.split("  #")[0].strip()
                if line.startswith(SHELL_PROGRAMS):
                    _shell(line, workspace)
        elif lang == "yaml" and "loaderkit:" in code:
            recipe = workspace / "recipes" / f"_{doc.stem}_{index}.yaml"
            recipe.write_text(code)
            errors = [d for d in lint([recipe]) if d.is_error]
            assert not errors, "\n".join(map(str, errors))

