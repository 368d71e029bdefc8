"""The image gate E(x) an experiment uses, from one :class:`GateConfig`: which detector, which
natural photos (split by source into train / threshold / held out), which render bank.

The fooling and the silent experiments both build their gate here (``config.gate_config()``),
so they share one trained gate whenever their gate settings agree: the stage key is derived
from :class:`GateConfig`'s own fields, never from a list kept by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fvtrust.empirical.circuits.gate_bank import FAMILIES, RenderBank, RenderBankConfig, render_bank
from fvtrust.empirical.circuits.gates import (
    Gate,
    NearestCalibrationGate,
    train_classifier_gate,
    train_feature_gate,
)
from fvtrust.empirical.data.corpus import corpus_crops, source_files
from fvtrust.empirical.data.folders import SOURCES_KEY, check_sources_option, user_file
from fvtrust.empirical.data.natural import natural_images
from fvtrust.empirical.data.shifts import augment_natural
from fvtrust.empirical.data.splits import GateSplit, gate_split, source_of
from fvtrust.empirical.nets.registry import Network
from fvtrust.stages import Stages

#: The logit units the render bank never draws by default: the fooling experiment's units
#: (285, 417, 980) and their permutation partners (+100), so that the fooling circuit is tested
#: on units the gate never saw, in both modes, and the silent experiment can share its gate.
DEFAULT_HELD_OUT_UNITS = (80, 285, 385, 417, 517, 980)


@dataclass
class GateConfig:
    """Everything the trained gate depends on (quick scale by default)."""

    kind: str = "features"  # a name in GATES
    model: str = "efficientnet_lite0"
    weights: str | None = None
    layer: str = "_blocks.5"  # the nearest-calibration gate's layer
    n_natural: int = 1000  # crops drawn to split by source (train / threshold / held out)
    images: str | None = None  # an ImageFolder/ImageNet directory instead of the photo corpus
    sources: str = field(default="auto", metadata=SOURCES_KEY)  # how --images files group into sources
    corpus: str = "photos"
    size: int = 128
    bank_settings: int = 32  # random render settings the gate learns from (a quarter set τ)
    bank_steps: int = 128
    alpha: float = 0.005  # the gate threshold's quantile level (natural and renders)
    render_side: float = 2 / 3  # τ's position from the natural to the render quantile
    held_out_units: tuple[int, ...] = field(default=DEFAULT_HELD_OUT_UNITS)
    seed: int = 0
    # the render family the bank draws from (gate_bank.FAMILIES); classic keeps 0.2's keys
    family: str = field(default="classic", metadata={"omit_from_key": lambda c: c.family == "classic"})

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"render family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        if self.kind not in GATES:
            raise ValueError(f"gate must be one of {', '.join(GATES)}, got {self.kind!r}")
        if self.bank_settings < 3:
            raise ValueError(f"bank_settings must be >= 3 (a quarter set the threshold), got "
                             f"{self.bank_settings}")
        if not 0 <= self.render_side <= 1:
            raise ValueError(f"render_side must lie in [0, 1], got {self.render_side}")
        self.held_out_units = tuple(sorted(set(self.held_out_units)))
        check_sources_option(self.images, self.sources)

    def bank(self) -> GateBank:
        """What the render bank depends on: fewer settings than the gate, so every gate kind
        shares one bank."""
        return GateBank(self.model, self.weights, self.held_out_units, RenderBankConfig(
            settings=self.bank_settings, steps=self.bank_steps, size=self.size, seed=self.seed,
            family=self.family))


@dataclass(frozen=True)
class GateBank:
    """The render bank's identity: network, units it must not draw, and its settings."""

    model: str
    weights: str | None
    held_out_units: tuple[int, ...]
    settings: RenderBankConfig


@dataclass
class CalibrationPhotos:
    """Natural images split by source, as the gate uses them, and the files behind them."""

    split: GateSplit
    train: torch.Tensor  # train crops (plus small-scale crops) and one augmented copy
    threshold: torch.Tensor
    calibration_files: list[str]


