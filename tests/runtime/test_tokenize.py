"""`tokenize:`: a string column into token ids, loaded once per process, never pickled."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import lance
import numpy as np
import torch
from tokenizers import Tokenizer

from loaderkit.runtime import make_loader, tokenizing
from loaderkit.runtime.spec import LoaderSpec, ReadSpec, SamplerSpec, SourceSpec, TokenizeSpec
from tests.runtime.text_support import train_tokenizer


def tokenized_loader(uri: str, tokenizer: str, fmt: str = "torch", workers: int = 0,
                     transform: str | None = None, **spec: object) -> object:
    tokenize = TokenizeSpec("text", tokenizer, **spec)  # type: ignore[arg-type]
    read = ReadSpec(SourceSpec(uri=uri), columns={"id": "id", "text": "text"}, format=fmt,  # type: ignore[arg-type]
                    tokenize=(tokenize,), transform=transform)
    return make_loader(read, SamplerSpec(), LoaderSpec(
        batch_size=64, num_workers=workers, multiprocessing_context="spawn" if workers else None))


def expected(text_data: dict[str, str], bos: bool, eos: bool) -> dict[int, list[int]]:
    tokenizer = Tokenizer.from_file(text_data["tokenizer"])
    table = lance.dataset(text_data["uri"]).to_table()
    out = {}
    for i, text in zip(table["id"].to_pylist(), table["text"].to_pylist(), strict=True):
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        out[i] = [tokenizer.token_to_id("<s>")] * bos + ids + [tokenizer.token_to_id("</s>")] * eos
    return out


def test_tokenized_column_holds_each_rows_ids_with_bos_and_eos(text_data: dict[str, str]) -> None:
    loader = tokenized_loader(text_data["uri"], text_data["tokenizer"], add_bos=True,
                              add_eos=True)
    got = {}
    for batch in loader:  # type: ignore[attr-defined]
        for i, ids in zip(batch["id"].tolist(), batch["text"], strict=True):
            assert isinstance(ids, torch.Tensor) and ids.dtype == torch.int64
            got[i] = ids.tolist()
    assert got == expected(text_data, bos=True, eos=True)


def test_numpy_and_python_col_formats_hold_arrays_and_lists(text_data: dict[str, str]) -> None:
    want = expected(text_data, bos=False, eos=True)
    batch = next(iter(tokenized_loader(text_data["uri"], text_data["tokenizer"], "numpy")))  # type: ignore[call-overload]
    assert isinstance(batch["text"][0], np.ndarray)
    assert [r.tolist() for r in batch["text"]] == [want[i] for i in batch["id"].tolist()]
    batch = next(iter(tokenized_loader(text_data["uri"], text_data["tokenizer"], "python_col")))  # type: ignore[call-overload]
    assert batch["text"] == [want[i] for i in batch["id"]]


def test_special_tokens_come_from_a_tokenizer_config_beside_it(tmp_path: Path) -> None:
    train_tokenizer(tmp_path / "tokenizer.json", ["a b c"],
                    specials=["<unk>", "<|start|>", "<|end|>", "</s>"])
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": {"content": "<|start|>"}, "eos_token": "<|end|>"}))
    spec = TokenizeSpec("text", str(tmp_path), add_bos=True, add_eos=True)  # a directory
    loaded = tokenizing.load(spec)
    tokenizer = loaded.tokenizer
    assert (loaded.bos, loaded.eos) == (tokenizer.token_to_id("<|start|>"),
                                        tokenizer.token_to_id("<|end|>"))
    tokens = tokenizing.encode(["a b", ""], spec)
    assert tokens.row(0).tolist() == [loaded.bos, tokenizer.token_to_id("a"),
                                      tokenizer.token_to_id("b"), loaded.eos]
    assert tokens.row(1).tolist() == [loaded.bos, loaded.eos]


def test_named_special_tokens_win_over_the_usual_names(tmp_path: Path) -> None:
    path = train_tokenizer(tmp_path / "t.json", ["a b"], specials=["<unk>", "<s>", "[END]"])
    spec = TokenizeSpec("text", path, add_eos=True, eos_token="[END]")
    assert tokenizing.encode(["a"], spec).row(0)[-1] == tokenizing.load(spec).tokenizer \
        .token_to_id("[END]")


def test_the_tokenizer_is_loaded_once_per_process(text_data: dict[str, str]) -> None:
    spec = TokenizeSpec("text", text_data["tokenizer"])
    assert tokenizing.load(spec) is tokenizing.load(spec)


def test_only_the_tokenizers_path_crosses_to_a_spawn_worker(text_data: dict[str, str]) -> None:
    # A transform runs only in the workers: every batch is tokenized in one.
    loader = tokenized_loader(text_data["uri"], text_data["tokenizer"], workers=2,
                              transform="tests.runtime.text_transforms:mark_process")
    tokenizing.load(loader.dataset.read.tokenize[0])  # type: ignore[attr-defined]  # loaded here
    payload = pickle.dumps(loader.dataset)  # type: ignore[attr-defined]  # what a worker gets
    assert b"tokenizers" not in payload and b"WordLevel" not in payload
    assert text_data["tokenizer"].encode() in payload
    batches = list(loader)  # type: ignore[call-overload]
    assert {b["pid"] for b in batches}.isdisjoint({os.getpid()})
    in_workers = {i: t.tolist() for batch in batches
                  for i, t in zip(batch["id"].tolist(), batch["text"], strict=True)}
    assert in_workers == expected(text_data, bos=False, eos=True)


def test_a_worker_gives_the_tokenizer_its_share_of_the_cores(text_data: dict[str, str],
                                                              monkeypatch: Any) -> None:
    monkeypatch.delenv("RAYON_NUM_THREADS", raising=False)
    loader = tokenized_loader(text_data["uri"], text_data["tokenizer"], workers=2,
                              transform="tests.runtime.text_transforms:mark_process")
    share = str(max(1, len(os.sched_getaffinity(0)) // 2))
    assert {b["rayon_threads"] for b in loader} == {share}  # type: ignore[attr-defined]


def test_eos_is_appended_by_default_only_where_the_tokenizer_has_one(tmp_path: Path) -> None:
    with_eos = train_tokenizer(tmp_path / "a.json", ["a b"], specials=["<unk>", "</s>"])
    without = train_tokenizer(tmp_path / "b.json", ["a b"], specials=["<unk>"])
    eos = tokenizing.load(TokenizeSpec("text", with_eos)).eos
    assert tokenizing.encode(["a"], TokenizeSpec("text", with_eos)).row(0)[-1] == eos
    assert len(tokenizing.encode(["a"], TokenizeSpec("text", without)).row(0)) == 1
    assert len(tokenizing.encode(["a"], TokenizeSpec("text", with_eos, add_eos=False)).row(0)) \
        == 1
