"""Train a small classifier with DistributedDataParallel over a loaderkit recipe.

Runs on CPU with the gloo backend, so it works anywhere torchrun does:

    torchrun --nproc_per_node=2 docs/examples/ddp_train.py recipes/ddp_sharded.yaml --epochs 2

`sampler.rank` and `sampler.world_size` are `auto` in the recipe: loaderkit reads them from
torchrun's environment. Every rank takes the same number of steps by default (docs/ddp.md,
"Equal steps per rank"), so no rank waits forever at the last all-reduce; the recipe's
`drop_last: true` keeps whole steps only.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel

from loaderkit import load_recipe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--record", type=Path, help="write the ids each rank saw, per epoch")
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    overrides = {k: yaml.safe_load(v) for k, _, v in (s.partition("=") for s in args.set)}
    loader = load_recipe(args.recipe, overrides=overrides)

    model: torch.nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    for epoch in range(args.epochs):
        loader.set_epoch(epoch)
        steps, seen, total = 0, [], 0.0
        for batch in loader:
            features, labels = batch["image_emb"], batch["label"].long()
            if model is None:  # sized from the data, then wrapped, identically on every rank
                torch.manual_seed(0)
                model = DistributedDataParallel(torch.nn.Linear(features.shape[1], 10))
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            assert optimizer is not None
            loss = torch.nn.functional.cross_entropy(model(features), labels)
            optimizer.zero_grad()
            loss.backward()  # an all-reduce: every rank must get here equally often
            optimizer.step()
            steps, total = steps + 1, total + loss.item()
            if "id" in batch:
                seen += batch["id"].tolist()
        print(f"rank {rank} epoch {epoch}: {steps} steps, mean loss {total / max(steps, 1):.3f}")
        if args.record:
            args.record.mkdir(parents=True, exist_ok=True)
            record = {"rank": rank, "epoch": epoch, "steps": steps, "ids": seen,
                      "world_size": int(os.environ["WORLD_SIZE"])}
            (args.record / f"rank{rank}_epoch{epoch}.json").write_text(json.dumps(record))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
