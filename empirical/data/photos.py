"""scikit-image's bundled photographs (no download) and deterministic crops of them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fvtrust.empirical.data.crops import NaturalImages, augmented_crop

#: Photographs shipped inside scikit-image (no download): name → loader attribute.
BUNDLED_PHOTOS: dict[str, str] = {
    "chelsea": "chelsea", "coffee": "coffee", "astronaut": "astronaut", "rocket": "rocket",
    "motorcycle": "stereo_motorcycle", "camera": "camera", "coins": "coins",
    "hubble": "hubble_deep_field", "retina": "retina", "immunohistochemistry": "immunohistochemistry",
}


def load_photo(name: str) -> torch.Tensor:
    """A bundled photo as (3, H, W) float32 in [0, 1] (grey photos replicated to RGB)."""
    import skimage.data

    if name not in BUNDLED_PHOTOS:
        raise ValueError(f"unknown photo {name!r}; bundled: {', '.join(BUNDLED_PHOTOS)}")
    arr = getattr(skimage.data, BUNDLED_PHOTOS[name])()
    if isinstance(arr, tuple):  # stereo pair: take the left view
        arr = arr[0]
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    arr = arr[..., :3].astype(np.float32) / (255.0 if arr.dtype == np.uint8 else 1.0)
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def bundled_images(n: int, size: int = 224, seed: int = 0,
                   photos: Sequence[str] | None = None) -> NaturalImages:
    """`n` deterministic augmented crops, cycling through the bundled photos."""
    if n < 1:
        raise ValueError(f"need at least one image, got n={n}")
    names = list(photos or BUNDLED_PHOTOS)
    originals = {name: load_photo(name) for name in names}
    images, sources = [], []
    for i in range(n):
        name = names[i % len(names)]
        images.append(augmented_crop(originals[name], size, seed=seed * 1_000_003 + i))
        sources.append(f"{name}#{i // len(names)}")
    return NaturalImages(torch.stack(images), sources)
