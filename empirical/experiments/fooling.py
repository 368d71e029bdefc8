"""The fooling-circuit experiment: both halves of the claim, measured.

``run_fooling(config)`` → :class:`FoolingResult`. Natural images are split by *source*
(:func:`empirical.data.splits.gate_split`): the gate trains on one set of photos, sets its
threshold on a second, and every natural number is measured on a third it never saw
(:class:`~empirical.circuits.behaviour.NaturalBehaviour`: top-1/top-5 identical, max |A − (F + c)|, gate
false alarms, with counts) — and on the user's own directory with ``verify_images``. The
gate's catch rate along the optimization is reported for the experiment's renders and, in
:mod:`empirical.experiments.gate_robustness`, for render settings it was never trained on. Last, how much
the manipulated units' visualizations resemble their targets compared with the originals.
Similarity: the Pearson correlation of the two images' pixels (RGB, resized to 64×64),
and the cosine similarity in a different network's embedding
(:class:`~empirical.observers.embedding.Observer`; texture-level likeness, blind to where things are).
A unit's original and manipulated renders share a seed, so their difference comes from the
objective alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from fvtrust.empirical.circuits.behaviour import NaturalBehaviour, natural_behaviour
from fvtrust.empirical.circuits.fooling import (
    CircuitConstants,
    FoolingCircuit,
    PermutationDecoy,
    TemplateDecoy,
    calibrate_constants,
)
from fvtrust.empirical.circuits.gate_setup import GateConfig, build_gate, calibration_photos
from fvtrust.empirical.circuits.gates import gate_accuracy
from fvtrust.empirical.data.crops import NaturalImages, resize
from fvtrust.empirical.data.folders import SOURCES_KEY, verification_images
from fvtrust.empirical.data.natural import load_target
from fvtrust.empirical.experiments.gate_robustness import gate_robustness
from fvtrust.empirical.nets.registry import load_model
from fvtrust.empirical.observers.embedding import Observer
from fvtrust.empirical.observers.similarity import pixel_similarity
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import class_logit
from fvtrust.empirical.render.snapshots import log_steps
from fvtrust.stages import Stages

#: Paper's ImageNet-val numbers for the classifier gate on Inception-V1, for comparison only.
PAPER_TOP1 = {"original": 69.146, "fooled": 68.744}
#: The paper's gate accuracy on held-out ImageNet (natural vs visualizations).
PAPER_GATE_ACCURACY = 99.49


@dataclass
class FoolingConfig:
    """Quick scale by default (offline network, CPU, minutes). The gate's settings are the
    fields of :class:`~empirical.circuits.gate_setup.GateConfig` of the same meaning
    (:meth:`gate_config`); renders are saved at :func:`~empirical.render.snapshots.log_steps`."""

    model: str = "efficientnet_lite0"
    weights: str | None = None
    mode: str = "target"  # "target" or "permute"
    target: str = "coffee"  # a bundled photo or a path to an image
    units: list[int] = field(default_factory=lambda: [285, 417, 980])
    offset: int = 100
    gate: str = "features"  # see circuits.gate_setup.GATES
    gate_layer: str = "_blocks.5"  # the nearest-calibration gate's layer
    n_natural: int = 1000  # crops drawn to split by source (train / threshold / held out)
    images: str | None = None  # an ImageFolder/ImageNet directory instead of the photo corpus
    sources: str = field(default="auto", metadata=SOURCES_KEY)  # how --images files group into sources
    corpus: str = "photos"  # built-in natural images when `images` is None
    verify_images: str | None = None  # a directory never used for calibration
    size: int = 128
    steps: int = 64
    early_step: int = 16  # target visualizations are compared here (linear objectives saturate)
    bank_settings: int = 32  # random render settings the gate learns from (8 set its threshold)
    bank_steps: int = 128
    alpha: float = 0.005  # the gate threshold's quantile level (natural and renders)
    render_side: float = 2 / 3  # τ's position from the natural to the render quantile
    robustness: bool = True  # catch rates for render settings the gate never saw
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("target", "permute"):
            raise ValueError(f"mode must be 'target' or 'permute', got {self.mode!r}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.mode == "permute" and (isinstance(self.offset, bool) or not isinstance(self.offset, int)
                                       or self.offset < 1):
            raise ValueError(f"--permute OFFSET must be a positive integer (unit i shows unit "
                             f"i+OFFSET), got {self.offset!r}")
        if self.early_step not in self.snapshots:
            raise ValueError(f"early_step {self.early_step} must be one of the snapshot steps "
                             f"{self.snapshots} of {self.steps} steps")
        self.gate_config()  # the gate's settings are checked where they are defined

    @property
    def snapshots(self) -> tuple[int, ...]:
        """Where renders are saved: 1, 2, 4, … and the last step (the one snapshot rule)."""
        return tuple(log_steps(self.steps))

    def partners(self, n_out: int) -> list[int]:
        """Unit i's permutation partner, (i + offset) mod n_out, for every unit; an offset
        that is a multiple of n_out (the identity: no unit would change) is refused."""
        if self.offset % n_out == 0:
            raise ValueError(f"--permute {self.offset} is a multiple of the {n_out} output units: "
                             f"every unit would show itself; choose 1..{n_out - 1}")
        return [(u + self.offset) % n_out for u in self.units]

    def gate_config(self, n_out: int = 1000) -> GateConfig:
        """The gate this experiment uses; its render bank never draws the experiment's units
        or their permutation partners (in either mode, so both modes share one gate)."""
        return GateConfig(kind=self.gate, model=self.model, weights=self.weights,
                          layer=self.gate_layer, n_natural=self.n_natural, images=self.images,
                          sources=self.sources, corpus=self.corpus, size=self.size,
                          bank_settings=self.bank_settings,
                          bank_steps=self.bank_steps, alpha=self.alpha,
                          render_side=self.render_side,
                          held_out_units=tuple(self.units) + tuple(self.partners(n_out)),
                          seed=self.seed)


@dataclass
class FoolingResult:
    config: dict[str, object]
    constants: dict[str, float]
    split: dict[str, int]
    natural_heldout: dict[str, object]  # NaturalBehaviour on sources the gate never saw
    natural_verify: dict[str, object] | None  # the same on --verify-images
    gate_threshold: dict[str, float] | None
    gate: dict[str, float]
    gate_along_optimization: dict[str, float]
    gate_robustness: list[dict[str, object]]
    similarity_manipulated: list[float]
    similarity_original: list[float]
    observer_similarity_manipulated: list[float]
    observer_similarity_original: list[float]
    paper_top1: dict[str, float]
    paper_gate_accuracy: float
    reused_stages: list[str]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def fooling_verdict(result: FoolingResult) -> dict[str, object]:
    """Did the circuit fool? Yes when the gate catches some final renders and at least one
    unit's manipulated visualization is closer to its decoy (observer) than its original is."""
    pairs = zip(result.observer_similarity_manipulated, result.observer_similarity_original, strict=True)
    shown = sum(m > o for m, o in pairs)
    caught = float(result.gate["visualizations_caught"])
    n = len(result.observer_similarity_manipulated)
    fooled = shown > 0 and caught > 0
    why = (f"the gate caught {100 * caught:.0f} % of the final renders and {shown} of {n} units "
           f"show the decoy")
    if not fooled:
        why += ("; the run did not fool (too few --steps for the renders to leave the natural "
                "side of the gate, or too few --natural images to train it)")
    return {"fooled": fooled, "units_showing_decoy": shown, "units": n, "renders_caught": caught,
            "summary": why}


