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
                  pad: int = 2) -> torch.Tensor:
    """Tile images (B, 3, H, W) into one (3, H', W') image with white gutters."""
    imgs = torch.stack(list(images)) if not isinstance(images, torch.Tensor) else images
    b, c, h, w = imgs.shape
    cols = min(columns, b)
    rows = -(-b // cols)
    sheet = torch.ones(c, rows * (h + pad) + pad, cols * (w + pad) + pad)
    for i, img in enumerate(imgs.cpu()):
        r, k = divmod(i, cols)
        sheet[:, pad + r * (h + pad): pad + r * (h + pad) + h,
              pad + k * (w + pad): pad + k * (w + pad) + w] = img.clamp(0, 1)
    return sheet
