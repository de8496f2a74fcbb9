"""Property: whatever bytes a recipe holds, the front end answers with located diagnostics.

Random text, random bytes, and valid recipes mutated by insertions, deletions and
bit flips (plus the nasty cases: tabs, NUL, aliases, tags, deep nesting, BOMs)
go through `reading.read_text` and `compiler.lint`; neither may raise, and every
diagnostic must carry a file, a 1-based line and column, and a catalogued code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loaderkit.compiler import lint
from loaderkit.errors import Diagnostic, Severity
from loaderkit.reading import read_text
from loaderkit.report import FORMATS, render
from loaderkit.rules import RULES

SEED = """\
# yaml-language-server: $schema=../schema/recipe.schema.json
loaderkit: 1
name: fuzz
source:
  uri: ${env:DATA_URI,data/train.lance}
  version: 12
  storage_options:
    aws_region: us-east-1
    aws_secret_access_key: ${env:AWS_SECRET_ACCESS_KEY,none}
  connection_factory: my_project.data:open_table
columns: {image: image, text: "lower(prompt)"}
filter: "aesthetic_score > 5"
format: torch
transform: my_project.data:decode
sampler: &s
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
  pin_memory: false
  drop_last: false
  batch_readahead: 8
"""

NASTY = [
    "loaderkit: 1\nsource:\n\turi: x\n",
    "loaderkit: 1\nname: 'abc\n",
    "loaderkit: 1\nname: a\x00b\n",
    "",
    "# only a comment\n",
    "- a\n- b\n",
    "a: &a [*a]\n",
    "a: &a\n  b: *a\n",
    "a: " + "[" * 80 + "]" * 80 + "\n",
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
    "loaderkit: 1\nsource: !!python/object/apply:os.system ['true']\n",
    "? !!python/name:os.system x\n: 1\n",
    "loaderkit: !!int nope\nsource: !!map [1]\n",
    "loaderkit: 1\nsource:\n  uri: s3://${env:B}/x\n  api_key: hunter2\n",
    "loaderkit: 1\n---\nloaderkit: 2\n",
    "<<: {a: 1}\nloaderkit: 1\n",
    "loaderkit: 1\nextends: \"a\\0b\"\n",
    "loaderkit: 1\nextends: [x]\n",
    "\ufeffloaderkit: 1\r\nsource:\r\n  uri: x\r\n",
    "loaderkit: 1\nsource:\n  uri: x\u2028  table: t\x85\n",
]

TOKENS = [b":", b": ", b"- ", b"\n", b"  ", b"\t", b"&a ", b"*a", b"!!python/object ", b"!!int ",
          b"!x ", b"{", b"}", b"[", b"]", b"'", b'"', b"${env:X}", b"${env:", b"\x00", b"\xff",
          b"\xfe\xff", b"#", b"? ", b"<<: ", b"|", b">", b"---\n", b"...\n", b"%YAML 1.1\n", b",",
          b"~", b"loaderkit", b"source", b"loader", b"num_workers", b"extends", b"9" * 30,
          "é".encode(), "\u2028".encode()]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from([SEED, *NASTY])).encode("utf-8"))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["insert", "delete", "flip"]))
        pos = draw(st.integers(0, len(data)))
        if op == "insert":
            data[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


ANY_BYTES = st.one_of(
    mutated(),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(NASTY).map(lambda t: t.encode("utf-8")),
    st.sampled_from(NASTY).map(lambda t: b"\xff\xfe" + t.encode("utf-16-le")),
)
ANY_TEXT = st.one_of(
    st.text(max_size=200),
    mutated().map(lambda b: b.decode("utf-8", "replace")),
    st.sampled_from(NASTY),
)

FUZZ = settings(max_examples=200, deadline=5000,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def assert_well_formed(diagnostics: list[Diagnostic], *, file: str | None = None) -> None:
    for d in diagnostics:
        assert isinstance(d, Diagnostic)
        assert d.location.file, d
        if file is not None:
            assert d.location.file == file, d
        assert d.location.line >= 1 and d.location.column >= 1, d
        assert d.code in RULES, d
        assert d.severity is RULES[d.code].severity, d
        assert isinstance(d.severity, Severity) and d.message, d


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(raw=ANY_BYTES)
def test_lint_never_raises_and_locates_every_diagnostic(raw: bytes, fuzz_dir: Path) -> None:
    path = fuzz_dir / "recipe.yaml"
    path.write_bytes(raw)
    diagnostics = lint([path])
    assert_well_formed(diagnostics)
    for fmt in FORMATS:
        text = render(diagnostics, fmt)
        if fmt in ("json", "sarif"):
            json.loads(text)


@FUZZ
@given(text=ANY_TEXT)
def test_read_text_never_raises_and_locates_every_diagnostic(text: str) -> None:
    document, diagnostics = read_text(text, "fuzz.yaml")
    assert_well_formed(diagnostics, file="fuzz.yaml")
    lines = len(text.splitlines()) + 1
    assert all(d.location.line <= lines for d in diagnostics), diagnostics
    if document is not None:
        assert isinstance(document.data, dict)
        for table in (document.keys, document.values):
            assert all(1 <= loc.line <= lines and loc.column >= 1 for loc in table.values())


LEAF = (st.none() | st.booleans() | st.integers(-3, 10**20)
        | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10)
        | st.sampled_from(["auto", "fork", "spawn", "db://x", "memory://", "${env:X}",
                           "${env:X,1}", "a:b", "torch", "shuffle", "x.lance", "a${env:Y}"]))
VALUES = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6) | st.sampled_from(["uri", "table"]),
                                        inner, max_size=3), max_leaves=6)


def section(model: type) -> st.SearchStrategy[object]:
    keys = [*model.model_fields, "bogus", "batch_sise"]  # type: ignore[attr-defined]
    return st.dictionaries(st.sampled_from(keys), VALUES, max_size=6) | VALUES


def recipes() -> st.SearchStrategy[dict[str, object]]:
    from loaderkit.models import Loader, Sampler, Source

    return st.fixed_dictionaries({}, optional={
        "loaderkit": st.sampled_from([1, 2, "1", None, True]) | VALUES,
        "source": section(Source), "sampler": section(Sampler), "loader": section(Loader),
        "columns": VALUES, "format": VALUES, "filter": VALUES, "transform": VALUES,
        "name": VALUES, "extends": VALUES, "zzz": VALUES})


@settings(max_examples=100, deadline=5000,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=recipes(),
       overrides=st.lists(st.text(max_size=20), max_size=3)
       | st.dictionaries(st.text(max_size=15), VALUES, max_size=3))
def test_well_formed_yaml_of_any_shape_gets_located_diagnostics(
        data: dict[str, object], overrides: object, fuzz_dir: Path) -> None:
    import yaml

    from loaderkit.compiler import front

    path = fuzz_dir / "shaped.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert_well_formed(lint([path]))
    assert_well_formed(front(path, overrides)[2])  # type: ignore[arg-type]
