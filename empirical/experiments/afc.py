"""Machine-observer 2-AFC psychophysics, after Borowski et al. (references task) and
Zimmermann et al. 2021 (occlusion task), with reproducible observers in place of a human.

* **references task**: given K max and K min references of a unit, which of two queries
  activates it more? Queries come from the top and bottom ``quantile`` of held-out images
  (``query_selection="quantile"``) or as in MIS: the least activating of K+1 images drawn
  from the top quantile, and the most activating of K+1 from the bottom (``"mis"``).
* **occlusion task** (the paper's procedure): the query is one of the unit's most
  activating held-out images; a square patch (``patch`` of the side) slides over every
  position at ``stride`` px, filled with its own mean colour; the two options are the
  occlusions after which the activation is highest and lowest; the correct answer is the one
  that changed it more (lowest). Trial t of a unit uses its t-th most activating image.

**Paired comparisons** lead: every pair of cells the papers compare (natural − synthetic
references; references − none, ``random`` standing for none; each observer with references −
each reference-free prior; observer − observer) is scored on the same units and trials, so its
interval is the hierarchical bootstrap of the per-trial differences, with the units it would
need for ±3 pp (:class:`~empirical.observers.statistics.VarianceComponents`).

Reference conditions: ``natural`` (the K most / least activating reference images),
``synthetic`` (K max / K min feature visualizations, different seeds) and ``random``
(2K random reference images, drawn anew for every trial: uninformative references).
References and queries come from **source-disjoint** halves of the natural images (no photo
or file contributes to both). Observers: see :mod:`empirical.observers.rules`. Every interval
is a hierarchical bootstrap over units, then trials (:mod:`empirical.observers.statistics`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from fvtrust.empirical.data.crops import NaturalImages
from fvtrust.empirical.data.folders import SOURCES_KEY, check_sources_option, file_digest
from fvtrust.empirical.data.natural import natural_images
from fvtrust.empirical.data.splits import source_of, split_by_source, warn_near_duplicates
from fvtrust.empirical.nets.fuse import fuse_for_rendering
from fvtrust.empirical.nets.layers import layer_channels, layer_responses, relative_depths, spatial_mean
from fvtrust.empirical.nets.registry import WEIGHT_WORDS, Network, load_model
from fvtrust.empirical.observers import human_data
from fvtrust.empirical.observers.embedding import Observer
from fvtrust.empirical.observers.occlusion import OcclusionGrid, extreme_occlusions, occlusion_responses
from fvtrust.empirical.observers.rules import (
    REFERENCE_FREE,
    OcclusionPair,
    QueryPair,
    ReferenceSet,
    check_observers,
    observers_for,
)
from fvtrust.empirical.observers.statistics import ClusteredEstimate, VarianceComponents, paired_differences
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import channel
from fvtrust.stages import Stages, stage_key

CONDITIONS = ("natural", "synthetic", "random")
#: observer → condition → "layer:unit" → (correct per trial, P(correct) per trial)
Records = dict[str, dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]]
TASKS = ("references", "occlusion")
#: which references an observer sees: K max and K min (Min+Max-K) or the K max alone (Max-K)
REFERENCE_SIDES = ("min+max", "max")
#: how the references task picks its two queries (see the module docstring)
QUERY_SELECTIONS = ("quantile", "mis")


def ordered_options(right: torch.Tensor, wrong: torch.Tensor,
                    flip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(option 1, option 2) per trial: the right answer first unless flipped."""
    f = flip.reshape(-1, *([1] * (right.ndim - 1)))
    return torch.where(f, wrong, right), torch.where(f, right, wrong)


def answer_signs(flip: torch.Tensor) -> torch.Tensor:
    """+1 where option 1 is the right answer (not flipped), −1 where option 2 is."""
    return torch.where(flip, -1.0, 1.0).double()


