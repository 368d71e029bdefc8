"""Image files: the one reader (any format, or a stream), the one PNG writer (atomic), PNG
bytes for workers, and contact sheets."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fvtrust.io import atomic_write_with


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] → (H, W, 3) uint8."""
    arr = image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    return (arr * 255 + 0.5).astype(np.uint8)


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    """Write one image (3, H, W) in [0, 1] as a PNG, atomically and readable by the user's
    group as any result file (the one PNG writer)."""
    return atomic_write_with(path, lambda tmp: Image.fromarray(to_uint8(image)).save(tmp, format="PNG"),
                             suffix=".png")


def png_bytes(image: torch.Tensor) -> bytes:
    """One image (3, H, W) in [0, 1] encoded as PNG (a worker sends these to the driver)."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


def contact_sheet(images: torch.Tensor | Sequence[torch.Tensor], columns: int = 8,
                  pad: int = 2, labels: Sequence[str] | None = None) -> torch.Tensor:
    """Tile images (B, 3, H, W) into one (3, H', W') image with white gutters; `labels`
    (one per image, e.g. unit numbers) are written in a strip above each image."""
    imgs = torch.stack(list(images)) if not isinstance(images, torch.Tensor) else images
    b, c, h, w = imgs.shape
    if labels is not None and len(labels) != b:
        raise ValueError(f"{len(labels)} labels for {b} images")
    top = 12 if labels is not None else 0
    cols = min(columns, b)
    rows = -(-b // cols)
    cell_h = h + top + pad
    sheet = torch.ones(c, rows * cell_h + pad, cols * (w + pad) + pad)
    for i, img in enumerate(imgs.cpu()):
        r, k = divmod(i, cols)
        y = pad + r * cell_h + top
        sheet[:, y:y + h, pad + k * (w + pad): pad + k * (w + pad) + w] = img.clamp(0, 1)
    if labels is None:
        return sheet
    from PIL import ImageDraw

    canvas = Image.fromarray(to_uint8(sheet))
    draw = ImageDraw.Draw(canvas)
    for i, label in enumerate(labels):
        r, k = divmod(i, cols)
        draw.text((pad + k * (w + pad) + 1, pad + r * cell_h), str(label), fill=(0, 0, 0))
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255).permute(2, 0, 1)


#: the largest image read (Pillow's own guard against decompression bombs): 89,478,485 pixels,
#: about 9459 x 9459. Larger files are refused by name; downscale them first.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _as_rgb(im: Image.Image) -> Image.Image:
    """Any mode Pillow opens → 8-bit RGB. 16-bit grey (I;16*, and I, which Pillow uses for
    16-bit files) is scaled from 0…65535 and float grey (F) from 0…1 (0…255 when its values
    exceed 1): Pillow's own convert would clip both to white. Alpha is dropped, as is the
    transparency of palette images."""
    if im.mode in _SIXTEEN_BIT or im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        full = 65535.0 if im.mode in _SIXTEEN_BIT else (1.0 if arr.max(initial=0) <= 1 else 255.0)
        grey = np.clip(np.nan_to_num(arr) / full, 0, 1)
        return Image.fromarray((grey * 255 + 0.5).astype(np.uint8), mode="L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # Pillow's palette-with-transparency path, without its warning
    return im.convert("RGB")


def read_image_uint8(source: str | Path | BinaryIO, short_side: int | None = None,
                     damaged: str | None = None) -> torch.Tensor:
    """An image file (or an open binary stream) as (3, H, W) uint8 RGB — the one image reader.
    With `short_side`, a larger image is brought down so its shorter side is `short_side`
    (JPEGs decode at reduced scale first, then Lanczos). A file that cannot be read is named
    in a one-line error (`damaged`: what happens to it, e.g. "it is re-rendered"), and so is
    one over :data:`MAX_PIXELS`. Every mode Pillow opens is read (see :func:`_as_rgb`)."""
    what = str(source) if isinstance(source, str | Path) else "stream"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(source)
        with opened as im:
            if short_side is not None:
                im.draft("RGB", (short_side * 2, short_side * 2))  # JPEG: decode at reduced scale
            im = _as_rgb(im)
            if short_side is not None and short_side < min(im.size):
                scale = short_side / min(im.size)
                im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                               Image.Resampling.LANCZOS)
            arr = np.asarray(im, dtype=np.uint8)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        pixels = str(err).split("(")[1].split(" ")[0] if "(" in str(err) else "too many"
        raise ValueError(f"image {what!r} has {pixels} pixels, over the limit of {MAX_PIXELS:,} "
                         f"(a guard against decompression bombs); downscale it first") from None
    except (OSError, UnidentifiedImageError, ValueError) as err:
        if damaged:  # a file this package wrote
            raise ValueError(f"{what} is damaged ({err}); delete it ({damaged}) or rerun with "
                             f"--force") from None
        raise ValueError(f"cannot read image {what!r}: {err}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def read_image(source: str | Path | BinaryIO, damaged: str | None = None) -> torch.Tensor:
    """An image file as (3, H, W) float32 in [0, 1] (see :func:`read_image_uint8`)."""
    return read_image_uint8(source, damaged=damaged).float() / 255
