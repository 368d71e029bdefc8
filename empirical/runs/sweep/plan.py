"""Every unit of many layers of many models, on Ray: ``run_sweep(plan, out)``.

A :class:`SweepPlan` names models, layers, units and measurements. It is checked whole in
the driver (an unknown model, layer or unit range fails before any task starts), split into
tasks of (model, layer, chunk of units), and the tasks run as Ray tasks: an embedded local
Ray by default, an existing cluster with ``address``. A worker keeps the networks, the
observer and the natural images it loaded for the tasks that follow (loaded once per worker
process, not once per task). Results arrive in a :class:`~empirical.runs.sweep.store.SweepStore`
(Parquet, PNGs beside it) as each task finishes; a rerun skips finished units.

Measurements per unit (each a set of columns of the unit's record):

* ``render``: the max and min feature visualization (final objective = spatial-mean act.);
* ``exemplars``: the K most and K least activating natural images (ids and activations);
* ``afc_references`` / ``afc_occlusion``: the machine observer's 2-AFC accuracy per
  reference condition (natural, synthetic, random), equal to
  ``run_afc(AFCConfig(layers=[layer], units=[unit], ...))`` for each unit on its own, and
  every observer's per-trial outcomes (:mod:`empirical.runs.sweep.afc` gathers them into the
  paired comparisons);
* ``audit``: every audit detector's score (:mod:`empirical.experiments.audit.detectors`),
  with :class:`~empirical.runs.audit.AuditPlan`'s settings.

and per model: ``sanity``, the layerwise sanity check of class visualizations
(:func:`~empirical.experiments.sanity.run_sanity`; natural images: ``images`` or the bundled photos).
"""

from __future__ import annotations

import re
from collections.abc import Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fvtrust.empirical.data.folders import SOURCES_KEY, check_sources_option, image_files, source_ids
from fvtrust.empirical.nets.layers import get_layer, layer_channels, parse_units
from fvtrust.empirical.nets.registry import LOGITS, WEIGHT_WORDS, load_model
from fvtrust.empirical.render.loop import PRECISIONS
from fvtrust.stages import RUN_ONLY, digest, result_fields, stage_key

#: The 2-AFC measurements: name → (task, the AFCConfig fields that differ from the plan's).
#: Beside each task at the plan's settings (Borowski et al.'s Min+Max-K references; Zimmermann
#: et al.'s 40 % patch), the papers' other conditions: Max-K (the K max references alone, the
#: same trials), Max-1 and Min+Max-1 (one reference per side), and 30 % and 50 % patches.
AFC_MEASUREMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "afc_references": ("references", {}),
    "afc_references_max": ("references", {"reference_sides": "max"}),
    "afc_references_max1": ("references", {"reference_sides": "max", "n_references": 1}),
    "afc_references_minmax1": ("references", {"n_references": 1}),
    "afc_occlusion": ("occlusion", {}),
    "afc_occlusion_patch30": ("occlusion", {"patch": 0.3}),
    "afc_occlusion_patch50": ("occlusion", {"patch": 0.5}),
}
MEASUREMENTS = ("render", "exemplars", *AFC_MEASUREMENTS, "audit", "sanity")


def afc_measurement(key: str) -> tuple[str, dict[str, Any]]:
    """(task, AFCConfig fields) of 2-AFC measurement ``afc_<key>``, or a one-line error."""
    if f"afc_{key}" not in AFC_MEASUREMENTS:
        raise ValueError(f"unknown 2-AFC measurement {key!r}; known: "
                         f"{', '.join(m.removeprefix('afc_') for m in AFC_MEASUREMENTS)}")
    return AFC_MEASUREMENTS[f"afc_{key}"]


#: the order units are handed out in: by index, or at random within each layer (seeded), so
#: that the units finished at any moment of a long run are a random sample of every layer
ORDERS = ("sorted", "random")
#: measurements of a whole model (one record per model, in models.parquet), not of a unit.
MODEL_MEASUREMENTS = ("sanity",)