def score(evidence: torch.Tensor, sign: torch.Tensor, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(correct ∈ {0, ½, 1}, σ(α·Δ·sign)) per trial; sign = +1 where option 1 is right."""
    signed = evidence.double() * sign.double()
    correct = torch.where(signed == 0, 0.5, (signed > 0).double())
    return correct.numpy(), torch.sigmoid(alpha * signed).numpy()


@dataclass
class AFCConfig:
    """Quick scale by default (CPU, < 10 min per task on 2 cores); K = 9 references per side
    and N = 20 trials per unit as in MIS."""

    model: str = "efficientnet_lite0"
    weights: str | None = None
    observer: str = "efficientnet_lite1"
    task: str = "references"
    layers: list[str] = field(default_factory=lambda: ["_blocks.2", "_blocks.6", "_blocks.10", "_blocks.14"])
    units: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    observers: list[str] | None = None  # None: every observer of the task
    n_references: int = 9  # K: references per side (K max and K min)
    # Borowski et al.'s Min+Max-K ("min+max") or Max-K ("max": the K max references alone);
    # left out of the key at its default, so runs saved before it existed keep theirs
    reference_sides: str = field(default="min+max",
                                 metadata={"omit_from_key": lambda c: c.reference_sides == "min+max"})
    n_trials: int = 20
    n_natural: int = 240  # natural images drawn, split by source into references and queries
    images: str | None = None
    sources: str = field(default="auto", metadata=SOURCES_KEY)  # how --images files group into sources
    reference_fraction: float = 0.5
    query_selection: str = "quantile"
    quantile: float = 0.2
    size: int = 128
    steps: int = 96
    patch: float = 0.4
    stride: int = 8
    alpha: float = 20.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be 'references' or 'occlusion', got {self.task!r}")
        if self.n_references < 1 or self.n_trials < 1:
            raise ValueError(f"n_references and n_trials must be >= 1, got "
                             f"n_references={self.n_references}, n_trials={self.n_trials}")
        if self.query_selection not in QUERY_SELECTIONS:
            raise ValueError(f"query_selection must be one of {', '.join(QUERY_SELECTIONS)}, got "
                             f"{self.query_selection!r}")
        if not (self.alpha > 0 and np.isfinite(self.alpha)):
            raise ValueError(f"--alpha (the slope of P(correct) = sigmoid(alpha * evidence)) must be "
                             f"> 0, got {self.alpha}")
        if self.observer == self.model:
            raise ValueError(f"--observer-model {self.observer!r} is the explained network itself; "
                             f"the observer must see images through a different network")
        if not 0 < self.quantile <= 0.5:
            raise ValueError(f"quantile must lie in (0, 0.5], got {self.quantile}")
        if not self.layers or not self.units:
            raise ValueError(f"need at least one layer and one unit, got layers={self.layers}, "
                             f"units={self.units}")
        if len(set(self.units)) != len(self.units):
            raise ValueError(f"units must be distinct, got {self.units}")
        if self.size < 16 or self.steps < 1:
            raise ValueError(f"size must be >= 16 px and steps >= 1, got size={self.size}, "
                             f"steps={self.steps}")
        OcclusionGrid.from_fraction(self.size, self.patch, self.stride)
        check_observers(self.task, self.chosen_observers)
        check_sources_option(self.images, self.sources)
        if self.reference_sides not in REFERENCE_SIDES:
            raise ValueError(f"reference_sides must be one of {', '.join(REFERENCE_SIDES)}, got "
                             f"{self.reference_sides!r}")
        if 2 * self.n_references + 2 * self.n_trials > self.n_natural:
            raise ValueError(f"K = {self.n_references} references per side and N = {self.n_trials} "
                             f"trials need at least {2 * self.n_references + 2 * self.n_trials} "
                             f"natural images, n_natural is {self.n_natural}")

    @property
    def chosen_observers(self) -> list[str]:
        return list(self.observers) if self.observers is not None else list(observers_for(self.task))

    def synthetic_references(self, layer: str) -> SyntheticReferences:
        """What the synthetic references of `layer` depend on (the stage both tasks share)."""
        return SyntheticReferences(self.model, self.weights, layer, list(self.units),
                                   self.n_references, self.steps, self.size, self.seed,
                                   weights_sha256=_weights_digest(self.weights))


@lru_cache(maxsize=8)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    return file_digest(path)  # size and mtime: an edited file is digested again


def _weights_digest(weights: str | None) -> str | None:
    """The SHA-256 of a weights file (None for no file: the default, ``random``, ``imagenet``),
    so that renders kept in a shared folder are never another file's under the same path."""
    path = Path(weights).expanduser() if weights is not None and weights not in WEIGHT_WORDS else None
    if path is None or not path.is_file():
        return None
    stat = path.stat()
    return _file_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@dataclass
class SyntheticReferences:
    """The K max and K min feature visualizations of each unit of one layer: its fields are
    the stage key, so both tasks (and every run with these settings) render them once."""

    model: str
    weights: str | None
    layer: str
    units: list[int]
    n_references: int
    steps: int
    size: int
    seed: int
    # a weights file's bytes (a path names no network); left out of the key without one
    weights_sha256: str | None = field(default=None,
                                       metadata={"omit_from_key": lambda c: c.weights_sha256 is None})


@dataclass
class AFCResult:
    """Accuracy per observer and reference condition: overall, per layer and per unit, each
    with a unit-clustered 95 % interval and its counts; human data beside it."""

    config: dict[str, object]
    observers: list[str]
    conditions: list[str]
    overall: dict[str, dict[str, dict[str, object]]]  # observer → condition → estimate
    per_layer: dict[str, dict[str, dict[str, dict[str, object]]]]  # observer → condition → layer → est.
    per_unit: dict[str, dict[str, dict[str, float]]]  # observer → condition → "layer:unit" → accuracy
    layer_depth: dict[str, float | None]
    split: dict[str, object]
    occlusion: dict[str, object] | None
    human: dict[str, object]
    reused_stages: list[str]
    paired: list[dict[str, object]] = field(default_factory=list)  # see paired_comparisons
    #: observer → condition → "layer:unit" → {"correct": per trial, "p": per trial}: every
    #: number above is computed from these (:func:`summarize_trials` recomputes them)
    trials: dict[str, dict[str, dict[str, dict[str, list[float]]]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _estimate(values: list[np.ndarray], p: list[np.ndarray] | None, seed: int) -> dict[str, object]:
    est = ClusteredEstimate.of(values, seed=seed)
    out: dict[str, object] = {"mean": est.mean, "ci": list(est.ci), "n_units": est.n_units,
                              "n_trials": est.n_trials}
    out["p_correct"] = None if p is None else float(np.mean([x.mean() for x in p]))
    return out


#: the interval half-width a comparison is planned for (the power analysis of issue #22)
TARGET_HALF_WIDTH = 0.03


@dataclass(frozen=True)
class Comparison:
    """Cell a − cell b, each cell an (observer, reference condition), on the same trials."""

    kind: str
    a: tuple[str, str]
    b: tuple[str, str]

    @property
    def label(self) -> str:
        return f"{'/'.join(self.a)} − {'/'.join(self.b)}"


def paired_comparisons(observers: list[str]) -> list[Comparison]:
    """The comparisons the papers make, among the run's observers, by kind: natural −
    synthetic references (Borowski et al.); references − none (Zimmermann et al. 2021;
    ``random`` stands for none); observer with references − reference-free prior (a prior
    answers the same in every condition: its ``natural`` cell stands for it); observer −
    observer."""
    looking = [o for o in observers if o not in REFERENCE_FREE]
    priors = [o for o in observers if o in REFERENCE_FREE]
    out = [Comparison("natural − synthetic", (o, "natural"), (o, "synthetic")) for o in looking]
    out += [Comparison("references − none", (o, c), (o, "random"))
            for o in looking for c in ("synthetic", "natural")]
    out += [Comparison("observer − prior", (o, c), (p, "natural"))
            for p in priors for o in looking for c in ("natural", "synthetic")]
    out += [Comparison("observer − observer", (o, c), (q, c)) for c in ("natural", "synthetic")
            for i, o in enumerate(looking) for q in looking[i + 1:]]
    return out


def _paired(records: Records, comparison: Comparison, layers: list[str], seed: int) -> dict[str, object]:
    """The difference of two cells on the same units and trials, overall and per layer, with
    its hierarchical-bootstrap interval and the units it needs for ±3 pp at this many trials."""
    a, b = records[comparison.a[0]][comparison.a[1]], records[comparison.b[0]][comparison.b[1]]
    keys = list(a)
    diffs = dict(zip(keys, paired_differences([a[k][0] for k in keys], [b[k][0] for k in keys]),
                     strict=True))
    est = ClusteredEstimate.of(list(diffs.values()), seed=seed)
    try:
        parts = VarianceComponents.of(list(diffs.values()))
        power: dict[str, object] | None = {
            "sigma2_between_units": parts.between, "sigma2_within_unit": parts.within,
            "trials_per_unit": parts.trials, "target_half_width": TARGET_HALF_WIDTH,
            "units_needed": parts.units_needed(TARGET_HALF_WIDTH),
            "units_needed_at_50_trials": parts.units_needed(TARGET_HALF_WIDTH, trials=50)}
    except ValueError:  # one unit or one trial: no variance components
        power = None
    per_layer = {}
    for layer in layers:
        mine = [diffs[k] for k in keys if k.rsplit(":", 1)[0] == layer]
        if mine:
            e = ClusteredEstimate.of(mine, seed=seed)
            per_layer[layer] = {"mean": e.mean, "ci": list(e.ci), "n_units": e.n_units}
    return {"kind": comparison.kind, "label": comparison.label, "a": list(comparison.a),
            "b": list(comparison.b), "mean": est.mean, "ci": list(est.ci), "n_units": est.n_units,
            "n_trials": est.n_trials, "decided": not est.covers(0.0),
            "half_width": (est.ci[1] - est.ci[0]) / 2, "power": power, "per_layer": per_layer}


def afc_observer(config: AFCConfig, device: str | torch.device = "cpu") -> Observer:
    """The observer network a run of `config` uses."""
    return Observer(config.observer, size=max(config.size, 96), device=device)


def afc_scorer(model: Network, layers: list[str]) -> Network:
    """The network the trials are scored with: BatchNorm folded, channels-last, exact at
    `layers` (about 2x on CPU, checked equivalent; benchmarks/bench_occlusion.py)."""
    return fuse_for_rendering(model, keep=layers)


def pool_responses(model: Network, layer: str, pool: NaturalImages) -> torch.Tensor:
    """(N, C) responses of the pool at `layer`, computed as :func:`run_afc` computes them (on
    the BatchNorm-folded copy it scores with)."""
    return layer_responses(afc_scorer(model, [layer]), layer, pool.images)


def afc_pool(config: AFCConfig) -> NaturalImages:
    """The natural images (references and queries) a run of `config` draws from."""
    return natural_images(config.images, config.n_natural, config.size, seed=config.seed + 17,
                          sources=config.sources)


def split_summary(pool: NaturalImages, ref_idx: np.ndarray, query_idx: np.ndarray) -> dict[str, object]:
    """The reference / query split of a run, by source, with its counts."""
    return {"rule": "source-disjoint: references and queries come from different photos/files",
            "reference_sources": sorted({source_of(pool.sources[i]) for i in ref_idx}),
            "query_sources": sorted({source_of(pool.sources[i]) for i in query_idx}),
            "n_reference_images": len(ref_idx), "n_query_images": len(query_idx)}


def afc_split(config: AFCConfig, pool: NaturalImages | None = None) -> dict[str, object]:
    """The split every run of `config`'s pool settings uses (one per pool, whatever the
    units: a sweep's units share it)."""
    pool = pool if pool is not None else afc_pool(config)
    return split_summary(pool, *_split(pool, config))


def _split(pool: NaturalImages, config: AFCConfig) -> tuple[np.ndarray, np.ndarray]:
    ref_idx, query_idx = split_by_source(pool.sources, config.reference_fraction, seed=config.seed)
    warn_near_duplicates(pool, ref_idx, query_idx, "references / queries")
    # references: a top and a bottom quantile of queries; occlusion: N distinct query images.
    need_ref = 2 * config.n_references
    need_query = 2 if config.task == "references" else config.n_trials
    if len(ref_idx) < need_ref or len(query_idx) < need_query:
        raise ValueError(f"the source-disjoint split of {len(pool)} images has {len(ref_idx)} "
                         f"reference and {len(query_idx)} query images; K = {config.n_references} needs "
                         f">= {need_ref} references and the {config.task} task >= {need_query} "
                         f"queries (raise --natural or lower --references/--trials)")
    return ref_idx, query_idx


def run_afc(config: AFCConfig, out_dir: str | Path | None = None, device: str = "cpu",
            force: bool = False, shared_dir: str | Path | None = None,
            progress: bool = True, model: Network | None = None, observer: Observer | None = None,
            pool: NaturalImages | None = None,
            responses: dict[str, torch.Tensor] | None = None,
            views: tuple[torch.Tensor, torch.Tensor] | None = None,
            scorer: Network | None = None,
            renders: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> AFCResult:
    """Every observer in every reference condition for every unit of every layer.

    `shared_dir` holds the synthetic references so the two tasks render them once
    (default: `out_dir`). `model`, `observer` and `pool` may be passed in already built (a
    sweep worker keeps them across tasks); by default they are built from `config`. What a
    caller already has saves the same work again (a sweep worker keeps each across units):
    `responses` (layer → :func:`pool_responses`), `views` (``observer.views(pool.images)``),
    `scorer` (:func:`afc_scorer`) and `renders` (synthetic references by their stage key,
    in memory: both tasks of a unit render them once without a folder)."""
    stages = Stages(out_dir, config, force)
    if model is None:
        model = load_model(config.model, weights=config.weights, device=device)
    shapes = layer_channels(model, config.layers)
    for layer in config.layers:
        bad = [u for u in config.units if not 0 <= u < shapes[layer][0]]
        if bad:
            raise ValueError(f"units {bad} are out of range for layer {layer!r} with "
                             f"{shapes[layer][0]} units")
    try:
        depth: dict[str, float | None] = dict(relative_depths(model, config.layers))
    except ValueError:
        depth = dict.fromkeys(config.layers)
    trials = _Trials(config, model, observer if observer is not None else afc_observer(config, device),
                     pool if pool is not None else afc_pool(config), responses or {},
                     shared_dir if shared_dir is not None else out_dir, force, progress,
                     views=views, scorer=scorer, renders=renders)
    names = config.chosen_observers
    records: Records = {o: {c: {} for c in CONDITIONS} for o in names}
    scoring = {"images": 0, "seconds": 0.0}
    for li, layer in enumerate(config.layers):
        layer_records, cost = stages.run(f"trials-{layer}",
                                         lambda li=li, layer=layer: trials.layer(li, layer))
        if f"trials-{layer}" in stages.reused:
            trials.bar.update(len(config.units))
        for name in names:
            for cond in CONDITIONS:
                records[name][cond].update(layer_records[name][cond])
        scoring["images"] += cost["images"]
        scoring["seconds"] += cost["seconds"]
    trials.bar.close()
    result = _summarize(config, records, depth)
    result.split = split_summary(trials.pool, trials.ref_idx, trials.query_idx)
    if config.task == "occlusion":
        grid = trials.grid
        result.occlusion = {"patch_px": grid.patch, "stride_px": grid.stride, "positions": len(grid),
                            "n_query_images_scored": scoring["images"] // max(1, len(grid)),
                            "n_occluded_images_scored": scoring["images"],
                            "seconds_scoring": scoring["seconds"],
                            "occluded_images_per_second": scoring["images"] / max(scoring["seconds"], 1e-9)}
    result.reused_stages = stages.reused + trials.reused_shared
    return result


class _Trials:
    """The trials of one run, a layer at a time: the pool's split and views, the scoring
    network (BatchNorm folded, channels-last: about 2x on CPU, checked equivalent;
    benchmarks/bench_occlusion.py), the occlusion grid and the synthetic references."""

    def __init__(self, config: AFCConfig, model: Network, observer: Observer, pool: NaturalImages,
                 responses: dict[str, torch.Tensor], shared: str | Path | None, force: bool,
                 progress: bool, views: tuple[torch.Tensor, torch.Tensor] | None = None,
                 scorer: Network | None = None,
                 renders: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
        from tqdm import tqdm

        self.config, self.model, self.observer, self.pool = config, model, observer, pool
        self.responses, self.shared, self.force, self.progress = responses, shared, force, progress
        self.renders = renders
        self.ref_idx, self.query_idx = _split(pool, config)
        self.emb, self.maps = views if views is not None else observer.views(pool.images)
        self.pooled = spatial_mean(self.maps)
        self.grid = OcclusionGrid.from_fraction(config.size, config.patch, config.stride)
        self.scorer = scorer if scorer is not None else afc_scorer(model, list(config.layers))
        self.rules = observers_for(config.task)
        self.reused_shared: list[str] = []
        self.bar = tqdm(total=len(config.layers) * len(config.units), desc=f"2-AFC {config.task}",
                        unit="unit", disable=not progress)

    def synthetic(self, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """K max and K min visualizations of every unit: (units, K, 3, S, S) each."""
        config, k = self.config, self.config.n_references
        units = [u for u in config.units for _ in range(k)]
        seeds = [config.seed + 101 + i for i in range(len(units))]
        kw = {"steps": config.steps, "size": config.size, "seeds": seeds, "progress": self.progress}
        top = render(self.model, channel(layer, units), **kw).images
        bottom = render(self.model, -channel(layer, units), **kw).images
        shape = (len(config.units), k, *top.shape[1:])
        return top.view(shape), bottom.view(shape)

    def synthetic_references(self, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's synthetic references: kept in memory (`renders`), saved in the shared
        folder, or rendered, in that order."""
        what = self.config.synthetic_references(layer)
        key = stage_key(what)
        if self.renders is not None and key in self.renders and not self.force:
            self.reused_shared.append("synthetic (kept in memory)")
            return self.renders[key]
        references = Stages(self.shared, what, self.force)
        synth = references.run("synthetic", lambda: self.synthetic(layer))
        self.reused_shared.extend(references.reused)
        if self.renders is not None:
            self.renders[key] = synth
        return synth

    def pool_refs(self, idx_max: np.ndarray, idx_min: np.ndarray) -> ReferenceSet:
        return ReferenceSet(self.emb[idx_max], self.emb[idx_min], self.pooled[idx_max],
                            self.pooled[idx_min])

    def layer(self, li: int, layer: str) -> tuple[Records, dict[str, float]]:
        """Every unit's trials in `layer`: (observer → condition → unit → scores, scoring cost)."""
        config, k, n = self.config, self.config.n_references, self.config.n_trials
        # One generator per layer: a resumed run that loads some layers draws the same trials.
        rng = np.random.default_rng([config.seed, li])
        out: Records = {o: {c: {} for c in CONDITIONS} for o in config.chosen_observers}
        cost = {"images": 0, "seconds": 0.0}
        synth = self.synthetic_references(layer)
        acts = (self.responses[layer] if layer in self.responses
                else layer_responses(self.scorer, layer, self.pool.images))
        occlusion_cache: dict[int, torch.Tensor] = {}
        for i, unit in enumerate(config.units):
            self.bar.set_postfix_str(f"{layer} unit {unit}")
            act = acts[:, unit]
            ref_order = self.ref_idx[np.argsort(-act[self.ref_idx].numpy(), kind="stable")]
            query_order = self.query_idx[np.argsort(-act[self.query_idx].numpy(), kind="stable")]
            refs = {"natural": self.pool_refs(ref_order[:k], ref_order[-k:]),
                    "synthetic": ReferenceSet.from_images(self.observer, synth[0][i], synth[1][i])}
            random_draw = np.stack([rng.choice(self.ref_idx, size=2 * k, replace=False) for _ in range(n)])
            refs["random"] = self.pool_refs(random_draw[:, :k], random_draw[:, k:])
            if config.reference_sides == "max":  # the same draws, so the same trials, as min+max
                refs = {c: r.max_only() for c, r in refs.items()}
            flip = torch.from_numpy(rng.random(n) < 0.5)
            sign = answer_signs(flip)
            if config.task == "references":
                pair: QueryPair | OcclusionPair = _query_pair(config, query_order, act, rng, flip,
                                                              self.emb, self.maps)
            else:
                pair = self.occlusion_pair(layer, unit, query_order[:n], act, flip, occlusion_cache, cost)
            for name in out:
                for cond in CONDITIONS:
                    evidence = self.rules[name](pair, refs[cond])
                    out[name][cond][f"{layer}:{unit}"] = score(evidence, sign, config.alpha)
            self.bar.update(1)
        return out, cost

    def occlusion_pair(self, layer: str, unit: int, tops: np.ndarray, act: torch.Tensor,
                       flip: torch.Tensor, cache: dict[int, torch.Tensor],
                       cost: dict[str, float]) -> OcclusionPair:
        """Trial t shows the unit's t-th most activating query image with the occlusions after
        which its activation is highest and lowest; option 1 is the most-changing occlusion
        unless flipped (sign +1 ⇔ option 1 right). Each image's occlusions are scored once."""
        boxes = self.grid.boxes()
        trials = []
        for idx in tops.tolist():
            if idx not in cache:
                t0 = time.perf_counter()
                cache[idx] = occlusion_responses(self.scorer, layer, self.pool.images[idx], self.grid)
                cost["seconds"] += time.perf_counter() - t0
                cost["images"] += len(boxes)
            trials.append(extreme_occlusions(cache[idx][:, unit], boxes, float(act[idx])))
        most = torch.tensor([t.most for t in trials])
        least = torch.tensor([t.least for t in trials])
        return OcclusionPair(self.observer, self.pool.images[tops], self.maps[tops],
                             *ordered_options(most, least, flip), self.grid.patch)


def _query_pair(config: AFCConfig, query_order: np.ndarray, act: torch.Tensor,
                rng: np.random.Generator, flip: torch.Tensor, emb: torch.Tensor,
                maps: torch.Tensor) -> QueryPair:
    """Queries of the references task: option 1 is the strong query unless flipped."""
    n, k = config.n_trials, config.n_references
    m = max(1, int(np.ceil(config.quantile * len(query_order))))
    top, bottom = query_order[:m], query_order[-m:]
    if config.query_selection == "mis":
        # MIS: the least activating of K+1 drawn from the top quantile (most of K+1 at the bottom).
        def pick(side: np.ndarray, lowest: bool) -> np.ndarray:
            draws = [rng.choice(side, size=min(k + 1, len(side)), replace=False) for _ in range(n)]
            return np.array([d[np.argmin(act[d].numpy())] if lowest else d[np.argmax(act[d].numpy())]
                             for d in draws])
        strong, weak = pick(top, lowest=True), pick(bottom, lowest=False)
    else:
        strong = rng.choice(top, size=n, replace=len(top) < n)
        weak = rng.choice(bottom, size=n, replace=len(bottom) < n)
    first, second = ordered_options(torch.from_numpy(strong), torch.from_numpy(weak), flip)
    return QueryPair(emb[first], emb[second], maps[first], maps[second])


def trial_table(records: Records) -> dict[str, dict[str, dict[str, dict[str, list[float]]]]]:
    """The trials of `records` as plain lists (JSON, Parquet)."""
    return {name: {cond: {key: {"correct": [float(x) for x in v[0]], "p": [float(x) for x in v[1]]}
                          for key, v in by_unit.items()}
                   for cond, by_unit in by_cond.items()}
            for name, by_cond in records.items()}


def summarize_trials(config: AFCConfig, trials: dict[str, dict[str, dict[str, dict[str, list[float]]]]],
                     depth: dict[str, float | None] | None = None) -> AFCResult:
    """The result of trials kept as :func:`trial_table` writes them (a sweep store's units,
    gathered): every estimate and paired comparison, as :func:`run_afc` computes them."""
    records: Records = {name: {cond: {key: (np.asarray(v["correct"], dtype=float),
                                            np.asarray(v["p"], dtype=float))
                                      for key, v in by_unit.items()}
                               for cond, by_unit in by_cond.items()}
                        for name, by_cond in trials.items()}
    return _summarize(config, records, depth if depth is not None else dict.fromkeys(config.layers))


def _summarize(config: AFCConfig, records: Records, depth: dict[str, float | None]) -> AFCResult:
    overall: dict[str, dict[str, dict[str, object]]] = {}
    per_layer: dict[str, dict[str, dict[str, dict[str, object]]]] = {}
    per_unit: dict[str, dict[str, dict[str, float]]] = {}
    for name, by_cond in records.items():
        with_p = name not in REFERENCE_FREE
        overall[name], per_layer[name], per_unit[name] = {}, {}, {}
        for cond, by_unit in by_cond.items():
            correct = [v[0] for v in by_unit.values()]
            p = [v[1] for v in by_unit.values()] if with_p else None
            overall[name][cond] = _estimate(correct, p, config.seed)
            per_unit[name][cond] = {key: float(v[0].mean()) for key, v in by_unit.items()}
            per_layer[name][cond] = {}
            for layer in config.layers:
                keys = [key for key in by_unit if key.rsplit(":", 1)[0] == layer]
                per_layer[name][cond][layer] = _estimate(
                    [by_unit[key][0] for key in keys],
                    [by_unit[key][1] for key in keys] if with_p else None, config.seed)
    human = human_data.as_dict()
    human = ({"overall": human["references_overall"], "per_layer": human["references_per_layer"],
              "inception_relative_depth": human["inception_relative_depth"],
              "by_condition": human["references_by_condition"]}
             if config.task == "references" else {"overall": human["occlusion"]})
    paired = [_paired(records, c, list(config.layers), config.seed)
              for c in paired_comparisons(list(records))]
    return AFCResult(asdict(config), list(records), list(CONDITIONS), overall, per_layer, per_unit,
                     depth, {}, None, human, [], paired, trial_table(records))
