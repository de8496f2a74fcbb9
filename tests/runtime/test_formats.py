"""Each `format` yields the documented batch type and shape, vectors included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import torch

from loaderkit.runtime import FormatError, unsupported_columns
from loaderkit.runtime.formats import column_to_numpy, column_to_tensor
from tests.runtime.support import DIM, build

BS = 16
ALL = {"id": "id", "label": "label", "emb": "emb", "text": "text"}


def first_batch(uri: str, fmt: str, columns: dict[str, str] | None = ALL) -> object:
    return next(iter(build(uri, format=fmt, columns=columns, batch_size=BS)))


def test_arrow_format_yields_record_batches(lance_uri: str) -> None:
    batch = first_batch(lance_uri, "arrow")
    assert isinstance(batch, pa.RecordBatch)
    assert batch.num_rows == BS
    assert batch.schema.names == ["id", "label", "emb", "text"]


def test_torch_format_yields_tensor_dict_with_vector_as_matrix(lance_uri: str) -> None:
    batch = first_batch(lance_uri, "torch", {"id": "id", "label": "label", "emb": "emb"})
    assert isinstance(batch, dict)
    assert batch["id"].shape == (BS,) and batch["id"].dtype == torch.int64
    assert batch["label"].dtype == torch.int32
    assert batch["emb"].shape == (BS, DIM) and batch["emb"].dtype == torch.float32
    ids = batch["id"]
    assert torch.equal(batch["emb"][:, 0], (ids * 10).float())


def test_torch_col_format_is_column_major_as_lancedbs(lance_uri: str) -> None:
    # LanceDB: "given C columns and R rows, the resulting Tensor will have shape (C, R)".
    batch = first_batch(lance_uri, "torch_col", {"id": "id", "label": "label"})
    assert isinstance(batch, torch.Tensor)
    assert batch.shape == (2, BS) and batch.is_contiguous()
    assert torch.equal(batch[1], batch[0] % 7)


def test_torch_col_vector_column_contributes_its_width_in_rows(lance_uri: str) -> None:
    batch = first_batch(lance_uri, "torch_col", {"id": "id", "emb": "emb"})
    assert batch.shape == (1 + DIM, BS)
    assert torch.equal(batch[1], batch[0] * 10)
    assert torch.equal(batch[1 + DIM - 1], batch[0] * 10 + DIM - 1)


@pytest.mark.parametrize("mode", ["block", "exact", "cache"])
def test_torch_col_shuffled_batches_are_column_major_too(lance_uri: str, mode: str) -> None:
    loader = build(lance_uri, format="torch_col", columns={"id": "id", "label": "label"},
                   type="shuffle", mode=mode, batch_size=BS)
    batches = list(loader)
    assert all(b.shape[0] == 2 for b in batches)
    ids = torch.cat([b[0] for b in batches])
    assert sorted(ids.tolist()) == list(range(len(ids)))
    assert all(torch.equal(b[1], b[0] % 7) for b in batches)


def test_numpy_format_yields_array_dict_with_vector_as_matrix(lance_uri: str) -> None:
    batch = first_batch(lance_uri, "numpy")
    assert isinstance(batch, dict)
    assert batch["emb"].shape == (BS, DIM)
    assert isinstance(batch["id"], np.ndarray) and batch["id"].shape == (BS,)
    assert batch["text"][0] == f"row {batch['id'][0]}"


def test_pandas_format_yields_dataframes(lance_uri: str) -> None:
    batch = first_batch(lance_uri, "pandas")
    assert isinstance(batch, pd.DataFrame)
    assert batch.shape == (BS, 4)


def test_polars_format_yields_dataframes(lance_uri: str) -> None:
    batch = first_batch(lance_uri, "polars")
    assert isinstance(batch, pl.DataFrame)
    assert batch.shape == (BS, 4)


def test_python_format_yields_row_dicts(lance_uri: str) -> None:
    batch = first_batch(lance_uri, "python")
    assert isinstance(batch, list) and len(batch) == BS
    assert batch[0]["text"] == f"row {batch[0]['id']}"
    assert len(batch[0]["emb"]) == DIM


def test_python_col_format_yields_column_lists(lance_uri: str) -> None:
    batch = first_batch(lance_uri, "python_col")
    assert isinstance(batch, dict)
    assert set(batch) == set(ALL)
    assert all(isinstance(v, list) and len(v) == BS for v in batch.values())


def test_string_column_in_torch_col_format_raises_format_error_naming_it(
        lance_uri: str) -> None:
    with pytest.raises(FormatError, match="'text'"):
        first_batch(lance_uri, "torch_col")


def test_torch_format_holds_strings_as_lists_as_default_collate_does(lance_uri: str) -> None:
    batch = first_batch(lance_uri, "torch")
    assert isinstance(batch["text"], list) and len(batch["text"]) == BS
    assert batch["text"] == [f"row {i}" for i in batch["id"].tolist()]
    assert isinstance(batch["emb"], torch.Tensor)


@pytest.mark.parametrize("mode", ["block", "exact", "cache"])
def test_torch_format_keeps_strings_with_their_rows_when_shuffled(lance_uri: str,
                                                                 mode: str) -> None:
    loader = build(lance_uri, format="torch", columns=ALL, type="shuffle", mode=mode,
                   batch_size=BS)
    for batch in loader:
        assert batch["text"] == [f"row {i}" for i in batch["id"].tolist()]


def test_torch_format_holds_nested_values_as_python_lists() -> None:
    from loaderkit.runtime.formats import convert

    batch = pa.record_batch({"tags": pa.array([["a", "b"], [], ["c"]]),
                             "meta": pa.array([{"k": 1}, {"k": 2}, None])})
    out = convert(batch, "torch")
    assert out["tags"] == [["a", "b"], [], ["c"]]
    assert out["meta"] == [{"k": 1}, {"k": 2}, None]


def test_unsupported_columns_names_only_what_a_format_cannot_hold() -> None:
    schema = pa.schema(
        [("id", pa.int64()), ("emb", pa.list_(pa.float32(), DIM)), ("text", pa.string())]
    )
    assert unsupported_columns(schema, "torch") == {}
    assert list(unsupported_columns(schema, "torch_col")) == ["text"]
    assert unsupported_columns(schema, "arrow") == {}


def test_vector_tensor_shares_arrow_memory_when_batch_is_a_slice(lance_uri: str) -> None:
    # Batches are zero-copy slices of one chunk: values must still line up per row.
    loader = build(lance_uri, type="full_scan", batch_size=BS)
    for batch in loader:
        assert torch.equal(batch["emb"][:, 3], (batch["id"] * 10 + 3).float())


@pytest.mark.parametrize(
    ("child_offset", "start"), [(0, 0), (0, 3), (2, 0), (2, 3)], ids=["whole", "sliced",
                                                                     "child-sliced", "both"]
)
def test_vector_columns_convert_honouring_the_arrays_offsets(child_offset: int, start: int) -> None:
    values = pa.array(np.arange(40, dtype=np.float32))
    vectors = pa.FixedSizeListArray.from_arrays(values.slice(child_offset, 30), 3)
    arr = vectors.slice(start, 5)
    expected = np.array(arr.to_pylist(), dtype=np.float32)
    assert np.array_equal(column_to_tensor("emb", arr).numpy(), expected)
    assert np.array_equal(column_to_numpy(arr), expected)
