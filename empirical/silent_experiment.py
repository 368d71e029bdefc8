"""The silent-units experiment: the layer's visualizations collapse onto one target, while
nothing changes on natural images.

``run_silent(config)`` → :class:`SilentResult`: on the held-out natural split, identical
top-1 predictions, max |logit change|, max |activation change| of the manipulated layer and
the fraction of (image, unit, position) triples where a branch fires (goal: all 0); on the
visualizations, mean pairwise similarity across the layer's units before vs after, and each
unit's similarity to the target: pixel Pearson correlation (64×64; all units share one seed,
so identical objectives give identical images) and the observer's embedding similarity
(:class:`~empirical.observer.Observer`, a different network: texture-level likeness).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

from empirical.checkpoint import Stages
from empirical.data import natural_images, predict, split_indices
from empirical.fooling_experiment import pixel_similarity
from empirical.gates import batches
from empirical.models import forward_activations, get_layer, load_model
from empirical.objectives import channel
from empirical.observer import Observer
from empirical.render import render
from empirical.silent import SilentConv, _conv_input, conv_layer, install_silent_units


@dataclass
class SilentConfig:
    """Quick scale by default. ResNet-50's ``layer4.1.conv2`` is the paper's layer; for
    EfficientNet-Lite0 the comparable late full convolution is ``_conv_head``."""

    model: str = "efficientnet_lite0"
    weights: str | None = None
    layer: str = "_conv_head"
    units: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4, 5])
    target_unit: int = 0
    n_natural: int = 160
    images: str | None = None  # an ImageFolder/ImageNet directory instead of bundled photos
    size: int = 128
    steps: int = 96
    lam: float = 3.0
    gain: float = 100.0
    seed: int = 0


@dataclass
class SilentResult:
    config: dict[str, object]
    natural_heldout_images: int
    top1_identical: float
    max_abs_logit_change: float
    max_abs_activation_change: float
    branch_active_fraction_natural: float
    branch_active_fraction_visualizations: float
    pairwise_similarity_before: float
    pairwise_similarity_after: float
    similarity_to_target_before: list[float]
    similarity_to_target_after: list[float]
    observer_pairwise_before: float
    observer_pairwise_after: float
    observer_to_target_before: list[float]
    observer_to_target_after: list[float]
    reused_stages: list[str]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _mean_pairwise(images: torch.Tensor) -> float:
    return float(np.mean([pixel_similarity(images[i], images[j])
                          for i, j in combinations(range(len(images)), 2)]))


def _mean_off_diagonal(sim: torch.Tensor) -> float:
    n = sim.shape[0]
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


def _branch_active(model: torch.nn.Module, layer: str, images: torch.Tensor,
                   own_units: list[int] | None = None) -> float:
    """Fraction of (image, unit, position) triples where the silent branch is > 0; with
    `own_units`, image i counts only its own unit own_units[i] (the one it was rendered for)."""
    module = get_layer(model, layer)
    if not isinstance(module, SilentConv):
        raise ValueError(f"layer {layer!r} carries no silent branch")
    active, total = 0, 0
    with torch.no_grad():
        for k, chunk in enumerate(batches(images.to(model.device), 32)):
            h = _conv_input(model, module.conv, chunk)  # padded as the layer pads it
            fired = module.branch(h) > 0
            if own_units is not None:
                idx = torch.tensor(own_units[k * 32:k * 32 + len(chunk)], device=fired.device)
                fired = fired[torch.arange(len(chunk), device=fired.device), idx]
            active += int(fired.sum())
            total += fired.numel()
    return active / total


def run_silent(config: SilentConfig, out_dir: str | Path | None = None, device: str = "cpu",
               force: bool = False) -> tuple[SilentResult, dict[str, torch.Tensor]]:
    stages = Stages(out_dir, config, force)
    model = load_model(config.model, weights=config.weights, device=device)
    conv = conv_layer(model, config.layer)
    bad = [u for u in [*config.units, config.target_unit] if not 0 <= u < conv.out_channels]
    if bad:
        raise ValueError(f"units {bad} are out of range for layer {config.layer!r} "
                         f"with {conv.out_channels} units")
    natural = natural_images(config.images, config.n_natural, config.size, config.seed)
    cal_idx, held_idx = split_indices(len(natural), 0.5, seed=config.seed)
    cal, held = natural.images[cal_idx], natural.images[held_idx]
    # One seed for every unit: identical objectives then give identical images, so the
    # pixel similarity across units measures how alike their objectives have become.
    seeds = [config.seed] * len(config.units)

    target = stages.run("target", lambda: render(
        model, channel(config.layer, config.target_unit), steps=config.steps, size=config.size,
        seeds=[config.seed + 1], progress=True).images[0])
    silent = install_silent_units(model, config.layer, target, cal, config.lam, config.gain)

    before_logits, after_logits = predict(model, held), predict(silent, held)
    identical = float((before_logits.argmax(1) == after_logits.argmax(1)).float().mean())
    logit_change = float((before_logits - after_logits).abs().max())
    act_change = 0.0
    with torch.no_grad():
        for chunk in batches(held.to(model.device), 32):
            a = forward_activations(model, chunk, [config.layer])[config.layer]
            b = forward_activations(silent, chunk, [config.layer])[config.layer]
            act_change = max(act_change, float((a - b).abs().max()))

    before = stages.run("renders_before", lambda: render(
        model, channel(config.layer, config.units), steps=config.steps, size=config.size,
        seeds=seeds, progress=True).images)
    after = stages.run("renders_after", lambda: render(
        silent, channel(config.layer, config.units), steps=config.steps, size=config.size,
        seeds=seeds, progress=True).images)

    observer = Observer(device=device)
    result = SilentResult(
        config=asdict(config), natural_heldout_images=len(held), top1_identical=identical,
        max_abs_logit_change=logit_change, max_abs_activation_change=act_change,
        branch_active_fraction_natural=_branch_active(silent, config.layer, held),
        branch_active_fraction_visualizations=_branch_active(silent, config.layer, after,
                                                             config.units),
        pairwise_similarity_before=_mean_pairwise(before),
        pairwise_similarity_after=_mean_pairwise(after),
        similarity_to_target_before=[pixel_similarity(x, target) for x in before],
        similarity_to_target_after=[pixel_similarity(x, target) for x in after],
        observer_pairwise_before=_mean_off_diagonal(observer.similarity(before, before)),
        observer_pairwise_after=_mean_off_diagonal(observer.similarity(after, after)),
        observer_to_target_before=observer.similarity(before, target[None])[:, 0].tolist(),
        observer_to_target_after=observer.similarity(after, target[None])[:, 0].tolist(),
        reused_stages=stages.reused)
    return result, {"original": before, "silent units": after, "target": target[None]}
