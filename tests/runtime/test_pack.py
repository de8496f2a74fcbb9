"""`pack:`: the packed batch, exactly-once tokens, equal steps, exact and elastic resume."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loaderkit.runtime.packing import (
    PACKED_COLUMNS,
    Where,
    concat,
    first_fit,
    packed_arrays,
    rank_batches,
)
from loaderkit.runtime.tokenizing import TokenLists
from tests.runtime.text_support import packed_loader

# ---- the packers, on token lists made up by hypothesis ------------------------------------

documents = st.lists(st.lists(st.integers(1, 999), max_size=30), max_size=40)


def as_batches(docs: list[list[int]], per_batch: int = 7) -> Iterator[dict[str, TokenLists]]:
    for a in range(0, len(docs), per_batch):
        part = docs[a:a + per_batch]
        offsets = np.concatenate([[0], np.cumsum([len(d) for d in part])]).astype(np.int64)
        values = np.array([t for d in part for t in d], dtype=np.int64)
        yield {"text": TokenLists(values, offsets)}


def sequences(docs: list[list[int]], strategy: str, seq_len: int
              ) -> list[dict[str, np.ndarray]]:
    """Every packed sequence (one rank, batches of one), as the five arrays of one row."""
    packer = concat if strategy == "concat" else first_fit
    blocks = packer(as_batches(docs), "text", seq_len, Where(0))
    out = []
    for ids, doc, _ in rank_batches(blocks, 0, 1, 1, False, seq_len):
        out.append({k: v[0] for k, v in packed_arrays(ids, doc, 0).items()})
    return out


def pieces(seq: dict[str, np.ndarray]) -> list[list[int]]:
    """The document pieces of a sequence, by its document_ids."""
    ids, doc = seq["input_ids"], seq["document_ids"]
    return [ids[doc == d].tolist() for d in range(int(doc.max(initial=-1)) + 1)]


def check_row_invariants(seq: dict[str, np.ndarray], pad_id: int = 0) -> None:
    real = seq["document_ids"] >= 0
    assert all(v.dtype == np.int64 for v in seq.values())
    assert (seq["attention_mask"] == real).all()
    assert (seq["labels"][~real] == -100).all() and (seq["labels"][real] ==
                                                      seq["input_ids"][real]).all()
    assert (seq["input_ids"][~real] == pad_id).all()
    doc = seq["document_ids"][real]
    assert (np.diff(doc) >= 0).all() and (len(doc) == 0 or doc[0] == 0)
    assert (np.diff(doc) <= 1).all()
    for d in range(int(doc.max(initial=-1)) + 1):  # positions count 0.. along each piece
        pos = seq["position_ids"][seq["document_ids"] == d]
        assert pos.tolist() == list(range(len(pos)))
    assert real.tolist() == sorted(real.tolist(), reverse=True)  # padding only at the end


@given(documents, st.integers(2, 20))
@settings(max_examples=150, deadline=None)
def test_concat_delivers_every_token_once_in_document_order(docs: list[list[int]],
                                                            seq_len: int) -> None:
    seqs = sequences(docs, "concat", seq_len)
    for s in seqs:
        check_row_invariants(s)
    flat = [t for s in seqs for t in s["input_ids"][s["attention_mask"] == 1].tolist()]
    assert flat == [t for d in docs for t in d]
    assert all(s["attention_mask"].all() for s in seqs[:-1])  # only the last is padded
    # A document piece starts at position 0 and a document goes on in the next sequence.
    joined = [p for s in seqs for p in pieces(s)]
    assert [t for p in joined for t in p] == flat


@given(documents, st.integers(2, 20))
@settings(max_examples=150, deadline=None)
def test_first_fit_keeps_documents_whole_unless_longer_than_seq_len(docs: list[list[int]],
                                                                    seq_len: int) -> None:
    seqs = sequences(docs, "first_fit", seq_len)
    for s in seqs:
        check_row_invariants(s)
    got = sorted(tuple(p) for s in seqs for p in pieces(s))
    want = sorted(tuple(d[a:a + seq_len]) for d in docs if d for a in range(0, len(d), seq_len))
    assert got == want


@given(documents, st.integers(2, 12), st.sampled_from(["concat", "first_fit"]),
       st.integers(1, 4), st.integers(1, 3))
@settings(max_examples=150, deadline=None)
def test_ranks_take_equal_steps_and_together_every_sequence_once(
        docs: list[list[int]], seq_len: int, strategy: str, world: int, batch: int) -> None:
    packer = concat if strategy == "concat" else first_fit
    every = [ids for ids, _, _ in rank_batches(
        packer(as_batches(docs), "text", seq_len, Where(0)), 0, 1, 1, False, seq_len)]
    per_rank = [list(rank_batches(packer(as_batches(docs), "text", seq_len, Where(0)), r, world,
                                  batch, False, seq_len)) for r in range(world)]
    assert len({len(b) for b in per_rank}) == 1
    delivered = [row.tolist() for steps in zip(*per_rank, strict=True) for ids, doc, _ in steps
                 for row, d in zip(ids, doc, strict=True) if (d >= 0).any()]
    assert delivered == [ids[0].tolist() for ids in every]


@given(documents, st.integers(2, 12), st.sampled_from(["concat", "first_fit"]))
@settings(max_examples=100, deadline=None)
def test_a_resume_point_regenerates_exactly_the_sequences_after_it(
        docs: list[list[int]], seq_len: int, strategy: str) -> None:
    packer = concat if strategy == "concat" else first_fit
    blocks = list(packer(as_batches(docs), "text", seq_len, Where(0)))
    rows = [r.tolist() for b in blocks for r in b.ids]
    afters = [a for b in blocks for a in b.after]
    for k, where in enumerate(afters):
        rest = [r.tolist() for b in packer(as_batches(docs[where.document:]), "text", seq_len,
                                           Where(0, where.skip)) for r in b.ids]
        assert rest == rows[k + 1:], (k, where)


def test_first_fit_pads_under_5_percent_on_log_normal_lengths() -> None:
    seq_len, rng = 1024, np.random.default_rng(0)
    lengths = np.maximum(1, rng.lognormal(np.log(seq_len / 8), 1.0, 20_000).astype(int))
    docs = [[1] * int(n) for n in lengths]
    blocks = list(first_fit(as_batches(docs, 512), "text", seq_len, Where(0)))
    real = sum(int((b.docs >= 0).sum()) for b in blocks)
    total = sum(b.docs.size for b in blocks)
    assert real == lengths.sum()
    assert 1 - real / total <= 0.05, 1 - real / total


# ---- the loader: real Lance data, a real tokenizer -------------------------------------------


def real_tokens(batches: list[dict[str, Any]]) -> list[int]:
    return [t for b in batches for t in b["input_ids"][b["attention_mask"] == 1].tolist()]


def test_packed_batch_has_the_five_int64_columns(text_data: dict[str, str]) -> None:
    batch = next(iter(packed_loader(text_data["uri"], text_data["tokenizer"])))
    assert sorted(batch) == sorted(PACKED_COLUMNS)
    assert all(v.dtype == torch.int64 and v.shape == (3, 16) for v in batch.values())
    arrays = next(iter(packed_loader(text_data["uri"], text_data["tokenizer"], fmt="numpy")))
    assert all(isinstance(v, np.ndarray) and v.dtype == np.int64 for v in arrays.values())


@pytest.mark.parametrize("strategy", ["concat", "first_fit"])
def test_packing_is_deterministic_from_seed_and_epoch(text_data: dict[str, str],
                                                      strategy: str) -> None:
    a = packed_loader(text_data["uri"], text_data["tokenizer"], strategy=strategy)
    b = packed_loader(text_data["uri"], text_data["tokenizer"], strategy=strategy)
    first, again, next_epoch = real_tokens(list(a)), real_tokens(list(b)), real_tokens(list(a))
    assert first == again and first != next_epoch
    assert sorted(first) == sorted(next_epoch)


@pytest.mark.parametrize("strategy", ["concat", "first_fit"])
def test_a_state_at_every_step_resumes_exactly_at_other_world_sizes(
        text_data: dict[str, str], strategy: str) -> None:
    uri, tok = text_data["uri"], text_data["tokenizer"]
    # The global stream: one rank, the global batch of 2 ranks x 2 sequences.
    whole = list(packed_loader(uri, tok, strategy=strategy, batch_size=4, seq_len=32))
    rows = [r.tolist() for b in whole for r in b["input_ids"]]
    saver = packed_loader(uri, tok, strategy=strategy, batch_size=2, world_size=2, seq_len=32)
    states = [saver.state_dict()] + [saver.state_dict() for _ in saver]
    assert len(states) - 1 == len(whole)
    for k, state in enumerate(states[:-1]):
        world = 1 + k % 3  # resume under 1, 2 and 3 ranks
        resumed = []
        for r in range(world):
            loader = packed_loader(uri, tok, strategy=strategy, batch_size=2, world_size=world,
                                   rank=r, seq_len=32)
            loader.load_state_dict(state)
            resumed.append(list(loader))
        assert len({len(x) for x in resumed}) == 1  # equal steps
        got = [row.tolist() for step in zip(*resumed, strict=True) for b in step
               for row, mask in zip(b["input_ids"], b["attention_mask"], strict=True)
               if mask.any()]
        assert got == rows[2 * 2 * k:], k


def test_a_state_resumes_across_worker_counts(text_data: dict[str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from loaderkit.runtime import packing

    monkeypatch.setattr(packing, "DOC_BATCH", 16)  # 25 tasks: the workers read most of them
    uri, tok = text_data["uri"], text_data["tokenizer"]
    whole = real_tokens(list(packed_loader(uri, tok)))
    loader = packed_loader(uri, tok)
    head = real_tokens(list(itertools.islice(loader, 5)))
    resumed = packed_loader(uri, tok, workers=2)
    resumed.load_state_dict(loader.state_dict())
    assert head + real_tokens(list(resumed)) == whole


def test_drop_last_drops_the_short_last_step(text_data: dict[str, str]) -> None:
    uri, tok = text_data["uri"], text_data["tokenizer"]
    kept = list(packed_loader(uri, tok, batch_size=4))
    dropped = list(packed_loader(uri, tok, batch_size=4, drop_last=True))
    assert len(kept[-1]["input_ids"]) < 4
    assert len(dropped) == len(kept) - 1 and all(len(b["input_ids"]) == 4 for b in dropped)


def test_a_state_of_other_pack_settings_is_refused(text_data: dict[str, str]) -> None:
    from loaderkit.errors import ResumeError

    uri, tok = text_data["uri"], text_data["tokenizer"]
    loader = packed_loader(uri, tok)
    next(iter(loader))
    other = packed_loader(uri, tok, seq_len=17)
    with pytest.raises(ResumeError, match="seq_len"):
        other.load_state_dict(loader.state_dict())


@pytest.mark.parametrize("strategy", ["concat", "first_fit"])
def test_len_is_the_batches_each_rank_takes_also_in_a_resumed_epoch(
        text_data: dict[str, str], strategy: str) -> None:
    uri, tok = text_data["uri"], text_data["tokenizer"]
    for world in (1, 3):
        loaders = [packed_loader(uri, tok, strategy=strategy, world_size=world, rank=r)
                   for r in range(world)]
        assert [len(x) for x in loaders] == [len(list(x)) for x in loaders]
    loader = packed_loader(uri, tok, strategy=strategy)
    list(itertools.islice(loader, 4))
    resumed = packed_loader(uri, tok, strategy=strategy, world_size=2)
    resumed.load_state_dict(loader.state_dict())
    assert len(resumed) == len(list(resumed))


def test_every_pack_strategy_of_the_vocabulary_has_a_packer() -> None:
    from typing import get_args

    from loaderkit.runtime.packing import PACKERS
    from loaderkit.vocabulary import PackStrategy

    assert set(PACKERS) == set(get_args(PackStrategy))


def test_concat_over_a_mixture_keeps_the_samplers_document_order(
        text_data: dict[str, str], tmp_path: Any) -> None:
    from loaderkit.runtime import make_loader
    from loaderkit.runtime.spec import LoaderSpec, ReadSpec, SamplerSpec, TokenizeSpec
    from tests.runtime.support import mixture
    from tests.runtime.text_support import corpus, write_corpus

    small = write_corpus(tmp_path / "small.lance", corpus(90, seed=1), start=1000)
    source = mixture(big=(text_data["uri"], 3.0), small=(small, 1.0))
    tok = text_data["tokenizer"]
    spec = TokenizeSpec("text", tok, add_bos=True, add_eos=True)
    rows = make_loader(ReadSpec(source, columns={"text": "text"}, format="python_col",
                                tokenize=(spec,)),
                       SamplerSpec(type="shuffle", seed=5), LoaderSpec(batch_size=50))
    in_order = [t for batch in rows for ids in batch["text"] for t in ids]
    packed = packed_loader("", tok, source=source, seed=5)
    assert real_tokens(list(packed)) == in_order
