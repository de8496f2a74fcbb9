"""Every front-end diagnostic code, triggered by a real recipe and located exactly.

One row per behaviour: the recipe files written to tmp_path, how the pipeline is
run (`lint`, or `build` = `front(..., require_env=True)` with overrides), and the
file, line, column, code and severity that must come out. A row fails if the
diagnostic is missing, misplaced, or joined by diagnostics it did not expect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from loaderkit import compiler, reading, resolving, validating
from loaderkit.compiler import front, lint
from loaderkit.rules import RULES

from .support import HEAD, where

UNSET = "LOADERKIT_TEST_SURELY_UNSET"


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    files: dict[str, str | bytes]
    at: tuple[str, int, int]  # file (a name under tmp_path, or "<...>" verbatim), line, column
    severity: str = "error"
    target: str = "recipe.yaml"
    mode: str = "lint"  # lint | build
    overrides: Any = None
    also: frozenset[str] = field(default_factory=frozenset)  # other codes allowed alongside
    says: str | None = None  # a fragment the message (or hint) must contain


def one(text: str | bytes, code: str, line: int, col: int, case_id: str, **kw: Any) -> Case:
    return Case(case_id, code, {"recipe.yaml": text}, ("recipe.yaml", line, col), **kw)


BOMB = "".join(
    [f"a: &a [{', '.join(['lol'] * 9)}]\n"]
    + [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
       for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
)

CASES = [
    # --- LK0xx: reading -----------------------------------------------------------------
    one("loaderkit: 1\nsource:\n\turi: x\n", "LK001", 3, 1, "tab-indentation", says="tabs"),
    one("loaderkit: 1\nname: 'abc\nsource:\n  uri: x\n", "LK001", 2, 7, "unterminated-string",
        says="close the quoted string"),
    one("loaderkit: 1\nname: a\x00b\nsource:\n  uri: x\n", "LK001", 2, 8, "nul-byte",
        says="NUL"),
    one(HEAD + "loader:\n  num_workers: !!int many\n", "LK001", 5, 16, "core-tag-bad-value",
        also=frozenset({"LK202"})),
    one("", "LK002", 1, 1, "empty-file"),
    one("# just a comment\n# and another\n", "LK002", 1, 1, "comment-only-file"),
    one("- loaderkit: 1\n- source: x\n", "LK003", 1, 1, "top-level-list"),
    one("just a string\n", "LK003", 1, 1, "top-level-scalar"),
    one(HEAD + "? [a, b]\n: 1\n", "LK003", 4, 3, "non-scalar-key"),
    one(HEAD + "loader:\n  num_workers: 2\n  num_workers: 8\n", "LK004", 6, 3, "duplicate-key",
        says="first defined at line 5"),
    one("a: " + "[" * 100 + "]" * 100 + "\n", "LK005", 1, 67, "deep-nesting"),
    one("a: &a [*a]\n", "LK005", 1, 4, "recursive-alias-sequence"),
    one("a: &a\n  b: *a\n", "LK005", 1, 4, "recursive-alias-mapping"),
    one("# " + "x" * (reading.MAX_BYTES + 1) + "\n", "LK005", 1, 1, "file-too-large"),
    one("loaderkit: 1\nsource: !!python/object:os.system {}\n", "LK006", 2, 9,
        "python-object-tag", also=frozenset({"LK203"})),
    one("loaderkit: 1\nsource:\n  uri: !!python/name:os.system\n", "LK006", 3, 8,
        "python-name-tag-on-scalar"),
    one(HEAD + "? !!python/object x\n: 1\n", "LK006", 4, 3, "tag-on-key",
        also=frozenset({"LK201"})),
    one(b"loaderkit: 1\n# caf\xe9\nsource:\n  uri: x\n", "LK007", 2, 6, "latin-1-byte",
        says="0xe9"),
    one("loaderkit: 1\nname: ét\xe9\n".encode().replace(b"\xc3\xa9\n", b"\xe9\n"),
        "LK007", 2, 9, "bad-byte-column-counts-characters"),
    one(b"\xef\xbb\xbfloaderkit: 1\n# \xff\n", "LK007", 2, 3, "bad-byte-after-utf8-bom",
        says="0xff"),
    one(b"\xff\xfe" + "loaderkit: 1\n".encode("utf-16-le") + b"x", "LK007", 2, 1,
        "utf16-odd-byte"),
    Case("missing-file", "LK007", {}, ("recipe.yaml", 1, 1)),
    # --- LK1xx: resolving ---------------------------------------------------------------
    one("loaderkit: 1\nextends: bsae.yaml\n", "LK101", 2, 10, "extends-missing-file",
        also=frozenset({"LK203"}), says="bsae.yaml"),
    Case("extends-cycle", "LK102",
         {"a.yaml": "loaderkit: 1\nextends: b.yaml\n",
          "b.yaml": "loaderkit: 1\nextends: a.yaml\nsource:\n  uri: x\n"},
         ("b.yaml", 2, 10), target="a.yaml", says="a.yaml -> b.yaml -> a.yaml"),
    one("loaderkit: 1\nextends: recipe.yaml\nsource:\n  uri: x\n", "LK102", 2, 10,
        "extends-itself"),
    one(f"loaderkit: 1\nsource:\n  uri: ${{env:{UNSET}}}\n", "LK103", 3, 8, "env-unset-at-build",
        mode="build", says=UNSET),
    Case("set-without-equals", "LK104", {"recipe.yaml": HEAD},
         ("<--set loader.num_workers>", 1, 1), mode="build", overrides=["loader.num_workers"]),
    Case("set-into-a-scalar", "LK104", {"recipe.yaml": HEAD}, ("<--set source.uri.x>", 1, 14),
         mode="build", overrides=["source.uri.x=1"]),
    Case("set-empty-key-part", "LK104", {"recipe.yaml": HEAD}, ("<--set loader..x>", 1, 11),
         mode="build", overrides=["loader..x=1"]),
    Case("overrides-dict-into-a-scalar", "LK104", {"recipe.yaml": HEAD},
         ("<overrides['source.uri.x']>", 1, 1), mode="build", overrides={"source.uri.x": 1}),
    one(HEAD + "loader:\n  num_workers: ${env:WORKERS,lots}\n", "LK202", 5, 16,
        "env-default-not-an-int", says="${env:WORKERS,lots}"),
    one(HEAD + "loader:\n  pin_memory: ${env:PIN,maybe}\n", "LK202", 5, 15,
        "env-default-not-a-bool", says="got 'maybe'"),
    one("loaderkit: 1\nsource:\n  uri: s3://${env:BUCKET,b}/x\n", "LK105", 3, 8,
        "partial-env-reference"),
    # An unclosed reference in a number field: one diagnostic, not also LK202 for its type.
    one(HEAD + "loader:\n  num_workers: ${env:NW\n", "LK105", 5, 16, "unclosed-env-reference",
        says="not closed"),
    one(f"loaderkit: 1\nsource:\n  uri: ${{env:{UNSET}}}\n", "LK106", 3, 8, "env-unset-at-lint",
        severity="warning"),
    one(HEAD + "transform: ${env:TRANSFORM,pkg.mod:fn}\n", "LK107", 4, 12, "env-in-transform",
        says="cannot be read from the environment"),
    # --- LK2xx: validating --------------------------------------------------------------
    one(HEAD + "loader:\n  batch_sise: 4\n", "LK201", 5, 3, "unknown-key-did-you-mean",
        says="did you mean 'batch_size'?"),
    one(HEAD + "quux: red\n", "LK201", 4, 1, "unknown-top-level-key", says="known keys"),
    one(HEAD + "loader:\n  batch_size: lots\n", "LK202", 5, 15, "wrong-type", says="'lots'"),
    one(HEAD + "loader:\n  batch_size: 0\n", "LK202", 5, 15, "out-of-range"),
    one(HEAD + "format: torchh\n", "LK202", 4, 9, "unknown-literal-did-you-mean",
        says="did you mean 'torch'?"),
    one(HEAD + "extends: 5\n", "LK202", 4, 10, "extends-not-a-string"),
    one("loaderkit: 1\nformat: torch\n", "LK203", 1, 1, "missing-source", says="'source'"),
    one("loaderkit: 1\nsource:\n  table: t\n", "LK203", 2, 1, "missing-source-uri",
        says="'uri' in 'source'"),
    one("source:\n  uri: x\n", "LK203", 1, 1, "missing-version", says="'loaderkit'"),
    one("source:\n  uri: x\n", "LK203", 1, 1, "missing-version-hint", says="`loaderkit: 1`"),
    one("loaderkit: 2\nsource:\n  uri: x\n", "LK204", 1, 12, "unknown-version"),
    one(HEAD + "transform: decode\n", "LK205", 4, 12, "transform-not-module-attribute"),
    one("loaderkit: 1\nsource:\n  uri: x\n  connection_factory: my.mod.open\n", "LK205", 4, 23,
        "connection-factory-not-module-attribute"),
    one(HEAD + "loader:\n  persistent_workers: true\n", "LK206", 5, 23,
        "persistent-workers-without-workers"),
    one(HEAD + "loader:\n  num_workers: 0\n  prefetch_factor: 2\n", "LK206", 6, 20,
        "prefetch-factor-without-workers"),
    one(HEAD + "loader:\n  num_workers: 2\n  multiprocessing_context: fork\n", "LK207", 6, 28,
        "fork-with-workers"),
    one(HEAD + "sampler:\n  rank: 2\n  world_size: 2\n", "LK208", 5, 9, "rank-not-below-world"),
    one("loaderkit: 1\nsource:\n  uri: memory://\n", "LK209", 3, 8, "memory-without-table"),
    one("loaderkit: 1\nsource:\n  uri: db://my-project\n", "LK209", 3, 8, "db-without-table"),
    one("loaderkit: 1\nsource:\n  uri: memory://\n  table: t\nloader:\n  num_workers: 2\n",
        "LK210", 3, 8, "memory-with-workers"),
    one("loaderkit: 1\nsource:\n  uri: data/db\n  table: t\n  api_key: ${env:K,x}\n", "LK211",
        5, 3, "api-key-on-non-db-source", severity="warning"),
    one("loaderkit: 1\nsource:\n  uri: data/train.lance\n  table: t\n", "LK211", 4, 3,
        "table-on-lance-dataset", severity="warning"),
    one(HEAD + "splits:\n  by: id\n  fractions: {train: 0.9, val: 0.1}\nsplit: trian\n",
        "LK214", 7, 8, "unknown-split-did-you-mean", says="did you mean 'train'?"),
    one(HEAD + "splits:\n  by: id\n  fractions: {train: 0.9, val: 0.2}\n", "LK215", 6, 14,
        "split-fractions-above-one", says="1.1"),
    one(HEAD + "splits:\n  by: id\n  fractions: {train: 0}\n", "LK215", 6, 22,
        "split-fraction-zero"),
    one(HEAD + "split: train\n", "LK216", 4, 8, "split-without-splits"),
    one(HEAD + "sources:\n  web: {uri: w.lance}\n", "LK217", 4, 1, "source-and-sources"),
    one(HEAD + "mixture:\n  stop: all_exhausted\n", "LK218", 4, 1, "mixture-without-sources",
        severity="warning"),
    one("loaderkit: 1\nsources:\n  a: {uri: a.lance}\nsampler:\n  type: sharded_fragment\n",
        "LK219", 5, 9, "mixture-with-sharded-fragment"),
    one(HEAD + 'filter: "id > 1) OR (1=1"\n', "LK403", 4, 16, "filter-closes-what-it-never-opened",
        says="')' that closes no '('"),
    one("loaderkit: 1\nsources:\n  a: {uri: a.lance, filter: 'id > 0; DROP TABLE t'}\n",
        "LK403", 3, 36, "source-filter-with-a-second-statement", says="';'"),
    one("loaderkit: 1\nsources:\n  a: {uri: a.lance, weight: 0}\n", "LK202", 3, 29,
        "mixture-weight-not-positive"),
    one("loaderkit: 1\nsources:\n  a: {uri: a.lance, weight: 1.0e-7}\n  b: {uri: b.lance}\n",
        "LK221", 3, 29, "mixture-weights-too-far-apart", says="1,000,000"),
    one("loaderkit: 1\nsources:\n  a: {uri: a.lance, wieght: 2}\n", "LK201", 3, 21,
        "unknown-key-in-a-source", says="did you mean 'weight'?"),
    one("loaderkit: 1\nsources:\n  a: {table: t}\n", "LK203", 3, 3,
        "source-of-a-mixture-without-uri", says="'uri' in 'sources.a'"),
    one("loaderkit: 1\nsource:\n  live: false\n", "LK203", 2, 1, "source-not-live-without-uri",
        says="'uri' in 'source'"),
    one("loaderkit: 1\nsource:\n  live: true\n  uri: x.lance\n", "LK220", 3, 3,
        "live-source-with-other-keys", says="'uri' would be ignored"),
    one("loaderkit: 1\nsources:\n  a: {uri: a.lance, live: true}\n", "LK220", 3, 21,
        "live-in-a-source-of-a-mixture"),
    one("loaderkit: 1\nsource:\n  uri: data/x.lance\n  cache: {max_gb: 10}\n", "LK230", 4, 3,
        "cache-on-a-local-path", says="already on this machine", severity="warning"),
    one("loaderkit: 1\nsource:\n  uri: db://proj\n  table: t\n  cache: {}\n", "LK230", 5, 3,
        "cache-on-a-remote-lancedb-table", says="LanceDB table", severity="warning"),
    one("loaderkit: 1\nsources:\n  a: {uri: a.lance, cache: {dir: /tmp/c}}\n", "LK230", 3, 21,
        "cache-on-a-local-source-of-a-mixture", says="'sources.a.cache'", severity="warning"),
    one("loaderkit: 1\nsource:\n  uri: s3://b/x.lance\n  cache: {dir: 's3://b/c'}\n", "LK231",
        4, 16, "cache-dir-is-a-uri"),
    one("loaderkit: 1\nsource:\n  uri: s3://b/x.lance\n  cache: {max_gb: 0}\n", "LK202", 4, 19,
        "cache-max-gb-not-positive"),
    one("loaderkit: 1\nsource:\n  uri: s3://b/x.lance\n  cache: {max_gb: lots}\n", "LK202", 4,
        19, "cache-max-gb-not-a-number"),
    one(HEAD + "columns: [img, prompt]\ndecode:\n  image: {type: image}\n", "LK212", 6, 3,
        "decode-names-a-column-not-selected", says="did you mean 'img'?"),
    one(HEAD + "format: arrow\ndecode:\n  image: {type: image}\n", "LK213", 4, 9,
        "decode-with-a-format-without-named-columns"),
    # --- LK301: secrets -----------------------------------------------------------------
    one("loaderkit: 1\nsource:\n  uri: db://p\n  table: t\n  api_key: sk-live-0123456789\n",
        "LK301", 5, 12, "api-key-in-clear"),
    one("loaderkit: 1\nsource:\n  uri: s3://b/t.lance\n  storage_options:\n"
        "    aws_secret_access_key: wJalrXUtnFEMIK7MDENG\n", "LK301", 5, 28,
        "storage-option-secret-in-clear"),
    one("loaderkit: 1\nsource:\n  uri: s3://b/t.lance\n  storage_options:\n"
        "    session_token: 123456789\n", "LK301", 5, 20, "numeric-secret-in-clear"),
    # --- LK506: a validation-time warning ----------------------------------------------
    one(HEAD + "loader:\n  num_workers: 2\n  multiprocessing_context: fork\n  allow_fork: true\n",
        "LK506", 6, 28, "fork-allowed-by-allow-fork", severity="warning"),
    # --- overrides: diagnostics point at the override, not the recipe -------------------
    Case("set-unknown-key", "LK201", {"recipe.yaml": HEAD}, ("<--set loader.batch_sise>", 1, 19),
         mode="build", overrides=["loader.batch_sise=3"], says="did you mean 'batch_size'?"),
    Case("set-wrong-type", "LK202", {"recipe.yaml": HEAD}, ("<--set loader.num_workers>", 1, 20),
         mode="build", overrides=["loader.num_workers=lots"]),
    Case("set-fork", "LK207", {"recipe.yaml": HEAD},
         ("<--set loader.multiprocessing_context>", 1, 32), mode="build",
         overrides=["loader.num_workers=2", "loader.multiprocessing_context=fork"]),
    Case("overrides-dict-wrong-type", "LK202", {"recipe.yaml": HEAD},
         ("<overrides['loader.num_workers']>", 1, 1), mode="build",
         overrides={"loader.num_workers": "lots"}),
    Case("overrides-dict-unknown-key", "LK201", {"recipe.yaml": HEAD},
         ("<overrides['loader.batch_sise']>", 1, 1), mode="build",
         overrides={"loader.batch_sise": 3}),
    # --- extends: an error inherited from a base points into the base -------------------
    Case("inherited-unknown-key", "LK201",
         {"base.yaml": HEAD + "loader:\n  batch_sise: 4\n",
          "child.yaml": "loaderkit: 1\nextends: base.yaml\nloader:\n  num_workers: 2\n"},
         ("base.yaml", 5, 3), target="child.yaml"),
    Case("inherited-wrong-type", "LK202",
         {"base.yaml": HEAD + "loader:\n  batch_size: lots\n",
          "child.yaml": "loaderkit: 1\nextends: base.yaml\n"},
         ("base.yaml", 5, 15), target="child.yaml"),
    Case("inherited-cross-field", "LK206",
         {"base.yaml": HEAD + "loader:\n  persistent_workers: true\n",
          "child.yaml": "extends: base.yaml\nsampler:\n  seed: 3\n"},
         ("base.yaml", 5, 23), target="child.yaml"),
    Case("inherited-syntax-error", "LK001",
         {"sub/base.yaml": "loaderkit: 1\nsource:\n\turi: x\n",
          "child.yaml": "loaderkit: 1\nextends: sub/base.yaml\nsource:\n  uri: y\n"},
         ("sub/base.yaml", 3, 1), target="child.yaml"),
    Case("child-overrides-base-value", "LK207",
         {"base.yaml": HEAD + "loader:\n  num_workers: 0\n  multiprocessing_context: fork\n",
          "child.yaml": "extends: base.yaml\nloader:\n  num_workers: 4\n"},
         ("base.yaml", 6, 28), target="child.yaml"),
]

# --- LK225-LK229: tokenize and pack (issue 25) ---------------------------------------
TOK = "tokenize:\n  text: {tokenizer: bpe.json}\n"
CASES += [
    one(HEAD + "columns: [text]\ntokenize:\n  txt: {tokenizer: bpe.json}\n", "LK225", 6, 3,
        "tokenize-unknown-column", says="did you mean 'text'"),
    one(HEAD + "pack:\n  column: text\n  seq_len: 64\n", "LK226", 5, 11,
        "pack-column-not-tokenized", says="add tokenize"),
    one(HEAD + "format: pandas\n" + TOK + "pack: {column: text, seq_len: 64}\n", "LK227", 4, 9,
        "pack-format"),
    one(HEAD + "transform: m:f\n" + TOK + "pack: {column: text, seq_len: 64}\n", "LK228", 4,
        12, "pack-with-transform"),
    one(HEAD + "format: arrow\n" + TOK, "LK229", 4, 9, "tokenize-needs-named-columns"),
    one(HEAD + TOK + "pack: {column: text, seq_len: 1}\n", "LK202", 6, 31, "seq-len-too-small"),
]

# The codes the offline front end can emit: read, resolve, validate, secrets, and LK506.
FRONT_END_CODES = {c for c in RULES if c < "LK400"} | {"LK506"}


def run(case: Case, tmp_path: Path) -> list[Any]:
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    target = tmp_path / case.target
    if case.mode == "lint":
        return lint([target])
    return front(target, case.overrides, require_env=True)[2]


def expected_file(name: str, tmp_path: Path) -> str:
    return name if name.startswith("<") else str(tmp_path / name)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_diagnostic_is_reported_at_its_location(case: Case, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    for name in ("WORKERS", "PIN", "BUCKET", "K", "NW"):
        monkeypatch.delenv(name, raising=False)
    diagnostics = run(case, tmp_path)
    file, line, column = case.at
    expected = (expected_file(file, tmp_path), line, column, case.code, case.severity)
    assert expected in [where(d) for d in diagnostics], "\n".join(map(str, diagnostics))
    unexpected = {d.code for d in diagnostics} - {case.code} - case.also
    assert not unexpected, "\n".join(map(str, diagnostics))
    if case.says is not None:
        found = [d for d in diagnostics if where(d) == expected]
        assert any(case.says in f"{d.message} {d.hint}" for d in found), found


def test_every_front_end_code_has_a_case() -> None:
    assert {c.code for c in CASES} >= FRONT_END_CODES


def test_every_code_the_front_end_source_emits_is_in_the_catalogue_and_has_a_case() -> None:
    emitted: set[str] = set()
    for module in (reading, resolving, validating, compiler):
        source = Path(module.__file__ or "").read_text(encoding="utf-8")
        emitted |= set(re.findall(r'rule\("(LK\d{3})"\)', source))
    assert emitted, "no rule(...) calls found: the pattern is out of date"
    assert emitted <= set(RULES)
    assert emitted <= {c.code for c in CASES}


def test_case_severities_match_the_catalogue() -> None:
    for case in CASES:
        assert str(RULES[case.code].severity) == case.severity, case.id


def test_billion_laughs_is_refused_fast_and_small(write: Any) -> None:
    import time
    import tracemalloc

    path = write("bomb.yaml", BOMB)
    started = time.perf_counter()
    tracemalloc.start()
    try:
        diagnostics = lint([path])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert [(d.location.file, d.location.line, d.code) for d in diagnostics] == [
        (str(path), 1, "LK005")]
    assert 1 <= diagnostics[0].location.column <= len(BOMB.splitlines()[0])
    assert elapsed < 10, elapsed
    assert peak < 200 * 2**20, peak  # 9**9 nodes would need hundreds of GiB


def test_recipe_with_three_unrelated_problems_reports_all_three(write: Any) -> None:
    path = write("three.yaml", "loaderkit: 1\nsource:\n  uri: x\n  tabel: t\nformat: torchh\n"
                               "loader:\n  batch_size: -1\n")
    got = sorted((d.location.line, d.location.column, d.code) for d in lint([path]))
    assert got == [(4, 3, "LK201"), (5, 9, "LK202"), (7, 15, "LK202")]


def test_type_error_does_not_hide_cross_field_problems(write: Any) -> None:
    path = write("mixed.yaml", HEAD + "transform: decode\nloader:\n  batch_size: lots\n"
                                      "  num_workers: 2\n  multiprocessing_context: fork\n")
    assert sorted(d.code for d in lint([path])) == ["LK202", "LK205", "LK207"]
