"""Source ids and splits. Every split called held-out is by *source* (photo, scene or file):
:func:`split_by_source` (two parts) and :func:`gate_split` (train / threshold / held out);
:func:`split_indices` is the plain seeded split for data without sources.
:func:`warn_near_duplicates` names images on two sides of a split that look alike (perceptual
hash): sources a folder's layout did not reveal."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.fft import dctn

from fvtrust.empirical.data.crops import NaturalImages


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


@dataclass
class GateSplit:
    """Source-disjoint parts of a natural-image set: the gate trains on `train`, sets its
    threshold on `threshold`, and every reported natural number comes from `held_out`."""

    train: NaturalImages
    threshold: NaturalImages
    held_out: NaturalImages

    def counts(self) -> dict[str, int]:
        return {f"{name}_{what}": n for name, part in
                (("train", self.train), ("threshold", self.threshold), ("held_out", self.held_out))
                for what, n in (("images", len(part)),
                                ("sources", len({source_of(s) for s in part.sources})))}


def gate_split(natural: NaturalImages, fractions: tuple[float, float] = (0.45, 0.2),
               seed: int = 0, min_held_out_sources: int = 2) -> GateSplit:
    """Split by source: ⌈f₀·S⌉ sources train, then ⌈f₁/(1 − f₀)⌉ of the rest set the
    threshold, the remaining sources are held out."""
    f_train, f_thr = fractions
    if not (0 < f_train and 0 < f_thr and f_train + f_thr < 1):
        raise ValueError(f"fractions must be positive with a sum below 1, got {fractions}")
    sources = {source_of(s) for s in natural.sources}
    if len(sources) < 2 + min_held_out_sources:
        raise ValueError(f"a train/threshold/held-out split needs at least "
                         f"{2 + min_held_out_sources} distinct sources, got {len(sources)} among "
                         f"{len(natural)} images")
    first, rest = split_by_source(natural.sources, f_train, seed=seed)
    rest_sources = [natural.sources[i] for i in rest]
    second, third = split_by_source(rest_sources, f_thr / (1 - f_train), seed=seed + 1)
    split = GateSplit(natural.subset(first), natural.subset(rest[second]),
                      natural.subset(rest[third]))
    warn_near_duplicates(natural, first, rest, "gate's train / threshold and held-out")
    warn_near_duplicates(natural, rest[second], rest[third], "gate's threshold / held-out")
    held = len({source_of(s) for s in split.held_out.sources})
    if held < min_held_out_sources:
        raise ValueError(f"only {held} held-out sources (need {min_held_out_sources}) from "
                         f"{len(sources)} sources: use more images or another corpus")
    return split


#: Hamming distance (of 64 bits) within which two perceptual hashes are near-duplicates:
#: unrelated photos lie near 32, shots and crops of one scene far below.
NEAR_DUPLICATE_BITS = 10


def perceptual_hashes(images: torch.Tensor) -> np.ndarray:
    """A 64-bit pHash per image (B, C, H, W) in [0, 1]: grey, 32×32 (antialiased), 2-D DCT,
    the 8×8 lowest frequencies above or below their median (the DC term left out of it)."""
    grey = images.float().mean(1, keepdim=True)
    small = F.interpolate(grey, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    low = dctn(small[:, 0].cpu().numpy().astype(np.float64), axes=(1, 2), norm="ortho")[:, :8, :8]
    flat = low.reshape(len(low), 64)
    bits = flat > np.median(flat[:, 1:], axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel()


def near_duplicates_across(images: torch.Tensor, first: np.ndarray, second: np.ndarray,
                           max_bits: int = NEAR_DUPLICATE_BITS) -> list[tuple[int, int, int]]:
    """(i, j, distance) for every image i of `first` and j of `second` whose perceptual hashes
    differ in at most `max_bits` of 64 bits, nearest first."""
    if len(first) == 0 or len(second) == 0:
        return []
    h = perceptual_hashes(images)
    a, b = h[np.asarray(first)], h[np.asarray(second)]
    xor = a[:, None] ^ b[None, :]
    dist = np.unpackbits(xor.astype(">u8").view(np.uint8).reshape(*xor.shape, 8), axis=-1).sum(-1)
    ii, jj = np.nonzero(dist <= max_bits)
    pairs = [(int(first[i]), int(second[j]), int(dist[i, j])) for i, j in zip(ii, jj, strict=True)]
    return sorted(pairs, key=lambda p: (p[2], p[0], p[1]))


def warn_near_duplicates(natural: NaturalImages, first: np.ndarray, second: np.ndarray,
                         what: str) -> list[tuple[int, int, int]]:
    """Warn, naming them, about near-duplicate images on the two sides of a source split (they
    may be one scene under two source ids); return the pairs."""
    pairs = near_duplicates_across(natural.images, first, second)
    if pairs:
        shown = "; ".join(f"{natural.sources[i]} ~ {natural.sources[j]} ({d} bits)"
                          for i, j, d in pairs[:3])
        more = f" and {len(pairs) - 3} more" if len(pairs) > 3 else ""
        warnings.warn(f"{len(pairs)} near-duplicate image pair(s) fall on both sides of the {what} "
                      f"split (perceptual hash within {NEAR_DUPLICATE_BITS} of 64 bits): {shown}{more}; "
                      f"if they show one scene, group them with --sources folder or a REGEX",
                      UserWarning, stacklevel=2)
    return pairs
