"""The plain, picklable description of a loader that crosses into worker processes.

Everything here is a frozen dataclass of builtins, numpy arrays and `EnvValue`
placeholders: no open dataset, no connection, no secret. A worker receives these
and opens the data itself, reading secrets from its own environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

FORMATS = ("arrow", "torch", "torch_col", "numpy", "pandas", "polars", "python", "python_col")
Format = Literal["arrow", "torch", "torch_col", "numpy", "pandas", "polars", "python", "python_col"]
SamplerType = Literal["full_scan", "sharded_fragment", "sharded_batch", "shuffle"]
ShuffleMode = Literal["block", "exact", "cache"]
UnevenPolicy = Literal["allow", "pad"]


class MissingEnvError(RuntimeError):
    """An `${env:NAME}` with no default is unset in this process."""


@dataclass(frozen=True)
class EnvValue:
    """`${env:NAME}` or `${env:NAME,default}`: resolved where it is used, never stored.

    Pickling an EnvValue ships only the variable's name (and the default, which
    was written in the recipe in clear), so a worker reads the secret from its
    own environment.
    """

    name: str
    default: str | None = None

    def resolve(self) -> str:
        value = os.environ.get(self.name)
        if value is not None:
            return value
        if self.default is not None:
            return self.default
        raise MissingEnvError(f"environment variable {self.name} is not set")

    @property
    def is_secret(self) -> bool:
        """A value read from the environment is a secret; a recipe's own default is not."""
        return self.name in os.environ

    def __repr__(self) -> str:
        return "${env:" + self.name + "}"


Text = str | EnvValue


def resolve_text(value: Text) -> str:
    return value.resolve() if isinstance(value, EnvValue) else value


@dataclass(frozen=True)
class SourceSpec:
    """Where the rows live.

    `table is None` means `uri` is a Lance dataset; otherwise `uri` is a LanceDB
    database (a directory, `memory://` or `db://NAME`) and `table` names a table.
    """

    uri: Text
    table: str | None = None
    version: int | str | None = None
    storage_options: dict[str, Text] = field(default_factory=dict)
    api_key: Text | None = None
    region: str | None = None
    host_override: str | None = None
    connection_factory: str | None = None  # "module:attribute", called in each worker

    @property
    def is_lancedb(self) -> bool:
        return self.table is not None


@dataclass(frozen=True)
class ReadSpec:
    """What to read from the source and how each batch looks."""

    source: SourceSpec
    columns: dict[str, str] | None = None  # output name -> column or SQL expression
    filter: str | None = None
    format: Format = "torch"
    transform: str | None = None  # "module:attribute", called on each batch in the worker
    batch_readahead: int | None = None


@dataclass(frozen=True)
class SamplerSpec:
    """Which rows each (rank, worker) consumer reads, in which order, per epoch."""

    type: SamplerType = "full_scan"
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    mode: ShuffleMode = "block"
    block_rows: int = 1024
    chunk_rows: int | None = None  # None: chosen per sampler and mode (plans.py)
    cache_mb: int | None = None
    uneven: UnevenPolicy = "allow"


@dataclass(frozen=True)
class LoaderSpec:
    """torch.utils.data.DataLoader settings; None means DataLoader's own default."""

    batch_size: int = 1
    num_workers: int = 0
    multiprocessing_context: Literal["spawn", "forkserver", "fork"] | None = None
    persistent_workers: bool = False
    prefetch_factor: int | None = None
    pin_memory: bool = False
    drop_last: bool = False
    timeout: float = 0.0
