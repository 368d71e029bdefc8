"""Detectors of untrustworthy visualizations, per unit, in a registry with one call shape.

``DETECTORS[name].score(model, layer, units, natural) → (U,)`` scores, larger = more
suspicious (``overdrive`` and ``seed_instability`` are two-sided: calibration looks at both
tails). Every detector
works from one :class:`AuditContext` per (network, layer, units): the unit's visualizations
(``n_seeds`` renders from the standard start), the natural images' responses and an observer
network other than the audited one, so running them all costs one set of renders.

* ``overdrive`` (DORA-like, Bykov et al. 2023): z = asinh((a(v) − med_nat) / (max_nat − med_nat)),
  the visualization's activation against the unit's natural range. Silent branches overdrive;
  a decoy circuit whose visualization maximizes another function underdrives.
* ``seed_instability`` (DORA-like, two-sided): 1 − mean pairwise observer cosine of the
  renders of different seeds; a decoy that every start lands on is suspiciously stable.
* ``exemplar_consistency`` (the Gradient-Slingshots defence, Bareeva et al. 2025):
  (mean s(v, random) − mean s(v, top-k)) / sd s(v, random), s = observer cosine; a
  visualization that looks no more like the unit's top natural exemplars than like random
  photos is suspicious.
* ``sanity`` (*Don't trust your eyes* Sec. 4, per unit): at probe layers below and above the
  unit, score_l = (s(v, top) − s(top, rand)) / max(s(top, top) − s(top, rand), 0.1) with
  s = Spearman of activation vectors (the floor keeps a near-zero normalizer from turning
  noise into an outlier); the statistic is −mean_l score_l (processed unlike its exemplars).
* ``dormant`` (new here): 1 − max_n cos(g(v), g(x_n)), g = the gradient of the unit with respect
  to its layer's input, summed over positions. A response to the visualization carried by a
  path that no natural image opens (a gated decoy branch, a silent branch) has a sensitivity
  pattern no natural image shows; a response that does not flow through the layer input at
  all (g = 0) scores 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fvtrust.empirical.data.crops import NaturalImages
from fvtrust.empirical.nets.layers import (
    batches,
    forward_activations,
    get_layer,
    layer_channels,
    layer_responses,
    main_layers,
    spatial_mean,
)
from fvtrust.empirical.nets.registry import LOGITS, Network
from fvtrust.empirical.observers.embedding import Observer
from fvtrust.empirical.observers.similarity import similarity_matrix
from fvtrust.empirical.render.loop import render
from fvtrust.empirical.render.objectives import channel


@dataclass
class AuditConfig:
    """What a unit's scores depend on (quick scale: 64 px, 64 steps, CPU)."""

    n_seeds: int = 2  # renders per unit from the standard start
    steps: int = 64
    size: int = 64
    n_exemplars: int = 9  # K top natural exemplars per unit
    n_random: int = 32  # random natural images: the null of the exemplar and sanity scores
    n_gradient: int = 32  # natural images whose sensitivity patterns the dormant score compares
    observer: str | None = None  # None: EfficientNet-Lite1, or Lite0 when auditing Lite1
    observer_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_seeds", "steps", "size", "n_exemplars", "n_random", "n_gradient",
                     "observer_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
        if self.n_seeds < 2:
            raise ValueError(f"n_seeds must be >= 2 (seed instability compares renders), got "
                             f"{self.n_seeds}")
        if self.size < 16:
            raise ValueError(f"size must be >= 16 px, got {self.size}")

    @property
    def n_natural_needed(self) -> int:
        """Natural images an audit needs at least: exemplars and a disjoint random null."""
        return self.n_exemplars + self.n_random

    def observer_for(self, model_name: str) -> str:
        if self.observer is not None:
            return self.observer
        return "efficientnet_lite0" if model_name.startswith("efficientnet_lite1") else "efficientnet_lite1"


