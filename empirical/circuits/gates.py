"""Gates E: 1 on feature-visualization inputs, 0 on natural images, with no gradient.

* :class:`FeatureGate` ("features", the default): a learned "is this a render?" boundary on
  the statistics (per-channel mean and standard deviation) of four early-to-middle layers of
  the wrapped network plus three pixel statistics; a small MLP trained on augmented natural
  photos against renders of many settings (:mod:`empirical.circuits.gate_bank`), hard-thresholded at
  a quantile of its scores on natural photos of *other* sources. It generalizes to photos it
  never saw, because it learns what makes a render a render, not which photos are natural.
* :class:`ClassifierGate` ("classifier", the paper's): a small CNN on pixels trained on the
  same data, hard-thresholded at 1/2.
* :class:`NearestCalibrationGate` ("nearest", v0.1's default): E = 1 iff the input is
  farther, in an early layer's feature space, from every calibration image than those lie
  from each other. It is a memory of its calibration photos: it flags every photo from
  another source (100 % of crops of unseen photos), so it only suits a closed world where
  every natural input comes from the calibration photos. Kept for that, and as the
  cautionary baseline.

Calibration streams over the images in batches; the nearest-calibration gate keeps one
D-dimensional embedding per calibration image (never the activations).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fvtrust.empirical.nets.layers import (
    batches,
    check_images,
    forward_activations,
    main_layers,
    spatial_mean,
)
from fvtrust.empirical.nets.registry import LOGITS, Network

#: Fewer calibration images than this draws a warning (ranges would be too narrow).
MIN_CALIBRATION_IMAGES = 32


class Gate(nn.Module):
    """E(x) ∈ {0, 1} per image; computed without gradient (a hard `where`)."""

    def decide(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_gate_images(images)
        with torch.no_grad():
            return self.decide(images.detach()).to(images.dtype)


class NearestCalibrationGate(Gate):
    """E = 1 iff the input lies farther from every natural calibration image than natural
    images lie from each other.

    Statistic: d(x) = min_n [1 − cos(φ(x), φ(x_n))], φ = spatially averaged activations of an
    early-to-mid `layer`; threshold τ = (1 + margin)·max_n d_{−n}(x_n) (leave-one-out over
    the calibration split). Crops of the calibration photos pass; crops of any other photo
    do not (see the module docstring). Only the N×D embeddings are kept.
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
        return F.normalize(spatial_mean(a), dim=1)

    def distance(self, images: torch.Tensor) -> torch.Tensor:
        """d(x): cosine distance to the nearest calibration image."""
        if self.bank.numel() == 0:
            raise ValueError("the nearest-calibration gate is not calibrated: call calibrate(images)")
        return (1 - self.embed(images) @ self.bank.T).amin(1)

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor, batch_size: int = 32) -> NearestCalibrationGate:
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


def check_gate_images(images: torch.Tensor) -> None:
    """A gate decides on (B, 3, H, W) float images in [0, 1]; anything else is refused by name."""
    check_images(images, "gate images")


def gate_layers(model: Network, fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.45)) -> list[str]:
    """Four early-to-middle layers at these fractions of the network's main layers (for
    EfficientNet-Lite0: ``_blocks.0, 2, 4, 7``)."""
    names = [n for n in main_layers(model) if n != LOGITS]
    return list(dict.fromkeys(names[round(f * (len(names) - 1))] for f in fractions))


#: Radial frequency bands (fractions of Nyquist) of the spectral part of φ.
SPECTRAL_BANDS = (0.0, 0.03, 0.06, 0.12, 0.25, 0.5, 1.01)


def spectral_profile(images: torch.Tensor) -> torch.Tensor:
    """log share of the grey image's power (mean removed) in each radial band of
    :data:`SPECTRAL_BANDS`: photos follow a 1/f² power law that renders break."""
    grey = images.float().mean(1)
    grey = grey - grey.mean((1, 2), keepdim=True)
    power = torch.fft.rfft2(grey, norm="ortho").abs() ** 2
    h, w = grey.shape[-2:]
    fy = torch.fft.fftfreq(h, device=grey.device).abs()[:, None]
    fx = torch.fft.rfftfreq(w, device=grey.device)[None, :]
    radius = torch.sqrt(fy ** 2 + fx ** 2) / 0.5
    total = power.sum((1, 2)).clamp_min(1e-12)
    shares = [power[:, (radius >= lo) & (radius < hi)].sum(1) / total
              for lo, hi in pairwise(SPECTRAL_BANDS)]
    return torch.log(torch.stack(shares, 1) + 1e-8)


