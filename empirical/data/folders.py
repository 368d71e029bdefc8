"""A user's images: a directory tree (ImageFolder/ImageNet layout or any tree of files), each
file its own source; file digests, so that verification images can be refused when they are
calibration photos."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from fvtrust.empirical.data.crops import NaturalImages, resize_center_crop
from fvtrust.empirical.data.images import read_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def image_files(root: str | Path, option: str = "image directory") -> list[Path]:
    """Every image file under `root` (any depth, through symlinked folders, each real folder
    once), sorted; a clear error naming `option` when there is none, and naming a file whose
    name is not valid UTF-8 (it could not be stored in a record)."""
    root = Path(root)
    if not root.exists():
        raise ValueError(f"{option} {str(root)!r} does not exist")
    if not root.is_dir():
        raise ValueError(f"{option} {str(root)!r} is a file, not a folder of images")
    files, seen = [], set()
    for folder, subdirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symlink loop, or a folder reached twice: read it once
            subdirs[:] = []
            continue
        seen.add(real)
        subdirs.sort()
        for name in names:
            path = Path(folder) / name
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                try:
                    str(path).encode("utf-8")
                except UnicodeEncodeError:
                    name = os.fsencode(path)
                    raise ValueError(f"{option}: the file name {name!r} is not valid UTF-8; "
                                     f"rename it") from None
                files.append(path)
    if not files:
        raise ValueError(f"{option} {str(root)!r} holds no image files "
                         f"({', '.join(IMAGE_SUFFIXES)})")
    return sorted(files)


def image_folder(root: str | Path, size: int = 224, limit: int | None = None,
                 seed: int = 0, option: str = "image directory") -> NaturalImages:
    """Images from a directory — ImageFolder/ImageNet layout (one folder per class: labels
    are the folder indices) or any tree of image files (no labels) — resized and
    centre-cropped; `limit` keeps a seeded random subset. Each file is its own source."""
    root = Path(root)
    files = image_files(root, option)
    classes = sorted({p.parent.name for p in files})
    layered = all(p.parent.parent == root for p in files)
    order = np.arange(len(files))
    if limit is not None and limit < len(order):
        order = np.sort(np.random.default_rng(seed).choice(order, size=limit, replace=False))
    images, sources, labels = [], [], []
    for i in order:
        path = files[int(i)]
        images.append(resize_center_crop(read_image(path), size))
        sources.append(str(path.resolve()))
        labels.append(classes.index(path.parent.name) if layered else -1)
    return NaturalImages(torch.stack(images), sources,
                         torch.tensor(labels) if layered else None)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (a copy of a calibration photo has the same digest)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_not_calibration(verify_files: Iterable[str | Path],
                          calibration_files: Iterable[str | Path]) -> None:
    """Refuse verification files whose bytes equal a calibration file's, naming them."""
    calibration = {}
    for p in calibration_files:
        calibration.setdefault(file_digest(p), str(p))
    overlap = [(str(p), calibration[d]) for p in verify_files
               if (d := file_digest(p)) in calibration]
    if overlap:
        shown = "; ".join(f"{v} = {c}" for v, c in overlap[:5])
        more = f" and {len(overlap) - 5} more" if len(overlap) > 5 else ""
        raise ValueError(f"--verify-images must not overlap the calibration images: "
                         f"{len(overlap)} file(s) are calibration photos ({shown}{more})")


def verification_images(directory: str | Path, calibration_files: Iterable[str | Path],
                        size: int) -> NaturalImages:
    """A user's directory for checking natural behaviour: refused, by content, if any file is
    a calibration photo; else every image, resized and centre-cropped to `size`."""
    check_not_calibration(image_files(directory), calibration_files)
    return image_folder(directory, size=size)