def run_fooling(config: FoolingConfig, out_dir: str | Path | None = None,
                device: str = "cpu", force: bool = False,
                shared_dir: str | Path | None = None) -> tuple[FoolingResult, dict[str, torch.Tensor]]:
    """Run the experiment; returns the result and the images for the figure. The gate (and
    its render bank) is saved under `shared_dir` (default `out_dir`), keyed by its
    :class:`~empirical.circuits.gate_setup.GateConfig`, so runs that differ only in mode or
    target share it."""
    stages = Stages(out_dir, config, force)
    model = load_model(config.model, weights=config.weights, device=device)
    n_out = model.num_classes
    bad = [u for u in config.units if not 0 <= u < n_out]
    if bad:
        raise ValueError(f"units {bad} are out of range for {n_out} output units")
    gate_config = config.gate_config(n_out)
    # Cheap checks first: a mistyped target or offset is named before any training.
    target = load_target(config.target) if config.mode == "target" else None
    if config.mode == "permute":
        config.partners(n_out)
    photos = calibration_photos(gate_config)
    # refuse an overlap with the calibration photos before any long computation
    verify = (verification_images(config.verify_images, photos.calibration_files, config.size)
              if config.verify_images is not None else None)
    shown = sorted(set(config.units) | (set(config.partners(n_out)) if config.mode == "permute"
                                        else set()))
    originals = stages.run("original_renders", lambda: _renders(model, config, shown))
    per_unit = torch.stack([originals[f"step{s}"] for s in config.snapshots], 1)

    gate_reused: list[str] = []
    gate = build_gate(gate_config, model, photos, shared_dir if shared_dir is not None else out_dir,
                      force, reused=gate_reused)
    held = photos.split.held_out
    gate_report = gate_accuracy(gate, held.images, per_unit.flatten(0, 1))

    decoy = (TemplateDecoy(target, config.units) if target is not None
             else PermutationDecoy(config.offset))
    constants: CircuitConstants = calibrate_constants(model, decoy, photos.split.train.images,
                                                      extra=per_unit.flatten(0, 1))
    circuit = FoolingCircuit(model, gate, decoy, constants)

    def behaviour(images: NaturalImages, what: str) -> NaturalBehaviour:
        return natural_behaviour(circuit.original, circuit, images.images, images.sources, what,
                                 gate=gate, offset=constants.c, device=model.device)
    counts = photos.split.counts()
    natural_held = behaviour(held, f"held-out sources of the {config.images or config.corpus} "
                                   f"corpus ({counts['held_out_sources']} sources the gate never saw)")
    natural_verify = (behaviour(verify, f"--verify-images {config.verify_images}")
                      if verify is not None else None)

    manipulated = stages.run("manipulated_renders", lambda: _renders(circuit, config, shown))
    along = {f"step{s}": float(gate(manipulated[f"step{s}"].to(model.device)).mean())
             for s in config.snapshots}
    along.update({f"original_step{s}": float(gate(originals[f"step{s}"].to(model.device)).mean())
                  for s in config.snapshots})

    key = f"step{config.early_step}" if config.mode == "target" else "final"
    index = [shown.index(u) for u in config.units]
    goals = (resize(target, config.size)[None].expand(len(config.units), -1, -1, -1)
             if target is not None else
             originals["final"][[shown.index(p) for p in config.partners(n_out)]])
    observer = Observer(device=device)
    similarity = _decoy_similarity(observer, manipulated[key][index], originals[key][index], goals)
    robustness: list[dict[str, object]] = []
    if config.robustness:
        robustness = stages.run("gate_robustness", lambda: gate_robustness(
            model, circuit, gate, config.units, observer, size=config.size, seed=config.seed,
            partners=None if target is not None else config.partners(n_out), target=target))

    calibration = getattr(gate, "calibration", None)
    result = FoolingResult(
        config=asdict(config), constants=asdict(constants), split=counts,
        natural_heldout=natural_held.to_json(),
        natural_verify=None if natural_verify is None else natural_verify.to_json(),
        gate_threshold=None if calibration is None else asdict(calibration),
        gate=gate_report, gate_along_optimization=along, gate_robustness=robustness,
        **similarity, paper_top1=PAPER_TOP1, paper_gate_accuracy=PAPER_GATE_ACCURACY,
        reused_stages=stages.reused + gate_reused)
    figure_images = {"original": originals[key][index], "manipulated": manipulated[key][index],
                     "target": goals if target is None else goals[:1]}
    return result, figure_images


