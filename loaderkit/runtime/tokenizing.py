"""`tokenize:` string columns into token ids with Hugging Face's `tokenizers`.

Runs on each batch where decode runs (a worker, or the main process), after decode and
before `transform` and packing. Only the tokenizer's *path* crosses to a worker (it is
in `TokenizeSpec`); each process loads it once, lazily, and keeps it by path.

The Rust tokenizer batch-encodes on its own thread pool (rayon). A worker process sets that
pool to its share of the cores before its first encode (`RAYON_NUM_THREADS`, unless the
user set it), so `num_workers` workers do not each start one thread per core.

A tokenized column is `TokenLists` (every row's ids end to end, and where each row starts):
one buffer per batch, cheap to pickle and what packing reads. A recipe that does not pack
gets each row's ids in the batch's own kind: a list of int64 tensors (torch), a list of
int64 arrays (numpy), lists of ints (python, python_col).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.utils.data

from loaderkit.errors import TransformError
from loaderkit.runtime.spec import TokenizeSpec

# What a tokenizer calls its special tokens when no name is given and no
# tokenizer_config.json says: the first of each list that it has.
DEFAULT_SPECIALS = {"bos": ("<bos>", "<s>", "<|begin_of_text|>"),
                    "eos": ("<eos>", "</s>", "<|endoftext|>", "<|end_of_text|>"),
                    "pad": ("<pad>", "<|pad|>")}
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"


@dataclass(frozen=True)
class TokenLists:
    """Token ids of a batch's rows: `values` end to end; row i is values[offsets[i]:offsets[i + 1]]
    (one buffer per batch)."""

    values: np.ndarray  # int64
    offsets: np.ndarray  # int64, rows + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass(frozen=True)
class Loaded:
    """A loaded tokenizer and the special token ids found for it (None: it has none)."""

    tokenizer: Any
    bos: int | None
    eos: int | None
    pad: int | None


_LOADED: dict[tuple[str, str | None, str | None, str | None], Loaded] = {}
_LOCK = threading.Lock()


def tokenizer_file(path: str) -> Path:
    """The tokenizer.json of `path` (the file itself, or a directory holding one)."""
    p = Path(path)
    return p / TOKENIZER_FILE if p.is_dir() else p


def _config_token(directory: Path, kind: str) -> str | None:
    """`{kind}_token` of a tokenizer_config.json beside the tokenizer (a string or an
    AddedToken mapping with `content`), if there is one."""
    config = directory / CONFIG_FILE
    if not config.is_file():
        return None
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get(f"{kind}_token")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def special_id(tokenizer: Any, path: Path, kind: str, named: str | None) -> int | None:
    """The id of the `kind` (bos, eos, pad) token: named in the recipe, else the one a
    tokenizer_config.json beside the tokenizer names, else a usual name it has."""
    if named is not None:
        return tokenizer.token_to_id(named)
    configured = _config_token(path.parent, kind)
    for name in ((configured,) if configured is not None else DEFAULT_SPECIALS[kind]):
        found = tokenizer.token_to_id(name)
        if found is not None:
            return int(found)
    return None


def _share_cores() -> None:
    """In a worker, size the tokenizer's thread pool to this worker's share of the cores."""
    info = torch.utils.data.get_worker_info()
    if info is None or "RAYON_NUM_THREADS" in os.environ:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
    os.environ["RAYON_NUM_THREADS"] = str(max(1, cores // max(1, info.num_workers)))


def load(spec: TokenizeSpec) -> Loaded:
    """The spec's tokenizer, loaded once per process (by path and named special tokens)."""
    key = (spec.tokenizer, spec.bos_token, spec.eos_token, spec.pad_token)
    found = _LOADED.get(key)
    if found is not None:
        return found
    with _LOCK:
        if key not in _LOADED:
            _share_cores()
            from tokenizers import Tokenizer

            path = tokenizer_file(spec.tokenizer)
            tokenizer = Tokenizer.from_file(str(path))
            _LOADED[key] = Loaded(tokenizer, special_id(tokenizer, path, "bos", spec.bos_token),
                                  special_id(tokenizer, path, "eos", spec.eos_token),
                                  special_id(tokenizer, path, "pad", spec.pad_token))
        return _LOADED[key]


def encode(texts: Sequence[str | None], spec: TokenizeSpec) -> TokenLists:
    """`texts` as token ids, bos/eos added as the spec asks; a null row is an empty text."""
    loaded = load(spec)
    clean = [t if isinstance(t, str) else "" for t in texts]
    tokenizer = loaded.tokenizer
    # encode_batch_fast (tokenizers >= 0.20) skips the character offsets nothing here reads.
    batch_encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    encodings = batch_encode(clean, add_special_tokens=False)
    ids = [e.ids for e in encodings]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    body = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64,
                       count=int(lengths.sum()))
    bos = loaded.bos if spec.add_bos else None
    eos = loaded.eos if spec.add_eos is not False else None  # unset: if it has one
    if (spec.add_bos and bos is None) or (spec.add_eos is True and eos is None):
        # The build checks this (LK420); a tokenizer file changed since lands here.
        raise TransformError(f"tokenize '{spec.column}': {spec.tokenizer} has no "
                             f"{'bos' if spec.add_bos and bos is None else 'eos'} token")
    extra = (bos is not None) + (eos is not None)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths + extra, out=offsets[1:])
    if not extra:
        return TokenLists(body, offsets)
    values = np.empty(int(offsets[-1]), dtype=np.int64)
    if bos is not None:
        values[offsets[:-1]] = bos
    if eos is not None:
        values[offsets[1:] - 1] = eos
    # Where each row's body lands: its start (after bos), counted along `body`.
    starts = offsets[:-1] + (bos is not None) - (np.cumsum(lengths) - lengths)
    values[np.repeat(starts, lengths) + np.arange(len(body), dtype=np.int64)] = body
    return TokenLists(values, offsets)


def _as_rows(tokens: TokenLists, kind: str) -> list[Any]:
    rows = [tokens.row(i) for i in range(len(tokens))]
    if kind == "torch":
        return [torch.from_numpy(r) for r in rows]
    if kind == "numpy":
        return rows
    return [r.tolist() for r in rows]


def tokenize_batch(batch: Any, specs: Sequence[TokenizeSpec], kind: str = "torch") -> Any:
    """`batch` (a dict of columns, or a list of row dicts) with each spec's column tokenized.

    A column that is packed stays `TokenLists`; any other gets each row's ids as `kind`
    (the recipe's format) holds them.
    """
    for spec in specs:
        rows = batch if isinstance(batch, list) else None
        texts = [row[spec.column] for row in rows] if rows is not None else \
            list(batch[spec.column])
        tokens = encode(texts, spec)
        if spec.packed:
            batch[spec.column] = tokens
        elif rows is not None:
            for row, ids in zip(rows, _as_rows(tokens, "python"), strict=True):
                row[spec.column] = ids
        else:
            batch[spec.column] = _as_rows(tokens, kind)
    return batch
