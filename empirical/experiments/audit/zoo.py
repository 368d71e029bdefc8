"""The manipulation zoo: manipulated networks with ground truth, built from a clean network.

``MANIPULATIONS[name].build(setup) → ZooEntry`` (one call shape). Each entry records which
units of which layer were manipulated, the manipulation's parameters, and what every
manipulated unit's visualization should now show (its decoy). :func:`natural_cost` measures
what the manipulation costs on natural images of sources it was never built on, and
:func:`success` whether it worked (the observer finds the new visualization more like the
decoy than like the original one); a unit whose manipulation failed is reported, not counted.

Architectural: the fooling circuit at the logits (target and permutation decoys) and at an
intermediate layer (permutation of feature maps), silent units at a convolution (gate lock and
bias lock). Weight-space, same architecture: the decoy
fine-tune (Nanfack et al. 2024) and the slingshot fine-tune (Bareeva et al. 2025).
All natural images used to *build* a manipulation come from the gate split's train and
threshold sources; its natural cost is measured on the held-out sources.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fvtrust.empirical.circuits.behaviour import natural_behaviour
from fvtrust.empirical.circuits.finetune import decoy_finetune, slingshot_finetune
from fvtrust.empirical.circuits.fooling import (
    FoolingCircuit,
    LayerFoolingCircuit,
    PermutationDecoy,
    TemplateDecoy,
    calibrate_constants,
    calibrate_layer_constants,
    partners,
)
from fvtrust.empirical.circuits.gate_setup import (
    CalibrationPhotos,
    GateConfig,
    build_gate,
    calibration_photos,
)
from fvtrust.empirical.circuits.gates import Gate
from fvtrust.empirical.circuits.silent import install_silent_units
from fvtrust.empirical.data.crops import resize_center_crop
from fvtrust.empirical.data.photos import load_photo
from fvtrust.empirical.experiments.audit.detectors import check_layer
from fvtrust.empirical.nets.layers import layer_responses
from fvtrust.empirical.nets.registry import LOGITS, Network
from fvtrust.empirical.observers.embedding import Observer
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import channel


@dataclass
class ZooConfig:
    """Which units to manipulate and how (quick scale: 64 px, CPU)."""

    logit_units: tuple[int, ...] = (1, 9, 130, 207, 309, 340, 430, 511)
    conv_layer: str = "_conv_head"
    conv_units: tuple[int, ...] = (3, 41, 170, 333, 512, 700, 901, 1111)
    # the intermediate fooling circuit's layer: not the gate bank's middle layer, whose
    # channels the gate saw rendered (Lite0/1/2: _blocks.9/11/11); units < 80 (Lite1's width)
    mid_layer: str = "_blocks.8"
    mid_units: tuple[int, ...] = (2, 9, 17, 25, 38, 47, 58, 71)
    target: str = "astronaut"  # the fooling circuit's target decoy (a bundled photo)
    silent_target_unit: int = 0  # silent units and the slingshot show this conv unit's visualization
    offset: int = 100  # the permutation decoy: unit u shows unit u + offset
    size: int = 64
    steps: int = 64
    n_natural: int = 600
    bank_settings: int = 8
    bank_steps: int = 64
    finetune_steps: int = 300
    finetune_lr: float = 1e-3
    finetune_keep: float = 1000.0  # β: the weight of preserving the layer on natural images
    # "units": only the manipulated units' own weights (the stealthiest: the other units of the
    # layer are untouched); "below": the layer and the main layer below it
    finetune_scope: str = "units"
    finetune_kappa: float = 2.0  # κ: how far past what visualization reached the decoy drives a unit
    bias_margin: float = 0.0  # the bias lock's b′ = the natural maximum + margin·(max − mean)
    seed: int = 0
    #: the natural cost a manipulation may have and still count as "behaviour preserved"
    budget_top1: float = 0.95
    budget_correlation: float = 0.9

    def __post_init__(self) -> None:
        if not self.logit_units or not self.conv_units or not self.mid_units:
            raise ValueError("the zoo needs logit, conv and intermediate units to manipulate")

    def where(self, place: str) -> tuple[str, tuple[int, ...]]:
        """(layer, units) of a manipulation's place: "logits", "conv" or "mid"."""
        return {"logits": (LOGITS, self.logit_units), "conv": (self.conv_layer, self.conv_units),
                "mid": (self.mid_layer, self.mid_units)}[place]


