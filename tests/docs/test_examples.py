"""Every code example in the README and docs/ runs the way it is shown, so none can rot.

Each document runs in a workspace holding the demo data, a copy of `recipes/`,
`schema/` and `docs/examples/`, its blocks in order:
- each Python block is saved as a script and run with `python script.py`, as a
  reader who saves the example runs it (so spawn workers re-run its top level, and
  an example without a main guard fails here): every block stands on its own;
  a Python block whose first line names a file (`# my_project/data.py`) is saved
  there instead, as the module it shows;
- shell lines run as commands;
- recipe YAML blocks must lint clean.
A block right after `<!-- docs-test: skip (reason) -->` is skipped.
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
MODULE_FILE = re.compile(r"#\s*([\w/.-]+\.py)\s*$")
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


def _env(cwd: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT)]), "LANCE_LOG": "error",
            "LANCEDB_LOG": "error"}


def _shell(line: str, cwd: Path) -> None:
    result = subprocess.run(line, shell=True, cwd=cwd, env=_env(cwd), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"$ {line}\n{result.stdout}\n{result.stderr}"


def _script(path: Path, code: str, cwd: Path) -> None:
    path.write_text(code)
    result = subprocess.run([sys.executable, str(path)], cwd=cwd, env=_env(cwd),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{path.name}:\n{code}\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("doc", [d for d in DOCS if d.name not in GENERATED],
                         ids=lambda d: d.relative_to(ROOT).as_posix())
def test_examples_run(doc: Path, workspace: Path) -> None:
    for index, (lang, code) in enumerate(blocks(doc)):
        first = code.splitlines()[0] if code.strip() else ""
        module = MODULE_FILE.fullmatch(first)
        if lang == "python" and module is not None:
            path = workspace / module.group(1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(code)
        elif lang == "python":
            _script(workspace / f"{doc.stem}_{index}.py", code, workspace)
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