def gate_features(model: Network, layers: Sequence[str], images: torch.Tensor) -> torch.Tensor:
    """φ(x): per-channel mean, std and spatial max of each layer's activations; the log
    power share per radial frequency band (:func:`spectral_profile`); each colour channel's
    mean and standard deviation; the fraction of
    clipped pixels (≤ .02 or ≥ .98), the mean absolute vertical pixel difference and the mean
    absolute chroma — renders saturate, oscillate and colour where photos rarely do."""
    acts = forward_activations(model, images.to(model.device), list(layers))
    parts = []
    for name in layers:
        a = acts[name].float().flatten(2)
        parts += [a.mean(2), a.std(2), a.amax(2)]
    x = images.to(parts[0].device).float()
    parts += [spectral_profile(x), x.mean((2, 3)), x.std((2, 3)),
              ((x < 0.02) | (x > 0.98)).float().mean((1, 2, 3))[:, None],
              (x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3))[:, None],
              (x - x.mean(1, keepdim=True)).abs().mean((1, 2, 3))[:, None]]
    return torch.cat(parts, 1)


class FeatureGate(Gate):
    """E = 1 iff s(x) = mean_m MLP_m((φ(x) − μ)/σ) > τ, φ from :func:`gate_features`, an
    ensemble of seeded MLPs; τ is set on photos and render settings the MLPs never saw
    (:func:`train_feature_gate`)."""

    def __init__(self, model: Network, layers: Sequence[str], mlps: Sequence[nn.Module],
                 mean: torch.Tensor, std: torch.Tensor, threshold: float) -> None:
        super().__init__()
        self.model, self.layers = model, list(layers)
        self.mlps = nn.ModuleList(mlps).eval()
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone())
        self.threshold = float(threshold)
        self.calibration: GateThreshold | None = None

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """s(x): the MLP's logit for "render", one per image."""
        with torch.no_grad():
            return self.score_features(gate_features(self.model, self.layers, images))

    def score_features(self, features: torch.Tensor) -> torch.Tensor:
        """s from φ(x) already computed (:func:`gate_features`)."""
        with torch.no_grad():
            z = ((features.to(self.mean.device) - self.mean) / self.std).to(self.mean.dtype)
            return torch.stack([mlp(z)[:, 0] for mlp in self.mlps]).mean(0)

    def decide(self, images: torch.Tensor) -> torch.Tensor:
        return (self.score(images) > self.threshold).float()


