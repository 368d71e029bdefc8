"""Gates E: 1 on feature-visualization inputs, 0 on natural images, with no gradient.

* :class:`StatisticGate` ("silent", beyond the paper): calibrated, not trained. E = 1 iff
  the input's distance to the natural calibration split, in the feature space of an early
  layer, exceeds what natural images reach (with a margin). We tried per-channel activation
  maxima, contrast and high-frequency energy first: with many channels, held-out natural
  crops trip "any channel out of range" too often (13–90 % false alarms), and class-logit
  renders stay inside the contrast and frequency ranges after ~8 steps.
* :class:`ClassifierGate` (the paper's): a small CNN trained to tell natural images from
  renders of the original network saved along the optimization, hard-thresholded.

Calibration streams over the images in batches; the statistic gate keeps one D-dimensional
embedding per calibration image (never the activations).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from empirical.models import Network, forward_activations

#: Fewer calibration images than this draws a warning (ranges would be too narrow).
MIN_CALIBRATION_IMAGES = 32


def batches(images: torch.Tensor, batch_size: int) -> Iterable[torch.Tensor]:
    for i in range(0, len(images), batch_size):
        yield images[i:i + batch_size]


class Gate(nn.Module):
    """E(x) ∈ {0, 1} per image; computed without gradient (a hard `where`)."""

    def decide(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.decide(images.detach()).to(images.dtype)


class StatisticGate(Gate):
    """E = 1 iff the input lies farther from every natural calibration image than natural
    images lie from each other.

    Statistic: d(x) = min_n [1 − cos(φ(x), φ(x_n))], φ = spatially averaged activations of an
    early-to-mid `layer`; threshold τ = (1 + margin)·max_n d_{−n}(x_n) (leave-one-out over
    the calibration split). Measured on EfficientNet-Lite0 ``_blocks.5`` (128 px): held-out
    natural crops reach d ≤ 0.11 (τ = 0.17 before the margin); class-logit renders sit at
    d ≥ 0.57 from the first optimization step on (a grey start is as foreign as a finished
    render). Only the N×D embeddings are kept, not the activations.
    """

    def __init__(self, model: Network, layer: str, margin: float = 0.25) -> None:
        super().__init__()
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.model, self.layer, self.margin = model, layer, float(margin)
        self.register_buffer("bank", torch.empty(0))
        self.threshold = float("nan")
        self.n_calibration = 0

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        acts = forward_activations(self.model, images.to(self.model.device), [self.layer])
        a = acts[self.layer]
        return F.normalize(a.flatten(2).mean(2) if a.ndim > 2 else a, dim=1)

    def distance(self, images: torch.Tensor) -> torch.Tensor:
        """d(x): cosine distance to the nearest calibration image."""
        if self.bank.numel() == 0:
            raise ValueError("the statistic gate is not calibrated: call calibrate(images)")
        return (1 - self.embed(images) @ self.bank.T).amin(1)

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor, batch_size: int = 32) -> StatisticGate:
        if len(images) < 2:
            raise ValueError(f"need at least 2 calibration images, got {len(images)}")
        self.bank = torch.cat([self.embed(b) for b in batches(images, batch_size)])
        loo = []
        for i, chunk in enumerate(batches(self.bank, 256)):
            d = 1 - chunk @ self.bank.T
            rows = torch.arange(len(chunk))
            d[rows, rows + i * 256] = float("inf")  # leave the image itself out
            loo.append(d.amin(1))
        self.threshold = float(torch.cat(loo).max()) * (1 + self.margin)
        self.n_calibration = len(images)
        if len(images) < MIN_CALIBRATION_IMAGES:
            warnings.warn(f"gate calibrated on only {len(images)} images (< "
                          f"{MIN_CALIBRATION_IMAGES}); natural ranges may be too narrow",
                          stacklevel=2)
        return self

    def decide(self, images: torch.Tensor) -> torch.Tensor:
        return (self.distance(images) > self.threshold).float()


class GateCNN(nn.Module):
    """The paper's gate network: conv 3×3 3→16, four conv 5×5 stride 2 16→16, conv 3×3
    16→3, flatten, dropout 0.3, linear → 1 (a logit for "visualization")."""

    def __init__(self, size: int = 96) -> None:
        super().__init__()
        if size < 96:
            raise ValueError(f"the gate CNN needs inputs of at least 96 px, got size={size}")
        layers: list[nn.Module] = [nn.Conv2d(3, 16, 3), nn.ReLU()]
        for _ in range(4):
            layers += [nn.Conv2d(16, 16, 5, stride=2), nn.ReLU()]
        layers += [nn.Conv2d(16, 3, 3), nn.ReLU(), nn.Flatten(), nn.Dropout(0.3)]
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            n = self.features(torch.zeros(1, 3, size, size)).shape[1]
        self.head = nn.Linear(n, 1)
        self.size = size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(self.size, self.size), mode="bilinear",
                          align_corners=False)
        return self.head(self.features(x * 2 - 1)).squeeze(1)


class ClassifierGate(Gate):
    """E = 1 iff the trained CNN's probability of "visualization" exceeds 1/2."""

    def __init__(self, cnn: GateCNN) -> None:
        super().__init__()
        self.cnn = cnn.eval()

    def decide(self, images: torch.Tensor) -> torch.Tensor:
        return (self.cnn(images) > 0).float()


def train_classifier_gate(natural: torch.Tensor, visualizations: torch.Tensor,
                          epochs: int = 30, size: int = 96, seed: int = 0,
                          lr: float = 2e-3, batch_size: int = 32) -> ClassifierGate:
    """Fit :class:`GateCNN` (binary cross-entropy, Adam), seeded."""
    if len(natural) < 2 or len(visualizations) < 2:
        raise ValueError(f"need at least 2 images of each kind, got {len(natural)} natural "
                         f"and {len(visualizations)} visualizations")
    torch.manual_seed(seed)
    cnn = GateCNN(size)
    x = torch.cat([natural, visualizations]).cpu()
    y = torch.cat([torch.zeros(len(natural)), torch.ones(len(visualizations))])
    opt = torch.optim.Adam(cnn.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    cnn.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for idx in batches(order, batch_size):
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(cnn(x[idx]), y[idx])
            loss.backward()
            opt.step()
    return ClassifierGate(cnn.eval())


@torch.no_grad()
def gate_accuracy(gate: Gate, natural: torch.Tensor, visualizations: torch.Tensor,
                  batch_size: int = 64) -> dict[str, float]:
    """Fraction of natural images with E = 0 and of visualizations with E = 1."""
    nat = torch.cat([gate(b) for b in batches(natural, batch_size)])
    vis = torch.cat([gate(b) for b in batches(visualizations, batch_size)])
    return {"natural_passed": float((nat == 0).float().mean()),
            "visualizations_caught": float((vis == 1).float().mean()),
            "accuracy": float(torch.cat([nat == 0, vis == 1]).float().mean())}
