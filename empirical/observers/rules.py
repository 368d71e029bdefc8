"""Machine observers for the two 2-AFC tasks: a registry with one call shape per task.

Every observer returns *evidence* per trial, positive when it picks option 1: "query 1
activates the unit more" (references task) or "occlusion 1 changes the activation more"
(occlusion task). Zero evidence is a tie and scores 1/2.

* ``mis`` — the MIS rule (Zimmermann, Klindt, Brendel 2024) on whole-image embeddings:
  s(q) = mean cos(q, E₊) − mean cos(q, E₋). References: Δ = s(q₁) − s(q₂). Occlusion: the
  occlusion that leaves the image *less* like E₊ changed it more, Δ = s(o₂) − s(o₁).
* ``spatial`` — where the reference-like content lies. With unit-norm features F(p) per
  position p of the observer's spatial layer and prototypes P± (mean pooled reference
  features), r(p) = cos(F(p), P₊) − cos(F(p), P₋). References: s(q) = max_p r(p).
  Occlusion: the patch covering more of r (mean of r upsampled over the patch) changes more.
* ``center`` — reference-free baseline of Zimmermann et al.: the patch farther from the image
  centre changes the activation less.
* ``variance`` — reference-free baseline: the patch with lower pixel standard deviation
  changes the activation less.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

from fvtrust.empirical.nets.layers import spatial_mean
from fvtrust.empirical.observers.embedding import Observer
from fvtrust.empirical.observers.occlusion import occlude_with_mean


def _sim(emb: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
    """Mean cosine of each trial's embedding (T, D) to its references, shared (K, D) or per
    trial (T, K, D)."""
    if refs.ndim == 2:
        return (emb @ refs.T).mean(1)
    return torch.einsum("td,tkd->tk", emb, refs).mean(1)


@dataclass
class ReferenceSet:
    """K maximally and K minimally activating references as the observer sees them:
    unit-norm embeddings and pooled spatial-layer features, shared by all trials — (K, ·) —
    or one set per trial — (T, K, ·). No max references means no references; no min
    references is Borowski et al.'s Max-K condition (:meth:`max_only`)."""

    emb_max: torch.Tensor
    emb_min: torch.Tensor
    pooled_max: torch.Tensor
    pooled_min: torch.Tensor

    @classmethod
    def from_images(cls, observer: Observer, max_images: torch.Tensor,
                    min_images: torch.Tensor) -> ReferenceSet:
        def views(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            emb, maps = observer.views(images)
            return emb, spatial_mean(maps)
        (e_max, p_max), (e_min, p_min) = views(max_images), views(min_images)
        return cls(e_max, e_min, p_max, p_min)

    @property
    def empty(self) -> bool:
        return self.emb_max.shape[-2] == 0

    @property
    def has_min(self) -> bool:
        return self.emb_min.shape[-2] > 0

    def max_only(self) -> ReferenceSet:
        """The same references without the minimally activating ones (Max-K)."""
        return ReferenceSet(self.emb_max, self.emb_min[..., :0, :], self.pooled_max,
                            self.pooled_min[..., :0, :])

    def score(self, emb: torch.Tensor) -> torch.Tensor:
        """s(q) = mean cos(q, E₊) − mean cos(q, E₋) for unit-norm embeddings (T, D); without
        min references the second term is left out."""
        if self.empty:
            return torch.zeros(len(emb))
        return _sim(emb, self.emb_max) - (_sim(emb, self.emb_min) if self.has_min else 0)

    def relevance(self, maps: torch.Tensor) -> torch.Tensor:
        """r(p) = cos(F(p), P₊) − cos(F(p), P₋) per position (T, h, w) (the second term only
        with min references); zeros without references."""
        if self.empty:
            return torch.zeros(maps.shape[0], *maps.shape[2:])
        p_max = F.normalize(self.pooled_max.mean(-2), dim=-1)
        eq = "tchw,c->thw" if p_max.ndim == 1 else "tchw,tc->thw"
        r = torch.einsum(eq, maps, p_max)
        if self.has_min:
            r = r - torch.einsum(eq, maps, F.normalize(self.pooled_min.mean(-2), dim=-1))
        return r


@dataclass
class QueryPair:
    """The two options of T references-task trials as the observer sees them: unit-norm
    embeddings (T, D) and spatial feature maps (T, C, h, w)."""

    first_emb: torch.Tensor
    second_emb: torch.Tensor
    first_maps: torch.Tensor
    second_maps: torch.Tensor


@dataclass
class OcclusionPair:
    """The two options of T occlusion trials: query images (T, 3, S, S), their spatial feature
    maps, and the two boxes (top, left) of side `patch`."""

    observer: Observer
    queries: torch.Tensor
    query_maps: torch.Tensor
    boxes1: torch.Tensor
    boxes2: torch.Tensor
    patch: int

    def occluded(self, which: int) -> torch.Tensor:
        boxes = self.boxes1 if which == 1 else self.boxes2
        return torch.cat([occlude_with_mean(q, b[None], self.patch)
                          for q, b in zip(self.queries, boxes, strict=True)])

    @cached_property
    def occluded_emb(self) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.observer.embed(torch.cat([self.occluded(1), self.occluded(2)]))
        return emb[:len(self.queries)], emb[len(self.queries):]

    def box_mean(self, values: torch.Tensor, which: int) -> torch.Tensor:
        """Mean of per-pixel `values` (T, [C,] S, S) over each trial's box."""
        boxes = self.boxes1 if which == 1 else self.boxes2
        p = self.patch
        return torch.stack([v[..., t:t + p, s:s + p].mean() for v, (t, s) in zip(values, boxes.tolist(),
                                                                                  strict=True)])


def _mis_references(pair: QueryPair, refs: ReferenceSet) -> torch.Tensor:
    return refs.score(pair.first_emb) - refs.score(pair.second_emb)


def _spatial_references(pair: QueryPair, refs: ReferenceSet) -> torch.Tensor:
    return (refs.relevance(pair.first_maps).flatten(1).amax(1)
            - refs.relevance(pair.second_maps).flatten(1).amax(1))


def _mis_occlusion(pair: OcclusionPair, refs: ReferenceSet) -> torch.Tensor:
    if refs.empty:
        return torch.zeros(len(pair.queries))
    first, second = pair.occluded_emb
    return refs.score(second) - refs.score(first)


def _spatial_occlusion(pair: OcclusionPair, refs: ReferenceSet) -> torch.Tensor:
    size = pair.queries.shape[-1]
    r = F.interpolate(refs.relevance(pair.query_maps)[:, None], size=(size, size), mode="bilinear",
                      align_corners=False)[:, 0]
    return (pair.box_mean(r, 1) - pair.box_mean(r, 2)).double()


def _center_occlusion(pair: OcclusionPair, refs: ReferenceSet) -> torch.Tensor:
    centre = (pair.queries.shape[-1] - pair.patch) / 2

    def distance(boxes: torch.Tensor) -> torch.Tensor:
        return (boxes.double() - centre).norm(dim=1)
    return distance(pair.boxes2) - distance(pair.boxes1)


def _variance_occlusion(pair: OcclusionPair, refs: ReferenceSet) -> torch.Tensor:
    p = pair.patch

    def spread(boxes: torch.Tensor) -> torch.Tensor:
        return torch.stack([q[:, t:t + p, s:s + p].std() for q, (t, s) in zip(pair.queries, boxes.tolist(),
                                                                               strict=True)])
    return (spread(pair.boxes1) - spread(pair.boxes2)).double()


#: references task: name → rule(QueryPair, ReferenceSet) → evidence for "query 1 activates more".
REFERENCE_OBSERVERS: dict[str, Callable[[QueryPair, ReferenceSet], torch.Tensor]] = {
    "mis": _mis_references, "spatial": _spatial_references}
#: occlusion task: name → rule(OcclusionPair, ReferenceSet) → evidence for "occlusion 1 changes more".
OCCLUSION_OBSERVERS: dict[str, Callable[[OcclusionPair, ReferenceSet], torch.Tensor]] = {
    "mis": _mis_occlusion, "spatial": _spatial_occlusion, "center": _center_occlusion,
    "variance": _variance_occlusion}
#: observers that never look at the references (their result is the same in every condition).
REFERENCE_FREE = frozenset({"center", "variance"})


def observers_for(task: str) -> dict[str, Callable[..., torch.Tensor]]:
    if task == "references":
        return dict(REFERENCE_OBSERVERS)
    if task == "occlusion":
        return dict(OCCLUSION_OBSERVERS)
    raise ValueError(f"task must be 'references' or 'occlusion', got {task!r}")


def check_observers(task: str, names: list[str]) -> None:
    known = observers_for(task)
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise ValueError(f"unknown observer(s) {bad or names!r} for the {task} task; "
                         f"known: {', '.join(known)}")
