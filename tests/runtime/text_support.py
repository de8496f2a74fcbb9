"""A small text corpus in Lance and a tokenizer trained on it offline (tokenize/pack tests)."""

from __future__ import annotations

import random
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa

from loaderkit.runtime import make_loader
from loaderkit.runtime.packing import PackedLoader
from loaderkit.runtime.spec import (
    LoaderSpec,
    PackSpec,
    ReadSpec,
    SamplerSpec,
    SourceSpec,
    TokenizeSpec,
)

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]


def corpus(rows: int, seed: int = 0, longest: int = 40) -> list[str]:
    """Texts of 0..longest words (some empty), different lengths per row."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, longest)))
            for _ in range(rows)]


def write_corpus(uri: str | Path, texts: list[str], start: int = 0,
                 fragment_rows: int = 97) -> str:
    ids = np.arange(start, start + len(texts), dtype=np.int64)
    lance.write_dataset(pa.table({"id": ids, "text": texts}), str(uri),
                        max_rows_per_file=fragment_rows)
    return str(uri)


def train_tokenizer(path: str | Path, texts: list[str], specials: list[str] = SPECIALS) -> str:
    """A word-level tokenizer trained on `texts`, saved as a tokenizer.json at `path`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=specials))
    tokenizer.save(str(path))
    return str(path)


def packed_loader(uri: str, tokenizer: str, *, seq_len: int = 16, strategy: str = "concat",
                  batch_size: int = 3, rank: int = 0, world_size: int = 1, workers: int = 0,
                  seed: int = 5, sampler: str = "shuffle", drop_last: bool = False,
                  fmt: str = "torch", source: SourceSpec | None = None) -> PackedLoader:
    read = ReadSpec(source or SourceSpec(uri=uri), columns={"text": "text"}, format=fmt,  # type: ignore[arg-type]
                    tokenize=(TokenizeSpec("text", tokenizer, add_bos=True, add_eos=True),),
                    pack=PackSpec("text", seq_len, strategy))
    loader = make_loader(read, SamplerSpec(type=sampler, seed=seed, rank=rank,  # type: ignore[arg-type]
                                           world_size=world_size),
                         LoaderSpec(batch_size=batch_size, num_workers=workers,
                                    multiprocessing_context="spawn" if workers else None,
                                    drop_last=drop_last))
    assert isinstance(loader, PackedLoader)
    return loader
