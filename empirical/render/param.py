"""Image parametrizations: how the optimized image is represented (lucid's ``param``).

Each parametrization is an ``nn.Module`` whose ``forward()`` returns a batch of RGB images
in [0, 1] of shape (B, 3, H, W). Image i is initialized from its own seed, so a batch of N
equals N single images with the same seeds. ``channels=1`` (a greyscale network) optimizes
one channel, without colour decorrelation, and returns it as grey RGB (R = G = B).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

#: Square root of the ImageNet colour covariance (lucid): decorrelated → RGB.
COLOR_CORRELATION_SVD_SQRT = np.array([[0.26, 0.09, 0.02],
                                       [0.27, 0.00, -0.05],
                                       [0.27, -0.09, 0.03]], dtype=np.float32)
COLOR_CORRELATION = COLOR_CORRELATION_SVD_SQRT / np.max(
    np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))


def _generators(seeds: Sequence[int]) -> list[torch.Generator]:
    # Initial values are drawn on the CPU so that a seed means the same image on any device.
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


#: Largest render side: 2048 px is ~9× the paper's 224 px; beyond that a batch of one image
#: and its Fourier spectrum alone take gigabytes, and no network here was trained for it.
MAX_SIZE = 2048


def _check_size(size: int) -> int:
    if not isinstance(size, int) or not 8 <= size <= MAX_SIZE:
        raise ValueError(f"image size must be an integer in [8, {MAX_SIZE}], got size={size!r}")
    return size


def rfft2d_frequencies(h: int, w: int) -> torch.Tensor:
    """|f| of the rFFT grid (cycles per pixel), shape (h, w // 2 + 1)."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


def _check_channels(channels: int) -> int:
    if channels not in (1, 3):
        raise ValueError(f"a parametrization has 1 (grey) or 3 (RGB) channels, got {channels!r}")
    return channels


def _as_rgb(image: torch.Tensor) -> torch.Tensor:
    return image.expand(-1, 3, -1, -1) if image.shape[1] == 1 else image


def decorrelated_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Map decorrelated colour channels to RGB with the ImageNet colour correlation."""
    matrix = torch.as_tensor(COLOR_CORRELATION, device=image.device, dtype=image.dtype)
    return torch.einsum("bchw,dc->bdhw", image, matrix)


class PixelImage(nn.Module):
    """Raw pixels (decorrelated colour optional), squashed to [0, 1] by a sigmoid."""

    def __init__(self, seeds: Sequence[int], size: int, sd: float = 0.01,
                 decorrelate: bool = True, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, channels: int = 3) -> None:
        super().__init__()
        size = _check_size(size)
        channels = _check_channels(channels)
        init = torch.stack([torch.randn(channels, size, size, generator=g) * sd
                            for g in _generators(seeds)])
        self.pixels = nn.Parameter(init.to(device, dtype))
        self.decorrelate = decorrelate and channels == 3

    def forward(self) -> torch.Tensor:
        x = decorrelated_to_rgb(self.pixels) if self.decorrelate else self.pixels
        return _as_rgb(torch.sigmoid(x))


class FourierImage(nn.Module):
    """lucid's ``param.image(fft=True, decorrelate=True)``: an rFFT spectrum scaled by
    1/|f|^decay_power (so every frequency learns at a similar rate), inverse FFT, colour
    decorrelation, sigmoid."""

    def __init__(self, seeds: Sequence[int], size: int, sd: float = 0.01,
                 decay_power: float = 1.0, decorrelate: bool = True,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 channels: int = 3) -> None:
        super().__init__()
        self.size = _check_size(size)
        channels = _check_channels(channels)
        freqs = rfft2d_frequencies(size, size)
        scale = 1.0 / torch.clamp(freqs, min=1.0 / size) ** decay_power
        # lucid: irfft(scale·√(hw)·spectrum) with 1/(hw) normalization = ortho irfft(scale·spectrum)
        self.register_buffer("scale", scale[None, None, :, :, None].to(device, dtype))
        shape = (channels, size, size // 2 + 1, 2)
        init = torch.stack([torch.randn(*shape, generator=g) * sd for g in _generators(seeds)])
        self.spectrum = nn.Parameter(init.to(device, dtype))
        self.decorrelate = decorrelate and channels == 3

    def forward(self) -> torch.Tensor:
        spec = torch.view_as_complex((self.scale * self.spectrum).contiguous())
        image = torch.fft.irfft2(spec, s=(self.size, self.size), norm="ortho") / 4.0
        if self.decorrelate:
            image = decorrelated_to_rgb(image)
        return _as_rgb(torch.sigmoid(image))


PARAMETRIZATIONS = {"fourier": FourierImage, "pixel": PixelImage}


def make_param(kind: str, seeds: Sequence[int], size: int, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32, **kwargs: float) -> nn.Module:
    """A parametrization by name ("fourier" or "pixel")."""
    if kind not in PARAMETRIZATIONS:
        raise ValueError(f"unknown parametrization {kind!r}; known: {', '.join(PARAMETRIZATIONS)}")
    return PARAMETRIZATIONS[kind](seeds, size, device=device, dtype=dtype, **kwargs)
