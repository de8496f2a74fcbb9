"""A PyTorch Lightning `LightningDataModule` built from recipes (extra: `loaderkit[lightning]`).

Each split is a recipe; Lightning asks for a loader and gets the recipe's
`RecipeLoader`, checked like any other. Each pass Lightning makes over the
train loader is the next epoch, so `shuffle` reshuffles per epoch on its own.
Give the Trainer `use_distributed_sampler=False` under DDP: loaderkit already
shards over ranks (`rank: auto`), and Lightning's sampler would replace it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("loaderkit.lightning needs Lightning: pip install 'loaderkit[lightning]'"
                      ) from exc

from loaderkit.compiler import load_recipe
from loaderkit.runtime.loader import RecipeLoader

Recipe = str | Path


class RecipeDataModule(pl.LightningDataModule):
    """Train/val/test/predict loaders from recipes; `overrides` apply to every split."""

    def __init__(self, train: Recipe | None = None, val: Recipe | None = None,
                 test: Recipe | None = None, predict: Recipe | None = None,
                 overrides: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.recipes = {"train": train, "val": val, "test": test, "predict": predict}
        self.overrides = overrides
        self.loaders: dict[str, RecipeLoader] = {}

    def _loader(self, split: str) -> RecipeLoader:
        recipe = self.recipes[split]
        if recipe is None:
            raise ValueError(f"RecipeDataModule has no {split} recipe")
        if split not in self.loaders:  # built once: a rebuild would restart the epochs at 0
            self.loaders[split] = load_recipe(recipe, self.overrides)
        return self.loaders[split]

    def train_dataloader(self) -> RecipeLoader:
        return self._loader("train")

    def val_dataloader(self) -> RecipeLoader:
        return self._loader("val")

    def test_dataloader(self) -> RecipeLoader:
        return self._loader("test")

    def predict_dataloader(self) -> RecipeLoader:
        return self._loader("predict")
