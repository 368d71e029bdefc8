"""Transformation robustness (lucid's ``transform``): random jitter, scale and rotation.

lucid's standard set — pad 12 (constant 0.5), jitter 8, scale ∈ {0.90, 0.92, …, 1.10},
rotate ∈ [−10°, 10°], jitter 4 — is one similarity transform per image, so we apply it as
*one* ``affine_grid``/``grid_sample`` resampling (bilinear; constant 0.5 outside the image)
instead of five passes. Every image draws its own parameters from its own generator, so a
batch equals its images rendered one at a time. The output is (size + 2·pad − jitters) px,
as in lucid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

SCALES = tuple(1 + (i - 5) / 50 for i in range(11))
ANGLES = tuple(float(a) for a in range(-10, 11))


@dataclass(frozen=True)
class TransformConfig:
    """The robustness a visualization must survive; lucid's standard set by default."""

    pad: int = 12
    jitter: int = 8
    scales: tuple[float, ...] = SCALES
    angles: tuple[float, ...] = ANGLES
    jitter_after: int = 4
    pad_value: float = 0.5
    #: Pixels per side of the output; None keeps lucid's size. Smaller values see the same
    #: field of view at lower resolution (as lucent's ``fixed_image_size`` resampling).
    output: int | None = None

    @classmethod
    def none(cls) -> TransformConfig:
        return cls(pad=0, jitter=0, scales=(1.0,), angles=(0.0,), jitter_after=0)

    def scaled(self, factor: float) -> TransformConfig:
        """Pixel amounts scaled (the notebooks used pad 21, jitter 14/7 at 224 px)."""
        return TransformConfig(round(self.pad * factor), round(self.jitter * factor),
                               self.scales, self.angles, round(self.jitter_after * factor),
                               self.pad_value, self.output)

    def field_of_view(self, size: int) -> int:
        """lucid's output size: size + 2·pad − jitter − jitter_after."""
        return size + 2 * self.pad - self.jitter - self.jitter_after

    def output_size(self, size: int) -> int:
        return self.output or self.field_of_view(size)


@dataclass
class RandomTransform:
    """Draws per-image transforms and applies them in one resampling."""

    config: TransformConfig
    seeds: Sequence[int]
    generators: list[torch.Generator] = field(init=False)

    def __post_init__(self) -> None:
        self.generators = [torch.Generator().manual_seed(10_007 * int(s) + 1) for s in self.seeds]

    def _draw(self, g: torch.Generator) -> tuple[float, float, float, float]:
        c = self.config

        def pick(options: Sequence[float]) -> float:
            return float(options[int(torch.randint(len(options), (1,), generator=g))])

        def shift(n: int) -> float:
            return float(torch.randint(n + 1, (1,), generator=g)) - n / 2 if n else 0.0

        dx1, dy1 = shift(c.jitter), shift(c.jitter)
        scale, angle = pick(c.scales), pick(c.angles)
        dx2, dy2 = shift(c.jitter_after), shift(c.jitter_after)
        return scale, angle, dx1 + dx2, dy1 + dy2

    def matrices(self, size: int, device: torch.device) -> torch.Tensor:
        """Affine matrices (B, 2, 3) mapping output to input normalized coordinates."""
        fov = self.config.field_of_view(size)
        rows = []
        for g in self.generators:
            scale, angle, dx, dy = self._draw(g)
            a = math.radians(angle)
            k = fov / size / scale
            rows.append([[k * math.cos(a), -k * math.sin(a), 2 * dx / size],
                         [k * math.sin(a), k * math.cos(a), 2 * dy / size]])
        return torch.tensor(rows, dtype=torch.float32, device=device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        b, ch, h, w = images.shape
        if h != w:
            raise ValueError(f"transforms expect square images, got {h}x{w}")
        if b != len(self.generators):
            raise ValueError(f"{b} images but {len(self.generators)} transform seeds")
        out = self.config.output_size(h)
        theta = self.matrices(h, images.device).to(images.dtype)
        grid = F.affine_grid(theta, [b, ch, out, out], align_corners=False)
        shifted = images - self.config.pad_value
        return F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False) + self.config.pad_value
