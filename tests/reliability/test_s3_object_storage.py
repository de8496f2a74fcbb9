"""Recipes over a real S3 API (moto on loopback) with credentials from ${env:...}."""

from __future__ import annotations

import pickle
import subprocess
import warnings
from pathlib import Path

import pytest

from loaderkit import load_recipe
from tests.reliability.support import (
    PYTHON,
    ROWS,
    S3,
    SECRET_VAR,
    recipe_for_s3,
    subprocess_env,
    write_recipe,
)


def _ids(loader) -> list[int]:
    ids: list[int] = []
    for batch in loader:
        ids += batch["id"].tolist()
    return ids


def _load(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LK408: workers without a transform
        return load_recipe(str(path))


def test_lance_reads_back_what_it_wrote_to_the_loopback_server(s3: S3) -> None:
    import lance

    uri = s3.write_dataset()
    dataset = lance.dataset(uri, storage_options=s3.storage_options())
    assert dataset.count_rows() == ROWS
    assert sorted(dataset.to_table()["id"].to_pylist()) == list(range(ROWS))


def test_shuffled_epoch_over_s3_with_two_spawn_workers_yields_every_row_once(
        s3: S3, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "s3.yaml", recipe_for_s3(s3.write_dataset()))
    loader = _load(recipe)
    ids = _ids(loader)
    assert sorted(ids) == list(range(ROWS))
    assert ids != sorted(ids)  # shuffled, not dataset order


def test_secret_is_absent_from_the_pickled_worker_dataset(s3: S3, tmp_path: Path) -> None:
    # In-process reading: the dataset holds an open Lance handle with the resolved
    # credentials, the worst case for pickling.
    recipe = write_recipe(tmp_path / "s3.yaml", recipe_for_s3(s3.write_dataset(), workers=0))
    loader = _load(recipe)
    next(iter(loader))  # the main process has opened the source by now
    for blob in (pickle.dumps(loader.dataset), pickle.dumps(loader.dataset, protocol=0)):
        assert s3.secret.encode() not in blob
        assert s3.secret.encode("utf-16-le") not in blob
    assert SECRET_VAR.encode() in pickle.dumps(loader.dataset)  # the name travels instead


def _cli(*args: str, s3: S3) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "loaderkit", *args], capture_output=True, text=True,
                          env=subprocess_env(), timeout=180)


@pytest.mark.parametrize("fmt", ["text", "json", "github", "sarif"])
def test_lint_never_prints_the_secret(s3: S3, tmp_path: Path, fmt: str) -> None:
    # An unknown option and a bad sampler make lint talk about the storage options.
    body = recipe_for_s3("s3://bucket/x.lance", extra_options="aws_secret_acess_key: oops\n")
    recipe = write_recipe(tmp_path / "s3.yaml", body.replace("type: shuffle", "type: shufle"))
    result = _cli("lint", "--format", fmt, str(recipe), s3=s3)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "LK" in result.stdout
    assert s3.secret not in result.stdout + result.stderr


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_build_never_prints_the_secret(s3: S3, tmp_path: Path, as_json: bool) -> None:
    recipe = write_recipe(tmp_path / "s3.yaml", recipe_for_s3(s3.write_dataset()))
    result = _cli("build", str(recipe), "--take", "3", *(["--json"] if as_json else []), s3=s3)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pinned" in result.stdout or '"pinned_version"' in result.stdout
    assert s3.secret not in result.stdout + result.stderr
    assert f"${{env:{SECRET_VAR}}}" in result.stdout  # shown as the reference, not the value


def test_build_error_over_s3_never_prints_the_secret(s3: S3, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "s3.yaml",
                          recipe_for_s3(f"s3://bucket/{'missing'}.lance"))
    for extra in ([], ["--json"]):
        result = _cli("build", str(recipe), *extra, s3=s3)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "LK401" in result.stdout
        assert s3.secret not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr


def test_a_live_dataset_on_an_object_store_reads_the_object_stores_blocks(
        s3: S3, tmp_path: Path) -> None:
    import lance

    from loaderkit.runtime import storage

    # Opened with storage options (credentials): live, read in this process only.
    dataset = lance.dataset(s3.write_dataset(), storage_options=s3.storage_options())
    recipe = write_recipe(tmp_path / "live.yaml", "loaderkit: 1\ncolumns: [id]\n"
                          "sampler:\n  type: shuffle\nloader:\n  batch_size: 64\n")
    loader = load_recipe(str(recipe), source=dataset)
    assert loader.row_sampler.spec.block_rows == storage.OBJECT_STORE_BLOCK_ROWS
    assert sorted(_ids(loader)) == list(range(ROWS))