@dataclass(frozen=True)
class ModelRef:
    """A network spec (a registered name, ``torchvision:<arch>``, a user factory), with its
    weights: a local file, ``random`` or ``imagenet``."""

    name: str
    weights: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """``"resnet50"``, ``"resnet50=/path/to/weights.pt"``, ``"torchvision:vit_b_16=random"``."""
        name, _, weights = text.partition("=")
        return cls(name.strip(), weights.strip() or None)

    def __str__(self) -> str:
        return self.name if self.weights is None else f"{self.name}={self.weights}"

    @property
    def tag(self) -> str:
        """The model's name as one safe path component: a factory spec
        (``path/to/net.py:make``, ``torchvision:vit_b_16``) is slugged and given its digest."""
        if re.fullmatch(r"[A-Za-z0-9_.-]+", self.name) and self.name not in (".", ".."):
            return self.name
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name).strip("._")[-40:]
        return f"{slug}-{digest(self.name)}"

    @property
    def folder(self) -> str:
        """The network's folder name in a store: its tag, plus the weights' digest where it
        has weights of its own (the same network with other weights gets its own folder)."""
        return self.tag if self.weights is None else f"{self.tag}-{digest(self.weights)}"

    @property
    def weights_file(self) -> str | None:
        """The weights as a file, if they are one (not ``random`` or ``imagenet``)."""
        return None if self.weights is None or self.weights in WEIGHT_WORDS else self.weights


