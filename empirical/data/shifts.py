"""Natural images under common shifts (brightness, contrast, saturation, grey, blur, noise,
JPEG): one seeded augmented copy of each image for calibration (:func:`augment_natural`), and
the named shifts under which a manipulation must stay silent (:data:`SHIFTS`)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from fvtrust.empirical.data.images import read_image


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """`image` (3, H, W) in [0, 1] after a JPEG round trip at `quality`."""
    buf = io.BytesIO()
    arr = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return read_image(buf)


def blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """`image` (3, H, W) under a Gaussian blur of std `sigma` px."""
    from torchvision.transforms.functional import gaussian_blur

    k = 2 * int(np.ceil(2 * sigma)) + 1
    return gaussian_blur(image[None], [k, k], [sigma, sigma])[0]


def augment_natural(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One shifted copy of each image: brightness ×U(0.6, 1.4) (p = .5), contrast ×U(0.5, 1.5)
    (p = .5), saturation ×U(0, 1.5) (p = .3), grey (p = .15), Gaussian blur σ ∈ U(0.5, 2)
    (p = .3), Gaussian noise σ ∈ U(0.01, 0.08) (p = .3), JPEG quality 20–90 (p = .3)."""
    rng = np.random.default_rng(seed)
    out = []
    for img in images.detach().cpu().float():
        if rng.random() < 0.5:
            img = img * rng.uniform(0.6, 1.4)
        if rng.random() < 0.5:
            mu = img.mean()
            img = (img - mu) * rng.uniform(0.5, 1.5) + mu
        if rng.random() < 0.3:
            grey = img.mean(0, keepdim=True)
            img = grey + (img - grey) * rng.uniform(0.0, 1.5)
        if rng.random() < 0.15:
            img = img.mean(0, keepdim=True).expand(3, -1, -1)
        img = img.clamp(0, 1)
        if rng.random() < 0.3:
            img = blur(img, rng.uniform(0.5, 2.0))
        if rng.random() < 0.3:
            g = torch.Generator().manual_seed(int(rng.integers(1 << 31)))
            img = (img + torch.randn(img.shape, generator=g) * rng.uniform(0.01, 0.08)).clamp(0, 1)
        if rng.random() < 0.3:
            img = jpeg(img, int(rng.integers(20, 91)))
        out.append(img.contiguous())
    return torch.stack(out)


#: Common shifts of natural images under which the branches must stay silent.
SHIFTS = ("none", "brightness x1.4", "brightness x0.6", "contrast x0.5", "contrast x1.5",
          "jpeg q30", "grey", "blur s1.5", "noise s0.05")


def shifted(images: torch.Tensor, shift: str, seed: int = 0) -> torch.Tensor:
    """`images` under one of :data:`SHIFTS` (deterministic)."""
    if shift == "none":
        return images
    kind, _, amount = shift.partition(" ")
    value = float(amount.lstrip("xsq")) if amount else 0.0
    if kind == "brightness":
        return (images * value).clamp(0, 1)
    if kind == "contrast":
        mu = images.mean((1, 2, 3), keepdim=True)
        return ((images - mu) * value + mu).clamp(0, 1)
    if kind == "jpeg":
        return torch.stack([jpeg(x, int(value)) for x in images])
    if kind == "grey":
        return images.mean(1, keepdim=True).expand(-1, 3, -1, -1).contiguous()
    if kind == "blur":
        return torch.stack([blur(x, value) for x in images])
    if kind == "noise":
        g = torch.Generator().manual_seed(seed)
        return (images + torch.randn(images.shape, generator=g) * value).clamp(0, 1)
    raise ValueError(f"unknown shift {shift!r}; known: {', '.join(SHIFTS)}")
