"""The cache mode's compiled row gather (`loaderkit.runtime._gather.take_rows`), and that
the compiled pieces are built wherever a C compiler is."""

from __future__ import annotations

import shutil
import sysconfig

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from loaderkit.runtime import gathering
from loaderkit.runtime.samplers import permutation

take_rows = gathering.take_rows
needs_gather = pytest.mark.skipif(take_rows is None, reason="built without a C compiler")


def _columns(rows: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(rows)
    return (
        np.arange(rows, dtype=np.int64) * 3,
        rng.integers(0, 100, rows).astype(np.int32),
        rng.standard_normal((rows, 37)).astype(np.float32),  # a row not a whole cache line
        rng.integers(0, 255, (rows, 2, 3)).astype(np.uint8),
    )


def _outputs(columns: tuple[np.ndarray, ...], n: int) -> tuple[np.ndarray, ...]:
    return tuple(np.empty((n, *c.shape[1:]), c.dtype) for c in columns)


def _has_c_compiler() -> bool:
    return shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]) is not None


@pytest.mark.skipif(not _has_c_compiler(), reason="no C compiler: numpy's gather is used")
def test_the_gather_is_built_where_a_c_compiler_is() -> None:
    assert take_rows is not None


@pytest.mark.skipif(not _has_c_compiler(), reason="no C compiler: numpy's network is used")
def test_the_samplers_permutation_is_built_where_a_c_compiler_is() -> None:
    assert permutation.compiled_walk is not None


@needs_gather
@given(rows=st.integers(1, 300), data=st.data())
def test_take_rows_picks_the_rows_numpy_take_does(rows: int, data: st.DataObject) -> None:
    columns = _columns(rows)
    positions = np.array(
        data.draw(st.lists(st.integers(0, rows - 1), max_size=200)), dtype=np.int64
    )
    out = _outputs(columns, len(positions))
    take_rows(columns, positions, out)
    for column, got in zip(columns, out, strict=True):
        assert np.array_equal(got, np.take(column, positions, axis=0))


@needs_gather
@pytest.mark.parametrize("bad", [-1, 10])
def test_take_rows_refuses_a_position_outside_the_rows(bad: int) -> None:
    columns = _columns(10)
    out = _outputs(columns, 3)
    with pytest.raises(IndexError, match=f"position {bad} outside the 10 cached rows"):
        take_rows(columns, np.array([0, bad, 1], dtype=np.int64), out)


@needs_gather
def test_take_rows_refuses_positions_that_are_not_int64() -> None:
    columns = _columns(10)
    with pytest.raises(TypeError, match="int64"):
        take_rows(columns, np.array([0, 1], dtype=np.int32), _outputs(columns, 2))


@needs_gather
def test_take_rows_refuses_an_output_of_the_wrong_length() -> None:
    columns = _columns(10)
    with pytest.raises(ValueError, match="3 rows for 2 positions"):
        take_rows(columns, np.array([0, 1], dtype=np.int64), _outputs(columns, 3))


@needs_gather
def test_take_rows_refuses_an_output_row_of_another_width() -> None:
    source = np.zeros((10, 4), np.float32)
    with pytest.raises(ValueError, match="rows are 8 bytes, its source's 16"):
        take_rows((source,), np.array([0, 1], dtype=np.int64), (np.empty((2, 2), np.float32),))


@needs_gather
def test_take_rows_refuses_a_non_contiguous_source() -> None:
    source = np.zeros((10, 4), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="contiguous"):
        take_rows((source,), np.array([0], dtype=np.int64), (np.empty((1, 2), np.float32),))


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_gather_refuses_a_position_outside_the_rows_either_way(
    compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if compiled and take_rows is None:
        pytest.skip("built without a C compiler")
    if not compiled:
        monkeypatch.setattr(gathering, "take_rows", None)
    with pytest.raises(IndexError, match="outside the 10"):
        gathering.gather({"x": np.arange(10)}, np.array([3, 10]))