@dataclass
class SweepPlan:
    """What to measure where. ``units`` applies to every layer (``"all"`` or ranges). The
    scope (models, layers, units) and the task size (chunk) may change between runs of one
    store (``RUN_ONLY``); every other field is the store's identity."""

    models: list[str] = field(default_factory=lambda: ["efficientnet_lite0"], metadata=RUN_ONLY)
    layers: list[str] = field(default_factory=lambda: ["_blocks.10"], metadata=RUN_ONLY)
    units: str | list[int] = field(default="all", metadata=RUN_ONLY)
    measure: list[str] = field(default_factory=lambda: ["render", "exemplars"])
    steps: int = 128
    size: int = 128
    seed: int = 0
    chunk: int = field(default=8, metadata=RUN_ONLY)
    order: str = field(default="sorted", metadata=RUN_ONLY)
    limit: int | None = field(default=None, metadata=RUN_ONLY)  # at most this many units per layer
    n_references: int = 9  # K: natural exemplars (and 2-AFC references) per side
    n_natural: int = 240  # natural images the exemplars and the 2-AFC trials are drawn from
    images: str | None = None
    sources: str = field(default="auto", metadata=SOURCES_KEY)  # how --images files group into sources
    n_trials: int = 20  # 2-AFC trials per unit
    precision: str = "float32"
    # where the 2-AFC measurements keep each unit's synthetic references (keyed by their own
    # settings), so that another sweep of the same units loads them; None: kept in memory only
    renders: str | None = field(default=None, metadata=RUN_ONLY)

    def __post_init__(self) -> None:
        if not self.models or not self.layers:
            raise ValueError(f"a plan needs models and layers, got models={self.models!r}, "
                             f"layers={self.layers!r}")
        bad = [m for m in self.measure if m not in MEASUREMENTS]
        if bad or not self.measure:
            raise ValueError(f"unknown measurement(s) {bad or self.measure!r}; known: "
                             f"{', '.join(MEASUREMENTS)}")
        for name in ("steps", "size", "chunk", "n_references", "n_natural", "n_trials"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or isinstance(self.limit, bool)
                                       or self.limit < 1):
            raise ValueError(f"limit (units per layer) must be a positive integer, got {self.limit!r}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.size < 16:
            raise ValueError(f"size must be >= 16 px, got size={self.size}")
        if self.measures_afc and 2 * self.n_references + 2 * self.n_trials > self.n_natural:
            raise ValueError(f"n_natural={self.n_natural} natural images cannot hold K = "
                             f"{self.n_references} references per side and {self.n_trials} trials "
                             f"(need >= {2 * self.n_references + 2 * self.n_trials})")
        if 2 * self.n_references > self.n_natural:
            raise ValueError(f"n_natural={self.n_natural} natural images cannot give "
                             f"n_references={self.n_references} exemplars per side")
        parse_units(self.units)
        check_sources_option(self.images, self.sources)

    @property
    def measures_afc(self) -> bool:
        """Whether the plan has a 2-AFC measurement (they need trials and references)."""
        return any(m in AFC_MEASUREMENTS for m in self.measure)

    @property
    def model_refs(self) -> list[ModelRef]:
        return [ModelRef.parse(m) for m in self.models]

    def settings(self) -> dict[str, Any]:
        """What every unit's numbers depend on (the store's identity): the result fields."""
        return result_fields(self)

    def settings_hash(self) -> str:
        return stage_key(self)

    def model_config_hash(self, model: ModelRef) -> str:
        return self.unit_config_hash(model, "")

    def unit_config_hash(self, model: ModelRef, layer: str) -> str:
        weights = model.weights  # None, "random" or "imagenet": the word is the identity
        if model.weights_file is not None:
            from fvtrust.empirical.data.folders import file_digest

            weights = file_digest(model.weights_file)
        # model=…: stage_key also digests a factory file the spec names (an edit is another model)
        return stage_key(self, model=model.name, weights_sha256=weights, layer=layer)


@dataclass(frozen=True)
class SweepTask:
    """One Ray task: some units of one layer of one model."""

    model: ModelRef
    layer: str
    units: tuple[int, ...]

    @property
    def key(self) -> str:
        label = f"{self.model}|{self.layer}|{','.join(map(str, self.units))}"
        layer = re.sub(r"[^A-Za-z0-9_.@#-]+", "_", self.layer)
        return f"{self.model.tag}-{layer}-{self.units[0]:05d}-{digest(label)}"


@dataclass
class SweepSummary:
    """What a run did, with counts."""

    out: str
    n_units: int
    n_skipped: int
    n_computed: int
    n_failed: int
    n_tasks: int
    seconds: float
    units_per_second: float
    workers: int
    address: str | None
    failures: dict[str, str]
    n_merged: int = 0  # of n_skipped: brought in from other stores (--merge)
    merge_left_out: dict[str, int] = field(default_factory=dict)  # reason → units not merged


def check_plan(plan: SweepPlan) -> dict[tuple[ModelRef, str], list[int]]:
    """(model, layer) → its units in the plan's order (the first ``limit`` of them), with every
    model, layer and unit checked in the driver."""
    units = parse_units(plan.units)
    if plan.images is not None:
        # a missing or empty folder, or a --sources REGEX that misses a file: before any task
        source_ids(image_files(plan.images, option="--images"), plan.images, plan.sources)
    out: dict[tuple[ModelRef, str], list[int]] = {}
    for ref in plan.model_refs:
        if ref.weights_file is not None and not Path(ref.weights_file).is_file():
            raise ValueError(f"weights file {ref.weights!r} of model {ref.name!r} does not exist")
        model = load_model(ref.name, weights=ref.weights, device="cpu")
        for layer in plan.layers:
            if layer != LOGITS:
                get_layer(model, layer)  # an unknown layer fails here, naming close matches
            n = layer_channels(model, [layer])[layer][0]
            chosen = list(range(n)) if units is None else units
            bad = [u for u in chosen if u >= n]
            if bad:
                raise ValueError(f"--units {bad[:5]}{' …' if len(bad) > 5 else ''} out of range for "
                                 f"layer {layer!r} of {ref.name} with {n} units")
            out[(ref, layer)] = unit_order(chosen, ref, layer, plan.order, plan.seed)[:plan.limit]
    return out


def store_key(ref: ModelRef, layer: str = "", unit: int = -1) -> tuple[str, str, str, int]:
    """How the store names a unit (a model's own record: layer "" and unit -1)."""
    return (ref.name, ref.weights or "", layer, unit)


def unit_order(units: list[int], ref: ModelRef, layer: str, order: str = "sorted",
               seed: int = 0) -> list[int]:
    """`units` in the order a plan hands them out: as given, or (``"random"``) shuffled by a
    permutation fixed by `seed` and the (model, layer), the same in every run of a store, so
    that a resumed or extended run (a larger ``limit``) continues the same sample."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    if order == "sorted":
        return list(units)
    rng = np.random.default_rng([seed, int(digest(f"{ref}|{layer}")[:8], 16)])
    return [units[i] for i in rng.permutation(len(units))]


def split_tasks(targets: dict[tuple[ModelRef, str], list[int]], chunk: int,
                skip: Set[tuple[str, str, str, int]] | None = None) -> list[SweepTask]:
    """Tasks of at most `chunk` units each, in each target's order, leaving out the units in
    `skip`, taking the (model, layer) targets in turn (round robin), so that a run stopped
    early has finished about as many units of every layer."""
    skip = skip or set()
    queues = []
    for (ref, layer), units in targets.items():
        todo = [u for u in units if store_key(ref, layer, u) not in skip]
        queues.append([SweepTask(ref, layer, tuple(todo[i:i + chunk])) for i in range(0, len(todo), chunk)])
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


# ---------------------------------------------------------------------------- worker side


# ---------------------------------------------------------------------------- driver side









