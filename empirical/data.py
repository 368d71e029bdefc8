"""Natural images: the photo corpus (:mod:`empirical.corpus`: 69 photographs of 61 scenes from
Debian packages plus scikit-image's seven photographs; the offline default), scikit-image's ten
images alone (``corpus="bundled"``, a demo), or a user's ImageFolder / ImageNet directory.

Photos yield as many samples as an experiment needs through *deterministic*
augmented crops (random-resized crop, flip; seeded per sample). Splits into calibration and
held-out parts follow :func:`split_indices`: a seeded permutation, the first fraction calibrates.
:func:`split_by_source` is the held-out split that means it: whole source photos (or files) go
to one side, so no crop of a held-out photo is ever used on the other side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

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
    """The whole image squeezed to size × size (antialiased bilinear)."""
    return F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp(0, 1)


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


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def image_files(root: str | Path) -> list[Path]:
    """Every image file under `root` (any depth), sorted; a clear error when there is none."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"image directory {str(root)!r} does not exist")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"image directory {str(root)!r} holds no image files "
                         f"({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as (3, H, W) float32 in [0, 1]; a damaged file is named in the error."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise ValueError(f"cannot read image {str(path)!r}: {err}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255


def image_folder(root: str | Path, size: int = 224, limit: int | None = None,
                 seed: int = 0) -> NaturalImages:
    """Images from a directory — ImageFolder/ImageNet layout (one folder per class: labels
    are the folder indices) or any tree of image files (no labels) — resized and
    centre-cropped; `limit` keeps a seeded random subset. Each file is its own source."""
    root = Path(root)
    files = image_files(root)
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


#: Built-in natural-image sets for ``natural_images(None, …, corpus=…)``.
CORPORA = ("photos", "bundled")


def natural_images(directory: str | Path | None, n: int, size: int, seed: int = 0,
                   corpus: str = "photos") -> NaturalImages:
    """`n` images from `directory` (ImageFolder layout, seeded subset), or crops of a built-in
    corpus: ``"photos"`` (the Debian photo corpus + scikit-image's, 68 scenes) or
    ``"bundled"`` (scikit-image's ten photos)."""
    if directory is not None:
        return image_folder(directory, size=size, limit=n, seed=seed)
    if corpus == "photos":
        from fvtrust.empirical.corpus import corpus_crops

        return corpus_crops(n, size, seed=seed)
    if corpus == "bundled":
        return bundled_images(n, size=size, seed=seed)
    raise ValueError(f"unknown corpus {corpus!r}; known: {', '.join(CORPORA)}")


def split_indices(n: int, calibration_fraction: float = 0.5,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, held-out) index arrays: a seeded permutation of range(n), the first
    ⌈fraction·n⌉ calibrate, the rest are held out; both sorted."""
    if not 0 < calibration_fraction < 1:
        raise ValueError(f"calibration_fraction must lie in (0, 1), got {calibration_fraction}")
    if n < 2:
        raise ValueError(f"need at least 2 images to split, got {n}")
    perm = np.random.default_rng(seed).permutation(n)
    k = min(n - 1, max(1, int(np.ceil(calibration_fraction * n))))
    return np.sort(perm[:k]), np.sort(perm[k:])


def source_of(sample: str) -> str:
    """The source scene or file a sample came from: ``"coffee#3"`` (crop 3 of a bundled
    photo) → ``"coffee"``; ``"mate-backgrounds/Dune@Dune.jpg#2"`` (a corpus crop) →
    ``"mate-backgrounds/Dune"`` (every file of one scene shares it); a file path is its own
    source."""
    head = sample.split("#", 1)[0]
    return head.split("@", 1)[0] if "@" in head and not head.startswith("/") else head


def split_by_source(sources: Sequence[str], first_fraction: float = 0.5,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(first, second) index arrays, source-disjoint: a seeded permutation of the distinct
    sources, the first ⌈fraction·S⌉ sources (all their samples) form the first part."""
    if not 0 < first_fraction < 1:
        raise ValueError(f"first_fraction must lie in (0, 1), got {first_fraction}")
    keys = [source_of(s) for s in sources]
    distinct = sorted(set(keys))
    if len(distinct) < 2:
        raise ValueError(f"a source-disjoint split needs at least 2 distinct sources, got "
                         f"{len(distinct)} ({distinct[:1]}) among {len(keys)} images")
    perm = np.random.default_rng(seed).permutation(len(distinct))
    k = min(len(distinct) - 1, max(1, int(np.ceil(first_fraction * len(distinct)))))
    first_sources = {distinct[i] for i in perm[:k]}
    first = np.array([i for i, key in enumerate(keys) if key in first_sources], dtype=np.int64)
    second = np.array([i for i, key in enumerate(keys) if key not in first_sources], dtype=np.int64)
    return first, second


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Logits of `model` for `images` in [0, 1], batched, on the model's device."""
    device = next(model.parameters()).device
    outs = [model(images[i:i + batch_size].to(device)).cpu()
            for i in range(0, len(images), batch_size)]
    return torch.cat(outs)


def label_with_model(model: torch.nn.Module, data: NaturalImages,
                     batch_size: int = 32) -> NaturalImages:
    """Label each image with the network's own top-1 class."""
    return NaturalImages(data.images, data.sources, predict(model, data.images, batch_size).argmax(1))
