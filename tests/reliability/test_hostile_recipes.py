"""Hostile recipe files through the whole front end: `loaderkit lint` (in process, via
`loaderkit.cli.main`) and `loaderkit.compiler.front`.

Whatever the bytes, the front end answers with located diagnostics: no exception escapes,
nothing hangs, memory stays bounded, and no code named or tagged in a recipe runs.
"""

from __future__ import annotations

import codecs
import contextlib
import importlib
import io
import os
import resource
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loaderkit.cli import main
from loaderkit.compiler import front
from tests.reliability.support import PYTHON, REPO, subprocess_env

MARKER_MODULE = "tests.reliability.import_marker_module"

VALID = """\
loaderkit: 1
name: hostile
source:
  uri: data/train.lance
  version: 3
  storage_options:
    aws_region: us-east-1
    aws_secret_access_key: ${env:LK_HOSTILE_SECRET,unset}
columns: {image: image, caption: "lower(prompt)"}
filter: "aesthetic_score > 5"
format: torch
transform: my_project.data:decode
sampler:
  type: shuffle
  seed: 42
  rank: auto
  world_size: auto
loader:
  batch_size: 128
  num_workers: 4
  multiprocessing_context: spawn
  persistent_workers: true
  prefetch_factor: 2
"""

KEYS = ["loaderkit", "name", "extends", "source", "uri", "table", "version", "storage_options",
        "connection_factory", "api_key", "columns", "filter", "format", "transform", "sampler",
        "type", "seed", "rank", "world_size", "loader", "batch_size", "num_workers",
        "multiprocessing_context", "persistent_workers", "prefetch_factor", "<<", "?", "-"]
TOKENS = ["\n", "\r\n", "\r", " ", "  ", "\t", ":", ": ", "- ", "[", "]", "{", "}", ",", "&a ",
          "*a", "&b [*a, *a, *a]", "!!python/object/apply:os.system ['touch x']", "!!binary ",
          "!!int ", "!!set ", "!!omap ", "!custom ", "%YAML 1.1\n", "---\n", "...\n", "|\n",
          ">-\n", "'", '"', "\\", "#", "\x00", "\ufeff", "\x85", "\u2028", "\ud800", "\x1b[31m",
          "${env:", "${env:X}", "${env:LK_HOSTILE_UNSET}", "${env:X,", "}", "1e400", ".nan",
          "0x_", "9" * 5000, "~", "null", "yes", "2024-01-01", "= ", "? ", "<<: *a\n"]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1",
             "cp1252", "shift_jis"]

RSS_GROWTH_LIMIT_MB = 200


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _check(path: Path) -> None:
    """The property: lint and front answer with located diagnostics, never an exception."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["lint", str(path)])
    assert status in (0, 1)
    assert "Traceback" not in out.getvalue() + err.getvalue()
    _, _, diagnostics = front(path)
    for diagnostic in diagnostics:
        assert diagnostic.location.line >= 1, diagnostic
        assert diagnostic.location.column >= 1, diagnostic
        assert diagnostic.code.startswith("LK"), diagnostic
        assert str(diagnostic)  # renders
    if status == 1:
        assert any(d.is_error for d in diagnostics)


def _encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="surrogatepass" if encoding.startswith("utf")
                       else "replace")


@st.composite
def mutated_recipes(draw: st.DrawFn) -> bytes:
    text = draw(st.sampled_from([VALID, VALID.replace("\n", "\r\n"), "loaderkit: 1\n", ""]))
    for _ in range(draw(st.integers(0, 12))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        piece = draw(st.one_of(st.sampled_from(TOKENS), st.sampled_from(KEYS),
                               st.text(max_size=8)))
        if action == "insert":
            text = text[:position] + piece + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 40)):]
        elif action == "replace":
            text = text[:position] + piece + text[position + len(piece):]
        else:
            end = min(len(text), position + draw(st.integers(1, 200)))
            text = text[:end] + text[position:end] * draw(st.integers(1, 5)) + text[end:]
    return _encode(text, draw(st.sampled_from(ENCODINGS)))


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from([*KEYS, "${env:LK_HOSTILE_UNSET}", "s3://b/x.lance", "m:f"]),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), inner, max_size=6),
    max_leaves=40)


@st.composite
def structured_recipes(draw: st.DrawFn) -> bytes:
    """Well-formed YAML of the recipe's vocabulary with arbitrary shapes and values."""
    data = yaml.safe_load(VALID)
    for _ in range(draw(st.integers(1, 6))):
        section = draw(st.sampled_from([*list(data), "extra"]))
        if isinstance(data.get(section), dict) and draw(st.booleans()):
            data[section][draw(st.sampled_from(KEYS))] = draw(json_like)
        else:
            data[section] = draw(json_like)
    if draw(st.booleans()):
        data = draw(json_like)
    text = yaml.safe_dump(data, allow_unicode=draw(st.booleans()),
                          default_flow_style=draw(st.sampled_from([None, True, False])))
    return _encode(text, draw(st.sampled_from(ENCODINGS)))


