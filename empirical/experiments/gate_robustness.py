"""Is the gate robust to how a visualization is made? Catch rates along the optimization for
render settings the gate never trained on, and whether those renders show the decoy.

One setting at a time is changed from the experiment's base (Fourier, lr 0.05, lucid's
transforms, the experiment's size, 64 steps): pixel parametrization, lr 0.01 / 0.2, no
transforms, 224 px, 512 steps. Every setting renders the manipulated network's units with
seeds the gate never saw, saving log-spaced steps; at each the gate decides on the image and
on the image as the network saw it (after the setting's random transform). "Decoy shown":
the observer's similarity of the final render to the decoy's goal (the target image, or the
original render of unit i + offset under the same setting) minus its similarity to the
original render of the unit itself under the same setting; > 0 means the decoy won.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fvtrust.empirical.circuits.gates import Gate
from fvtrust.empirical.data.crops import resize
from fvtrust.empirical.nets.registry import Network
from fvtrust.empirical.observers.embedding import Observer
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import class_logit
from fvtrust.empirical.render.snapshots import log_steps
from fvtrust.empirical.render.transform import RandomTransform, TransformConfig


@dataclass(frozen=True)
class RenderSetting:
    name: str
    param: str = "fourier"
    lr: float = 0.05
    transforms: bool = True
    size: int | None = None  # None: the experiment's size
    steps: int = 64


ROBUSTNESS_SETTINGS: tuple[RenderSetting, ...] = (
    RenderSetting("base"),
    RenderSetting("pixel", param="pixel"),
    RenderSetting("lr 0.01", lr=0.01),
    RenderSetting("lr 0.2", lr=0.2),
    RenderSetting("no transforms", transforms=False),
    RenderSetting("224 px", size=224),
    RenderSetting("512 steps", steps=512),
)


@torch.no_grad()
def _caught(gate: Gate, images: torch.Tensor, device: torch.device) -> list[int]:
    return [int(v) for v in gate(images.to(device)).cpu().tolist()]


def gate_robustness(model: Network, circuit: Network, gate: Gate, units: list[int],
                    observer: Observer, size: int, seed: int = 0, partners: list[int] | None = None,
                    target: torch.Tensor | None = None,
                    settings: tuple[RenderSetting, ...] = ROBUSTNESS_SETTINGS,
                    seed_offset: int = 10_000) -> list[dict[str, object]]:
    """One row per setting: per step the fraction of `units` caught (image / as seen), the
    minimum over steps ≥ 4, and the decoy margin per unit. The decoy's goal is unit i's
    partner's own render under the same setting (`partners`, permutation mode) or `target`."""
    if (partners is None) == (target is None):
        raise ValueError("gate_robustness needs either partners (permutation) or a target image")
    rows = []
    for setting in settings:
        size_s = setting.size or size
        transforms = TransformConfig() if setting.transforms else TransformConfig.none()
        seeds = [seed + seed_offset + 7 * u for u in units]
        snaps = log_steps(setting.steps)
        kwargs = dict(steps=setting.steps, size=size_s, lr=setting.lr, param=setting.param,
                      transforms=transforms, seeds=seeds)
        fooled = render(circuit, class_logit(units), snapshots=snaps, **kwargs)
        seen = RandomTransform(transforms, seeds)
        caught_image, caught_seen = {}, {}
        for s in snaps:
            shot = fooled.snapshots[s]
            view = resize(seen(shot), size_s)
            caught_image[s] = float(np.mean(_caught(gate, shot, model.device)))
            caught_seen[s] = float(np.mean(_caught(gate, view, model.device)))
        own = render(model, class_logit(units), **kwargs).images
        if partners is not None:
            goals = render(model, class_logit(partners), **kwargs).images
        else:
            goals = resize(target, size_s)[None].expand(len(units), -1, -1, -1)
        to_goal = observer.similarity(fooled.images, goals).diagonal()
        to_own = observer.similarity(fooled.images, own).diagonal()
        late = [s for s in snaps if s >= 4]
        rows.append({
            "setting": setting.name, "param": setting.param, "lr": setting.lr,
            "transforms": setting.transforms, "size": size_s, "steps": setting.steps,
            "units": len(units),
            "caught_image": {str(k): v for k, v in caught_image.items()},
            "caught_as_seen": {str(k): v for k, v in caught_seen.items()},
            "min_caught_from_step4": min(min(caught_image[s], caught_seen[s]) for s in late),
            "decoy_margin": (to_goal - to_own).tolist(),
            "decoy_shown": int((to_goal > to_own).sum()),
        })
    return rows