def conformal_threshold(scores: torch.Tensor, alpha: float) -> float:
    """The ⌈(n + 1)(1 − α)⌉-th smallest of n natural scores: a new exchangeable natural image
    exceeds it with probability ≤ α (the split-conformal bound)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    n = len(scores)
    rank = int(np.ceil((n + 1) * (1 - alpha)))
    if rank > n:
        raise ValueError(f"{n} threshold images cannot certify alpha={alpha}: need at least "
                         f"{int(np.ceil(1 / alpha)) - 1}")
    return float(torch.sort(scores.flatten()).values[rank - 1])


def _features_batched(model: Network, layers: Sequence[str], images: torch.Tensor,
                      batch_size: int = 64) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([gate_features(model, layers, b).cpu() for b in batches(images, batch_size)])


@dataclass(frozen=True)
class GateThreshold:
    """How τ was set: q_nat = :func:`conformal_threshold` of the natural threshold photos at
    α; q_render = the α-quantile of the renders of held-out settings (steps ≥ `min_step`).
    When q_nat < q_render, τ = q_nat + λ·(q_render − q_nat) with λ = `render_side`; else
    τ = q_nat (false alarms come first) and `separable` is False. λ = 2/3 leans towards the
    renders because natural scores on *unseen photo sources* spread further past q_nat than
    render scores on unseen settings fall below q_render (chosen on split seeds 0, 2, 5, 6;
    the reported numbers come from the default seed's held-out sources)."""

    threshold: float
    natural_quantile: float
    render_quantile: float
    alpha: float
    render_side: float
    n_natural: int
    n_renders: int
    min_step: int

    @property
    def separable(self) -> bool:
        return self.natural_quantile < self.render_quantile


def balanced_threshold(natural_scores: torch.Tensor, render_scores: torch.Tensor,
                       alpha: float, min_step: int, render_side: float = 2 / 3) -> GateThreshold:
    if not 0 <= render_side <= 1:
        raise ValueError(f"render_side must lie in [0, 1], got {render_side}")
    q_nat = conformal_threshold(natural_scores, alpha)
    q_ren = float(torch.quantile(render_scores.flatten().float(), alpha))
    tau = q_nat + render_side * (q_ren - q_nat) if q_nat < q_ren else q_nat
    return GateThreshold(tau, q_nat, q_ren, alpha, render_side, len(natural_scores),
                         len(render_scores), min_step)


def train_feature_gate(model: Network, natural: torch.Tensor, renders: torch.Tensor,
                       threshold_images: torch.Tensor, threshold_renders: torch.Tensor,
                       alpha: float = 0.005, min_step: int = 4, render_side: float = 2 / 3,
                       layers: Sequence[str] | None = None, hidden: int = 64,
                       iterations: int = 600, ensemble: int = 3, seed: int = 0) -> FeatureGate:
    """Fit the MLP (class-balanced binary cross-entropy, Adam, full batch, seeded) on
    `natural` (already augmented as wanted) vs `renders`, then set τ by
    :func:`balanced_threshold` on `threshold_images` (natural photos of other sources) and
    `threshold_renders` (renders of settings the MLP never saw, steps ≥ `min_step`)."""
    for name, x in (("natural", natural), ("renders", renders), ("threshold", threshold_images),
                    ("threshold render", threshold_renders)):
        if len(x) < 2:
            raise ValueError(f"need at least 2 {name} images to train the feature gate, got {len(x)}")
        check_gate_images(x)
    layers = list(layers or gate_layers(model))
    features = [_features_batched(model, layers, x)
                for x in (natural, renders, threshold_images, threshold_renders)]
    return fit_feature_gate(model, layers, *features, alpha=alpha, min_step=min_step,
                            render_side=render_side, hidden=hidden, iterations=iterations,
                            ensemble=ensemble, seed=seed)


def gate_feature_table(model: Network, images: torch.Tensor,
                       layers: Sequence[str] | None = None) -> torch.Tensor:
    """φ of every image (:func:`gate_features`, in batches of 64, on the CPU): compute once,
    fit many gates with :func:`fit_feature_gate`."""
    return _features_batched(model, list(layers or gate_layers(model)), images)


def fit_feature_gate(model: Network, layers: Sequence[str], natural: torch.Tensor,
                     renders: torch.Tensor, threshold_natural: torch.Tensor,
                     threshold_renders: torch.Tensor, alpha: float = 0.005, min_step: int = 4,
                     render_side: float = 2 / 3, hidden: int = 64, iterations: int = 600,
                     ensemble: int = 3, seed: int = 0) -> FeatureGate:
    """:func:`train_feature_gate` on features φ already computed (rows of
    :func:`gate_feature_table`): the same gate, bit for bit."""
    for name, x in (("natural", natural), ("renders", renders), ("threshold", threshold_natural),
                    ("threshold render", threshold_renders)):
        if len(x) < 2:
            raise ValueError(f"need at least 2 {name} images to train the feature gate, got {len(x)}")
    x = torch.cat([natural, renders])
    y = torch.cat([torch.zeros(len(natural)), torch.ones(len(renders))])
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    weight = torch.where(y == 1, len(natural) / len(renders), 1.0)
    mlps = []
    for m in range(ensemble):
        torch.manual_seed(seed * 1009 + m)
        mlp = nn.Sequential(nn.Linear(z.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, 1))
        opt = torch.optim.Adam(mlp.parameters(), lr=1e-2, weight_decay=1e-4)
        for _ in range(iterations):
            opt.zero_grad()
            F.binary_cross_entropy_with_logits(mlp(z)[:, 0], y, weight=weight).backward()
            opt.step()
        mlps.append(mlp.eval().to(model.device))
    gate = FeatureGate(model, layers, mlps, mean.to(model.device), std.to(model.device), 0.0)
    nat = torch.cat([gate.score_features(b).cpu() for b in batches(threshold_natural, 64)])
    ren = torch.cat([gate.score_features(b).cpu() for b in batches(threshold_renders, 64)])
    gate.calibration = balanced_threshold(nat, ren, alpha, min_step, render_side)
    gate.threshold = gate.calibration.threshold
    return gate


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