def input_module(model: Network, layer: str) -> nn.Module:
    """The module whose *input* the dormant score differentiates against: the layer itself,
    or for the logits the network's last linear layer (its input: the pooled features)."""
    if layer != LOGITS:
        return get_layer(model, layer)
    linear = [m for m in model.net.modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise ValueError(f"{model.name} has no linear read-out before its logits: the audit "
                         f"needs one to look at the logits' input")
    return linear[-1]


def check_layer(model: Network, layer: str) -> int:
    """The layer's unit count; a layer without a channel axis the detectors understand is
    refused by name."""
    if layer != LOGITS:
        get_layer(model, layer)
    shape = layer_channels(model, [layer], size=64)[layer]
    if len(shape) not in (1, 3):
        raise ValueError(f"layer {layer!r} of {model.name} has output shape {shape}: the audit "
                         f"needs (channels,) or (channels, height, width)")
    return shape[0]


def probe_layers(model: Network, layer: str, n: int = 2) -> list[str]:
    """`n` main layers below `layer` and `n` above (evenly spaced), the logits last."""
    names = [m for m in main_layers(model) if m != LOGITS and not isinstance(
        get_layer(model, m), nn.BatchNorm2d | nn.AdaptiveAvgPool2d | nn.Linear)]
    where = len(names) if layer == LOGITS else next(
        (i for i, m in enumerate(names) if m == layer or layer.startswith(f"{m}.")), None)
    if where is None:  # a layer inside no main block: its depth by execution order
        where = len(names) // 2
    below = names[:where]
    above = names[where + 1:]

    def pick(xs: list[str]) -> list[str]:
        # evenly spaced, ending next to the unit (below it: the middle and the last layer)
        return [xs[round(f * (len(xs) - 1))] for f in np.linspace(1 / n, 1, n)] if xs else []
    chosen = [*pick(below), *pick(above)]
    return list(dict.fromkeys([*chosen, *([LOGITS] if layer != LOGITS else [])]))


@dataclass
class AuditContext:
    """Everything the detectors of one (network, layer, units) share, computed on demand and
    once: renders, natural responses, exemplars, observer embeddings."""

    model: Network
    layer: str
    units: list[int]
    natural: NaturalImages
    config: AuditConfig = field(default_factory=AuditConfig)
    observer: Observer | None = None
    #: (N, C) natural responses of the layer, when the caller already has them
    given_responses: torch.Tensor | None = None
    #: wall seconds per piece of work, filled by :func:`audit_scores`
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_units = check_layer(self.model, self.layer)
        bad = [u for u in self.units if not 0 <= u < n_units]
        if bad or not self.units:
            raise ValueError(f"units {bad or self.units} are out of range for layer "
                             f"{self.layer!r} of {self.model.name} with {n_units} units")
        need = self.config.n_natural_needed
        if len(self.natural) < need:
            raise ValueError(f"{len(self.natural)} natural images are too few for an audit with "
                             f"{self.config.n_exemplars} exemplars and a null of "
                             f"{self.config.n_random} random images: need >= {need}")

    # ------------------------------------------------------------------ shared pieces
    @cached_property
    def seeds(self) -> list[int]:
        """Render seeds, unit-major: unit u, seed s → seed + u + 1000·s (a unit's renders do
        not depend on which units share its batch)."""
        return [self.config.seed + u + 1000 * s for u in self.units for s in range(self.config.n_seeds)]

    @cached_property
    def _rendered(self) -> tuple[torch.Tensor, np.ndarray]:
        c = self.config
        images, scores = [], []
        per_unit = [u for u in self.units for _ in range(c.n_seeds)]
        for start in range(0, len(per_unit), 32):
            result = render(self.model, channel(self.layer, per_unit[start:start + 32]), steps=c.steps,
                            size=c.size, seeds=self.seeds[start:start + 32])
            images.append(result.images)
            scores.append(result.scores)
        return torch.cat(images), np.concatenate(scores)

    @property
    def renders(self) -> torch.Tensor:
        """(U, S, 3, H, W): each unit's visualizations, one per seed."""
        images = self._rendered[0]
        return images.view(len(self.units), self.config.n_seeds, *images.shape[1:])

    @property
    def render_activations(self) -> np.ndarray:
        """(U, S): each render's activation as saved (8 bits, no jitter)."""
        return self._rendered[1].reshape(len(self.units), self.config.n_seeds)

    @cached_property
    def responses(self) -> torch.Tensor:
        """(N, C): spatial-mean responses of the layer to the natural images."""
        if self.given_responses is not None:
            return self.given_responses
        return layer_responses(self.model, self.layer, self.natural.images)

    @cached_property
    def exemplars(self) -> np.ndarray:
        """(U, K): indices of each unit's top natural exemplars (stable order)."""
        r = self.responses[:, self.units].numpy()
        return np.argsort(-r, axis=0, kind="stable")[:self.config.n_exemplars].T

    @cached_property
    def random(self) -> np.ndarray:
        """(U, R): per unit, random natural images that are not among its exemplars, drawn
        from a generator seeded by (seed, unit): a unit's null does not depend on which units
        share its batch (a sweep's chunks)."""
        out = []
        for u, row in zip(self.units, self.exemplars, strict=True):
            rng = np.random.default_rng([self.config.seed, 7, u])
            rest = np.setdiff1d(np.arange(len(self.natural)), row)
            out.append(rng.choice(rest, size=self.config.n_random, replace=False))
        return np.stack(out)

    @cached_property
    def _observer(self) -> Observer:
        return self.observer or default_observer(self.config, self.model.name, str(self.model.device))

    @cached_property
    def natural_embeddings(self) -> torch.Tensor:
        return self._observer.embed(self.natural.images)

    @cached_property
    def render_embeddings(self) -> torch.Tensor:
        """(U, S, D) observer embeddings of the renders."""
        flat = self.renders.flatten(0, 1)
        return self._observer.embed(flat).view(len(self.units), self.config.n_seeds, -1)


# ---------------------------------------------------------------------- the detectors


def overdrive(ctx: AuditContext) -> np.ndarray:
    r = ctx.responses[:, ctx.units].double().numpy()
    med, top = np.median(r, axis=0), r.max(axis=0)
    span = np.maximum(top - med, 1e-6 * (np.abs(top) + 1))
    return np.arcsinh((ctx.render_activations.mean(1) - med) / span)


def seed_instability(ctx: AuditContext) -> np.ndarray:
    e = ctx.render_embeddings
    sims = e @ e.transpose(1, 2)  # (U, S, S)
    s = e.shape[1]
    off = (sims.sum((1, 2)) - sims.diagonal(dim1=1, dim2=2).sum(1)) / (s * (s - 1))
    return (1 - off).double().numpy()


def exemplar_consistency(ctx: AuditContext) -> np.ndarray:
    out = []
    for i in range(len(ctx.units)):
        sims = ctx.render_embeddings[i] @ ctx.natural_embeddings.T  # (S, N)
        top = sims[:, ctx.exemplars[i]].mean(1)
        rand = sims[:, ctx.random[i]]
        out.append(float(((rand.mean(1) - top) / rand.std(1).clamp_min(1e-6)).mean()))
    return np.asarray(out)


@torch.no_grad()
def _probe_vectors(model: Network, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Spatial-mean activation vectors (N, C_l) of each probe layer."""
    out: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    for chunk in batches(images, 32):
        acts = forward_activations(model, chunk.to(model.device), list(layers))
        for name in layers:
            out[name].append(spatial_mean(acts[name]).float().cpu())
    return {name: torch.cat(v) for name, v in out.items()}


#: the sanity detector's floor on s(top, top) − s(top, rand) (Spearman differences lie in [−2, 2])
SANITY_MIN_NORMALIZER = 0.1


def sanity(ctx: AuditContext) -> np.ndarray:
    layers = probe_layers(ctx.model, ctx.layer)
    nat = _probe_vectors(ctx.model, ctx.natural.images, layers)
    vis = _probe_vectors(ctx.model, ctx.renders.flatten(0, 1), layers)
    s = ctx.config.n_seeds
    scores = np.zeros((len(ctx.units), len(layers)))
    for j, name in enumerate(layers):
        for i in range(len(ctx.units)):
            top, rand = nat[name][ctx.exemplars[i]], nat[name][ctx.random[i]]
            v = vis[name][i * s:(i + 1) * s]
            s_vt = float(similarity_matrix(v, top).mean())
            tt = similarity_matrix(top, top)
            k = len(top)
            s_tt = float((tt.sum() - tt.diagonal().sum()) / (k * (k - 1)))
            s_tr = float(similarity_matrix(top, rand).mean())
            # The paper's normalizer s(top, top) − s(top, rand) can be near 0 (exemplars hardly
            # more alike than random images at that layer): floored, the ratio stays bounded.
            scores[i, j] = (s_vt - s_tr) / max(s_tt - s_tr, SANITY_MIN_NORMALIZER)
    return -scores.mean(1)


def _sensitivity(model: Network, layer: str, module: nn.Module, images: torch.Tensor,
                 units: Sequence[int]) -> torch.Tensor:
    """(B, C_in): ∂(spatial-mean unit u_b)/∂(input of `module`) for image b, summed over
    positions. One backward pass for the batch (images are independent in eval mode)."""
    store: dict[str, torch.Tensor] = {}

    def grab(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        store["h"] = args[0]
    handle = module.register_forward_pre_hook(grab)
    try:
        x = images.to(model.device).requires_grad_(True)
        with torch.enable_grad():
            acts = forward_activations(model, x, [layer])[layer]
            index = torch.as_tensor(list(units), device=acts.device)
            picked = acts[torch.arange(len(x), device=acts.device), index]
            value = picked.flatten(1).mean(1) if picked.ndim > 1 else picked
            h = store["h"]
            (grad,) = torch.autograd.grad(value.sum(), h, allow_unused=True)
    finally:
        handle.remove()
    if grad is None:  # the unit does not depend on the layer's input at all
        return torch.zeros(len(images), h.shape[1])
    return (grad.flatten(2).sum(2) if grad.ndim > 2 else grad).detach().double().cpu()


def dormant(ctx: AuditContext) -> np.ndarray:
    module = input_module(ctx.model, ctx.layer)
    rng = np.random.default_rng(ctx.config.seed + 11)
    pick = rng.choice(len(ctx.natural), size=min(ctx.config.n_gradient, len(ctx.natural)), replace=False)
    nat_images = ctx.natural.images[np.sort(pick)]
    out = []
    for i, u in enumerate(ctx.units):
        g_nat = F.normalize(_sensitivity(ctx.model, ctx.layer, module, nat_images, [u] * len(nat_images)),
                            dim=1)
        g_vis = _sensitivity(ctx.model, ctx.layer, module, ctx.renders[i], [u] * ctx.config.n_seeds)
        zero = g_vis.norm(dim=1) <= 1e-12 * (1 + g_nat.abs().max())
        best = (F.normalize(g_vis, dim=1) @ g_nat.T).max(1).values
        out.append(float(torch.where(zero, torch.ones_like(best), 1 - best).mean()))
    return np.asarray(out)


@dataclass(frozen=True)
class Detector:
    """A registered detector: its statistic of an :class:`AuditContext`, which tail is
    suspicious ("upper", or "both"), where it comes from, what it costs per unit, and its
    resolution: the smallest spread of clean scores calibration will scale by (dormant is
    exactly 0 on every clean unit of a linear layer; its float noise must not count), and
    whether it takes part in the combined verdict (``verdict=False``: scored and reported,
    standardized beside the others, but never what makes a unit suspicious)."""

    statistic: Callable[[AuditContext], np.ndarray]
    side: str
    source: str
    cost: str
    resolution: float = 1e-3
    verdict: bool = True

    def score(self, model: Network, layer: str, units: Sequence[int], natural: NaturalImages,
              config: AuditConfig | None = None, context: AuditContext | None = None) -> np.ndarray:
        """Per-unit scores (U,) of `units` of `layer` (one call shape for every detector)."""
        ctx = context or AuditContext(model, layer, list(units), natural, config or AuditConfig())
        return np.asarray(self.statistic(ctx), dtype=np.float64)


#: The detectors (``--detectors``): name → how it scores a unit.
DETECTORS: dict[str, Detector] = {
    "overdrive": Detector(overdrive, "both", "DORA-like (Bykov et al. 2023): activation vs natural range",
                          "the renders (shared) + one natural forward pass per layer"),
    "seed_instability": Detector(seed_instability, "both", "DORA-like: spread over seeds",
                                 "the renders (shared) + S observer embeddings"),
    "exemplar_consistency": Detector(exemplar_consistency, "upper",
                                     "Gradient Slingshots defence (Bareeva et al. 2025)",
                                     "the renders (shared) + S observer embeddings"),
    # Reported, not in the verdict: its clean level moves between networks. In the v0.3 bench,
    # calibrated on Lite0, it fired on 13 of 256 clean units of Lite1 and Lite2 at α = 1 %
    # (10 of 128 at the conv layer) against 8 of 36 manipulated units there: a weak signal at
    # eight times the false-flag budget.
    "sanity": Detector(sanity, "upper", "Don't trust your eyes, Sec. 4, per unit",
                       "S forward passes at the probe layers", verdict=False),
    "dormant": Detector(dormant, "upper", "fvtrust: sensitivity no natural image shows",
                        "one backward pass over n_gradient natural images + S renders", resolution=0.01),
}


def audit_scores(model: Network, layer: str, units: Sequence[int], natural: NaturalImages,
                 config: AuditConfig | None = None, detectors: Sequence[str] | None = None,
                 observer: Observer | None = None,
                 responses: torch.Tensor | None = None) -> tuple[dict[str, np.ndarray], AuditContext]:
    """Every detector's scores for `units` (name → (U,)), from one shared context."""
    names = list(detectors or DETECTORS)
    bad = [n for n in names if n not in DETECTORS]
    if bad:
        raise ValueError(f"unknown detector(s) {bad}; known: {', '.join(DETECTORS)}")
    ctx = AuditContext(model, layer, list(units), natural, config or AuditConfig(), observer, responses)
    # wall seconds: the shared renders and natural responses first, then each detector's own
    # (observer embeddings are charged to the first detector that needs them)
    clock = time.perf_counter()
    _ = ctx.renders, ctx.responses
    ctx.timings["renders + natural responses (shared)"] = time.perf_counter() - clock
    scores = {}
    for name in names:
        clock = time.perf_counter()
        scores[name] = DETECTORS[name].score(model, layer, units, natural, context=ctx)
        ctx.timings[name] = time.perf_counter() - clock
    return scores, ctx


def default_observer(config: AuditConfig, model_name: str, device: str = "cpu") -> Observer:
    """The observer network of an audit of `model_name`: never the audited network itself."""
    name = config.observer_for(model_name)
    if name == model_name.split("+")[0]:
        raise ValueError(f"the observer network must differ from the audited {model_name}")
    return Observer(model_name=name, size=config.observer_size, device=device)
