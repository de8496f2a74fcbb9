"""Batch formats: one entry per `format` name, in one table that every stage consults.

A format says how an Arrow record batch becomes what the user receives, in two
steps: `convert` makes the *held* form, which the loader slices into batches and
gathers shuffled rows from; `finish` turns one held batch into the delivered
batch. Most formats deliver what they hold; `torch_col` holds a dict of tensors
(so it slices and gathers like `torch`) and stacks each batch column-major.

Tensor conversions are zero-copy where Arrow allows (numeric columns without
nulls, fixed-size-list vectors), via DLPack: it shares the buffer without the
"non-writable NumPy array" warning `torch.from_numpy` gives for Arrow memory.
We do not reuse lancedb's torch format (it fails on fixed-size-list columns) nor
`tbl_to_tensor` (it fails on multi-chunk tables): we always convert one
contiguous record batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from loaderkit.errors import FormatError
from loaderkit.runtime.gathering import gather

Arrays = dict[str, np.ndarray]


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def _vector(t: pa.DataType) -> bool:
    if isinstance(t, pa.FixedShapeTensorType):
        t = t.storage_type
    return pa.types.is_fixed_size_list(t) and _numeric(t.value_type)


def _tensor_column(t: pa.DataType) -> bool:
    return _numeric(t) or _vector(t)


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


def _to_tensors(batch: pa.RecordBatch) -> dict[str, torch.Tensor]:
    return {n: column_to_tensor(n, a) for n, a in _named(batch)}


def column_to_objects(arr: pa.Array) -> np.ndarray:
    """A column no tensor can hold (strings, binary, nested), as a 1-D object array: what
    `torch` holds it as (slicing and gathering like the tensors), and delivers as a list."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) \
            or pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        return arr.to_numpy(zero_copy_only=False)
    return np.fromiter(arr.to_pylist(), dtype=object, count=len(arr))


def _to_torch(batch: pa.RecordBatch) -> dict[str, torch.Tensor | np.ndarray]:
    """`torch`: numeric and vector columns as tensors, the rest as object arrays."""
    return {n: column_to_tensor(n, a) if _tensor_column(_storage(a).type)
            else column_to_objects(a) for n, a in _named(batch)}


def _lists(held: dict[str, Any]) -> dict[str, Any]:
    """A held `torch` batch as delivered: object columns become Python lists, as
    torch's default_collate leaves strings."""
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in held.items()}


def _stack_column_major(columns: dict[str, torch.Tensor]) -> torch.Tensor:
    """`torch_col`, as LanceDB's: one `(C, B)` tensor, a vector column contributing its width
    in rows. Columns of different dtypes are promoted to a common dtype (torch's rules)."""
    parts = [t.unsqueeze(0) if t.dim() == 1 else t.T for t in columns.values()]
    if not parts:
        return torch.empty((0, 0))
    dtype = parts[0].dtype
    for p in parts[1:]:
        dtype = torch.promote_types(dtype, p.dtype)
    return torch.cat([p.to(dtype) for p in parts], dim=0)


def _pandas(batch: pa.RecordBatch) -> Any:
    return batch.to_pandas()


def _polars(batch: pa.RecordBatch) -> Any:
    import polars as pl

    return pl.from_arrow(batch)


def _first_length(columns: dict[str, Any]) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def _slice_columns(columns: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    return {k: v[start:stop] for k, v in columns.items()}


def _same(batch: Any) -> Any:
    return batch


def _anything(_: pa.DataType) -> bool:
    return True


@dataclass(frozen=True)
class BatchFormat:
    """One `format`: how a record batch becomes a held batch, and a held batch a delivered one.

    `columns`/`from_columns` (held form <-> numpy arrays) make a format *gathering*:
    shuffled rows are gathered from memory in it, and shuffle `cache` mode holds it.
    A format without them is held as Arrow and converted batch by batch.
    """

    name: str
    convert: Callable[[pa.RecordBatch], Any]
    rows: Callable[[Any], int]
    slice: Callable[[Any, int, int], Any]
    finish: Callable[[Any], Any] = _same
    columns: Callable[[Any], Arrays] | None = None
    from_columns: Callable[[Arrays], Any] | None = None
    take: Callable[[Any, np.ndarray], Any] | None = None
    holds: Callable[[pa.DataType], bool] = _anything
    cannot_hold_reason: str = ""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # A worker's chunk names its format; the functions stay in each process's table.
        return batch_format, (self.name,)

    @property
    def gathers(self) -> bool:
        return self.columns is not None

    def deliver(self, batch: pa.RecordBatch) -> Any:
        """A record batch as the user receives it."""
        return self.finish(self.convert(batch))

    def gather(self, held: Any, index: np.ndarray) -> Any:
        """Rows `index` (in that order) of a held batch, as a new held batch."""
        if self.columns is not None and self.from_columns is not None:
            return self.from_columns(gather(self.columns(held), index))
        if self.take is not None:
            return self.take(held, index)
        raise FormatError(f"format {self.name!r} has no in-memory gather")

    def cannot_hold(self, schema: pa.Schema) -> dict[str, str]:
        """Columns of `schema` this format cannot deliver, each with the reason."""
        return {f.name: f"type {f.type} {self.cannot_hold_reason}"
                for f in schema if not self.holds(f.type)}


def _tensor_columns(held: dict[str, Any]) -> Arrays:
    return {k: t.numpy() if isinstance(t, torch.Tensor) else t for k, t in held.items()}


def _tensors(arrays: Arrays) -> dict[str, Any]:
    return {k: v if v.dtype.hasobject else torch.from_numpy(v) for k, v in arrays.items()}


_NO_TENSOR = "has no tensor form (only numeric and fixed-size-list columns)"

FORMAT_TABLE: dict[str, BatchFormat] = {f.name: f for f in [
    BatchFormat("arrow", _same, lambda b: b.num_rows, lambda b, a, z: b.slice(a, z - a),
                take=lambda b, index: b.take(pa.array(index))),
    BatchFormat("torch", _to_torch, _first_length, _slice_columns, finish=_lists,
                columns=_tensor_columns, from_columns=_tensors),
    BatchFormat("torch_col", _to_tensors, _first_length, _slice_columns,
                finish=_stack_column_major, columns=_tensor_columns, from_columns=_tensors,
                holds=_tensor_column, cannot_hold_reason=_NO_TENSOR),
    BatchFormat("numpy", lambda b: {n: column_to_numpy(a) for n, a in _named(b)}, _first_length,
                _slice_columns, columns=_same, from_columns=_same),
    BatchFormat("pandas", _pandas, len,
                lambda b, a, z: b.iloc[a:z].reset_index(drop=True)),
    BatchFormat("polars", _polars, lambda b: b.height, lambda b, a, z: b.slice(a, z - a)),
    BatchFormat("python", lambda b: b.to_pylist(), len, lambda b, a, z: b[a:z]),
    BatchFormat("python_col", lambda b: b.to_pydict(), _first_length, _slice_columns),
]}


ARROW = FORMAT_TABLE["arrow"]


def batch_format(name: str) -> BatchFormat:
    try:
        return FORMAT_TABLE[name]
    except KeyError:
        raise FormatError(f"unknown format {name!r}") from None


def unsupported_columns(schema: pa.Schema, fmt: str) -> dict[str, str]:
    """Columns of `schema` that `fmt` cannot hold, each with a reason (LK404 at build)."""
    return batch_format(fmt).cannot_hold(schema)


def convert(batch: pa.RecordBatch, fmt: str) -> Any:
    """One record batch in the recipe's `format`, as delivered."""
    return batch_format(fmt).deliver(batch)
