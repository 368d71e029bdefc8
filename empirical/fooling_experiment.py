"""The fooling-circuit experiment: both halves of the claim, measured.

``run_fooling(config)`` → :class:`FoolingResult`. Natural images are split by *source*
(:func:`empirical.gate_data.gate_split`): the gate trains on one set of photos, sets its
threshold on a second, and every natural number is measured on a third it never saw
(:class:`~empirical.verify.NaturalBehaviour`: top-1/top-5 identical, max |A − (F + c)|, gate
false alarms, with counts) — and on the user's own directory with ``verify_images``. The
gate's catch rate along the optimization is reported for the experiment's renders and, in
:mod:`empirical.gate_robustness`, for render settings it was never trained on. Last, how much
the manipulated units' visualizations resemble their targets compared with the originals.
Similarity: the Pearson correlation of the two images' pixels (RGB, resized to 64×64),
and the cosine similarity in a different network's embedding
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
from fvtrust.empirical.checkpoint import Stages
from fvtrust.empirical.corpus import source_files
from fvtrust.empirical.data import NaturalImages, image_files, load_photo, natural_images, source_of
from fvtrust.empirical.fooling import (
    CircuitConstants,
    FoolingCircuit,
    PermutationDecoy,
    TemplateDecoy,
    calibrate_constants,
)
from fvtrust.empirical.gate_data import GateSplit, RenderBankConfig, augment_natural, gate_split, render_bank
from fvtrust.empirical.gates import (
    Gate,
    NearestCalibrationGate,
    gate_accuracy,
    train_classifier_gate,
    train_feature_gate,
)
from fvtrust.empirical.models import Network, load_model
from fvtrust.empirical.objectives import class_logit
from fvtrust.empirical.observer import Observer
from fvtrust.empirical.render import render
from fvtrust.empirical.verify import NaturalBehaviour, check_not_calibration, natural_behaviour

#: Paper's ImageNet-val numbers for the classifier gate on Inception-V1, for comparison only.
PAPER_TOP1 = {"original": 69.146, "fooled": 68.744}
#: The paper's gate accuracy on held-out ImageNet (natural vs visualizations).
PAPER_GATE_ACCURACY = 99.49
GATES = ("features", "classifier", "nearest")


@dataclass
class FoolingConfig:
    """Quick scale by default (offline network, CPU, minutes)."""

    model: str = "efficientnet_lite0"
    weights: str | None = None
    mode: str = "target"  # "target" or "permute"
    target: str = "coffee"  # a bundled photo or a path to an image
    units: list[int] = field(default_factory=lambda: [285, 417, 980])
    offset: int = 100
    gate: str = "features"  # see GATES
    gate_layer: str = "_blocks.5"  # the nearest-calibration gate's layer
    n_natural: int = 1000  # crops drawn to split by source (train / threshold / held out)
    images: str | None = None  # an ImageFolder/ImageNet directory instead of the photo corpus
    corpus: str = "photos"  # built-in natural images when `images` is None
    verify_images: str | None = None  # a directory never used for calibration
    size: int = 128
    steps: int = 96
    early_step: int = 16  # target visualizations are compared here (linear objectives saturate)
    snapshots: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 96)
    bank_settings: int = 32  # random render settings the gate learns from (8 set its threshold)
    bank_steps: int = 128
    alpha: float = 0.005  # the gate threshold's quantile level (natural and renders)
    render_side: float = 2 / 3  # τ's position from the natural to the render quantile
    robustness: bool = True  # catch rates for render settings the gate never saw
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("target", "permute"):
            raise ValueError(f"mode must be 'target' or 'permute', got {self.mode!r}")
        if self.gate not in GATES:
            raise ValueError(f"gate must be one of {', '.join(GATES)}, got {self.gate!r}")
        if self.early_step not in self.snapshots or max(self.snapshots) != self.steps:
            raise ValueError(f"snapshots {self.snapshots} must contain early_step "
                             f"{self.early_step} and end at steps {self.steps}")
        if self.bank_settings < 3:
            raise ValueError(f"bank_settings must be >= 3 (a quarter set the threshold), got "
                             f"{self.bank_settings}")
        if not 0 <= self.render_side <= 1:
            raise ValueError(f"render_side must lie in [0, 1], got {self.render_side}")


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


@dataclass
class GateData:
    """Natural images split by source, as the gate uses them, and the files behind them."""

    split: GateSplit
    train: torch.Tensor  # train crops (plus small-scale crops) and one augmented copy
    threshold: torch.Tensor
    calibration_files: list[str]


def gate_data(config: FoolingConfig) -> GateData:
    """Split `n_natural` crops by source into train / threshold / held out; add small-scale
    crops of the train sources (close-ups look like textures) and 400 threshold crops."""
    natural = natural_images(config.images, config.n_natural, config.size, config.seed,
                             corpus=config.corpus)
    split = gate_split(natural, seed=config.seed)
    train_sources = sorted({source_of(s) for s in split.train.sources})
    threshold_sources = sorted({source_of(s) for s in split.threshold.sources})
    if config.images is None and config.corpus == "photos":
        from fvtrust.empirical.corpus import corpus_crops

        close = corpus_crops(len(split.train), config.size, seed=config.seed + 101,
                             sources=train_sources, scale=(0.01, 0.2)).images
        thresh = corpus_crops(max(400, len(split.threshold)), config.size, seed=config.seed + 303,
                              sources=threshold_sources).images
    else:
        close, thresh = split.train.images[:0], split.threshold.images
    files = source_files(train_sources + threshold_sources)
    base = torch.cat([split.train.images, close])
    train = torch.cat([base, augment_natural(base, seed=config.seed + 1)])
    return GateData(split, train, thresh, files)


GATE_FIELDS = ("model", "weights", "gate", "gate_layer", "n_natural", "images", "corpus", "size",
               "bank_settings", "bank_steps", "alpha", "render_side", "units", "offset", "seed")


def gate_settings(config: FoolingConfig) -> dict[str, object]:
    """What the gate depends on (not the mode or target: both modes share one gate)."""
    return {name: getattr(config, name) for name in GATE_FIELDS}


def excluded_units(config: FoolingConfig, n_out: int) -> list[int]:
    """Units the gate's render bank never draws: the experiment's units and, in either mode,
    their permutation partners (so both modes can share one gate)."""
    return sorted(set(config.units) | {(u + config.offset) % n_out for u in config.units})


BANK_FIELDS = ("model", "weights", "size", "bank_settings", "bank_steps", "units", "offset", "seed")


def build_gate(config: FoolingConfig, model: Network, data: GateData, stages: Stages) -> Gate:
    """The configured gate, trained/calibrated on the train and threshold photos only."""
    if config.gate == "nearest":
        return NearestCalibrationGate(model, config.gate_layer).calibrate(data.split.train.images)
    # The render bank depends on fewer settings than the gate: every gate kind shares it.
    bank_stages = Stages(stages.root.parent if stages.root is not None else None,
                         {name: getattr(config, name) for name in BANK_FIELDS}, stages.force)
    bank = bank_stages.run("gate_render_bank", lambda: render_bank(
        model, RenderBankConfig(settings=config.bank_settings, steps=config.bank_steps,
                                size=config.size, seed=config.seed),
        exclude_units=excluded_units(config, model.num_classes), progress=True))
    fit, held = bank.split(max(1, config.bank_settings // 4))
    if config.gate == "classifier":
        return stages.run("classifier_gate", lambda: train_classifier_gate(
            data.train, fit.images, epochs=15, seed=config.seed))
    return stages.run("feature_gate", lambda: train_feature_gate(
        model, data.train, fit.images, data.threshold, held.where(held.step >= 4).images,
        alpha=config.alpha, render_side=config.render_side, seed=config.seed))


def run_fooling(config: FoolingConfig, out_dir: str | Path | None = None,
                device: str = "cpu", force: bool = False,
                shared_dir: str | Path | None = None) -> tuple[FoolingResult, dict[str, torch.Tensor]]:
    """Run the experiment; returns the result and the images for the figure. The gate (and
    its render bank) is saved under `shared_dir` (default `out_dir`), keyed by
    :func:`gate_settings`, so runs that differ only in mode or target share it."""
    from fvtrust.empirical.data import image_folder

    stages = Stages(out_dir, config, force)
    gate_stages = Stages(shared_dir if shared_dir is not None else out_dir,
                         gate_settings(config), force)
    model = load_model(config.model, weights=config.weights, device=device)
    n_out = model.num_classes
    bad = [u for u in config.units if not 0 <= u < n_out]
    if bad:
        raise ValueError(f"units {bad} are out of range for {n_out} output units")
    verify: NaturalImages | None = None
    data = gate_data(config)
    if config.verify_images is not None:  # refuse overlap before any long computation
        check_not_calibration(image_files(config.verify_images), data.calibration_files)
        verify = image_folder(config.verify_images, size=config.size)

    shown = sorted(set(config.units) | ({(u + config.offset) % n_out for u in config.units}
                                        if config.mode == "permute" else set()))
    seeds = [config.seed + 7 * u for u in shown]

    def renders_of(net: torch.nn.Module) -> dict[str, torch.Tensor]:
        r = render(net, class_logit(shown), steps=config.steps, size=config.size,
                   seeds=seeds, snapshots=config.snapshots, progress=True)
        return {"final": r.images, **{f"step{s}": img for s, img in r.snapshots.items()}}
    originals = stages.run("original_renders", lambda: renders_of(model))
    per_unit = torch.stack([originals[f"step{s}"] for s in config.snapshots], 1)

    gate = build_gate(config, model, data, gate_stages)
    held = data.split.held_out
    gate_report = gate_accuracy(gate, held.images, per_unit.flatten(0, 1))

    target = (F.interpolate(load_target(config.target)[None], size=(config.size,) * 2,
                            mode="bilinear", antialias=True, align_corners=False)[0]
              if config.mode == "target" else None)
    decoy = (TemplateDecoy(load_target(config.target), config.units) if config.mode == "target"
             else PermutationDecoy(config.offset))
    constants: CircuitConstants = calibrate_constants(model, decoy, data.split.train.images,
                                                      extra=per_unit.flatten(0, 1))
    circuit = FoolingCircuit(model, gate, decoy, constants)

    def behaviour(images: NaturalImages, what: str) -> NaturalBehaviour:
        return natural_behaviour(circuit.original, circuit, images.images, images.sources, what,
                                 gate=gate, offset=constants.c, device=model.device)
    counts = data.split.counts()
    natural_held = behaviour(held, f"held-out sources of the {config.images or config.corpus} "
                                   f"corpus ({counts['held_out_sources']} sources the gate never saw)")
    natural_verify = (behaviour(verify, f"--verify-images {config.verify_images}")
                      if verify is not None else None)

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

    robustness: list[dict[str, object]] = []
    if config.robustness:
        from fvtrust.empirical.gate_robustness import gate_robustness

        robustness = stages.run("gate_robustness", lambda: gate_robustness(
            model, circuit, gate, config, observer))

    calibration = getattr(gate, "calibration", None)
    result = FoolingResult(
        config=asdict(config), constants=asdict(constants), split=counts,
        natural_heldout=natural_held.to_json(),
        natural_verify=None if natural_verify is None else natural_verify.to_json(),
        gate_threshold=None if calibration is None else asdict(calibration),
        gate=gate_report, gate_along_optimization=along, gate_robustness=robustness,
        similarity_manipulated=sim_m, similarity_original=sim_o,
        observer_similarity_manipulated=obs_m, observer_similarity_original=obs_o,
        paper_top1=PAPER_TOP1, paper_gate_accuracy=PAPER_GATE_ACCURACY,
        reused_stages=stages.reused + gate_stages.reused)
    figure_images = {"original": originals[key][index], "manipulated": manipulated[key][index],
                     "target": goals if target is None else target[None]}
    return result, figure_images
