"""The fooling-circuit experiment: both halves of the claim, measured.

``run_fooling(config)`` → :class:`FoolingResult`: natural behaviour on the held-out split
(identical top-1 predictions, max |A − (F + c)|), the gate's accuracy and its value along the
optimization, and how much the manipulated units' visualizations resemble their targets
compared with the unmanipulated ones. Similarity: the Pearson correlation of the two images'
pixels (RGB, resized to 64×64), and the cosine similarity in a different network's embedding
(:class:`~empirical.observer.Observer`; texture-level likeness, blind to where things are).
A unit's original and manipulated renders share a seed, so their difference comes from the
objective alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from empirical.checkpoint import Stages
from empirical.data import load_photo, natural_images, predict, split_indices
from empirical.fooling import (
    CircuitConstants,
    FoolingCircuit,
    PermutationDecoy,
    TemplateDecoy,
    calibrate_constants,
)
from empirical.gates import Gate, StatisticGate, gate_accuracy, train_classifier_gate
from empirical.models import load_model
from empirical.objectives import class_logit
from empirical.observer import Observer
from empirical.render import render

#: Paper's ImageNet-val numbers for the classifier gate on Inception-V1, for comparison only.
PAPER_TOP1 = {"original": 69.146, "fooled": 68.744}


@dataclass
class FoolingConfig:
    """Quick scale by default (offline network, CPU, minutes)."""

    model: str = "efficientnet_lite0"
    weights: str | None = None
    mode: str = "target"  # "target" or "permute"
    target: str = "coffee"  # a bundled photo or a path to an image
    units: list[int] = field(default_factory=lambda: [285, 417, 980])
    offset: int = 100
    gate: str = "silent"  # "silent" or "classifier"
    gate_layer: str = "_blocks.5"
    n_natural: int = 160
    images: str | None = None  # an ImageFolder/ImageNet directory instead of bundled photos
    size: int = 128
    steps: int = 96
    early_step: int = 16  # target visualizations are compared here (linear objectives saturate)
    snapshots: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 96)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("target", "permute"):
            raise ValueError(f"mode must be 'target' or 'permute', got {self.mode!r}")
        if self.gate not in ("silent", "classifier"):
            raise ValueError(f"gate must be 'silent' or 'classifier', got {self.gate!r}")
        if self.early_step not in self.snapshots or max(self.snapshots) != self.steps:
            raise ValueError(f"snapshots {self.snapshots} must contain early_step "
                             f"{self.early_step} and end at steps {self.steps}")


@dataclass
class FoolingResult:
    config: dict[str, object]
    constants: dict[str, float]
    natural_heldout_images: int
    top1_identical: float
    max_abs_logit_change: float
    gate: dict[str, float]
    gate_along_optimization: dict[str, float]
    similarity_manipulated: list[float]
    similarity_original: list[float]
    observer_similarity_manipulated: list[float]
    observer_similarity_original: list[float]
    paper_top1: dict[str, float]
    reused_stages: list[str]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def pixel_similarity(a: torch.Tensor, b: torch.Tensor, size: int = 64) -> float:
    """Pearson correlation of two images' pixels after resizing to size×size."""
    def flat(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x[None].float(), size=(size, size), mode="bilinear",
                             antialias=True, align_corners=False).flatten()
    x, y = flat(a), flat(b)
    x, y = x - x.mean(), y - y.mean()
    return float((x @ y) / (x.norm() * y.norm()).clamp_min(1e-12))


def load_target(name: str) -> torch.Tensor:
    """A bundled photo by name, or an image file (any size: resized where it is used)."""
    path = Path(name)
    if path.is_file():
        from PIL import Image

        arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    return load_photo(name)


