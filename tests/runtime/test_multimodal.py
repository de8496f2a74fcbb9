"""Multimodal data as users store it: blob columns (v1 and v2), Hugging Face images, text,
and images decoded inside the workers (`decode:`)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import lance
import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from loaderkit import DecodeError
from loaderkit.runtime.spec import DecodeSpec, SourceSpec
from tests.runtime.support import (
    IMAGE_ROWS,
    IMAGE_SHAPE,
    build,
    encoded_images,
    image_pixels,
    through_workers,
    write_images,
)

ORIGINALS = encoded_images()
COLUMNS = {"id": "id", "image": "image", "prompt": "prompt"}
ROW_FORMATS = ["torch", "numpy", "arrow", "pandas", "polars", "python", "python_col"]
SAMPLERS: dict[str, dict[str, Any]] = {
    "full_scan": {"type": "full_scan"},
    "sharded_fragment": {"type": "sharded_fragment"},
    "sharded_batch": {"type": "sharded_batch"},
    "shuffle_block": {"type": "shuffle", "mode": "block", "seed": 2},
    "shuffle_exact": {"type": "shuffle", "mode": "exact", "seed": 2},
    "shuffle_cache": {"type": "shuffle", "mode": "cache", "seed": 2},
}


def rows_of(batch: Any) -> list[tuple[int, Any, Any]]:
    """(id, image, prompt) of each row of a batch in any format."""
    if isinstance(batch, pa.RecordBatch):
        batch = batch.to_pydict()
    elif hasattr(batch, "to_dict") and not isinstance(batch, dict):  # pandas, polars
        batch = {k: list(v) for k, v in batch.to_dict(as_series=False).items()} \
            if hasattr(batch, "schema") else batch.to_dict("list")
    if isinstance(batch, list):
        return [(int(r["id"]), r["image"], r["prompt"]) for r in batch]
    return [(int(i), image, prompt) for i, image, prompt
            in zip(batch["id"], batch["image"], batch["prompt"], strict=True)]


def delivered(loader: Any) -> list[tuple[int, Any, Any]]:
    return [row for batch in loader for row in rows_of(batch)]


def assert_originals(rows: list[tuple[int, Any, Any]]) -> None:
    assert sorted(i for i, _, _ in rows) == list(range(IMAGE_ROWS))
    for i, image, prompt in rows:
        assert bytes(image) == ORIGINALS[i], f"row {i}: not the original bytes"
        assert prompt == f"picture {i}"


# --- blobs and Hugging Face images: bytes, never descriptors ------------------------------

@pytest.mark.parametrize("fmt", ROW_FORMATS)
def test_images_deliver_each_rows_bytes_in_every_format(images_uri: str, fmt: str) -> None:
    assert_originals(delivered(build(images_uri, columns=COLUMNS, format=fmt)))


@pytest.mark.parametrize("name", SAMPLERS)
def test_images_deliver_bytes_with_every_sampler(images_uri: str, name: str) -> None:
    assert_originals(delivered(build(images_uri, columns=COLUMNS, **SAMPLERS[name])))


def test_images_deliver_bytes_through_spawn_workers(images_uri: str) -> None:
    loader = build(images_uri, columns=COLUMNS, num_workers=2, type="shuffle", seed=5)
    assert_originals([row for batch in through_workers(loader) for row in rows_of(batch)])


def test_images_deliver_bytes_after_a_resume(images_uri: str) -> None:
    loader = build(images_uri, columns=COLUMNS, type="shuffle", seed=5)
    iterator = iter(loader)
    head = [row for _, batch in zip(range(3), iterator, strict=False) for row in rows_of(batch)]
    resumed = build(images_uri, columns=COLUMNS, type="shuffle", seed=5)
    resumed.load_state_dict(loader.state_dict())
    assert_originals(head + delivered(resumed))


def test_a_blob_column_alone_delivers_its_bytes(blob_uri: str) -> None:
    batches = list(build(blob_uri, columns={"image": "image"}, format="python_col"))
    got = sorted(bytes(b) for batch in batches for b in batch["image"])
    assert got == sorted(ORIGINALS)


def test_the_schema_says_a_blob_column_holds_bytes(blob_uri: str) -> None:
    loader = build(blob_uri, columns=COLUMNS)
    schema = loader.dataset.reader.schema(COLUMNS)
    assert schema.field("image").type == pa.large_binary()


def test_a_hugging_face_image_without_bytes_is_read_from_its_path(tmp_path: Path) -> None:
    import datasets

    paths = []
    for i, data in enumerate(ORIGINALS[:6]):
        path = tmp_path / f"{i}.img"
        path.write_bytes(data)
        paths.append(str(path))
    hf = datasets.Dataset.from_dict({
        "id": list(range(6)), "image": [{"bytes": None, "path": p} for p in paths],
        "prompt": [f"picture {i}" for i in range(6)]}).cast_column(
            "image", datasets.Image(decode=False))
    uri = str(tmp_path / "paths.lance")
    lance.write_dataset(hf, uri)
    rows = delivered(build(uri, columns=COLUMNS, format="python_col"))
    assert [bytes(image) for _, image, _ in rows] == ORIGINALS[:6]


# --- decode: images inside the workers ------------------------------------------------------

def decoded(uri: str, spec: DecodeSpec, **kw: Any) -> list[Any]:
    return list(build(uri, columns=COLUMNS, decode=(spec,), **kw))


def test_decode_without_size_is_pixel_exact(blob_uri: str) -> None:
    for batch in decoded(blob_uri, DecodeSpec("image")):
        assert batch["image"].dtype == torch.uint8 and batch["image"].shape[1:] == (3, 20, 24)
        for i, image in zip(batch["id"].tolist(), batch["image"], strict=True):
            reference = np.asarray(Image.open(io.BytesIO(ORIGINALS[i])).convert("RGB"))
            assert np.array_equal(image.permute(1, 2, 0).numpy(), reference)
            if i % 3 == 0:  # a PNG: exactly the pixels written
                assert np.array_equal(image.permute(1, 2, 0).numpy(), image_pixels(i))


def test_decode_with_size_stacks_batches_of_that_shape(images_uri: str) -> None:
    batches = decoded(images_uri, DecodeSpec("image", size=(16, 12)), batch_size=16)
    assert all(b["image"].shape == (len(b["id"]), 3, 16, 12) for b in batches)
    assert all(b["image"].dtype == torch.uint8 for b in batches)
    assert all(isinstance(b["prompt"], list) for b in batches)


def test_decode_mode_l_gives_one_channel(blob_uri: str) -> None:
    batch = decoded(blob_uri, DecodeSpec("image", mode="L"))[0]
    assert batch["image"].shape[1:] == (1, *IMAGE_SHAPE)


def test_decode_mode_rgba_gives_four_channels(blob_uri: str) -> None:
    batch = decoded(blob_uri, DecodeSpec("image", mode="RGBA"))[0]
    assert batch["image"].shape[1:] == (4, *IMAGE_SHAPE)
    assert bool((batch["image"][:, 3] == 255).all())


def test_decode_of_mixed_sizes_without_size_is_a_list(tmp_path: Path) -> None:
    images = []
    for i in range(8):
        out = io.BytesIO()
        Image.fromarray(np.zeros((10 + i, 10, 3), np.uint8)).save(out, "PNG")
        images.append(out.getvalue())
    uri = write_images(tmp_path / "mixed.lance", "blob_v2", images)
    batch = decoded(uri, DecodeSpec("image"), batch_size=8)[0]
    assert [tuple(t.shape) for t in batch["image"]] == [(3, 10 + i, 10) for i in
                                                        batch["id"].tolist()]


@pytest.mark.parametrize("fmt", ["numpy", "python", "python_col"])
def test_decode_works_in_every_format_with_named_columns(blob_uri: str, fmt: str) -> None:
    batch = decoded(blob_uri, DecodeSpec("image", size=(8, 8)), format=fmt)[0]
    first = batch[0]["image"] if fmt == "python" else batch["image"][0]
    assert tuple(first.shape) == (3, 8, 8)


def test_decode_runs_before_the_transform(blob_uri: str) -> None:
    batch = decoded(blob_uri, DecodeSpec("image"),
                    transform="tests.runtime.factories:image_kind")[0]
    assert batch["seen"] == "Tensor"


def test_a_corrupt_image_is_a_decode_error_naming_the_column_and_row(tmp_path: Path) -> None:
    images = list(ORIGINALS[:20])
    images[13] = images[13][: len(images[13]) // 3]  # truncated
    uri = write_images(tmp_path / "corrupt.lance", "blob_v2", images)
    with pytest.raises(DecodeError, match=r"column 'image', fragment 2, row 3 \("):
        decoded(uri, DecodeSpec("image"), type="shuffle", mode="exact")


def test_a_decode_recipe_hands_workers_one_batch_per_task(blob_uri: str) -> None:
    loader = build(blob_uri, columns=COLUMNS, decode=(DecodeSpec("image"),), num_workers=2)
    assert loader.per_batch and loader.task_rows == 16


def test_both_workers_share_a_decode_recipes_batches(blob_uri: str) -> None:
    loader = build(blob_uri, columns=COLUMNS, decode=(DecodeSpec("image", size=(8, 8)),),
                   transform="tests.runtime.factories:tag_pid", num_workers=2,
                   batch_size=4, type="shuffle", seed=1)
    batches = through_workers(loader)
    counts: dict[int, int] = {}
    for batch in batches:
        pid = int(batch["pid"][0])
        counts[pid] = counts.get(pid, 0) + 1
    workers = {pid: n for pid, n in counts.items() if pid != os.getpid()}
    assert len(workers) == 2, counts
    assert min(workers.values()) >= 0.8 * max(workers.values()), counts
    assert sorted(i for b in batches for i in b["id"].tolist()) == list(range(IMAGE_ROWS))


def test_a_source_spec_for_images_pickles_without_bytes(blob_uri: str) -> None:
    import pickle

    loader = build(SourceSpec(uri=blob_uri), columns=COLUMNS)
    assert len(pickle.dumps(loader.dataset)) < 4096
