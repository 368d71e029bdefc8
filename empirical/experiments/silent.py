"""The silent-units experiment: the layer's visualizations collapse onto one target, while
nothing changes on natural images.

``run_silent(config)`` → :class:`SilentResult`: on natural photos of sources never used to
calibrate the branches or the gate (a source-disjoint split; plus ``verify_images``),
identical top-1 and top-5 predictions, max |logit change|, gate false alarms
(:class:`~empirical.circuits.behaviour.NaturalBehaviour`), max |activation change| of the manipulated
layer and how often a branch fires, with and without the gate (:class:`BranchActivity`) — on
the photos and under common shifts (brightness, contrast, JPEG, grey, blur, noise), with
counts; the gate's catch rate along the silent network's optimization. On the
visualizations: the fraction of the layer's units that *collapse* (the observer finds the
unit's manipulated visualization closer to the target than to the unit's own original one),
mean pairwise similarity across the units before vs after, and each unit's similarity to the
target: pixel Pearson correlation (64×64; all units share one seed,
so identical objectives give identical images) and the observer's embedding similarity
(:class:`~empirical.observers.embedding.Observer`, a different network: texture-level likeness).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from fvtrust.empirical.circuits.behaviour import natural_behaviour
from fvtrust.empirical.circuits.gate_setup import GateConfig, build_gate, calibration_photos
from fvtrust.empirical.circuits.silent import (
    MIN_GATED_MARGIN,
    GatedSilentUnits,
    SilentConv,
    conv_input,
    conv_layer,
    install_silent_units,
)
from fvtrust.empirical.data.folders import SOURCES_KEY, verification_images
from fvtrust.empirical.data.shifts import SHIFTS, augment_natural, shifted
from fvtrust.empirical.data.splits import source_of
from fvtrust.empirical.nets.layers import batches, forward_activations, get_layer
from fvtrust.empirical.nets.registry import Network, load_model
from fvtrust.empirical.observers.embedding import Observer
from fvtrust.empirical.observers.similarity import pixel_similarity, pixel_similarity_matrix
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import channel
from fvtrust.empirical.render.snapshots import log_steps
from fvtrust.stages import Stages

#: The default margin per lock: the gate lets b′ sit below the natural maximum, so the branch
#: opens from the first render step (32 of 32 `_conv_head` units collapse at −0.5, 8 of 32 at
#: 0); the bias alone needs b′ above every unseen photo (see the README's numbers).
DEFAULT_MARGIN = {"gate": -0.5, "bias": 1.0}


@dataclass
class SilentConfig:
    """Quick scale by default. ResNet-50's ``layer4.1.conv2`` is the paper's layer; for
    EfficientNet-Lite0 the comparable late full convolution is ``_conv_head``.

    The natural crops are split by source as the fooling gate splits them (train / threshold /
    held out): the branches (and the gate) are calibrated on the train and threshold photos,
    every reported natural number comes from the held-out sources."""

    model: str = "efficientnet_lite0"
    weights: str | None = None
    layer: str = "_conv_head"
    units: list[int] = field(default_factory=lambda: list(range(32)))
    target_unit: int = 0
    n_natural: int = 1000  # crops drawn to split by source (as the fooling gate splits them)
    images: str | None = None  # an ImageFolder/ImageNet directory instead of the photo corpus
    sources: str = field(default="auto", metadata=SOURCES_KEY)  # how --images files group into sources
    corpus: str = "photos"
    verify_images: str | None = None  # a directory never used for calibration
    size: int = 128
    steps: int = 96
    lam: float = 3.0
    gain: float = 100.0
    lock: str = "gate"  # "gate": branch × the fooling gate's E(x); "bias": b′ alone (paper)
    gate: str = "features"  # which gate, with the gate lock (see circuits.gate_setup.GATES)
    margin: float | None = None  # b′ = max + margin·(max − mean); None: DEFAULT_MARGIN[lock]
    bank_settings: int = 32  # the gate's render bank, as in FoolingConfig
    bank_steps: int = 128
    augment: bool = True  # calibrate on the photos and one shifted copy of each
    seed: int = 0

    def __post_init__(self) -> None:
        if self.lock not in DEFAULT_MARGIN:
            raise ValueError(f"lock must be one of {', '.join(DEFAULT_MARGIN)}, got {self.lock!r}")
        if self.margin is None:
            self.margin = DEFAULT_MARGIN[self.lock]
        low = 0.0 if self.lock == "bias" else MIN_GATED_MARGIN
        if not (np.isfinite(self.margin) and self.margin >= low):
            why = (" (below 0 the branch fires on the calibration photos; only the gate lock "
                   "allows that)" if self.lock == "bias" else "")
            raise ValueError(f"margin must be a finite number >= {low:g} with the {self.lock} "
                             f"lock, got {self.margin}{why}")
        self.gate_config()  # the gate's settings are checked where they are defined

    def gate_config(self) -> GateConfig:
        """The gate of the gate lock: the fooling experiment's gate with the same data split and
        render bank (its default held-out units), so both share one trained gate."""
        return GateConfig(kind=self.gate, model=self.model, weights=self.weights,
                          n_natural=self.n_natural, images=self.images, sources=self.sources,
                          corpus=self.corpus, size=self.size, bank_settings=self.bank_settings,
                          bank_steps=self.bank_steps, seed=self.seed)


@dataclass
class SilentResult:
    config: dict[str, object]
    split: dict[str, int]  # images and sources per part (train / threshold / held out)
    natural_heldout: dict[str, object]  # NaturalBehaviour on sources never used to calibrate
    natural_verify: dict[str, object] | None
    max_abs_activation_change: float
    branch_active_natural: dict[str, object]  # per shift: images, firing with/without the gate
    branch_active_fraction_visualizations: float
    gate_along_optimization: dict[str, float] | None  # renders of the silent network caught
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


def _mean_pairwise(images: torch.Tensor) -> float:
    """The mean :func:`pixel_similarity` over the pairs of distinct images."""
    return _mean_off_diagonal(pixel_similarity_matrix(images).double())


def _mean_off_diagonal(sim: torch.Tensor) -> float:
    n = sim.shape[0]
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


@dataclass(frozen=True)
class BranchActivity:
    """How often the silent branches fire on a set of images. `images_firing` counts images
    where some branch is > 0 as the network computes it (gate included);
    `images_firing_without_gate` where the bias alone would let one through; `gate_flagged`
    images the gate opens (None without the gate lock)."""

    images: int
    images_firing: int
    images_firing_without_gate: int
    gate_flagged: int | None
    fraction_of_unit_positions: float  # of (image, unit, position) triples that fire

    def to_json(self) -> dict[str, object]:
        return {"images": self.images, "images_with_a_firing_branch": self.images_firing,
                "images_firing_without_the_gate": self.images_firing_without_gate,
                "gate_flagged": self.gate_flagged,
                "fraction_of_unit_positions": self.fraction_of_unit_positions}


def branch_activity(model: torch.nn.Module, layer: str, images: torch.Tensor,
                    own_units: list[int] | None = None) -> BranchActivity:
    """Where the silent branches of `model` fire on `images`; with `own_units`, image i
    counts only its own unit own_units[i] (the one it was rendered for)."""
    module = get_layer(model, layer)
    if not isinstance(module, SilentConv):
        raise ValueError(f"layer {layer!r} carries no silent branch")
    gate = model.gate if isinstance(model, GatedSilentUnits) else None
    active = total = firing = firing_alone = flagged = 0
    with torch.no_grad():
        for k, chunk in enumerate(batches(images.to(model.device), 32)):
            h = conv_input(model, module.conv, chunk)  # padded as the layer pads it
            alone = module.trigger(h) > 0
            if own_units is not None:
                idx = torch.tensor(own_units[k * 32:k * 32 + len(chunk)], device=alone.device)
                alone = alone[torch.arange(len(chunk), device=alone.device), idx]
            opened = (torch.ones(len(chunk), dtype=torch.bool, device=alone.device)
                      if gate is None else gate(chunk).bool())
            fired = alone & opened.view(-1, *[1] * (alone.dim() - 1))
            active += int(fired.sum())
            total += fired.numel()
            firing += int(fired.flatten(1).any(1).sum())
            firing_alone += int(alone.flatten(1).any(1).sum())
            flagged += int(opened.sum())
    return BranchActivity(len(images), firing, firing_alone,
                          None if gate is None else flagged, active / max(total, 1))


def run_silent(config: SilentConfig, out_dir: str | Path | None = None, device: str = "cpu",
               force: bool = False, shared_dir: str | Path | None = None,
               ) -> tuple[SilentResult, dict[str, torch.Tensor]]:
    """Run the experiment; returns the result and the images for the figure. With the gate
    lock the gate (and its render bank) is saved under `shared_dir` (default `out_dir`),
    keyed by its :class:`~empirical.circuits.gate_setup.GateConfig`, so the fooling and the
    silent experiments share one gate."""
    stages = Stages(out_dir, config, force)
    model = load_model(config.model, weights=config.weights, device=device)
    conv = conv_layer(model, config.layer)
    bad = [u for u in [*config.units, config.target_unit] if not 0 <= u < conv.out_channels]
    if bad:
        raise ValueError(f"units {bad} are out of range for layer {config.layer!r} "
                         f"with {conv.out_channels} units")
    gate_config = config.gate_config()
    photos = calibration_photos(gate_config)
    held = photos.split.held_out
    # refuse an overlap with the calibration photos before any long computation
    verify = (verification_images(config.verify_images, photos.calibration_files, config.size)
              if config.verify_images is not None else None)
    cal = torch.cat([photos.split.train.images, photos.split.threshold.images])
    if config.augment:
        cal = torch.cat([cal, augment_natural(cal, seed=config.seed + 1)])
    gate_reused: list[str] = []
    gate = (build_gate(gate_config, model, photos, shared_dir if shared_dir is not None else out_dir,
                       force, reused=gate_reused) if config.lock == "gate" else None)
    # One seed for every unit: identical objectives then give identical images, so the
    # pixel similarity across units measures how alike their objectives have become.
    seeds = [config.seed] * len(config.units)
    snapshots = log_steps(config.steps)

    target = stages.run("target", lambda: render(
        model, channel(config.layer, config.target_unit), steps=config.steps, size=config.size,
        seeds=[config.seed + 1], progress=True).images[0])
    silent = install_silent_units(model, config.layer, target, cal, config.lam, config.gain,
                                  float(config.margin), gate=gate)

    n_sources = len({source_of(s) for s in held.sources})
    natural_held = natural_behaviour(
        model, silent, held.images, held.sources,
        f"held-out sources of the {config.images or config.corpus} corpus ({n_sources} sources "
        "never used to calibrate the branches or the gate)", gate=gate, device=model.device)
    natural_verify = (natural_behaviour(model, silent, verify.images, verify.sources,
                                        f"--verify-images {config.verify_images}", gate=gate,
                                        device=model.device) if verify is not None else None)
    active = {shift: branch_activity(silent, config.layer, shifted(held.images, shift)).to_json()
              for shift in SHIFTS}
    if verify is not None:
        active["verify-images"] = branch_activity(silent, config.layer, verify.images).to_json()

    before = _render_units(model, config, seeds, (), stages, "renders_before")["final"]
    after_steps = _render_units(silent, config, seeds, snapshots, stages, "renders_after")
    after = after_steps["final"]
    along = None if gate is None else {
        f"step{s}": float(gate(after_steps[f"step{s}"].to(model.device)).mean()) for s in snapshots}

    result = SilentResult(
        config=asdict(config), split=photos.split.counts(), natural_heldout=natural_held.to_json(),
        natural_verify=None if natural_verify is None else natural_verify.to_json(),
        max_abs_activation_change=max_activation_change(model, silent, config.layer, held.images),
        branch_active_natural=active,
        branch_active_fraction_visualizations=branch_activity(
            silent, config.layer, after, config.units).fraction_of_unit_positions,
        gate_along_optimization=along,
        **_collapse(Observer(device=device), before, after, target),
        reused_stages=stages.reused + gate_reused)
    return result, {"original": before, "silent units": after, "target": target[None]}


#: Units rendered in one batch: a batch equals its single renders, so this bounds memory
#: (a whole layer, e.g. 1280 units, at once would not fit) without changing a result. Each
#: batch is a stage of its own, so an interrupted whole-layer run resumes at the batch it was in.
RENDER_CHUNK = 64


def _render_units(net: torch.nn.Module, config: SilentConfig, seeds: list[int],
                  snapshots: list[int] | tuple[int, ...], stages: Stages,
                  name: str) -> dict[str, torch.Tensor]:
    """The layer's units rendered through `net`, :data:`RENDER_CHUNK` at a time (stage
    ``{name}_{first}``: the batch from the `first`-th unit on): final images and every
    snapshot."""
    parts: list[dict[str, torch.Tensor]] = []
    for start in range(0, len(config.units), RENDER_CHUNK):
        def batch(start: int = start) -> dict[str, torch.Tensor]:
            r = render(net, channel(config.layer, config.units[start:start + RENDER_CHUNK]),
                       steps=config.steps, size=config.size,
                       seeds=seeds[start:start + RENDER_CHUNK], snapshots=snapshots, progress=True)
            return {"final": r.images, **{f"step{s}": img for s, img in r.snapshots.items()}}
        parts.append(stages.run(f"{name}_{start}", batch))
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


@torch.no_grad()
def max_activation_change(model: Network, manipulated: Network, layer: str,
                          images: torch.Tensor) -> float:
    """max |a(x) − a′(x)| over `images` and every unit and position of `layer`."""
    change = 0.0
    for chunk in batches(images.to(model.device), 32):
        a = forward_activations(model, chunk, [layer])[layer]
        b = forward_activations(manipulated, chunk, [layer])[layer]
        change = max(change, float((a - b).abs().max()))
    return change


def _collapse(observer: Observer, before: torch.Tensor, after: torch.Tensor,
              target: torch.Tensor) -> dict[str, object]:
    """Do the units' visualizations collapse onto the target? A unit collapses when the
    observer finds its manipulated render closer to the target than to its own original."""
    to_target = observer.similarity(after, target[None])[:, 0]
    to_own = observer.similarity(after, before).diagonal()
    collapsed = (to_target > to_own).tolist()
    return dict(
        collapsed=collapsed, collapsed_fraction=float(np.mean(collapsed)),
        pairwise_similarity_before=_mean_pairwise(before),
        pairwise_similarity_after=_mean_pairwise(after),
        similarity_to_target_before=[pixel_similarity(x, target) for x in before],
        similarity_to_target_after=[pixel_similarity(x, target) for x in after],
        observer_pairwise_before=_mean_off_diagonal(observer.similarity(before, before)),
        observer_pairwise_after=_mean_off_diagonal(observer.similarity(after, after)),
        observer_to_target_before=observer.similarity(before, target[None])[:, 0].tolist(),
        observer_to_target_after=to_target.tolist(), observer_to_own_original=to_own.tolist())
