"""Built-in decoding (`decode:`): run on each batch, in the worker that made it, before
`transform`. One entry per decode `type` in `DECODERS`.

Images: JPEG through libjpeg-turbo (simplejpeg), which can also scale while it
decodes (the DCT works at 1/8 steps, so 256 px -> 224 px costs less than a full
decode); everything else (PNG, WebP, GIF, ...) through Pillow. A resize to `size`
is torch's antialiased bilinear on uint8 (its SIMD path). Measured on one core here,
256 px JPEG -> 224 px: Pillow decode + resize ~640/s, simplejpeg + torch ~1,020/s
(docs/performance.md); torchvision's decode_image does not load against the CPU
torch wheel this project installs, so it is not used.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.utils.data

from loaderkit.errors import DecodeError
from loaderkit.runtime.spec import DecodeSpec

try:
    import simplejpeg
except ImportError:  # Pillow decodes JPEG too, ~2x slower
    simplejpeg = None

CHANNELS = {"RGB": 3, "L": 1, "RGBA": 4}
_JPEG_COLORSPACE = {"RGB": "RGB", "L": "GRAY", "RGBA": "RGBA"}
_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class ImageDecoder:
    """Encoded image bytes -> uint8 tensors [C, H, W], or [B, C, H, W] with a `size`."""

    spec: DecodeSpec

    def one(self, data: Any) -> torch.Tensor:
        """One image, [C, H, W] uint8 (resized to `size` when it is set)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValueError(f"expected encoded image bytes, got {type(data).__name__}")
        pixels = self._jpeg(bytes(data)) if bytes(data[:3]) == _JPEG_MAGIC else None
        if pixels is None:
            pixels = self._pillow(bytes(data))
        image = torch.from_numpy(pixels).permute(2, 0, 1)  # HWC -> CHW, a view
        size = self.spec.size
        if size is not None and tuple(image.shape[1:]) != size:
            # On an NHWC (channels-last) uint8 tensor torch resizes with its SIMD path.
            image = torch.nn.functional.interpolate(
                image.unsqueeze(0), size=size, mode="bilinear", antialias=True,
                align_corners=False)[0]
        return image

    def _jpeg(self, data: bytes) -> np.ndarray | None:
        if simplejpeg is None:
            return None
        size = self.spec.size
        low = {} if size is None else {"min_height": size[0], "min_width": size[1]}
        pixels = simplejpeg.decode_jpeg(data, colorspace=_JPEG_COLORSPACE[self.spec.mode],
                                        **low)
        return pixels if pixels.ndim == 3 else pixels[:, :, None]

    def _pillow(self, data: bytes) -> np.ndarray:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            converted = opened.convert(self.spec.mode)
        pixels = np.array(converted)  # a copy: torch wants a writable array
        return pixels if pixels.ndim == 3 else pixels[:, :, None]

    def into(self, data: Any, slot: np.ndarray) -> None:
        """One image decoded (and resized) into `slot`, an [H, W, C] uint8 array of `size`:
        a JPEG that scales to it while decoding is written there directly, no copy."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValueError(f"expected encoded image bytes, got {type(data).__name__}")
        height, width, _ = slot.shape
        if simplejpeg is not None and bytes(data[:3]) == _JPEG_MAGIC:
            scaled = simplejpeg.decode_jpeg_header(data, min_height=height, min_width=width)
            if tuple(scaled[:2]) == (height, width):
                simplejpeg.decode_jpeg(data, colorspace=_JPEG_COLORSPACE[self.spec.mode],
                                       min_height=height, min_width=width, buffer=slot)
                return
        torch.from_numpy(slot).copy_(self.one(data).permute(1, 2, 0))

    def many(self, values: Sequence[Any], name_row: Callable[[int], str]) -> Any:
        """A column's images: one [B, C, H, W] tensor when they share a shape (always, with
        `size`), else a list of [C, H, W] tensors. A failure names the column and the row
        (`name_row(k)`: row k of the batch as a user can find it).

        With `size`, the images are decoded straight into one [B, H, W, C] buffer (in
        shared memory in a worker, so the batch crosses to the main process without a
        copy) and returned as its [B, C, H, W] view: channels-last memory, as convolutions
        on the CPU and GPU prefer. `.contiguous()` makes it NCHW.
        """
        size = self.spec.size
        if size is not None:
            out = _empty_nhwc(len(values), size, CHANNELS[self.spec.mode])
            slots = out.numpy()
            for row, value in enumerate(values):
                with self._naming(row, name_row):
                    self.into(value, slots[row])
            return out.permute(0, 3, 1, 2)
        images = []
        for row, value in enumerate(values):
            with self._naming(row, name_row):
                images.append(self.one(value))
        if images and all(i.shape == images[0].shape for i in images):
            return torch.stack(images)
        if not images:
            return torch.empty((0, CHANNELS[self.spec.mode], 0, 0), dtype=torch.uint8)
        return images

    @contextlib.contextmanager
    def _naming(self, row: int, name_row: Callable[[int], str]) -> Iterator[None]:
        """A failure to decode row `row` of the batch, as a DecodeError naming column and row."""
        try:
            yield
        except Exception as exc:  # simplejpeg: ValueError; Pillow: OSError, ...
            raise DecodeError(f"column {self.spec.column!r}, {name_row(row)}: cannot decode the "
                              f"image: {type(exc).__name__}: {exc}") from exc


def _empty_nhwc(rows: int, size: tuple[int, int], channels: int) -> torch.Tensor:
    """An uninitialised uint8 [rows, H, W, C] tensor; in a worker, allocated in shared memory
    (what DataLoader would otherwise copy it into, to send it)."""
    shape = (rows, *size, channels)
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=torch.uint8)
    storage = torch.UntypedStorage._new_shared(rows * size[0] * size[1] * channels)
    strides = (size[0] * size[1] * channels, size[1] * channels, channels, 1)
    return torch.empty(0, dtype=torch.uint8).set_(storage, 0, shape, strides)


DECODERS = {"image": ImageDecoder}


def in_batch(row: int) -> str:
    """A row named by its place in the batch, where nothing better is known."""
    return f"row {row} of its batch"


def decode_batch(batch: Any, specs: Sequence[DecodeSpec],
                 name_row: Callable[[int], str] = in_batch) -> Any:
    """`batch` (torch, numpy, python or python_col format) with each `specs` column decoded.
    `name_row(k)` names row k of the batch in an error.

    A dict of columns gets a tensor (numpy format: an array) in place of the column;
    a list of row dicts (python format) gets each row's image.
    """
    for spec in specs:
        decoder = DECODERS[spec.type](spec)
        if isinstance(batch, list):  # python: row dicts
            values = [row[spec.column] for row in batch]
            decoded = decoder.many(values, name_row)
            for row, image in zip(batch, decoded, strict=True):
                row[spec.column] = image
            continue
        column = batch[spec.column]
        decoded = decoder.many(list(column), name_row)
        if isinstance(column, np.ndarray) and isinstance(decoded, torch.Tensor):
            decoded = decoded.numpy()
        batch[spec.column] = decoded
    return batch