def run_fooling(config: FoolingConfig, out_dir: str | Path | None = None,
                device: str = "cpu", force: bool = False) -> tuple[FoolingResult, dict[str, torch.Tensor]]:
    """Run the experiment; returns the result and the images for the figure."""
    stages = Stages(out_dir, config, force)
    model = load_model(config.model, weights=config.weights, device=device)
    n_out = model.num_classes
    bad = [u for u in config.units if not 0 <= u < n_out]
    if bad:
        raise ValueError(f"units {bad} are out of range for {n_out} output units")
    natural = natural_images(config.images, config.n_natural, config.size, config.seed)
    cal_idx, held_idx = split_indices(len(natural), 0.5, seed=config.seed)
    cal, held = natural.images[cal_idx], natural.images[held_idx]

    shown = sorted(set(config.units) | ({(u + config.offset) % n_out for u in config.units}
                                        if config.mode == "permute" else set()))
    seeds = [config.seed + 7 * u for u in shown]

    def renders_of(net: torch.nn.Module) -> dict[str, torch.Tensor]:
        r = render(net, class_logit(shown), steps=config.steps, size=config.size,
                   seeds=seeds, snapshots=config.snapshots, progress=True)
        return {"final": r.images, **{f"step{s}": img for s, img in r.snapshots.items()}}
    originals = stages.run("original_renders", lambda: renders_of(model))
    # (unit, snapshot, 3, H, W): the first half of the units trains the classifier gate,
    # the second half is held out for every gate's accuracy.
    per_unit = torch.stack([originals[f"step{s}"] for s in config.snapshots], 1)
    half = len(shown) // 2

    gate: Gate
    if config.gate == "silent":
        gate = StatisticGate(model, config.gate_layer).calibrate(cal)
    else:
        gate = stages.run("classifier_gate", lambda: train_classifier_gate(
            cal, per_unit[: max(1, half)].flatten(0, 1), seed=config.seed))
    gate_report = gate_accuracy(gate, held, per_unit[half:].flatten(0, 1))

    target = (F.interpolate(load_target(config.target)[None], size=(config.size,) * 2,
                            mode="bilinear", antialias=True, align_corners=False)[0]
              if config.mode == "target" else None)
    decoy = (TemplateDecoy(load_target(config.target), config.units) if config.mode == "target"
             else PermutationDecoy(config.offset))
    constants: CircuitConstants = calibrate_constants(model, decoy, cal,
                                                      extra=per_unit.flatten(0, 1))
    circuit = FoolingCircuit(model, gate, decoy, constants)

    original_logits = predict(model, held)
    fooled_logits = predict(circuit, held)
    identical = float((original_logits.argmax(1) == fooled_logits.argmax(1)).float().mean())
    change = float((fooled_logits - (original_logits + constants.c)).abs().max())

    manipulated = stages.run("manipulated_renders", lambda: renders_of(circuit))
    along = {f"step{s}": float(gate(manipulated[f"step{s}"].to(model.device)).mean())
             for s in config.snapshots}
    along.update({f"original_step{s}": float(gate(originals[f"step{s}"].to(model.device)).mean())
                  for s in config.snapshots})

    key = f"step{config.early_step}" if config.mode == "target" else "final"
    index = [shown.index(u) for u in config.units]
    goals = (target[None].expand(len(config.units), -1, -1, -1) if target is not None else
             originals["final"][[shown.index((u + config.offset) % n_out) for u in config.units]])
    observer = Observer(device=device)
    sim_m, sim_o, obs_m, obs_o = [], [], [], []
    for i, goal in zip(index, goals, strict=True):
        sim_m.append(pixel_similarity(manipulated[key][i], goal))
        sim_o.append(pixel_similarity(originals[key][i], goal))
        pair = torch.stack([manipulated[key][i], originals[key][i]])
        obs = observer.similarity(pair, goal[None])[:, 0]
        obs_m.append(float(obs[0]))
        obs_o.append(float(obs[1]))

    result = FoolingResult(
        config=asdict(config), constants=asdict(constants),
        natural_heldout_images=len(held), top1_identical=identical,
        max_abs_logit_change=change, gate=gate_report,
        gate_along_optimization=along, similarity_manipulated=sim_m, similarity_original=sim_o,
        observer_similarity_manipulated=obs_m, observer_similarity_original=obs_o,
        paper_top1=PAPER_TOP1, reused_stages=stages.reused)
    figure_images = {"original": originals[key][index], "manipulated": manipulated[key][index],
                     "target": goals if target is None else target[None]}
    return result, figure_images