@dataclass
class ZooSetup:
    """A clean network and what every manipulation is built from."""

    model: Network
    config: ZooConfig
    gate_root: str | Path | None = None  # where the gate's render bank and weights are saved
    force: bool = False  # retrain a saved gate

    @cached_property
    def photos(self) -> CalibrationPhotos:
        return calibration_photos(self.gate_config)

    @property
    def gate_config(self) -> GateConfig:
        c = self.config
        n_out = self.model.num_classes
        held = {*c.logit_units, *((u + c.offset) % n_out for u in c.logit_units)}
        return GateConfig(model=self.model.name, n_natural=c.n_natural, size=c.size,
                          bank_settings=c.bank_settings, bank_steps=c.bank_steps,
                          held_out_units=tuple(sorted(held)), seed=c.seed)

    @cached_property
    def gate(self) -> Gate:
        return build_gate(self.gate_config, self.model, self.photos, self.gate_root, self.force)

    @cached_property
    def build_images(self) -> torch.Tensor:
        """Natural images a manipulation may be built on: train and threshold sources."""
        return torch.cat([self.photos.split.train.images, self.photos.split.threshold.images])

    @cached_property
    def target(self) -> torch.Tensor:
        return resize_center_crop(load_photo(self.config.target), self.config.size)

    @cached_property
    def silent_target(self) -> torch.Tensor:
        """The silent units' target: the clean network's visualization of the conv layer's
        `silent_target_unit` (seed + 1), as in the silent-units experiment."""
        c = self.config
        return render(self.model, channel(c.conv_layer, c.silent_target_unit), steps=c.steps,
                      size=c.size, seeds=[c.seed + 1]).images[0]

    def originals(self, layer: str, units: tuple[int, ...]) -> torch.Tensor:
        """(U, 3, H, W): the clean network's visualizations (the audit's first seed)."""
        key = (layer, units)
        cache = self.__dict__.setdefault("_originals", {})
        if key not in cache:
            c = self.config
            cache[key] = render(self.model, channel(layer, list(units)), steps=c.steps, size=c.size,
                                seeds=[c.seed + u for u in units]).images
        return cache[key]


@dataclass
class ZooEntry:
    """One manipulated network with its ground truth."""

    name: str
    family: str  # "architectural" or "weight-space"
    model: str
    layer: str
    units: list[int]
    params: dict[str, Any]
    network: Network = field(repr=False)
    decoys: torch.Tensor = field(repr=False)  # (U, 3, H, W): what each unit should now show
    logit_offset: float = 0.0  # the circuit outputs F + offset on natural images
    trace: list[float] = field(default_factory=list, repr=False)

    def manifest(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "model": self.model, "layer": self.layer,
                "units": self.units, "params": self.params, "logit_offset": self.logit_offset}


def _fooling(mode: str) -> Callable[[ZooSetup], ZooEntry]:
    def build(setup: ZooSetup) -> ZooEntry:
        c, model = setup.config, setup.model
        units = list(c.logit_units)
        n_out = model.num_classes
        if mode == "target":
            decoy = TemplateDecoy(setup.target, units)
            decoys = setup.target[None].expand(len(units), -1, -1, -1)
            shown = tuple(units)
        else:
            decoy = PermutationDecoy(c.offset)
            partners = tuple((u + c.offset) % n_out for u in units)
            decoys = setup.originals(LOGITS, partners)
            shown = (*units, *partners)
        constants = calibrate_constants(model, decoy, setup.build_images,
                                        extra=setup.originals(LOGITS, tuple(sorted(set(shown)))))
        circuit = FoolingCircuit(model, setup.gate, decoy, constants)
        params = {"mode": mode, "gate": "features", "c": constants.c, "k": constants.k}
        if mode == "permute":
            params["offset"] = c.offset
        else:
            params["target"] = c.target
        return ZooEntry(f"fooling_{mode}", "architectural", model.name, LOGITS, units, params,
                        circuit, decoys, constants.c)
    return build


def _fooling_mid(setup: ZooSetup) -> ZooEntry:
    """The permutation fooling circuit on the feature maps of ``mid_layer``: unit u shows the
    clean visualization of channel (u + offset) mod C."""
    c, model = setup.config, setup.model
    units = list(c.mid_units)
    n_channels = check_layer(model, c.mid_layer)
    bad = [u for u in units if not 0 <= u < n_channels]
    if bad:
        raise ValueError(f"mid_units {bad} are out of range for {c.mid_layer!r} of {model.name} "
                         f"({n_channels} channels)")
    shown = partners(units, c.offset, n_channels)
    decoys = setup.originals(c.mid_layer, tuple(shown))
    channels = tuple(sorted({*units, *shown}))
    constants = calibrate_layer_constants(model, c.mid_layer, channels, setup.build_images,
                                          extra=setup.originals(c.mid_layer, channels))
    circuit = LayerFoolingCircuit(model, c.mid_layer, units, c.offset, setup.gate, constants, n_channels)
    return ZooEntry("fooling_permute_mid", "architectural", model.name, c.mid_layer, units,
                    {"mode": "permute", "gate": "features", "offset": c.offset, "partners": shown,
                     "c": constants.c, "k": constants.k}, circuit, decoys)


