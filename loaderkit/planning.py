"""Stage 4, plan: a validated recipe -> the runtime specs and a printable object graph.

Every node of the graph remembers the recipe key it came from, so later stages
(binding to data, the safety checker) can point their diagnostics into the YAML.
Nothing here opens data or imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loaderkit import texts
from loaderkit.errors import Diagnostic, Location, MissingEnvError
from loaderkit.models import Recipe, Source
from loaderkit.reading import Document, KeyPath
from loaderkit.resolving import is_secret_path
from loaderkit.rules import rule
from loaderkit.runtime import object_cache, storage
from loaderkit.runtime.sources import kind_of, source_keys
from loaderkit.runtime.spec import (
    CacheSpec,
    DecodeSpec,
    LoaderSpec,
    MixturePart,
    ReadSpec,
    SamplerSpec,
    SourceSpec,
    SplitSpec,
)
from loaderkit.vocabulary import EnvValue, Text, parse_env, resolve_text

REDACTED = "<redacted>"


@dataclass
class PlanNode:
    kind: str
    label: str
    origin: KeyPath
    location: Location
    settings: dict[str, Any] = field(default_factory=dict)
    children: list[PlanNode] = field(default_factory=list)

    def find(self, origin: KeyPath) -> PlanNode | None:
        if self.origin == origin:
            return self
        return next((n for c in self.children if (n := c.find(origin)) is not None), None)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label,
                "recipe_key": ".".join(map(str, self.origin)),
                "location": str(self.location), "settings": self.settings,
                "children": [c.as_dict() for c in self.children]}


@dataclass
class Plan:
    name: str
    document: Document
    read: ReadSpec
    sampler: SamplerSpec
    loader: LoaderSpec
    root: PlanNode

    def locate(self, *path: str | int) -> Location:
        return self.document.locate(tuple(path))

    def node(self, *origin: str | int) -> PlanNode:
        """The graph node that came from recipe key `origin` (e.g. "sources", "web")."""
        found = self.root.find(tuple(origin))
        if found is None:
            raise KeyError(origin)
        return found

    def shown(self, value: Any, *path: str | int) -> str:
        """`value`, the recipe's setting at `path`, as a message may print it: its
        `${env:NAME}` when it was read from a variable that is set. The Redactor cannot
        replace a short value (a number) in text, so a message formats it through here."""
        return _set_reference(self.document.data, tuple(path)) or str(value)


def _text(value: Any) -> Text:
    if isinstance(value, str):
        reference = parse_env(value)
        return reference if reference is not None else value
    return str(value).lower() if isinstance(value, bool) else str(value)


def _reference(value: Any) -> Any:
    """`value`, or the EnvValue it is when it is an `${env:}` reference (read where used)."""
    reference = parse_env(value) if isinstance(value, str) else None
    return reference if reference is not None else value


def shown(value: Any, path: KeyPath) -> Any:
    """A setting as it may be printed: env references as written, clear secrets redacted."""
    if isinstance(value, EnvValue):
        return repr(value)
    if is_secret_path(path) and value is not None:
        return value if isinstance(value, str) and parse_env(value) else REDACTED
    return value


def distributed_topology() -> tuple[int, int] | None:
    """(rank, world_size) from torchrun's environment or an initialised torch.distributed."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        try:
            return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        except ValueError:
            return None
    import torch.distributed as dist  # only `build` gets here; lint never plans

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


# How each kind of `source` key is carried onto the spec (sources/kind.py: RecipeKey).
_CARRY: dict[str, Callable[[Any], Any]] = {
    "text": lambda value: None if value is None else _text(value),
    "reference": lambda value: _reference(value),
    "options": lambda value: {k: _text(v) for k, v in value.items()},
    "plain": lambda value: value,
    "cache": lambda value: None if value is None else CacheSpec(_reference(value.dir),
                                                                value.max_gb),
}


def source_spec(src: Source) -> SourceSpec:
    """A recipe's `source` section as the runtime's spec (secrets stay references): every
    key the source kinds declare, so that a kind's new key needs no edit here."""
    return SourceSpec(**{key: _CARRY[how](getattr(src, key))
                         for key, how in source_keys().items()})