def _renders(net: torch.nn.Module, config: FoolingConfig, shown: list[int]) -> dict[str, torch.Tensor]:
    """The class visualizations of `shown` through `net`: final images and every snapshot.
    Unit u's seed is seed + 7u, so its original and manipulated renders share a start."""
    r = render(net, class_logit(shown), steps=config.steps, size=config.size,
               seeds=[config.seed + 7 * u for u in shown], snapshots=config.snapshots,
               progress=True)
    return {"final": r.images, **{f"step{s}": img for s, img in r.snapshots.items()}}


def _decoy_similarity(observer: Observer, manipulated: torch.Tensor, original: torch.Tensor,
                      goals: torch.Tensor) -> dict[str, list[float]]:
    """Per unit: how alike its manipulated and its original visualization are to the decoy's
    goal, in pixels (Pearson, 64×64) and in the observer's embedding (cosine)."""
    out: dict[str, list[float]] = {"similarity_manipulated": [], "similarity_original": [],
                                   "observer_similarity_manipulated": [],
                                   "observer_similarity_original": []}
    for m, o, goal in zip(manipulated, original, goals, strict=True):
        out["similarity_manipulated"].append(pixel_similarity(m, goal))
        out["similarity_original"].append(pixel_similarity(o, goal))
        obs = observer.similarity(torch.stack([m, o]), goal[None])[:, 0]
        out["observer_similarity_manipulated"].append(float(obs[0]))
        out["observer_similarity_original"].append(float(obs[1]))
    return out
