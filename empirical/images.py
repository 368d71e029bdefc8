"""Image files: PNGs and contact sheets, written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] → (H, W, 3) uint8."""
    arr = image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    return (arr * 255 + 0.5).astype(np.uint8)


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    """Write one image atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png")
    os.close(fd)
    try:
        Image.fromarray(to_uint8(image)).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


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