def _silent(lock: str) -> Callable[[ZooSetup], ZooEntry]:
    def build(setup: ZooSetup) -> ZooEntry:
        c, model = setup.config, setup.model
        margin = -0.5 if lock == "gate" else c.bias_margin  # gate: the silent experiment's default
        silent = install_silent_units(model, c.conv_layer, setup.silent_target, setup.build_images,
                                      margin=margin, gate=setup.gate if lock == "gate" else None)
        units = list(c.conv_units)
        return ZooEntry(f"silent_{lock}", "architectural", model.name, c.conv_layer, units,
                        {"lock": lock, "margin": margin, "lam": 3.0, "gain": 100.0,
                         "target": f"the visualization of {c.conv_layer}:{c.silent_target_unit}",
                         "manipulated": "every unit of the layer (these are the ones audited)"},
                        silent, setup.silent_target[None].expand(len(units), -1, -1, -1))
    return build


def _decoy_finetune(setup: ZooSetup) -> ZooEntry:
    c, model = setup.config, setup.model
    units = list(c.conv_units)
    originals = setup.originals(c.conv_layer, tuple(units))
    # Each unit is made to show its neighbour's clean visualization (fairwashing: an
    # innocuous feature of the same network); a render lies off the natural manifold, where
    # preserving natural behaviour constrains the weights least.
    decoys = torch.roll(originals, shifts=-1, dims=0)
    tuned, trace = decoy_finetune(model, c.conv_layer, units, decoys.to(model.device),
                                  originals.to(model.device), setup.build_images, steps=c.finetune_steps,
                                  lr=c.finetune_lr, kappa=c.finetune_kappa, keep=c.finetune_keep,
                                  seed=c.seed, scope=c.finetune_scope)
    return ZooEntry("decoy_finetune", "weight-space", model.name, c.conv_layer, units,
                    {"decoys": [f"the clean visualization of {c.conv_layer}:{u}"
                                for u in units[1:] + units[:1]],
                     "steps": c.finetune_steps, "kappa": c.finetune_kappa, "keep": c.finetune_keep,
                     "lr": c.finetune_lr, "scope": c.finetune_scope}, tuned, decoys, trace=trace)


def _slingshot(setup: ZooSetup) -> ZooEntry:
    c, model = setup.config, setup.model
    units = list(c.conv_units)
    tuned, trace = slingshot_finetune(model, c.conv_layer, units, setup.silent_target,
                                      setup.originals(c.conv_layer, tuple(units)).to(model.device),
                                      setup.build_images, size=c.size, steps=c.finetune_steps,
                                      lr=c.finetune_lr, kappa=c.finetune_kappa, keep=c.finetune_keep,
                                      seed=c.seed, scope=c.finetune_scope)
    return ZooEntry("slingshot_finetune", "weight-space", model.name, c.conv_layer, units,
                    {"target": f"the visualization of {c.conv_layer}:{c.silent_target_unit}",
                     "steps": c.finetune_steps, "kappa": c.finetune_kappa, "keep": c.finetune_keep,
                     "lr": c.finetune_lr, "scope": c.finetune_scope}, tuned,
                    setup.silent_target[None].expand(len(units), -1, -1, -1), trace=trace)


@dataclass(frozen=True)
class Manipulation:
    """A registered manipulation: how it is built, its family, where it comes from."""

    build: Callable[[ZooSetup], ZooEntry]
    family: str
    source: str
    place: str  # where its units are: "logits", "conv" or "mid" (ZooConfig.where)


#: The zoo (``--manipulations``): name → how it is built from a clean network.
MANIPULATIONS: dict[str, Manipulation] = {
    "fooling_target": Manipulation(_fooling("target"), "architectural",
                                   "Don't trust your eyes, Sec. 3 (fooling circuit, target decoy)", "logits"),
    "fooling_permute": Manipulation(_fooling("permute"), "architectural",
                                    "Don't trust your eyes, Sec. 3 (fooling circuit, permutation)", "logits"),
    "fooling_permute_mid": Manipulation(_fooling_mid, "architectural",
                                        "Don't trust your eyes, Sec. 3, at an intermediate layer", "mid"),
    "silent_gate": Manipulation(_silent("gate"), "architectural", "silent units, gate lock (fvtrust)",
                                "conv"),
    "silent_bias": Manipulation(_silent("bias"), "architectural",
                                "Don't trust your eyes, Sec. 3 (silent units, bias lock)", "conv"),
    "decoy_finetune": Manipulation(_decoy_finetune, "weight-space",
                                   "Nanfack et al., AAAI 2024 (push-up/push-down fine-tune)", "conv"),
    "slingshot_finetune": Manipulation(_slingshot, "weight-space",
                                       "Gradient Slingshots, Bareeva et al., NeurIPS 2025", "conv"),
}