def _uris(source: SourceSpec) -> list[str]:
    """Where the source's rows are read from: its uri, or each of a mixture's (a source with
    `cache` from its local copy, object_cache.py, after the first epoch)."""
    specs = [part.source for part in source.parts] if source.parts else [source]
    uris = []
    for spec in specs:
        try:
            uris.append(object_cache.read_from(spec.location or resolve_text(spec.uri), spec))
        except MissingEnvError:  # already a diagnostic of the front end
            continue
    return uris


def plan(recipe: Recipe, document: Document,
         live: SourceSpec | None = None) -> tuple[Plan, list[Diagnostic]]:
    """`live`: the spec of a live source given to `load_recipe(source=...)`, which
    takes the place of the recipe's `source`."""
    problems: list[Diagnostic] = []
    if live is not None:
        source = live
    elif recipe.sources is not None:
        parts = tuple(MixturePart(name, source_spec(src), src.weight, _reference(src.filter))
                      for name, src in recipe.sources.items())
        stop = recipe.mixture.stop if recipe.mixture is not None else "first_exhausted"
        source = SourceSpec(uri=f"mixture of {', '.join(recipe.sources)}", parts=parts,
                            stop=stop)
    else:
        if recipe.source is None or recipe.source.uri is None:
            raise TypeError("validation lets no recipe without a source through (a live one "
                            "only with load_recipe's source=)")
        source = source_spec(recipe.source)
    split = None
    if recipe.splits is not None:
        split = SplitSpec(recipe.splits.by, tuple(recipe.splits.fractions.items()),
                          recipe.splits.seed, recipe.split)
    columns = recipe.columns
    expressions = None if columns is None else {
        name: _reference(expression) for name, expression in
        (zip(columns, columns, strict=True) if isinstance(columns, list) else columns.items())}
    decode = tuple(DecodeSpec(column, d.type, d.mode,
                              (d.size[0], d.size[1]) if d.size is not None else None)
                   for column, d in (recipe.decode or {}).items())
    tokenize, pack = texts.specs(recipe, document)  # issue 25
    read = ReadSpec(source=source,
                    columns=expressions, filter=_reference(recipe.filter),
                    format=recipe.format, transform=recipe.transform,
                    batch_readahead=recipe.loader.batch_readahead,
                    reads_in_flight=recipe.loader.reads_in_flight, decode=decode, split=split,
                    tokenize=tokenize, pack=pack)

    s, lo = recipe.sampler, recipe.loader
    rank, world = s.rank, s.world_size
    if rank == "auto" or world == "auto":
        detected = distributed_topology() or (0, 1)
        rank = detected[0] if rank == "auto" else rank
        world = detected[1] if world == "auto" else world
    assert isinstance(rank, int) and isinstance(world, int)
    if not 0 <= rank < world:
        problems.append(rule("LK208").at(document.locate(("sampler", "rank")),
                                         f"rank {rank} is outside world_size {world}"))
    sampler = SamplerSpec(type=s.type, seed=s.seed, rank=rank, world_size=world, mode=s.mode,
                          block_rows=s.block_rows or storage.block_rows(_uris(source)),
                          chunk_rows=s.chunk_rows, cache_mb=s.cache_mb,
                          uneven=s.uneven, limit=recipe.limit)
    context = lo.multiprocessing_context
    if context is None and lo.num_workers > 0:
        context = "spawn"  # Lance is not fork-safe: never inherit the platform's fork default
    loader = LoaderSpec(batch_size=lo.batch_size, num_workers=lo.num_workers,
                        multiprocessing_context=context, persistent_workers=lo.persistent_workers,
                        prefetch_factor=lo.prefetch_factor, pin_memory=lo.pin_memory,
                        drop_last=lo.drop_last, timeout=lo.timeout)
    root = _graph(recipe, document, read, sampler, loader)
    return Plan(recipe.name or "recipe", document, read, sampler, loader, root), problems


