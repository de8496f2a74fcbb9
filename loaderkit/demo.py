"""`loaderkit demo`: write a small demo dataset, then build and run a recipe over it.

The dataset imitates an image-prompt corpus (DiffusionDB-like): a small JPEG per
row in a blob column (Lance's home for images), a 128-d image embedding, a
prompt, an aesthetic score and a label, as a Lance dataset and as a table in a
LanceDB database. The recipes in `recipes/` read it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DEMO_DIR = Path("demo")
DATASET = "diffusiondb_train.lance"
DATABASE = "lancedb"
TABLE = "train"
EMBEDDING_DIM = 128
IMAGE_SIDE = 32

SCHEMA_FILE = "recipe.schema.json"
TOKENIZER = "tokenizer.json"  # a word-level tokenizer of the prompts (recipes/text_pretrain.yaml)
DEMO_RECIPE = f"""\
# yaml-language-server: $schema={SCHEMA_FILE}
loaderkit: 1
name: demo
source:
  uri: {{dir}}/{DATASET}
columns: [image_emb, aesthetic_score, label]
filter: "aesthetic_score > 2"
format: torch
sampler:
  type: shuffle
  seed: 42
loader:
  batch_size: 256
"""


def demo_images(labels: Any, seed: int = 0) -> list[bytes]:
    """One small JPEG per label: a colour for the label, a gradient and some noise."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:IMAGE_SIDE, 0:IMAGE_SIDE].astype(np.float32) / IMAGE_SIDE
    palette = rng.integers(40, 216, (10, 3)).astype(np.float32)
    images = []
    for label in labels:
        pixels = palette[int(label) % 10] * (0.6 + 0.4 * x[..., None] * y[..., None])
        pixels += rng.normal(0, 12, pixels.shape)
        out = io.BytesIO()
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(out, "JPEG", quality=85)
        images.append(out.getvalue())
    return images


def demo_table(rows: int, seed: int = 0) -> Any:
    import lance
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    embeddings = rng.standard_normal((rows, EMBEDDING_DIM), dtype=np.float32)
    labels = rng.integers(0, 10, rows, dtype=np.int32)
    words = np.array(["a", "cat", "dog", "painting", "of", "sunset", "city", "neon", "forest"])
    prompts = [" ".join(rng.choice(words, size=int(rng.integers(3, 9)))) for _ in range(rows)]
    return pa.table({
        "id": pa.array(np.arange(rows, dtype=np.int64)),
        "image": lance.blob_array(demo_images(labels, seed)),
        "image_emb": pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)),
                                                       EMBEDDING_DIM),
        "prompt": pa.array(prompts, pa.string()),
        "aesthetic_score": pa.array(rng.uniform(0, 10, rows).astype(np.float32)),
        "label": pa.array(labels),
    })


def write_demo(directory: Path = DEMO_DIR, rows: int = 20_000) -> Path:
    """Write the demo dataset and database under `directory` (idempotent)."""
    # Not "No existing dataset ... will be created": Lance and LanceDB log it separately.
    os.environ.setdefault("LANCE_LOG", "error")
    os.environ.setdefault("LANCEDB_LOG", "error")
    import lance
    import lancedb

    from loaderkit.schema import schema_text

    directory.mkdir(parents=True, exist_ok=True)
    table = demo_table(rows)
    lance.write_dataset(table, directory / DATASET, mode="overwrite", max_rows_per_file=4096)
    db = lancedb.connect(directory / DATABASE)
    db.create_table(TABLE, table, mode="overwrite")
    write_tokenizer(table.column("prompt").to_pylist(), directory / TOKENIZER)
    # The recipe's `$schema` comment names this copy, so an editor finds it wherever the
    # demo was written.
    (directory / SCHEMA_FILE).write_text(schema_text())
    recipe = directory / "demo.yaml"
    recipe.write_text(DEMO_RECIPE.format(dir=directory.as_posix()))
    return recipe


def write_tokenizer(texts: list[str], path: Path) -> Path:
    """A small word-level tokenizer trained offline on `texts`, with <pad>, <s>, </s>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(texts, trainers.WordLevelTrainer(
        special_tokens=["<pad>", "<unk>", "<s>", "</s>"]))
    tokenizer.save(str(path))
    return path
