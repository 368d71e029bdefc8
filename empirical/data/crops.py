"""Natural images as tensors: :class:`NaturalImages` (images with where each came from) and
the crops every source yields — *deterministic* augmented crops (random-resized crop, flip;
seeded per sample), the standard resize + centre crop, and a plain resize.

The sources themselves: :mod:`empirical.data.corpus` (the Debian photo corpus),
:mod:`empirical.data.photos` (scikit-image's photos), :mod:`empirical.data.folders` (a user's
directory); :mod:`empirical.data.natural` picks one by name, and
:mod:`empirical.data.splits` splits by source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def resize_center_crop(image: torch.Tensor, size: int, resize: int | None = None) -> torch.Tensor:
    """The standard evaluation transform: shorter side to `resize` (default 256/224·size),
    then a centre crop of `size`."""
    resize = resize or round(size * 256 / 224)
    _, h, w = image.shape
    scale = resize / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(image[None], size=(nh, nw), mode="bilinear", antialias=True,
                      align_corners=False)[0]
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[:, top:top + size, left:left + size].clamp(0, 1)


def resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """The whole image (3, H, W), or each of a batch (B, 3, H, W), squeezed to size × size
    (antialiased bilinear)."""
    batch = image if image.ndim == 4 else image[None]
    out = F.interpolate(batch, size=(size, size), mode="bilinear", antialias=True,
                        align_corners=False).clamp(0, 1)
    return out if image.ndim == 4 else out[0]


def augmented_crop(image: torch.Tensor, size: int, seed: int,
                   scale: tuple[float, float] = (0.2, 1.0)) -> torch.Tensor:
    """A deterministic random-resized crop (area fraction in `scale`, aspect 3/4–4/3) with a
    random horizontal flip, resized to `size`."""
    rng = np.random.default_rng(seed)
    _, h, w = image.shape
    area = h * w * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    ch = int(min(h, round(np.sqrt(area / aspect))))
    cw = int(min(w, round(np.sqrt(area * aspect))))
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    crop = image[:, top:top + ch, left:left + cw]
    if rng.random() < 0.5:
        crop = crop.flip(-1)
    return F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp(0, 1)


@dataclass
class NaturalImages:
    """A set of natural images (N, 3, S, S) in [0, 1] with where each came from."""

    images: torch.Tensor
    sources: list[str]
    labels: torch.Tensor | None = None  # a network's top-1 class per image, when assigned

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, index: Sequence[int] | np.ndarray) -> NaturalImages:
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        return NaturalImages(self.images[idx], [self.sources[i] for i in idx.tolist()],
                             None if self.labels is None else self.labels[idx])
























