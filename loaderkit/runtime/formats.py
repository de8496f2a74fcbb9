"""Arrow record batch -> the recipe's batch format.

Tensor conversions are zero-copy where Arrow allows (numeric columns without
nulls, fixed-size-list vectors), via DLPack: it shares the buffer without the
"non-writable NumPy array" warning `torch.from_numpy` gives for Arrow memory.
We do not reuse lancedb's torch format (it fails on fixed-size-list columns) nor
`tbl_to_tensor` (it fails on multi-chunk tables): we always convert one
contiguous record batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

from loaderkit.runtime.errors import FormatError
from loaderkit.runtime.gathering import gather
from loaderkit.runtime.spec import Format

TENSOR_FORMATS = ("torch", "torch_col")


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _vector(t: pa.DataType) -> bool:
    if isinstance(t, pa.FixedShapeTensorType):
        t = t.storage_type
    return pa.types.is_fixed_size_list(t) and _numeric(t.value_type)


def unsupported_columns(schema: pa.Schema, fmt: Format) -> dict[str, str]:
    """Alias of `tensor_incompatible_columns` (the name the build stage imports)."""
    return tensor_incompatible_columns(schema, fmt)


def tensor_incompatible_columns(schema: pa.Schema, fmt: Format) -> dict[str, str]:
    """Columns of `schema` that `fmt` cannot hold, each with a reason.

    Empty for formats that hold anything. The build stage turns each entry into a
    diagnostic before any worker starts.
    """
    if fmt not in TENSOR_FORMATS:
        return {}  # numpy holds anything (object arrays for strings and lists)
    return {
        f.name: f"type {f.type} has no tensor form (only numeric and fixed-size-list columns)"
        for f in schema
        if not (_numeric(f.type) or _vector(f.type))
    }


def _storage(arr: pa.Array) -> pa.Array:
    return arr.storage if isinstance(arr.type, pa.FixedShapeTensorType) else arr


def column_to_tensor(name: str, arr: pa.Array) -> torch.Tensor:
    """One Arrow column -> [B] tensor (scalars) or [B, D] tensor (vectors)."""
    arr = _storage(arr)
    if pa.types.is_fixed_size_list(arr.type) and _numeric(arr.type.value_type):
        if arr.null_count:
            raise FormatError(f"column {name!r} has null vectors; a tensor cannot hold them")
        return _flat_to_tensor(name, _vector_values(arr)).view(-1, arr.type.list_size)
    if _numeric(arr.type):
        return _flat_to_tensor(name, arr)
    raise FormatError(
        f"column {name!r} of type {arr.type} cannot become a tensor "
        "(only numeric and fixed-size-list columns can); choose another format or drop it"
    )


def _vector_values(arr: pa.FixedSizeListArray) -> pa.Array:
    """The vectors' values, row after row, without copying.

    `.values` ignores a sliced array's offset and length, so it is sliced by hand
    where they differ; flatten() does the same through a compute kernel, at ~4 µs
    a batch where this takes ~1.
    """
    width, values = arr.type.list_size, arr.values
    if arr.offset or len(values) != len(arr) * width:
        values = values.slice(arr.offset * width, len(arr) * width)
    return values


def _flat_to_tensor(name: str, arr: pa.Array) -> torch.Tensor:
    if arr.null_count and not pa.types.is_floating(arr.type):
        raise FormatError(f"column {name!r} has nulls; an integer/bool tensor cannot hold them")
    if not pa.types.is_boolean(arr.type) and not arr.null_count:
        return torch.from_dlpack(arr)
    # Bools are bit-packed and nulls need NaN filling: both need a copy anyway.
    return torch.from_numpy(np.array(arr.to_numpy(zero_copy_only=False)))


def column_to_numpy(arr: pa.Array) -> np.ndarray:
    arr = _storage(arr)
    if _vector(arr.type) and not arr.null_count:
        values = _vector_values(arr).to_numpy(zero_copy_only=False)
        return values.reshape(-1, arr.type.list_size)
    return arr.to_numpy(zero_copy_only=False)


def _named(batch: pa.RecordBatch) -> list[tuple[str, pa.Array]]:
    return list(zip(batch.schema.names, batch.columns, strict=True))


def _stack_columns(batch: pa.RecordBatch) -> torch.Tensor:
    """`torch_col`: [B, C]; vector columns contribute their width, so [B, sum of widths].

    Columns of different dtypes are promoted to a common dtype (torch rules).
    """
    parts = []
    for name, arr in _named(batch):
        t = column_to_tensor(name, arr)
        parts.append(t if t.dim() == 2 else t.unsqueeze(1))
    if not parts:
        return torch.empty((batch.num_rows, 0))
    dtype = parts[0].dtype
    for p in parts[1:]:
        dtype = torch.promote_types(dtype, p.dtype)
    return torch.cat([p.to(dtype) for p in parts], dim=1)


def convert(batch: pa.RecordBatch, fmt: Format) -> Any:
    """One record batch in the recipe's `format`."""
    if fmt == "arrow":
        return batch
    if fmt == "torch":
        return {n: column_to_tensor(n, a) for n, a in _named(batch)}
    if fmt == "torch_col":
        return _stack_columns(batch)
    if fmt == "numpy":
        return {n: column_to_numpy(a) for n, a in _named(batch)}
    if fmt == "pandas":
        return batch.to_pandas()
    if fmt == "polars":
        import polars as pl

        return pl.from_arrow(batch)
    if fmt == "python":
        return batch.to_pylist()
    if fmt == "python_col":
        return batch.to_pydict()
    raise FormatError(f"unknown format {fmt!r}")


def slice_batch(batch: Any, fmt: Format, start: int, stop: int) -> Any:
    """Rows [start, stop) of a batch already in `fmt`: views where the format allows.

    Used to cut a chunk converted in one piece (e.g. in a worker) into batches.
    pandas slices get a fresh 0-based index, as a batch converted on its own has.
    """
    if fmt in ("arrow", "polars"):
        return batch.slice(start, stop - start)
    if fmt in ("torch", "numpy", "python_col"):
        return {k: v[start:stop] for k, v in batch.items()}
    if fmt in ("torch_col", "python"):
        return batch[start:stop]
    if fmt == "pandas":
        return batch.iloc[start:stop].reset_index(drop=True)
    raise FormatError(f"unknown format {fmt!r}")


GATHER_FORMATS = ("torch", "torch_col", "numpy")


def gather_batch(batch: Any, fmt: Format, index: np.ndarray) -> Any:
    """Rows `index` (in that order) of a batch in one of `GATHER_FORMATS`, as a new batch.

    `gathering.gather` over the columns as numpy arrays, wrapped back with
    `torch.from_numpy`: torch's own gathers use its intra-op thread pool, which
    collapses when the cores are busy (the normal state of a host feeding a GPU).
    """
    if fmt == "torch":
        picked = gather({k: v.numpy() for k, v in batch.items()}, index)
        return {k: torch.from_numpy(v) for k, v in picked.items()}
    if fmt == "torch_col":
        return torch.from_numpy(gather({"": batch.numpy()}, index)[""])
    if fmt == "numpy":
        return gather(batch, index)
    raise FormatError(f"format {fmt!r} has no in-memory gather")
