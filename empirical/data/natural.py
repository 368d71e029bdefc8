"""Natural images by name: a user's directory, the photo corpus or scikit-image's photos
(:func:`natural_images`), and decoy targets (:func:`load_target`)."""

from __future__ import annotations

from pathlib import Path

import torch

from fvtrust.empirical.data.corpus import corpus_crops
from fvtrust.empirical.data.crops import NaturalImages
from fvtrust.empirical.data.folders import image_folder
from fvtrust.empirical.data.images import read_image
from fvtrust.empirical.data.photos import bundled_images, load_photo

#: Built-in natural-image sets for ``natural_images(None, …, corpus=…)``.
CORPORA = ("photos", "bundled")


def natural_images(directory: str | Path | None, n: int, size: int, seed: int = 0,
                   corpus: str = "photos", sources: str = "auto") -> NaturalImages:
    """`n` images from `directory` (ImageFolder layout, seeded subset; `sources`: how its files
    group into sources, see :mod:`~empirical.data.folders`), or crops of a built-in corpus:
    ``"photos"`` (the Debian photo corpus + scikit-image's, 68 scenes) or ``"bundled"``
    (scikit-image's ten photos)."""
    if directory is not None:
        return image_folder(directory, size=size, limit=n, seed=seed, sources=sources)
    if corpus == "photos":
        return corpus_crops(n, size, seed=seed)
    if corpus == "bundled":
        return bundled_images(n, size=size, seed=seed)
    raise ValueError(f"unknown corpus {corpus!r}; known: {', '.join(CORPORA)}")


def load_target(name: str) -> torch.Tensor:
    """A bundled photo by name, or an image file (any size: resized where it is used)."""
    path = Path(name)
    return read_image(path) if path.is_file() else load_photo(name)
