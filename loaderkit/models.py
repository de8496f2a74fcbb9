"""The recipe language (docs/reference.md) as pydantic models: one class per section.

Unknown keys are forbidden everywhere. Strings may be `${env:...}` references;
they stay references here (see `vocabulary.EnvValue`) so that no secret value
ever lives in a validated recipe. The JSON Schema in `schema/` is generated
from these classes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from loaderkit.vocabulary import (
    DecodeType,
    FormatName,
    ImageMode,
    MixtureStop,
    MultiprocessingContext,
    PackStrategy,
    SamplerType,
    ShuffleMode,
    UnevenPolicy,
)

# Bounds of the numeric keys, checked offline (lint) and shown in the schema and the
# reference. Each is far beyond any sensible value and keeps the runtime's arithmetic exact.
SEED_MAX = 2**64 - 1  # seeds feed numpy's SeedSequence and a 64-bit keyed permutation
ROWS_MAX = 2**63 - 1  # row counts and Lance versions are 64-bit
BATCH_MAX = 2**31 - 1  # rows in one batch, read and converted at once
RANKS_MAX = 2**20  # ranks of one job (the largest clusters have ~10^5 devices)
WORKERS_MAX = 1024  # DataLoader processes per rank: each one is a Python interpreter
IN_FLIGHT_MAX = 1024  # reads, batches or chunks a process keeps ahead
CACHE_MB_MAX = 2**30  # an in-memory cache of 1 PB is never meant
PIXELS_MAX = 65535  # an image side: JPEG's own limit
TIMEOUT_MAX = 7 * 24 * 3600.0  # a week; 0 means forever
SEQ_LEN_MAX = 2**20  # tokens per packed sequence: far past any model's context
TOKEN_ID_MAX = 2**31 - 1
WEIGHT_MAX = 1e15  # room for weights given as token counts
# A mixture's largest weight over its smallest (LK221): a source of a millionth of the mix
# delivers next to nothing, and a smaller share stretches an all_exhausted epoch further.
WEIGHT_RATIO_MAX = 1e6


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=False)


_URI = ("A Lance dataset (path, file://, s3://, gs://, az://), or a LanceDB database "
        "(directory, memory://, db://NAME) with `table`. A relative path is relative to the "
        "working directory (unlike `extends`, which is relative to the recipe file).")


CACHE_GB_MAX = 2**20  # a petabyte of local disk


class Cache(Section):
    """A local copy of the files a recipe reads from an object store (docs/s3.md)."""

    dir: str | None = Field(None, description="Where the copy lives (a relative path is "
                                              "relative to the working directory, as `uri` is). "
                                              "Default: $LOADERKIT_CACHE, else the user's "
                                              "cache directory (~/.cache/loaderkit).",
                            examples=["/mnt/nvme/lk-cache"])
    max_gb: float | None = Field(None, gt=0, le=CACHE_GB_MAX, allow_inf_nan=False,
                                 description="The most the cache directory holds, in GB (2**30 "
                                             "bytes); least recently used files leave first. "
                                             "Default: what the disk has free, less 1 GB.",
                                 examples=[100])


class Source(Section):
    """Where the rows live: a Lance dataset, or a table in a LanceDB database."""

    # For editors: a uri, or `live: true` (validating.py says which is missing).
    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["uri"]},
                                                           {"required": ["live"]}]})

    uri: str | None = Field(None, description=_URI + " Required, unless `live: true`.",
                            examples=["data/train.lance"])
    table: str | None = Field(None, description="Table name; makes `uri` a LanceDB database.",
                              examples=["train"])
    version: Annotated[int, Field(ge=1, le=ROWS_MAX)] | str | None = Field(
        None, description="Pin to a version number or tag. Unpinned recipes are pinned to the "
                          "current version at build time.", examples=[12])
    storage_options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Passed to Lance/LanceDB (object store settings); "
                                          "values may be ${env:NAME}.",
        examples=[{"aws_region": "us-east-1"}])
    connection_factory: str | None = Field(
        None, description="`module:attribute`, called as factory(table_name) inside each worker; "
                          "returns a LanceDB table or a Lance dataset.",
        examples=["my_project.data:open_table"])
    api_key: str | None = Field(None, description="db:// only; must be ${env:NAME}.",
                                examples=["${env:LANCEDB_API_KEY}"])
    region: str | None = Field(None, description="db:// only: the LanceDB Cloud region.")
    host_override: str | None = Field(None, description="db:// only: a LanceDB Enterprise host.")
    cache: Cache | None = Field(None, description="Object stores only (s3://, gs://, az://, ...): "
                                                  "keep a local copy of the files the recipe "
                                                  "reads; later epochs and runs read it.")
    live: bool = Field(False, description="true: the rows come from the live LanceDB Table or "
                                          "lance.LanceDataset given to `load_recipe(path, "
                                          "source=...)`, such as a notebook's memory:// table; "
                                          "the recipe names no data and no other `source` key. "
                                          "Loading it without `source=` is an error (LK220).")


class MixtureSource(Source):
    """One source of a mixture: every key of `source`, plus its weight and its own filter."""

    uri: str = Field(description=_URI, examples=["data/web.lance"])
    # A mixture's sources each name their data; `live` is `source`'s alone.
    live: SkipJsonSchema[bool] = False

    weight: float = Field(1.0, gt=0, le=WEIGHT_MAX, allow_inf_nan=False,
                          description="Its share of the mixture, relative to the other "
                                      "sources' weights: a finite number above 0, at most 1e6 "
                                      "times smaller than the mixture's largest weight (LK221).",
                          examples=[3])
    filter: str | None = Field(None, description="A SQL predicate for this source, ANDed with "
                                                 "the recipe's `filter`; may be ${env:NAME}.",
                               examples=["lang = 'en'"])


class Mixture(Section):
    """How several `sources` mix."""

    stop: MixtureStop = Field(
        "first_exhausted", description="When an epoch ends: first_exhausted, when the first "
                                       "source runs out; all_exhausted, when every source has "
                                       "delivered all its rows (smaller sources repeat).")


class Splits(Section):
    """Train/validation/test splits of the same rows, declared once (typically in a base)."""

    by: str = Field(description="A column: each row's split follows from a hash of its value, "
                                "so rows appended later never move existing rows; or `random` "
                                "(reproducible from the seed, not stable under appends).",
                    examples=["id"])
    seed: int = Field(0, ge=0, le=SEED_MAX,
                      description="Mixed into the hash: another seed, another assignment.")
    # Bounds in the schema only: LK215 checks them, with the sum, in one diagnostic.
    fractions: dict[str, Annotated[float, Field(json_schema_extra={"exclusiveMinimum": 0,
                                                                   "maximum": 1})]] = Field(
        description="Split name -> fraction of the rows (each > 0, at most 1 in all).",
        examples=[{"train": 0.9, "val": 0.05, "test": 0.05}])


class Sampler(Section):
    """Which rows each (rank, worker) reads per epoch, and in which order."""

    type: SamplerType = Field(
        "full_scan", description="full_scan: dataset order; shuffle: a global shuffle from "
                                 "(seed, epoch); with either, global batch i goes to rank "
                                 "i % world_size, so step k holds the same rows at every world "
                                 "size; sharded_batch: the same as full_scan; sharded_fragment: "
                                 "whole fragments per rank.")
    seed: int = Field(0, ge=0, le=SEED_MAX,
                      description="Shuffle seed; with the epoch it fixes the order.")
    rank: Annotated[int, Field(ge=0, le=RANKS_MAX - 1)] | Literal["auto"] = Field(
        "auto", description="This process's rank, or auto (torchrun / torch.distributed; 0 "
                            "when not distributed).")
    world_size: Annotated[int, Field(ge=1, le=RANKS_MAX)] | Literal["auto"] = Field(
        "auto", description="Number of ranks, or auto.")
    mode: ShuffleMode = Field(
        "block", description="shuffle only. block: random order of small contiguous blocks, "
                             "shuffled inside large chunks (fast, memory-bounded); exact: a true "
                             "per-row permutation; cache: hold the columns in memory (see "
                             "cache_mb).")
    block_rows: int | None = Field(
        None, ge=1, le=BATCH_MAX,
        description="shuffle/block: rows per contiguous block, each one read (a "
                                "request on an object store). Smaller blocks mix better, larger "
                                "ones cost fewer reads. null: 128 on local disk, 4096 on an "
                                "object store (docs/performance.md).", examples=[128])
    chunk_rows: int | None = Field(
        None, ge=1, le=BATCH_MAX,
        description="Rows read per Lance call and shuffled together (rounded to "
                                "whole batches). Unset: 65536; shuffle block 131072, shuffle "
                                "exact ~128 MB of the selected columns, cache 16384.",
        examples=[65536])
    cache_mb: int | None = Field(None, ge=1, le=CACHE_MB_MAX,
                                 description="shuffle/cache: the memory budget; larger data is "
                                             "refused.")
    uneven: UnevenPolicy = Field(
        "split", description="With several ranks, when the rows do not fill whole steps "
                             "(docs/ddp.md). split: the last rows are split over the ranks, so "
                             "every rank takes the same number of batches and no row comes "
                             "twice (the last batches are smaller); allow: whole batches in "
                             "turn, the ranks may differ by a batch; pad: whole steps, the "
                             "epoch's first rows again.")


class Loader(Section):
    """torch.utils.data.DataLoader settings; each defaults to DataLoader's own default."""

    batch_size: int = Field(1, ge=1, le=BATCH_MAX, description="Rows per batch.", examples=[128])
    num_workers: int = Field(0, ge=0, le=WORKERS_MAX,
                             description="DataLoader worker processes; 0 reads in the main "
                                         "process.", examples=[4])
    multiprocessing_context: MultiprocessingContext | None = Field(
        None, description="Defaults to spawn when num_workers > 0; fork is refused (Lance is "
                          "not fork-safe) unless allow_fork is true.")
    allow_fork: bool = Field(False, description="Opt in to fork with workers (warned).")
    persistent_workers: bool = Field(False, description="Keep workers alive between epochs.")
    prefetch_factor: int | None = Field(None, ge=1, le=IN_FLIGHT_MAX,
                                        description="Chunks each worker reads ahead (torch's "
                                                    "default: 2).")
    pin_memory: bool = Field(False, description="Copy batches into pinned memory for fast GPU "
                                                "transfer.")
    drop_last: bool = Field(False, description="Keep whole steps only: every batch full, "
                                               "floor(rows / (batch_size x world_size)) of "
                                               "them on every rank (docs/ddp.md).")
    timeout: float = Field(0, ge=0, le=TIMEOUT_MAX, allow_inf_nan=False,
                           description="Seconds to wait for a batch from a worker (0: forever).")
    batch_readahead: int | None = Field(
        None, ge=1, le=IN_FLIGHT_MAX,
        description="Lance's batch readahead for scans; null: 16, as pylance's LanceDataset.")
    reads_in_flight: int | None = Field(
        None, ge=1, le=IN_FLIGHT_MAX,
        description="Shuffled reads (blocks, scattered rows) each process keeps in "
                                "flight at once; null: 3 on local disk, 16 on an object store.",
        examples=[32])


