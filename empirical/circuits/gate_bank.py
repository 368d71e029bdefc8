"""What a gate learns from besides photos: renders taken along the optimization of many render
settings (:func:`render_bank`). Renders of the network's own units (class logits and channels
of a middle layer) under random settings — parametrization (Fourier/pixel), learning rate
(log-uniform), transforms on/off — saved at densely spaced steps, each also as the network saw
it (after the random transform: padding, jitter, scale, rotation), because that is what the
gate decides on inside the render loop. The photos' side: :mod:`empirical.data.shifts`
(augmented copies) and :func:`empirical.data.splits.gate_split` (the three-way source split).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fvtrust.empirical.nets.layers import forward_activations, main_layers
from fvtrust.empirical.nets.registry import LOGITS, Network
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import channel, class_logit
from fvtrust.empirical.render.transform import RandomTransform, TransformConfig


@dataclass(frozen=True)
class RenderBankConfig:
    """Random render settings for gate training (quick scale: ~40 s on 2 CPU cores)."""

    settings: int = 16
    units_per_setting: int = 4
    steps: int = 128
    size: int = 128
    lr_range: tuple[float, float] = (0.005, 0.5)
    snapshots: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
    channel_fraction: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.settings < 1 or self.units_per_setting < 1:
            raise ValueError(f"need at least one setting and unit, got settings={self.settings}, "
                             f"units_per_setting={self.units_per_setting}")
        if not 0 < self.lr_range[0] <= self.lr_range[1]:
            raise ValueError(f"lr_range must be 0 < low <= high, got {self.lr_range}")


def _middle_layer(model: Network) -> str:
    layers = [n for n in main_layers(model) if n != LOGITS]
    return layers[len(layers) // 2]


@dataclass
class RenderBank:
    """Renders (N, 3, S, S) in [0, 1] with the setting index and the step of each."""

    images: torch.Tensor
    setting: torch.Tensor
    step: torch.Tensor

    def where(self, mask: torch.Tensor) -> RenderBank:
        return RenderBank(self.images[mask], self.setting[mask], self.step[mask])

    def split(self, held_settings: int) -> tuple[RenderBank, RenderBank]:
        """(the first settings, the last `held_settings` settings): the second part sets the
        gate's threshold on render settings the MLP never saw."""
        last = int(self.setting.max()) + 1
        if not 0 < held_settings < last:
            raise ValueError(f"cannot hold out {held_settings} of {last} render settings")
        held = self.setting >= last - held_settings
        return self.where(~held), self.where(held)


def _each(name: str, compute: Callable[[], Any]) -> Any:
    return compute()


def render_bank(model: Network, config: RenderBankConfig = RenderBankConfig(),
                exclude_units: Sequence[int] = (), progress: bool = False,
                checkpoint: Callable[[str, Callable[[], Any]], Any] = _each) -> RenderBank:
    """Renders in [0, 1]: every snapshot ≤ steps of every setting, both as the image and as
    the network saw it after the setting's random transform (resized back to `size`).
    Class units in `exclude_units` are never drawn (keep evaluation units out).

    ``checkpoint(name, compute)`` runs each setting's renders (e.g. ``Stages.run``: saved per
    setting, so an interrupted bank resumes at the setting it stopped in). The settings are
    drawn in order whether or not a setting is computed, so a resumed bank is the same."""
    rng = np.random.default_rng(config.seed)
    allowed = np.setdiff1d(np.arange(model.num_classes), np.asarray(exclude_units, dtype=int))
    middle = _middle_layer(model)
    snaps = [s for s in config.snapshots if s <= config.steps]
    out: list[torch.Tensor] = []
    setting: list[int] = []
    step: list[int] = []
    lo, hi = np.log(config.lr_range[0]), np.log(config.lr_range[1])
    for j in range(config.settings):
        n = config.units_per_setting
        seeds = [int(config.seed * 100_003 + j * n + i) for i in range(n)]
        param = ("fourier", "pixel")[j % 2]
        transforms = TransformConfig() if rng.random() < 0.6 else TransformConfig.none()
        lr = float(np.exp(rng.uniform(lo, hi)))
        if rng.random() < config.channel_fraction:
            width = _layer_width(model, middle)
            objective = channel(middle, [int(u) for u in rng.choice(width, n)])
        else:
            objective = class_logit([int(u) for u in rng.choice(allowed, n, replace=False)])
        def compute(objective: Any = objective, transforms: TransformConfig = transforms,
                    lr: float = lr, param: str = param, seeds: list[int] = seeds) -> torch.Tensor:
            r = render(model, objective, steps=config.steps, size=config.size, lr=lr, param=param,
                       transforms=transforms, seeds=seeds, snapshots=snaps, progress=progress)
            seen = RandomTransform(transforms, seeds)
            shots = []
            for s in snaps:
                shot = r.snapshots[s]
                with torch.no_grad():
                    viewed = seen(shot)
                shots += [shot, F.interpolate(viewed, size=(config.size, config.size), mode="bilinear",
                                              antialias=True, align_corners=False).clamp(0, 1)]
            return torch.cat(shots)
        out.append(checkpoint(f"gate_render_bank_setting{j:03d}", compute))
        for s in snaps:
            setting += [j] * 2 * n
            step += [s] * 2 * n
    return RenderBank(torch.cat(out), torch.tensor(setting), torch.tensor(step))


def _layer_width(model: Network, layer: str) -> int:
    with torch.no_grad():
        acts = forward_activations(model, torch.full((1, 3, 64, 64), 0.5, device=model.device),
                                   [layer])
    return int(acts[layer].shape[1])




