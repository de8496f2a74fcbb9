"""The plain, picklable description of a loader that crosses into worker processes.

Everything here is a frozen dataclass of builtins, numpy arrays and `EnvValue`
placeholders: no open dataset, no connection, no secret. A worker receives these
and opens the data itself, reading secrets from its own environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loaderkit.runtime.storage import LOCAL_BLOCK_ROWS
from loaderkit.vocabulary import (
    DecodeType,
    FormatName,
    ImageMode,
    MixtureStop,
    MultiprocessingContext,
    SamplerType,
    ShuffleMode,
    SourceKind,
    Text,
    UnevenPolicy,
    resolve_optional,
    resolve_text,
)


@dataclass(frozen=True)
class SourceSpec:
    """Where the rows live.

    `table is None` means `uri` is a Lance dataset; otherwise `uri` is a LanceDB
    database (a directory, `memory://` or `db://NAME`) and `table` names a table.
    """

    uri: Text
    table: Text | None = None
    version: int | Text | None = None
    storage_options: dict[str, Text] = field(default_factory=dict)
    api_key: Text | None = None
    region: Text | None = None
    host_override: Text | None = None
    connection_factory: str | None = None  # "module:attribute", called in each worker
    # A live object given to `load_recipe(source=...)` that no other process can open (a
    # memory:// or remote table): read in this process only, never by a worker.
    live: bool = False
    # Where a live object's rows are (its dataset's uri, when it has one), for the I/O
    # defaults of storage.py: `uri` then only names the object.
    location: str | None = None
    # A mixture (`sources`): the sources it mixes, and when its epoch ends. `uri` then
    # only names it (for messages).
    parts: tuple[MixturePart, ...] = ()
    stop: MixtureStop = "first_exhausted"
    # `cache`: a local copy of an object store's files (runtime/object_cache.py).
    cache: CacheSpec | None = None

    @property
    def is_lancedb(self) -> bool:
        return self.table is not None

    @property
    def kind(self) -> SourceKind:
        """The name of the source kind that matches this spec (runtime/sources/)."""
        from loaderkit.runtime.sources import kind_of

        return kind_of(self).name  # type: ignore[return-value]  # one of SOURCE_KINDS


@dataclass(frozen=True)
class CacheSpec:
    """`source.cache`: where the local copy lives (None: the default) and its bound in GB."""

    dir: Text | None = None  # may be `${env:NAME}`, read in each process
    max_gb: float | None = None


@dataclass(frozen=True)
class MixturePart:
    """One source of a mixture: its name in `sources`, its spec, weight and own filter."""

    name: str
    source: SourceSpec
    weight: float = 1.0
    filter: Text | None = None


@dataclass(frozen=True)
class SplitSpec:
    """`splits` + `split`: which split this recipe reads, and how rows are assigned."""

    by: str  # a column, or vocabulary.RANDOM_SPLIT
    fractions: tuple[tuple[str, float], ...]
    seed: int = 0
    split: str | None = None  # None: every row

    @property
    def index(self) -> int:
        """The position in `fractions` of the split this recipe reads; -1: every row."""
        names = [name for name, _ in self.fractions]
        return names.index(self.split) if self.split is not None else -1


@dataclass(frozen=True)
class DecodeSpec:
    """One `decode:` entry: how the output column `column` is decoded in the workers."""

    column: str
    type: DecodeType = "image"
    mode: ImageMode = "RGB"
    size: tuple[int, int] | None = None  # (height, width)


@dataclass(frozen=True)
class TokenizeSpec:
    """One `tokenize:` entry: the output column `column` into token ids (tokenizing.py).

    `tokenizer` is an absolute path (a tokenizer.json or a directory holding one): only the
    path crosses to a worker, which loads the tokenizer itself.
    """

    column: str
    tokenizer: str
    add_bos: bool = False
    add_eos: bool | None = None  # None: if the tokenizer has an eos token
    bos_token: str | None = None
    eos_token: str | None = None
    pad_token: str | None = None
    packed: bool = False  # `pack:` reads this column: it stays TokenLists


@dataclass(frozen=True)
class PackSpec:
    """`pack:`: the tokenized column `column` into sequences of `seq_len` (packing.py)."""

    column: str
    seq_len: int
    strategy: str = "concat"  # concat | first_fit
    pad_id: int | None = None  # None: the tokenizer's pad token, else 0


@dataclass(frozen=True)
class ReadSpec:
    """What to read from the source and how each batch looks."""

    source: SourceSpec
    columns: dict[str, Text] | None = None  # output name -> column or SQL expression
    filter: Text | None = None
    format: FormatName = "torch"
    transform: str | None = None  # "module:attribute", called on each batch in the worker
    batch_readahead: int | None = None
    reads_in_flight: int | None = None  # None: by where the source lives (storage.py)
    decode: tuple[DecodeSpec, ...] = ()  # run on each batch before `transform`
    split: SplitSpec | None = None
    tokenize: tuple[TokenizeSpec, ...] = ()  # after decode, before pack and `transform`
    pack: PackSpec | None = None

    # `filter` and `columns` may be `${env:}` references (EnvValue): the spec keeps the
    # reference, which is what crosses into a worker; the engine gets these, read in the
    # process that asks.
    @property
    def engine_filter(self) -> str | None:
        return resolve_optional(self.filter)

    @property
    def engine_columns(self) -> dict[str, str] | None:
        if self.columns is None:
            return None
        return {name: resolve_text(expression) for name, expression in self.columns.items()}


@dataclass(frozen=True)
class SamplerSpec:
    """Which rows each (rank, worker) consumer reads, in which order, per epoch."""

    type: SamplerType = "full_scan"
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    mode: ShuffleMode = "block"
    block_rows: int = LOCAL_BLOCK_ROWS
    chunk_rows: int | None = None  # None: chosen per sampler and mode (samplers/)
    cache_mb: int | None = None
    uneven: UnevenPolicy = "split"
    limit: int | None = None  # rows per epoch, over all ranks


@dataclass(frozen=True)
class LoaderSpec:
    """torch.utils.data.DataLoader settings; None means DataLoader's own default."""

    batch_size: int = 1
    num_workers: int = 0
    multiprocessing_context: MultiprocessingContext | None = None
    persistent_workers: bool = False
    prefetch_factor: int | None = None
    pin_memory: bool = False
    drop_last: bool = False
    timeout: float = 0.0