@dataclass
class NaturalCost:
    """What the manipulation changed on natural images of held-out sources, with counts."""

    data: str
    n_images: int
    n_sources: int
    top1_agreement: float
    top5_agreement: float
    max_abs_logit_change: float
    unit_correlation_min: float  # Pearson r of each manipulated unit's natural responses, worst
    unit_correlation_mean: float
    kendall_tau_topk: float  # mean over units: the top-k natural ranking before vs after
    within_budget: bool


def natural_cost(entry: ZooEntry, clean: Network, images: torch.Tensor, sources: list[str],
                 config: ZooConfig, k: int = 9) -> NaturalCost:
    """Top-1/top-5 agreement, the largest logit change (against F + offset), each manipulated
    unit's response correlation and Kendall τ of its top-k natural ranking."""
    from scipy.stats import kendalltau

    behaviour = natural_behaviour(clean, entry.network, images, sources, "held-out sources",
                                  offset=entry.logit_offset, device=clean.device)
    before = layer_responses(clean, entry.layer, images)[:, entry.units].double().numpy()
    after = layer_responses(entry.network, entry.layer, images)[:, entry.units].double().numpy()
    corr, taus = [], []
    for j in range(len(entry.units)):
        a, b = before[:, j], after[:, j]
        corr.append(float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan"))
        top = np.argsort(-a, kind="stable")[:k]
        taus.append(float(kendalltau(a[top], b[top]).statistic))
    corr_min = float(np.nanmin(corr)) if np.isfinite(corr).any() else float("nan")
    within = behaviour.top1_identical >= config.budget_top1 and corr_min >= config.budget_correlation
    return NaturalCost(behaviour.data, behaviour.n_images, behaviour.n_sources, behaviour.top1_identical,
                       behaviour.top5_identical, behaviour.max_abs_logit_change, corr_min,
                       float(np.nanmean(corr)), float(np.nanmean(taus)), bool(within))


def success(entry: ZooEntry, renders: torch.Tensor, originals: torch.Tensor,
            observer: Observer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per unit: (succeeded, s(new, decoy), s(new, original)) with s = observer cosine; a
    manipulation succeeded on a unit when its new visualization is more like the decoy."""
    new, decoy, old = observer.embed(renders), observer.embed(entry.decoys), observer.embed(originals)
    to_decoy = (new * decoy).sum(1).double().numpy()
    to_original = (new * old).sum(1).double().numpy()
    return to_decoy > to_original, to_decoy, to_original


@dataclass
class ZooReport:
    """A built entry with its natural cost and, per unit, whether the manipulation worked."""

    entry: ZooEntry
    cost: NaturalCost
    succeeded: list[bool]
    to_decoy: list[float]
    to_original: list[float]
    renders: torch.Tensor = field(repr=False)  # (U, 3, H, W): the new visualizations

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**self.entry.manifest(), "cost": asdict(self.cost), "succeeded": self.succeeded,
                "n_units": len(self.succeeded), "n_succeeded": int(sum(self.succeeded)),
                "to_decoy": self.to_decoy, "to_original": self.to_original}


def check_manipulations(names: list[str], what: str = "manipulations") -> list[str]:
    """`names`, each a registered manipulation; an unknown one is refused by name."""
    bad = [n for n in names if n not in MANIPULATIONS]
    if bad or not names:
        raise ValueError(f"{what}: unknown {bad or names}; known: {', '.join(MANIPULATIONS)}")
    return names


def build_zoo(setup: ZooSetup, names: list[str], observer: Observer) -> list[ZooReport]:
    """Build each named manipulation, measure its natural cost on the held-out sources and
    its success on every manipulated unit (one render per unit, the audit's first seed)."""
    check_manipulations(names)
    held, c = setup.photos.split.held_out, setup.config
    reports = []
    for name in names:
        entry = MANIPULATIONS[name].build(setup)
        cost = natural_cost(entry, setup.model, held.images, held.sources, c)
        renders = render(entry.network, channel(entry.layer, entry.units), steps=c.steps, size=c.size,
                         seeds=[c.seed + u for u in entry.units]).images
        ok, to_decoy, to_original = success(entry, renders, setup.originals(entry.layer, tuple(entry.units)),
                                            observer)
        reports.append(ZooReport(entry, cost, ok.tolist(), to_decoy.tolist(), to_original.tolist(), renders))
    return reports