@st.composite
def huge_recipes(draw: st.DrawFn) -> bytes:
    """Deep nesting, alias bombs, long lines and wide documents, at sizes near the limits."""
    kind = draw(st.sampled_from(["deep_flow", "deep_block", "bomb", "long_line", "wide",
                                 "recursive_alias", "long_key"]))
    n = draw(st.integers(1, 1500))
    if kind == "deep_flow":
        opener = draw(st.sampled_from(["[", "{a: "]))
        closer = "]" if opener == "[" else "}"
        text = f"loaderkit: 1\nsource: {opener * n}1{closer * n}\n"
    elif kind == "deep_block":
        depth = min(n, 300)
        text = "".join(" " * i + f"k{i}:\n" for i in range(depth)) + " " * depth + "v\n"
    elif kind == "bomb":
        fanout, levels = draw(st.integers(2, 12)), draw(st.integers(2, 12))
        text = "l0: &l0 [" + ",".join(["x"] * fanout) + "]\n" + "".join(
            f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * fanout) + "]\n"
            for i in range(1, levels))
        text = "loaderkit: 1\nsource: {uri: x}\n" + text
    elif kind == "long_line":
        text = "loaderkit: 1\nsource: {uri: '" + "x" * (n * 200) + "'}\nname: " + "y" * n + "\n"
    elif kind == "wide":
        text = "loaderkit: 1\nsource:\n  uri: x\n" + "".join(f"k{i}: {i}\n" for i in range(n))
    elif kind == "recursive_alias":
        text = "loaderkit: 1\nsource: &s {uri: x, self: *s}\n"
    else:
        text = "loaderkit: 1\nsource: {uri: x}\n" + "k" * (n * 100) + ": 1\n"
    return _encode(text, draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16"])))


HUGE = huge_recipes()
HOSTILE = settings(max_examples=120, deadline=timedelta(seconds=10), derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.large_base_example])


@pytest.fixture(scope="module")
def rss_baseline() -> float:
    return _max_rss_mb()


@pytest.mark.parametrize("strategy", [
    st.binary(max_size=4096),
    st.text(max_size=2000).map(lambda t: _encode(t, "utf-8")),
    mutated_recipes(),
    structured_recipes(),
    HUGE,
], ids=["bytes", "text", "mutated", "structured", "huge"])
def test_any_file_gets_located_diagnostics_and_never_an_exception(
        strategy: st.SearchStrategy[bytes], tmp_path_factory: pytest.TempPathFactory,
        rss_baseline: float) -> None:
    folder = tmp_path_factory.mktemp("hostile")

    @given(strategy)
    def prop(raw: bytes) -> None:
        path = folder / "recipe.yaml"
        path.write_bytes(raw)
        _check(path)

    examples = 40 if strategy is HUGE else 120
    settings(HOSTILE, max_examples=examples)(prop)()
    growth = _max_rss_mb() - rss_baseline
    assert growth < RSS_GROWTH_LIMIT_MB, f"max RSS grew by {growth:.0f} MB"


