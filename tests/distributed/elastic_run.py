"""One rank of a torchrun job over a recipe: records the ids of each step, and the loader's
state after `--checkpoint-at` steps; with `--resume`, starts from a saved state.

Run by test_two_nodes.py under torchrun (gloo, CPU): every rank all-reduces once a
step, as DDP does, so a rank with fewer steps would hang the job.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.distributed as dist

from loaderkit import load_recipe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipe")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--checkpoint-at", type=int, default=-1)
    parser.add_argument("--resume", type=Path)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    loader = load_recipe(args.recipe)
    if args.resume is not None:
        loader.load_state_dict(json.loads(args.resume.read_text()))
    steps: list[list[int]] = []
    for batch in loader:
        ones = torch.ones(1)
        dist.all_reduce(ones)  # a DDP step: every rank must take it
        steps.append(batch["id"].tolist())
        if len(steps) == args.checkpoint_at:
            (args.out / f"state_rank{rank}.json").write_text(json.dumps(loader.state_dict()))
    record = {"rank": rank, "world_size": world, "steps": steps}
    (args.out / f"rank{rank}.json").write_text(json.dumps(record))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