def calibration_photos(config: GateConfig) -> CalibrationPhotos:
    """Split `n_natural` crops by source into train / threshold / held out; add small-scale
    crops of the train sources (close-ups look like textures) and 400 threshold crops."""
    natural = natural_images(config.images, config.n_natural, config.size, config.seed,
                             corpus=config.corpus, sources=config.sources)
    split = gate_split(natural, seed=config.seed)
    train_sources = sorted({source_of(s) for s in split.train.sources})
    threshold_sources = sorted({source_of(s) for s in split.threshold.sources})
    if config.images is None and config.corpus == "photos":
        close = corpus_crops(len(split.train), config.size, seed=config.seed + 101,
                             sources=train_sources, scale=(0.01, 0.2)).images
        thresh = corpus_crops(max(400, len(split.threshold)), config.size, seed=config.seed + 303,
                              sources=threshold_sources).images
    else:
        close, thresh = split.train.images[:0], split.threshold.images
    files = source_files(train_sources + threshold_sources)
    # a user's files grouped by --sources have source ids that are not paths
    files += sorted({f for s in split.train.sources + split.threshold.sources
                     if (f := user_file(s)) is not None} - set(files))
    base = torch.cat([split.train.images, close])
    train = torch.cat([base, augment_natural(base, seed=config.seed + 1)])
    return CalibrationPhotos(split, train, thresh, files)


def _train_features(config: GateConfig, model: Network, photos: CalibrationPhotos,
                    bank: Callable[[], RenderBank]) -> Gate:
    """A learned boundary on feature statistics, its threshold between photos of the threshold
    sources and renders of settings the MLPs never saw (see circuits.gates.FeatureGate)."""
    fit, held = bank().split(max(1, config.bank_settings // 4))
    return train_feature_gate(model, photos.train, fit.images, photos.threshold,
                              held.where(held.step >= 4).images, alpha=config.alpha,
                              render_side=config.render_side, seed=config.seed)


def _train_classifier(config: GateConfig, model: Network, photos: CalibrationPhotos,
                      bank: Callable[[], RenderBank]) -> Gate:
    """The paper's small CNN on pixels, trained on the same photos and renders."""
    fit, _ = bank().split(max(1, config.bank_settings // 4))
    return train_classifier_gate(photos.train, fit.images, epochs=15, seed=config.seed)


def _calibrate_nearest(config: GateConfig, model: Network, photos: CalibrationPhotos,
                       bank: Callable[[], RenderBank]) -> Gate:
    """Distance to the calibration photos at one layer (closed-world: flags unseen photos)."""
    return NearestCalibrationGate(model, config.layer).calibrate(photos.split.train.images)


@dataclass(frozen=True)
class GateKind:
    """A registered gate: how it is trained (one call shape for every kind) and the name of
    its saved stage (None: cheap enough to recompute, not saved)."""

    train: Callable[[GateConfig, Network, CalibrationPhotos, Callable[[], RenderBank]], Gate]
    stage: str | None


#: The gates an experiment can use (``--gate``): name → how it is trained.
GATES: dict[str, GateKind] = {
    "features": GateKind(_train_features, "feature_gate"),
    "classifier": GateKind(_train_classifier, "classifier_gate"),
    "nearest": GateKind(_calibrate_nearest, None),
}


def build_gate(config: GateConfig, model: Network, photos: CalibrationPhotos,
               root: str | Path | None = None, force: bool = False,
               reused: list[str] | None = None) -> Gate:
    """The configured gate, trained/calibrated on the train and threshold photos only; its
    render bank and weights are saved under `root` (``None``: not saved), keyed by
    :class:`GateConfig` and :class:`GateBank`. Names of reused stages go to `reused`."""
    kind = GATES[config.kind]
    bank_stages, gate_stages = Stages(root, config.bank(), force), Stages(root, config, force)

    def bank() -> RenderBank:
        # One saved stage per render setting: Ctrl-C loses at most the setting in progress.
        return render_bank(model, config.bank().settings, exclude_units=list(config.held_out_units),
                           progress=True, checkpoint=bank_stages.run)

    def train() -> Gate:
        return kind.train(config, model, photos, bank)
    gate = train() if kind.stage is None else gate_stages.run(kind.stage, train)
    if reused is not None:
        reused += bank_stages.reused + gate_stages.reused
    return gate