# --- fixed hostile documents ---------------------------------------------------------------

def _billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


FIXED = {
    "billion_laughs": _billion_laughs().encode(),
    "deep_flow_100k": b"[" * 100_000 + b"]" * 100_000,
    "deep_mapping_flow": b"{a: " * 20_000 + b"1" + b"}" * 20_000,
    "recursive_alias": b"loaderkit: 1\nsource: &a {uri: x, again: *a}\n",
    "one_mb_line": b"loaderkit: 1\nsource: {uri: '" + b"x" * ((1 << 20) - 64) + b"'}\n",
    "over_one_mb": b"loaderkit: 1\n#" + b"x" * (1 << 20) + b"\n",
    "utf16_bom": "loaderkit: 1\nsource: {uri: x.lance}\n".encode("utf-16"),
    "utf16_no_bom": "loaderkit: 1\nsource: {uri: x.lance}\n".encode("utf-16-le"),
    "utf16_be_no_bom": "loaderkit: 1\nsource: {uri: x.lance}\n".encode("utf-16-be"),
    "utf32_bom": "loaderkit: 1\nsource: {uri: x.lance}\n".encode("utf-32"),
    "latin1": "loaderkit: 1\nname: caf\xe9\nsource: {uri: x.lance}\n".encode("latin-1"),
    "nul_bytes": b"loaderkit: 1\x00\nsource:\x00 {uri: x}\n",
    "bom_only": codecs.BOM_UTF8,
    "double_bom": codecs.BOM_UTF8 * 2 + b"loaderkit: 1\n",
    "bom_mid_file": b"loaderkit: 1\n" + codecs.BOM_UTF8 + b"source: {uri: x}\n",
    "empty": b"",
    "comments_only": b"# nothing\n# here\n",
    "lone_surrogate_key": b'loaderkit: 1\nsource: {uri: x}\n"\\ud800": 1\n',
    "huge_int": b"loaderkit: " + b"9" * 100_000 + b"\nsource: {uri: x}\n",
    "multi_document": b"loaderkit: 1\n---\nloaderkit: 2\n",
    "complex_keys": b"? [a, b]\n: 1\n? {a: 1}\n: 2\n",
    "binary_tag": b"loaderkit: 1\nsource: {uri: !!binary aGVsbG8=}\n",
    "merge_key_bomb": b"a: &a {x: 1}\nb: {<<: [*a, *a, *a]}\nloaderkit: 1\n",
    "cr_only_lines": b"loaderkit: 1\rsource:\r  uri: x\r  bad: \x85\r",
    "extends_dev_zero": b"loaderkit: 1\nextends: /dev/zero\nsource: {uri: x}\n",
    "extends_directory": b"loaderkit: 1\nextends: /\nsource: {uri: x}\n",
    "extends_nul": b'loaderkit: 1\nextends: "a\\0b"\nsource: {uri: x}\n',
    "env_unterminated": b"loaderkit: 1\nsource: {uri: '${env:', api_key: '${env:A'}\n",
}


