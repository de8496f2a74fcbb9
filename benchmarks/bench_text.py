"""Benchmark text pretraining: tokens/s of loaderkit's concat pack against the same work by hand.

    python benchmarks/bench_text.py [--docs 1000000] [--big-docs 10000000] [--seq-len 2048]
                                    [--only NAMES] [--out benchmarks/out]

Writes a Lance corpus of `--docs` documents (log-normal lengths, median ~60 words) and a BPE
tokenizer trained offline on a sample, then runs each pipeline in a fresh subprocess (one
JSON line each) over the same text, producing the same five int64 tensors [8, seq_len]
(input_ids, labels, attention_mask, position_ids, document_ids):
- `encode`: the tokenizer's own `encode_batch_fast` rate on the text, read into memory first
  (no reading, no packing): the ceiling;
- `hand`: a Lance scanner -> `encode_batch_fast` -> numpy concat-and-cut, written by hand;
- `loaderkit`: a recipe with `tokenize:` and `pack: {strategy: concat}`, 0 workers;
- `hf_datasets`: Hugging Face `datasets` over the same Arrow table, `.map(batched=True)` with
  the same tokenizer, then the same numpy packing.
Also: loaderkit's first packed batch after `load_recipe`, and its peak RSS (ru_maxrss) over an
epoch of `--docs` and of `--big-docs` documents (give `--big-docs 0` to skip).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 8
READ_ROWS = 512
WORDS = 5000


def write_corpus(root: Path, docs: int) -> tuple[str, str]:
    """out/text_<docs>/corpus.lance and tokenizer.json (cached)."""
    import lance
    import pyarrow as pa

    uri, tok = root / "corpus.lance", root / "tokenizer.json"
    if not uri.exists():
        root.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        vocab = np.array([f"w{i}" for i in range(WORDS)])
        probs = 1 / np.arange(1, WORDS + 1)
        probs /= probs.sum()
        lengths = np.clip(rng.lognormal(np.log(60), 0.8, docs).astype(int), 1, 4000)

        def chunks() -> Any:
            for a in range(0, docs, 100_000):
                n = lengths[a:a + 100_000]
                words = rng.choice(vocab, size=int(n.sum()), p=probs)
                ends = np.cumsum(n)
                texts = [" ".join(words[e - k:e]) for e, k in zip(ends, n, strict=True)]
                yield pa.record_batch({"id": np.arange(a, a + len(n)), "text": texts})

        schema = pa.schema({"id": pa.int64(), "text": pa.string()})
        lance.write_dataset(pa.RecordBatchReader.from_batches(schema, chunks()), str(uri))
    if not tok.exists():
        import lance
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        sample = lance.dataset(str(uri)).to_table(columns=["text"], limit=20_000)
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        tokenizer.train_from_iterator(sample["text"].to_pylist(), trainers.BpeTrainer(
            vocab_size=8000, special_tokens=["<pad>", "<unk>", "<s>", "</s>"]))
        tokenizer.save(str(tok))
    return str(uri), str(tok)


def pack_numpy(stream: Any, seq_len: int) -> Any:
    """(ids, doc lengths) batches -> the five arrays of B sequences: concat-and-cut by hand."""
    carry_ids = np.zeros(0, np.int64)
    carry_doc = np.zeros(0, np.int64)
    doc_base = 0
    per = BATCH * seq_len
    for ids, lengths in stream:
        docs = np.repeat(np.arange(doc_base, doc_base + len(lengths)), lengths)
        doc_base += len(lengths)
        carry_ids = np.concatenate([carry_ids, ids])
        carry_doc = np.concatenate([carry_doc, docs])
        while len(carry_ids) >= per:
            x = carry_ids[:per].reshape(BATCH, seq_len)
            d = carry_doc[:per].reshape(BATCH, seq_len)
            carry_ids, carry_doc = carry_ids[per:], carry_doc[per:]
            new = np.ones_like(d, dtype=bool)
            new[:, 1:] = d[:, 1:] != d[:, :-1]
            col = np.arange(seq_len)
            start = np.maximum.accumulate(np.where(new, col, 0), axis=1)
            yield {"input_ids": x, "labels": x.copy(), "attention_mask": np.ones_like(x),
                   "position_ids": col - start, "document_ids": np.cumsum(new, axis=1) - 1}


def _encoded(tokenizer: Any, texts: list[str], eos: int) -> tuple[np.ndarray, np.ndarray]:
    enc = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    rows = [[*e.ids, eos] for e in enc]
    lengths = np.fromiter(map(len, rows), np.int64, len(rows))
    return np.fromiter(itertools.chain.from_iterable(rows), np.int64, int(lengths.sum())), lengths


def child(name: str, uri: str, tok: str, seq_len: int) -> dict[str, Any]:
    import lance  # imported before the clock starts, for every pipeline
    import torch
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(tok)
    eos = tokenizer.token_to_id("</s>")
    tokens = 0
    first = None  # seconds to the first batch (for loaderkit: after load_recipe returned)
    at_first = (0, 0.0)  # tokens and clock at the first batch: rates count from there
    started = time.perf_counter()

    def seen(batch_tokens: int) -> None:
        nonlocal tokens, first, at_first
        tokens += batch_tokens
        if first is None:
            now = time.perf_counter()
            first, at_first = now - started, (tokens, now)

    if name == "encode":
        texts = lance.dataset(uri).to_table(columns=["text"])["text"].to_pylist()
        started = time.perf_counter()
        for a in range(0, len(texts), READ_ROWS):
            ids, _ = _encoded(tokenizer, texts[a:a + READ_ROWS], eos)
            tokens += len(ids)
    elif name == "hand":
        scanner = lance.dataset(uri).scanner(columns=["text"], batch_size=READ_ROWS)
        stream = (_encoded(tokenizer, b.column(0).to_pylist(), eos)
                  for b in scanner.to_batches())
        for batch in pack_numpy(stream, seq_len):
            out = {k: torch.from_numpy(v) for k, v in batch.items()}
            seen(int(out["attention_mask"].sum()))
    elif name == "loaderkit":
        from loaderkit import load_recipe

        recipe = Path(tok).parent / f"bench_{seq_len}.yaml"
        recipe.write_text(f"loaderkit: 1\nsource: {{uri: {uri}}}\ncolumns: [text]\n"
                          "tokenize:\n  text: {tokenizer: tokenizer.json, add_eos: true}\n"
                          f"pack: {{column: text, seq_len: {seq_len}, strategy: concat}}\n"
                          f"sampler: {{type: full_scan}}\nloader: {{batch_size: {BATCH}}}\n")
        loader = load_recipe(recipe)
        started = time.perf_counter()
        for batch in loader:
            seen(int(batch["attention_mask"].sum()))
    elif name == "hf_datasets":
        import datasets

        table = lance.dataset(uri).to_table(columns=["text"])
        ds = datasets.Dataset(table)
        mapped = ds.map(lambda b: {"ids": [[*e.ids, eos] for e in tokenizer.encode_batch_fast(
            b["text"], add_special_tokens=False)]}, batched=True, batch_size=READ_ROWS,
            remove_columns=["text"], keep_in_memory=True)
        column = mapped.data.column("ids")

        def stream() -> Any:
            for chunk in column.chunks:
                offsets = chunk.offsets.to_numpy()
                yield chunk.values.to_numpy().astype(np.int64), np.diff(offsets)

        for batch in pack_numpy(stream(), seq_len):
            out = {k: torch.from_numpy(v) for k, v in batch.items()}
            seen(int(out["attention_mask"].sum()))
    end = time.perf_counter()
    if name in ("encode", "hf_datasets"):  # no stream to start: the whole run
        rate = tokens / (end - started)
    else:  # the stream after its first batch
        rate = (tokens - at_first[0]) / max(end - at_first[1], 1e-9)
    return {"name": name, "tokens": tokens, "seconds": end - started, "tokens_per_s": rate,
            "first_batch_s": first, "peak_rss_mb": resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(name: str, uri: str, tok: str, seq_len: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", name, "--uri", uri, "--tok", tok,
                          "--seq-len", str(seq_len)], capture_output=True, text=True,
                         check=False, env={**os.environ, "LANCE_LOG": "error"})
    if out.returncode:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--big-docs", type=int, default=10_000_000)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--only", default="encode,hand,loaderkit,hf_datasets")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--uri", help=argparse.SUPPRESS)
    ap.add_argument("--tok", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.uri, args.tok, args.seq_len)))
        return
    uri, tok = write_corpus(args.out / f"text_{args.docs}", args.docs)
    results = {name: run(name, uri, tok, args.seq_len) for name in args.only.split(",")}
    print(f"| pipeline ({args.docs:,} docs, seq_len {args.seq_len}) | tokens/s | first batch s |"
          " peak RSS MB |\n| --- | --- | --- | --- |")
    for r in results.values():
        first = f"{r['first_batch_s']:.3f}" if r["first_batch_s"] else "-"
        print(f"| {r['name']} | {r['tokens_per_s']:,.0f} | {first} | {r['peak_rss_mb']:.0f} |")
    lk = results.get("loaderkit")
    if lk:
        for other, target in (("hand", 1.0), ("encode", 0.9), ("hf_datasets", 2.0)):
            if other in results:
                ratio = lk["tokens_per_s"] / results[other]["tokens_per_s"]
                print(f"loaderkit / {other}: {ratio:.2f}x (target >= {target}x)")
    if lk and args.big_docs:
        big_uri, big_tok = write_corpus(args.out / f"text_{args.big_docs}", args.big_docs)
        big = run("loaderkit", big_uri, big_tok, args.seq_len)
        print(f"loaderkit peak RSS: {lk['peak_rss_mb']:.0f} MB at {args.docs:,} docs, "
              f"{big['peak_rss_mb']:.0f} MB at {args.big_docs:,} "
              f"({big['peak_rss_mb'] / lk['peak_rss_mb']:.2f}x, target <= 1.2x)")


if __name__ == "__main__":
    main()