class Decode(Section):
    """How one output column is decoded, inside the workers, before `transform`."""

    type: DecodeType = Field("image", description="image: encoded JPEG, PNG, WebP, ... bytes "
                                                  "(or a blob, or a Hugging Face Image) -> a "
                                                  "uint8 tensor [C, H, W].")
    mode: ImageMode = Field("RGB", description="Channels: RGB (3), L (1, grey) or RGBA (4).")
    size: Annotated[list[Annotated[int, Field(ge=1, le=PIXELS_MAX)]],
                    Field(min_length=2, max_length=2)] | \
        None = Field(None, description="Resize to [height, width] (antialiased bilinear); "
                                       "then a batch stacks to [B, C, H, W].",
                     examples=[[224, 224]])


class Tokenize(Section):
    """How one string output column becomes token ids (Hugging Face `tokenizers`)."""

    tokenizer: str = Field(description="A tokenizer.json, or a directory holding one; relative "
                                       "to the recipe file. Loaded offline, once per process.",
                           examples=["tokenizers/bpe.json"])
    add_bos: bool = Field(False, description="Prepend the bos token to each row.")
    add_eos: bool | None = Field(None, description="Append the eos token to each row; "
                                                   "default: yes if the tokenizer has one "
                                                   "(true: an error if it has none).")
    bos_token: str | None = Field(None, description="The bos token; default: the "
                                                    "tokenizer_config.json beside the tokenizer, "
                                                    "else <bos> or <s>.", examples=["<s>"])
    eos_token: str | None = Field(None, description="The eos token; default: the "
                                                    "tokenizer_config.json beside the tokenizer, "
                                                    "else <eos> or </s>.", examples=["</s>"])
    pad_token: str | None = Field(None, description="The pad token (pack's default pad_id); "
                                                    "default: the tokenizer_config.json beside "
                                                    "the tokenizer, else <pad>.",
                                  examples=["<pad>"])


