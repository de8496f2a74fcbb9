"""The Lightning DataModule: a real Trainer fits over train/val recipes."""

from __future__ import annotations

from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

from loaderkit.lightning import RecipeDataModule  # noqa: E402

ROWS = 600


class Recorder(pl.LightningModule):
    """A linear model that records which ids each epoch's training steps saw."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(8, 2)
        self.seen: dict[int, list[int]] = {}
        self.validated = 0

    def training_step(self, batch: dict[str, torch.Tensor], _: int) -> torch.Tensor:
        self.seen.setdefault(self.current_epoch, []).extend(batch["id"].tolist())
        logits = self.layer(batch["emb"])
        return torch.nn.functional.cross_entropy(logits, batch["label"].long())

    def validation_step(self, batch: dict[str, torch.Tensor], _: int) -> None:
        self.validated += len(batch["id"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    tmp = tmp_path_factory.mktemp("lightning")
    rng = np.random.default_rng(0)
    lance.write_dataset(pa.table({
        "id": pa.array(np.arange(ROWS, dtype=np.int64)),
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(rng.standard_normal(ROWS * 8,
                                                                             dtype=np.float32)), 8),
        "label": pa.array(rng.integers(0, 2, ROWS, dtype=np.int32)),
    }), tmp / "data.lance", max_rows_per_file=200)
    head = f"loaderkit: 1\nsource:\n  uri: {tmp / 'data.lance'}\nloader:\n  batch_size: 50\n"
    (tmp / "train.yaml").write_text(head + "sampler:\n  type: shuffle\n  seed: 1\n")
    (tmp / "val.yaml").write_text(head)
    model = Recorder()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=RecipeDataModule(train=tmp / "train.yaml",
                                                   val=tmp / "val.yaml"))
    return model


def test_each_training_epoch_sees_every_row_once(fitted: Recorder) -> None:
    for epoch in (0, 1):
        assert sorted(fitted.seen[epoch]) == list(range(ROWS))


def test_training_epochs_are_reshuffled(fitted: Recorder) -> None:
    assert fitted.seen[0] != fitted.seen[1]


def test_validation_reads_the_val_recipe_every_epoch(fitted: Recorder) -> None:
    assert fitted.validated == 2 * ROWS


def test_a_missing_split_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no test recipe"):
        RecipeDataModule(train=tmp_path / "x.yaml").test_dataloader()


def test_the_example_train_eval_and_test_recipes_share_no_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loaderkit import load_recipe
    from loaderkit.demo import write_demo

    repo = Path(__file__).resolve().parents[2]
    write_demo(tmp_path / "demo", rows=2_000)
    monkeypatch.chdir(tmp_path)
    ids = {}
    for name in ("train", "eval", "test"):
        loader = load_recipe(str(repo / "recipes" / f"{name}.yaml"),
                             {"columns": ["id"], "loader.drop_last": False})
        ids[name] = {int(i) for batch in loader for i in batch["id"]}
    assert all(ids.values())
    assert not ids["train"] & ids["eval"] and not ids["train"] & ids["test"]
    assert not ids["eval"] & ids["test"]
    assert ids["train"] | ids["eval"] | ids["test"] == set(range(2_000))
