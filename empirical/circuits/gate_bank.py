"""What a gate learns from besides photos: renders taken along the optimization of many render
settings (:func:`render_bank`). Renders of the network's own units (class logits and channels
of a middle layer) under random settings, saved at densely spaced steps, each also as the
network saw it (after the random transform: padding, jitter, scale, rotation), because that is
what the gate decides on inside the render loop. The photos' side: :mod:`empirical.data.shifts`
(augmented copies) and :func:`empirical.data.splits.gate_split` (the three-way source split).

The settings come from a render family (:data:`FAMILIES`): ``classic`` draws the
parametrization (Fourier/pixel), the learning rate (log-uniform) and transforms on/off;
``wide`` also draws the spectrum's decay power, colour decorrelation on/off and an L2 or
total-variation penalty. :data:`REGIONS` names regions of the wide family (one axis each),
which :mod:`empirical.experiments.gate_family` holds out whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fvtrust.empirical.nets.layers import forward_activations, main_layers
from fvtrust.empirical.nets.registry import LOGITS, Network
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import channel, class_logit
from fvtrust.empirical.render.transform import RandomTransform, TransformConfig

#: The render families a bank can draw from (see the module docstring).
FAMILIES = ("classic", "wide")
#: The wide family's penalty weights are log-uniform in this range (objectives are O(1–10)).
PENALTY_RANGE = (1.0, 30.0)
#: The wide family's Fourier decay powers are uniform in this range (lucid: 1).
DECAY_RANGE = (0.5, 1.5)


@dataclass(frozen=True)
class FamilySetting:
    """One render setting of a family: what :func:`~empirical.render.loop.render` is given."""

    param: str = "fourier"
    lr: float = 0.05
    transforms: bool = True
    decay_power: float = 1.0
    decorrelate: bool = True
    l2: float = 0.0
    tv: float = 0.0
    size: int = 128
    steps: int = 128

    def render_kwargs(self) -> dict[str, Any]:
        return {"param": self.param, "lr": self.lr, "decay_power": self.decay_power,
                "decorrelate": self.decorrelate, "l2": self.l2, "tv": self.tv,
                "size": self.size, "steps": self.steps,
                "transforms": TransformConfig() if self.transforms else TransformConfig.none()}

    def describe(self) -> str:
        parts = [self.param if self.param == "pixel" else f"fourier^{self.decay_power:.2f}",
                 f"lr {self.lr:.3g}", "transforms" if self.transforms else "no transforms"]
        parts += [] if self.decorrelate else ["RGB"]
        parts += [f"L2 {self.l2:.3g}"] if self.l2 else []
        parts += [f"TV {self.tv:.3g}"] if self.tv else []
        return ", ".join([*parts, f"{self.size} px", f"{self.steps} steps"])


def draw_setting(rng: np.random.Generator, j: int, family: str, lr_range: tuple[float, float],
                 size: int, steps: int) -> FamilySetting:
    """Setting j of a bank. ``classic`` makes exactly the draws of fvtrust 0.2's bank (so its
    banks and gates are unchanged); ``wide`` draws its further axes after them."""
    param = ("fourier", "pixel")[j % 2]
    transforms = bool(rng.random() < 0.6)
    lo, hi = np.log(lr_range[0]), np.log(lr_range[1])
    lr = float(np.exp(rng.uniform(lo, hi)))
    setting = FamilySetting(param, lr, transforms, size=size, steps=steps)
    if family == "classic":
        return setting
    decay = float(rng.uniform(*DECAY_RANGE)) if param == "fourier" else 1.0
    decorrelate = bool(rng.random() < 0.75)
    which, weight = rng.random(), float(np.exp(rng.uniform(*np.log(PENALTY_RANGE))))
    l2, tv = (weight, 0.0) if which < 0.25 else (0.0, weight) if which < 0.5 else (0.0, 0.0)
    return replace(setting, decay_power=decay, decorrelate=decorrelate, l2=l2, tv=tv)


@dataclass(frozen=True)
class Region:
    """A region of the wide family: the settings `contains` accepts. `into(setting, rng)`
    moves a drawn setting into the region (for evaluation renders); `bank` is False for a
    region no bank draws from (a size or a step count beyond the bank's), so every gate is
    held out from it."""

    name: str
    contains: Callable[[FamilySetting], bool]
    into: Callable[[FamilySetting, np.random.Generator], FamilySetting]
    bank: bool = True


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


#: Regions of the wide family, one axis each. A gate is trained without a region and tested
#: inside it (:mod:`empirical.experiments.gate_family`).
REGIONS: tuple[Region, ...] = (
    Region("pixel parametrization", lambda s: s.param == "pixel",
           lambda s, r: replace(s, param="pixel", decay_power=1.0)),
    Region("flat spectrum (decay < 0.75)", lambda s: s.param == "fourier" and s.decay_power < 0.75,
           lambda s, r: replace(s, param="fourier", decay_power=float(r.uniform(0.5, 0.75)))),
    Region("steep spectrum (decay > 1.25)", lambda s: s.param == "fourier" and s.decay_power > 1.25,
           lambda s, r: replace(s, param="fourier", decay_power=float(r.uniform(1.25, 1.5)))),
    Region("no colour decorrelation", lambda s: not s.decorrelate,
           lambda s, r: replace(s, decorrelate=False)),
    Region("L2 penalty", lambda s: s.l2 > 0,
           lambda s, r: replace(s, l2=_log_uniform(r, *PENALTY_RANGE), tv=0.0)),
    Region("total-variation penalty", lambda s: s.tv > 0,
           lambda s, r: replace(s, tv=_log_uniform(r, *PENALTY_RANGE), l2=0.0)),
    Region("lr < 0.01", lambda s: s.lr < 0.01, lambda s, r: replace(s, lr=_log_uniform(r, 0.005, 0.01))),
    Region("lr > 0.2", lambda s: s.lr > 0.2, lambda s, r: replace(s, lr=_log_uniform(r, 0.2, 0.5))),
    Region("no transforms", lambda s: not s.transforms, lambda s, r: replace(s, transforms=False)),
    # 224 px, the papers' size; a bank already at 224 px or more is tested at twice its size
    Region("larger size (224 px)", lambda s: False,
           lambda s, r: replace(s, size=224 if s.size < 224 else 2 * s.size), bank=False),
    Region("4× the bank's steps", lambda s: False, lambda s, r: replace(s, steps=4 * s.steps),
           bank=False),
)


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
    # the classic family's banks keep the keys they had before families existed
    family: str = field(default="classic", metadata={"omit_from_key": lambda c: c.family == "classic"})

    def __post_init__(self) -> None:
        if self.settings < 1 or self.units_per_setting < 1:
            raise ValueError(f"need at least one setting and unit, got settings={self.settings}, "
                             f"units_per_setting={self.units_per_setting}")
        if not 0 < self.lr_range[0] <= self.lr_range[1]:
            raise ValueError(f"lr_range must be 0 < low <= high, got {self.lr_range}")
        if self.family not in FAMILIES:
            raise ValueError(f"render family must be one of {', '.join(FAMILIES)}, got {self.family!r}")


def _middle_layer(model: Network) -> str:
    layers = [n for n in main_layers(model) if n != LOGITS]
    return layers[len(layers) // 2]


@dataclass
class RenderBank:
    """Renders (N, 3, S, S) in [0, 1] with the setting index and the step of each, and the
    settings themselves (``settings[j]`` is setting j)."""

    images: torch.Tensor
    setting: torch.Tensor
    step: torch.Tensor
    settings: tuple[FamilySetting, ...] = ()

    def where(self, mask: torch.Tensor) -> RenderBank:
        return RenderBank(self.images[mask], self.setting[mask], self.step[mask], self.settings)

    def outside(self, region: Region | None) -> torch.Tensor:
        """Mask of the renders whose setting lies outside `region` (None: every render)."""
        inside = [] if region is None else [j for j, s in enumerate(self.settings) if region.contains(s)]
        return ~torch.isin(self.setting, torch.tensor(inside, dtype=self.setting.dtype))

    def held_mask(self, held_settings: int, among: torch.Tensor | None = None) -> torch.Tensor:
        """Mask of the renders of the last `held_settings` settings present (in `among`, a
        mask; default all): the renders that set a gate's threshold."""
        among = torch.ones_like(self.setting, dtype=torch.bool) if among is None else among
        ids = torch.unique(self.setting[among])
        if not 0 < held_settings < len(ids):
            raise ValueError(f"cannot hold out {held_settings} of {len(ids)} render settings")
        return torch.isin(self.setting, ids[-held_settings:]) & among

    def split(self, held_settings: int) -> tuple[RenderBank, RenderBank]:
        """(the first settings, the last `held_settings` settings present): the second part
        sets the gate's threshold on render settings the MLP never saw."""
        held = self.held_mask(held_settings)
        return self.where(~held), self.where(held)


@torch.no_grad()
def as_seen(seen: RandomTransform, images: torch.Tensor, size: int) -> torch.Tensor:
    """`images` as the network saw them in the render loop (after the setting's random
    transform), resized back to `size` px: what a gate decides on inside a fooling circuit."""
    return F.interpolate(seen(images), size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0, 1)


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
    drawn: list[FamilySetting] = []
    for j in range(config.settings):
        n = config.units_per_setting
        seeds = [int(config.seed * 100_003 + j * n + i) for i in range(n)]
        family = draw_setting(rng, j, config.family, config.lr_range, config.size, config.steps)
        drawn.append(family)
        if rng.random() < config.channel_fraction:
            width = _layer_width(model, middle)
            objective = channel(middle, [int(u) for u in rng.choice(width, n)])
        else:
            objective = class_logit([int(u) for u in rng.choice(allowed, n, replace=False)])
        def compute(objective: Any = objective, family: FamilySetting = family,
                    seeds: list[int] = seeds) -> torch.Tensor:
            kwargs = family.render_kwargs()
            r = render(model, objective, seeds=seeds, snapshots=snaps, progress=progress, **kwargs)
            seen = RandomTransform(kwargs["transforms"], seeds)
            shots = []
            for s in snaps:
                shots += [r.snapshots[s], as_seen(seen, r.snapshots[s], config.size)]
            return torch.cat(shots)
        out.append(checkpoint(f"gate_render_bank_setting{j:03d}", compute))
        for s in snaps:
            setting += [j] * 2 * n
            step += [s] * 2 * n
    return RenderBank(torch.cat(out), torch.tensor(setting), torch.tensor(step), tuple(drawn))


def _layer_width(model: Network, layer: str) -> int:
    with torch.no_grad():
        acts = forward_activations(model, torch.full((1, 3, 64, 64), 0.5, device=model.device),
                                   [layer])
    return int(acts[layer].shape[1])