class Pack(Section):
    """Token sequences of fixed length for language-model training (docs/text.md)."""

    column: str = Field(description="A tokenized column (a key of `tokenize`).",
                        examples=["text"])
    seq_len: int = Field(ge=2, le=SEQ_LEN_MAX, description="Tokens per sequence.",
                         examples=[2048])
    strategy: PackStrategy = Field("concat", description="concat: documents end to end, cut "
                                                         "every seq_len tokens; first_fit: "
                                                         "whole documents in padded bins.")
    pad_id: int | None = Field(None, ge=0, le=TOKEN_ID_MAX,
                               description="The id at padding; default: the tokenizer's pad "
                                           "token, else 0.", examples=[0])


class Recipe(Section):
    """A loaderkit recipe, format version 1."""

    model_config = ConfigDict(extra="forbid", strict=True, title="loaderkit recipe",
                              json_schema_extra={"$schema": "http://json-schema.org/draft-07/"
                                                            "schema#"})

    loaderkit: int = Field(description="Recipe format version; this loaderkit reads 1.",
                           examples=[1])
    name: str | None = Field(None, description="Defaults to the file's stem.",
                             examples=["diffusiondb-train"])
    extends: str | None = Field(None, description="A base recipe, relative to this file; "
                                                  "deep-merged, lists replace.",
                                examples=["base.yaml"])
    source: Source | None = Field(
        None, description="Where the rows live. Required (or `sources`), unless inherited "
                          "through `extends`; `{live: true}` when they come from "
                          "`load_recipe(source=...)`.")
    sources: dict[str, MixtureSource] | None = Field(
        None, description="Instead of `source`: several sources mixed by weight, each named.",
        examples=[{"web": {"uri": "data/web.lance", "weight": 3},
                   "books": {"uri": "data/db", "table": "books", "weight": 1}}])
    mixture: Mixture | None = Field(None, description="How `sources` mix.")
    splits: Splits | None = Field(None, description="Splits of the rows, chosen by `split`.")
    split: str | None = Field(None, description="The split this recipe reads (a name in "
                                                "`splits.fractions`); splits never share a "
                                                "row. Without it, every row.",
                              examples=["train"])
    limit: int | None = Field(None, ge=1, le=ROWS_MAX,
                              description="Rows per epoch, after filter, split and mixture, "
                                          "for all ranks together.", examples=[100000])
    columns: list[str] | dict[str, str] | None = Field(
        None, description="A list of columns, or {output_name: column or SQL expression}; "
                          "an expression may be ${env:NAME}. Default: all columns.",
        examples=[["image", "prompt"]])
    filter: str | None = Field(None, description="A SQL predicate pushed down to Lance; may be "
                                                 "${env:NAME} (read in each process, never "
                                                 "printed).",
                               examples=["aesthetic_score > 5"])
    format: FormatName = Field("torch", description="The type of each batch (see "
                                                     "docs/formats.md).", examples=["numpy"])
    transform: str | None = Field(None, description="`module:attribute`, fn(batch) -> batch, "
                                                     "called inside each worker.",
                                  examples=["my_project.data:decode"])
    decode: dict[str, Decode] | None = Field(
        None, description="Built-in decoding of output columns, run inside the workers on "
                          "each batch before `transform` (see docs/formats.md).",
        examples=[{"image": {"type": "image", "mode": "RGB", "size": [224, 224]}}])
    tokenize: dict[str, Tokenize] | None = Field(
        None, description="String output columns into token ids, after decode, before pack "
                          "and transform (see docs/text.md).",
        examples=[{"text": {"tokenizer": "tokenizers/bpe.json", "add_eos": True}}])
    pack: Pack | None = Field(None, description="Tokenized documents packed into sequences of "
                                                "seq_len; the batch is input_ids, labels, "
                                                "attention_mask, position_ids, document_ids.")
    sampler: Sampler = Field(default_factory=Sampler,  # type: ignore[arg-type]
                             description="Which rows each (rank, worker) reads, in which order.")
    loader: Loader = Field(default_factory=Loader,  # type: ignore[arg-type]
                           description="torch.utils.data.DataLoader settings.")


