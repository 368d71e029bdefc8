"""The silent-units experiment: the layer's visualizations collapse onto one target, while
nothing changes on natural images.

``run_silent(config)`` → :class:`SilentResult`: on natural photos of sources never used to
calibrate the branches (a source-disjoint split; plus ``verify_images``), identical top-1
and top-5 predictions, max |logit change| (:class:`~empirical.verify.NaturalBehaviour`), max
|activation change| of the manipulated layer and how often a branch fires — on the photos
and under common shifts (brightness, contrast, JPEG, grey, blur, noise), with counts. On the
visualizations: the fraction of the layer's units that *collapse* (the observer finds the
unit's manipulated visualization closer to the target than to the unit's own original one),
mean pairwise similarity across the units before vs after, and each unit's similarity to the
target: pixel Pearson correlation (64×64; all units share one seed,
so identical objectives give identical images) and the observer's embedding similarity
(:class:`~empirical.observer.Observer`, a different network: texture-level likeness).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from fvtrust.empirical.checkpoint import Stages
from fvtrust.empirical.corpus import source_files
from fvtrust.empirical.data import NaturalImages, image_files, natural_images, source_of, split_by_source
from fvtrust.empirical.fooling_experiment import pixel_similarity
from fvtrust.empirical.gates import batches
from fvtrust.empirical.models import forward_activations, get_layer, load_model
from fvtrust.empirical.objectives import channel
from fvtrust.empirical.observer import Observer
from fvtrust.empirical.render import render
from fvtrust.empirical.silent import SilentConv, _conv_input, conv_layer, install_silent_units
from fvtrust.empirical.verify import check_not_calibration, natural_behaviour


@dataclass
class SilentConfig:
    """Quick scale by default. ResNet-50's ``layer4.1.conv2`` is the paper's layer; for
    EfficientNet-Lite0 the comparable late full convolution is ``_conv_head``."""

    model: str = "efficientnet_lite0"
    weights: str | None = None
    layer: str = "_conv_head"
    units: list[int] = field(default_factory=lambda: list(range(32)))
    target_unit: int = 0
    n_natural: int = 400  # crops, split by source: half the sources calibrate the branches
    images: str | None = None  # an ImageFolder/ImageNet directory instead of the photo corpus
    corpus: str = "photos"
    verify_images: str | None = None  # a directory never used for calibration
    size: int = 128
    steps: int = 96
    lam: float = 3.0
    gain: float = 100.0
    margin: float = 1.0  # b′ = max + margin·(max − mean) over the calibration images
    augment: bool = True  # calibrate on the photos and one shifted copy of each
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.margin >= 0 and np.isfinite(self.margin)):
            raise ValueError(f"margin must be a finite number >= 0, got {self.margin}")


@dataclass
class SilentResult:
    config: dict[str, object]
    natural_heldout: dict[str, object]  # NaturalBehaviour on sources never used to calibrate
    natural_verify: dict[str, object] | None
    max_abs_activation_change: float
    branch_active_natural: dict[str, object]  # per shift: images, images with a firing branch
    branch_active_fraction_visualizations: float
    collapsed: list[bool]
    collapsed_fraction: float
    pairwise_similarity_before: float
    pairwise_similarity_after: float
    similarity_to_target_before: list[float]
    similarity_to_target_after: list[float]
    observer_pairwise_before: float
    observer_pairwise_after: float
    observer_to_target_before: list[float]
    observer_to_target_after: list[float]
    observer_to_own_original: list[float]
    reused_stages: list[str]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


#: Common shifts of natural images under which the branches must stay silent.
SHIFTS = ("none", "brightness x1.4", "brightness x0.6", "contrast x0.5", "contrast x1.5",
          "jpeg q30", "grey", "blur s1.5", "noise s0.05")


def shifted(images: torch.Tensor, shift: str, seed: int = 0) -> torch.Tensor:
    """`images` under one of :data:`SHIFTS` (deterministic)."""
    from fvtrust.empirical.gate_data import _blur, _jpeg

    if shift == "none":
        return images
    kind, _, amount = shift.partition(" ")
    value = float(amount.lstrip("xsq")) if amount else 0.0
    if kind == "brightness":
        return (images * value).clamp(0, 1)
    if kind == "contrast":
        mu = images.mean((1, 2, 3), keepdim=True)
        return ((images - mu) * value + mu).clamp(0, 1)
    if kind == "jpeg":
        return torch.stack([_jpeg(x, int(value)) for x in images])
    if kind == "grey":
        return images.mean(1, keepdim=True).expand(-1, 3, -1, -1).contiguous()
    if kind == "blur":
        return torch.stack([_blur(x, value) for x in images])
    if kind == "noise":
        g = torch.Generator().manual_seed(seed)
        return (images + torch.randn(images.shape, generator=g) * value).clamp(0, 1)
    raise ValueError(f"unknown shift {shift!r}; known: {', '.join(SHIFTS)}")


def _mean_pairwise(images: torch.Tensor) -> float:
    return float(np.mean([pixel_similarity(images[i], images[j])
                          for i, j in combinations(range(len(images)), 2)]))


def _mean_off_diagonal(sim: torch.Tensor) -> float:
    n = sim.shape[0]
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


def _branch_active(model: torch.nn.Module, layer: str, images: torch.Tensor,
                   own_units: list[int] | None = None) -> tuple[float, int]:
    """(fraction of (image, unit, position) triples where the silent branch is > 0, number of
    images where any branch fires); with `own_units`, image i counts only its own unit
    own_units[i] (the one it was rendered for)."""
    module = get_layer(model, layer)
    if not isinstance(module, SilentConv):
        raise ValueError(f"layer {layer!r} carries no silent branch")
    active, total, images_firing = 0, 0, 0
    with torch.no_grad():
        for k, chunk in enumerate(batches(images.to(model.device), 32)):
            h = _conv_input(model, module.conv, chunk)  # padded as the layer pads it
            fired = module.branch(h) > 0
            if own_units is not None:
                idx = torch.tensor(own_units[k * 32:k * 32 + len(chunk)], device=fired.device)
                fired = fired[torch.arange(len(chunk), device=fired.device), idx]
            active += int(fired.sum())
            total += fired.numel()
            images_firing += int(fired.flatten(1).any(1).sum())
    return active / total, images_firing


def run_silent(config: SilentConfig, out_dir: str | Path | None = None, device: str = "cpu",
               force: bool = False) -> tuple[SilentResult, dict[str, torch.Tensor]]:
    stages = Stages(out_dir, config, force)
    model = load_model(config.model, weights=config.weights, device=device)
    conv = conv_layer(model, config.layer)
    bad = [u for u in [*config.units, config.target_unit] if not 0 <= u < conv.out_channels]
    if bad:
        raise ValueError(f"units {bad} are out of range for layer {config.layer!r} "
                         f"with {conv.out_channels} units")
    natural = natural_images(config.images, config.n_natural, config.size, config.seed,
                             corpus=config.corpus)
    cal_idx, held_idx = split_by_source(natural.sources, 0.5, seed=config.seed)
    cal, held = natural.images[cal_idx], natural.subset(held_idx)
    verify: NaturalImages | None = None
    if config.verify_images is not None:
        from fvtrust.empirical.data import image_folder

        calibration = source_files(sorted({source_of(natural.sources[i]) for i in cal_idx}))
        check_not_calibration(image_files(config.verify_images), calibration)
        verify = image_folder(config.verify_images, size=config.size)
    # One seed for every unit: identical objectives then give identical images, so the
    # pixel similarity across units measures how alike their objectives have become.
    seeds = [config.seed] * len(config.units)

    target = stages.run("target", lambda: render(
        model, channel(config.layer, config.target_unit), steps=config.steps, size=config.size,
        seeds=[config.seed + 1], progress=True).images[0])
    if config.augment:
        from fvtrust.empirical.gate_data import augment_natural

        cal = torch.cat([cal, augment_natural(cal, seed=config.seed + 1)])
    silent = install_silent_units(model, config.layer, target, cal, config.lam, config.gain,
                                  config.margin)

    n_sources = len({source_of(s) for s in held.sources})
    natural_held = natural_behaviour(
        model, silent, held.images, held.sources,
        f"held-out sources of the {config.images or config.corpus} corpus ({n_sources} sources "
        "never used to calibrate the branches)", device=model.device)
    natural_verify = (natural_behaviour(model, silent, verify.images, verify.sources,
                                        f"--verify-images {config.verify_images}",
                                        device=model.device) if verify is not None else None)
    act_change = 0.0
    with torch.no_grad():
        for chunk in batches(held.images.to(model.device), 32):
            a = forward_activations(model, chunk, [config.layer])[config.layer]
            b = forward_activations(silent, chunk, [config.layer])[config.layer]
            act_change = max(act_change, float((a - b).abs().max()))
    active = {}
    for shift in SHIFTS:
        fraction, firing = _branch_active(silent, config.layer, shifted(held.images, shift))
        active[shift] = {"images": len(held), "images_with_a_firing_branch": firing,
                         "fraction_of_unit_positions": fraction}
    if verify is not None:
        fraction, firing = _branch_active(silent, config.layer, verify.images)
        active["verify-images"] = {"images": len(verify), "images_with_a_firing_branch": firing,
                                   "fraction_of_unit_positions": fraction}

    before = stages.run("renders_before", lambda: render(
        model, channel(config.layer, config.units), steps=config.steps, size=config.size,
        seeds=seeds, progress=True).images)
    after = stages.run("renders_after", lambda: render(
        silent, channel(config.layer, config.units), steps=config.steps, size=config.size,
        seeds=seeds, progress=True).images)

    observer = Observer(device=device)
    to_target = observer.similarity(after, target[None])[:, 0]
    to_own = observer.similarity(after, before).diagonal()
    collapsed = (to_target > to_own).tolist()
    result = SilentResult(
        config=asdict(config), natural_heldout=natural_held.to_json(),
        natural_verify=None if natural_verify is None else natural_verify.to_json(),
        max_abs_activation_change=act_change, branch_active_natural=active,
        branch_active_fraction_visualizations=_branch_active(silent, config.layer, after,
                                                             config.units)[0],
        collapsed=collapsed, collapsed_fraction=float(np.mean(collapsed)),
        pairwise_similarity_before=_mean_pairwise(before),
        pairwise_similarity_after=_mean_pairwise(after),
        similarity_to_target_before=[pixel_similarity(x, target) for x in before],
        similarity_to_target_after=[pixel_similarity(x, target) for x in after],
        observer_pairwise_before=_mean_off_diagonal(observer.similarity(before, before)),
        observer_pairwise_after=_mean_off_diagonal(observer.similarity(after, after)),
        observer_to_target_before=observer.similarity(before, target[None])[:, 0].tolist(),
        observer_to_target_after=to_target.tolist(), observer_to_own_original=to_own.tolist(),
        reused_stages=stages.reused)
    return result, {"original": before, "silent units": after, "target": target[None]}