@pytest.mark.parametrize("name", sorted(FIXED))
def test_hostile_document_gets_located_diagnostics_quickly(name: str, tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_bytes(FIXED[name])
    started = time.monotonic()
    _check(path)
    assert time.monotonic() - started < 20


def test_long_extends_chain_is_a_diagnostic_not_a_recursion_error(tmp_path: Path) -> None:
    count = 1500
    for i in range(count):
        (tmp_path / f"r{i}.yaml").write_text(f"loaderkit: 1\nextends: r{i + 1}.yaml\n")
    (tmp_path / f"r{count}.yaml").write_text("loaderkit: 1\nsource: {uri: x}\n")
    _check(tmp_path / "r0.yaml")


def test_text_output_does_not_pass_terminal_control_characters_through(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text('loaderkit: 1\nsource: {uri: x}\n"evil\\e]0;title\\a\\e[2J": 1\n')
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["lint", str(path)]) == 1
    assert "LK201" in out.getvalue()
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()


def test_one_megabyte_of_small_keys_lints_quickly_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "wide.yaml"
    text = "".join(f"k{i:x}: 1\n" for i in range(150_000))
    path.write_text(text[: (1 << 20) - 1])
    # The peak RSS of this process's own memory (VmHWM), in MB. Not ru_maxrss: Linux
    # carries that over exec from the parent, so after a test has loaded torch here the
    # child would report this process's size.
    probe = ("import re, sys\nfrom loaderkit.cli import main\n"
             "status = main(['lint', sys.argv[1]])\n"
             "status_text = open('/proc/self/status').read()\n"
             "print(int(re.search(r'VmHWM:\\s*(\\d+)', status_text).group(1)) // 1024)\n"
             "sys.exit(status)\n")
    try:
        result = subprocess.run([PYTHON, "-c", probe, str(path)], capture_output=True,
                                text=True, timeout=10, env=subprocess_env())
    except subprocess.TimeoutExpired:
        pytest.fail("lint of a 1 MB recipe took more than 10 s")
    assert result.returncode == 1, result.stderr
    assert int(result.stdout.strip().splitlines()[-1]) < 250


# --- code execution ------------------------------------------------------------------------

def test_lint_imports_none_of_the_references_a_recipe_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "imported"
    monkeypatch.setenv("LK_IMPORT_MARKER", str(marker))
    sys.modules.pop(MARKER_MODULE, None)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("loaderkit: 1\nsource:\n  uri: data.lance\n"
                      f"  connection_factory: {MARKER_MODULE}:fn\n"
                      f"transform: {MARKER_MODULE}:fn\n")
    _check(recipe)
    assert not marker.exists(), "lint imported a module the recipe names"
    assert MARKER_MODULE not in sys.modules
    # The marker works: importing the module does create it.
    importlib.import_module(MARKER_MODULE)
    assert marker.exists()
    sys.modules.pop(MARKER_MODULE, None)


def test_lint_subprocess_imports_none_of_the_references(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("loaderkit: 1\nsource: {uri: data.lance}\n"
                      f"transform: {MARKER_MODULE}:fn\n")
    for fmt in ("text", "json", "github", "sarif"):
        result = subprocess.run([PYTHON, "-m", "loaderkit", "lint", "--format", fmt, str(recipe)],
                                capture_output=True, text=True, timeout=60, cwd=REPO,
                                env=subprocess_env(LK_IMPORT_MARKER=str(marker)))
        assert result.returncode == 0, result.stdout + result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("document", [
    'loaderkit: 1\nsource: {{uri: x}}\nname: !!python/object/apply:os.system ["touch {m}"]\n',
    '!!python/object/apply:os.system ["touch {m}"]\n',
    'loaderkit: !!python/object/apply:subprocess.call [["touch", "{m}"]]\nsource: {{uri: x}}\n',
    'loaderkit: 1\nsource: !!python/object/new:os.system ["touch {m}"]\n',
    'loaderkit: 1\nsource: {{uri: x}}\n? !!python/object/apply:os.system ["touch {m}"]\n: 1\n',
    'loaderkit: 1\nsource: {{uri: x}}\nname: !!python/name:os.system\n',
    'loaderkit: 1\nsource: {{uri: x}}\nx: &a !!python/object/apply:os.system ["touch {m}"]\n'
    'name: *a\n',
], ids=["value", "top", "subprocess", "object_new", "key", "name", "alias"])
def test_python_yaml_tags_run_nothing(document: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "recipe.yaml"
    path.write_text(document.format(m=marker))
    _check(path)
    _, _, diagnostics = front(path)
    assert any(d.is_error for d in diagnostics)
    assert not marker.exists()
    assert not os.path.exists("pwned")