# A whole-value `${env:NAME}` / `${env:NAME,default}` reference, as editors should accept it
# in fields that otherwise take a number, a boolean or a fixed name (docs/reference.md).
ENV_SCHEMA = {"type": "string", "pattern": r"^\$\{env:[A-Za-z_][A-Za-z0-9_]*(,[^}]*)?\}$"}
_METADATA = ("title", "description", "default", "examples")


def _with_env(prop: dict[str, Any]) -> dict[str, Any]:
    """`prop`, also accepting an `${env:...}` reference where it takes no free text."""
    if "$ref" in prop or prop.get("type") in ("array", "object"):
        return prop
    meta = {k: prop[k] for k in _METADATA if k in prop}
    body = {k: v for k, v in prop.items() if k not in _METADATA}
    options = body.get("anyOf", [body])
    if any(o.get("type") == "string" and "enum" not in o and "const" not in o
           for o in options):
        return prop
    return {"anyOf": [*options, ENV_SCHEMA], **meta}


def json_schema() -> dict[str, Any]:
    """The recipe's JSON Schema, as an editor checks one file at a time.

    `source` is not required there: a recipe that `extends` a base inherits it, and
    only the merged recipe must have one (validating.py checks that, not the editor).
    """
    schema = Recipe.model_json_schema()
    for model in [schema, *schema.get("$defs", {}).values()]:
        model["properties"] = {k: v if k == "loaderkit" else _with_env(v)
                               for k, v in model["properties"].items()}
    return schema