def _graph(recipe: Recipe, document: Document, read: ReadSpec, sampler: SamplerSpec,
           loader: LoaderSpec) -> PlanNode:
    def node(kind: str, label: str, origin: KeyPath, settings: dict[str, Any]) -> PlanNode:
        return PlanNode(kind, label, origin, document.locate(origin), settings)

    def source_node(src: SourceSpec, origin: KeyPath, extra: dict[str, Any]) -> PlanNode:
        settings = {k: shown(getattr(src, k), (*origin, k))
                    for k in ("uri", "table", "version", "region", "host_override",
                              "connection_factory", "api_key") if getattr(src, k) is not None}
        if src.storage_options:
            settings["storage_options"] = {k: shown(v, (*origin, "storage_options", k))
                                           for k, v in src.storage_options.items()}
        return node("source", kind_of(src).label, origin, {**settings, **extra})

    src = read.source
    if src.parts:
        source = node("source", kind_of(src).label, ("sources",), {"stop": src.stop})
        source.children += [source_node(part.source, ("sources", part.name),
                                        {"weight": part.weight,
                                         "filter": shown(part.filter, ())})
                            for part in src.parts]
    else:
        source = source_node(src, ("source",), {})
    dataset = node("dataset", "ChunkDataset", ("columns",),
                   {"columns": {k: shown(v, ()) for k, v in (read.columns or {}).items()}
                    or "all", "filter": shown(read.filter, ()),
                    "format": read.format})
    dataset.children.append(source)
    if read.split is not None:
        dataset.children.append(node("split", read.split.split or "every row", ("splits",),
                                     {"by": read.split.by, "seed": read.split.seed,
                                      "fractions": dict(read.split.fractions)}))
    for spec in read.decode:
        dataset.children.append(node("decode", f"{spec.column} ({spec.type})",
                                     ("decode", spec.column),
                                     {"mode": spec.mode, "size": spec.size}))
    for t in read.tokenize:
        dataset.children.append(node("tokenize", f"{t.column} ({os.path.basename(t.tokenizer)})",
                                     ("tokenize", t.column),
                                     {"add_bos": t.add_bos, "add_eos": "if it has an eos token"
                                      if t.add_eos is None else t.add_eos}))
    if read.pack is not None:
        p = read.pack
        dataset.children.append(node("pack", f"{p.column} -> {p.seq_len} tokens", ("pack",), {
            "strategy": p.strategy, "pad_id": "the tokenizer's pad, else 0" if p.pad_id is None
            else p.pad_id, "delivers": "input_ids, labels, attention_mask, position_ids, "
            "document_ids (other columns are not delivered)"}))
    if read.transform:
        dataset.children.append(node("transform", read.transform, ("transform",), {}))
    sampler_settings: dict[str, Any] = {"seed": sampler.seed, "rank": sampler.rank,
                                        "world_size": sampler.world_size,
                                        "limit": sampler.limit}
    if sampler.type == "shuffle":
        sampler_settings.update(mode=sampler.mode, block_rows=sampler.block_rows,
                                chunk_rows=sampler.chunk_rows)
    sampler_node = node("sampler", sampler.type, ("sampler",), sampler_settings)
    loader_settings = {k: getattr(loader, k) for k in LoaderSpec.__dataclass_fields__}
    root = node("loader", "RecipeLoader (torch.utils.data.DataLoader)", ("loader",),
                loader_settings)
    root.children += [dataset, sampler_node]
    _env_settings_shown(root, document)
    return root


def _env_settings_shown(node: PlanNode, document: Document) -> None:
    """A setting read at build from a set `${env:NAME}` (a number, a name) is shown as its
    reference, as a text one is: a value read from the environment is never printed."""
    for key in node.settings:
        for path in ((*node.origin, key), (key,)):
            reference = _set_reference(document.data, path)
            if reference is not None:
                node.settings[key] = reference
                break
    for child in node.children:
        _env_settings_shown(child, document)


def _set_reference(data: Any, path: KeyPath) -> str | None:
    """`${env:NAME}` where `path` holds that reference and NAME is set, else None."""
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    reference = parse_env(data) if isinstance(data, str) else None
    return repr(reference) if reference is not None and reference.is_secret else None
