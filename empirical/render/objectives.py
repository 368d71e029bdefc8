"""Objectives (lucid's ``objectives``): what a visualization maximizes.

An :class:`Objective` maps the captured activations to one score per image, shape (B,),
to be *maximized*; objectives compose with ``+``, ``-`` and scalar ``*``, and ``-obj`` turns
a maximization into a minimization (the min visualization the theory needs).
``units`` may be one index for the whole batch or one per image: image i then optimizes
unit ``units[i]`` — the batched rendering that makes many units cost one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from fvtrust.empirical.nets.registry import LOGITS

Activations = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """score(acts) → (B,), to be maximized."""

    fn: Callable[[Activations], torch.Tensor]
    layers: tuple[str, ...]
    name: str
    batch: int | None = None  # number of images the objective addresses, if it fixes one

    def __call__(self, acts: Activations) -> torch.Tensor:
        return self.fn(acts)

    def _combine(self, other: Objective, op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 symbol: str) -> Objective:
        if self.batch and other.batch and self.batch != other.batch:
            raise ValueError(f"cannot combine objectives for {self.batch} and {other.batch} images")
        return Objective(lambda a: op(self(a), other(a)), tuple(dict.fromkeys(self.layers + other.layers)),
                         f"({self.name} {symbol} {other.name})", self.batch or other.batch)

    def __add__(self, other: Objective) -> Objective:
        return self._combine(other, torch.add, "+")

    def __sub__(self, other: Objective) -> Objective:
        return self._combine(other, torch.sub, "-")

    def __mul__(self, scalar: float) -> Objective:
        if not isinstance(scalar, int | float):
            raise ValueError(f"objectives multiply by scalars only, got {type(scalar).__name__}")
        return Objective(lambda a: scalar * self(a), self.layers, f"{scalar:g}*{self.name}", self.batch)

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return Objective(lambda a: -self(a), self.layers, f"-{self.name}", self.batch)


def _units(units: int | Sequence[int]) -> tuple[list[int] | None, int]:
    if isinstance(units, bool) or isinstance(units, str | bytes | float):
        # A string would iterate as digits ("12" → units [1, 2]): refuse it by name.
        raise ValueError(f"units must be an int or a sequence of ints, got {units!r}")
    if isinstance(units, int):
        if units < 0:
            raise ValueError(f"unit index must be >= 0, got {units}")
        return None, units
    bad = [u for u in units if isinstance(u, bool) or not isinstance(u, int)]
    if bad:
        raise ValueError(f"units must be ints, got {bad[0]!r} in {list(units)!r}")
    units = [int(u) for u in units]
    if not units or min(units) < 0:
        raise ValueError(f"units must be a non-empty list of indices >= 0, got {units}")
    return units, 0


def _select(acts: torch.Tensor, layer: str, per_image: list[int] | None, single: int) -> torch.Tensor:
    """acts[b, unit_b, ...] for every image b, validated against the layer's channel count."""
    b, c = acts.shape[0], acts.shape[1]
    index = torch.tensor(per_image if per_image is not None else [single] * b, device=acts.device)
    if per_image is not None and len(per_image) != b:
        raise ValueError(f"objective names {len(per_image)} units but the batch has {b} images")
    if int(index.max()) >= c:
        raise ValueError(f"unit {int(index.max())} is out of range for layer {layer!r} "
                         f"with {c} units")
    return acts[torch.arange(b, device=acts.device), index]


def channel(layer: str, units: int | Sequence[int]) -> Objective:
    """Mean activation of channel `unit` over space (lucid's "layer:unit")."""
    per_image, single = _units(units)

    def fn(acts: Activations) -> torch.Tensor:
        x = _select(acts[layer], layer, per_image, single)
        return x.flatten(1).mean(1) if x.ndim > 1 else x
    return Objective(fn, (layer,), f"channel({layer}, {units})", len(per_image) if per_image else None)


def neuron(layer: str, units: int | Sequence[int], x: int | None = None,
           y: int | None = None) -> Objective:
    """Activation of `unit` at one spatial position (default: the centre)."""
    per_image, single = _units(units)

    def fn(acts: Activations) -> torch.Tensor:
        sel = _select(acts[layer], layer, per_image, single)
        if sel.ndim == 1:
            return sel
        if sel.ndim == 2:  # tokens that do not tile a square: the middle one
            return sel[:, sel.shape[1] // 2 if x is None else x]
        h, w = sel.shape[-2:]
        return sel[:, h // 2 if y is None else y, w // 2 if x is None else x]
    return Objective(fn, (layer,), f"neuron({layer}, {units})", len(per_image) if per_image else None)


def class_logit(units: int | Sequence[int]) -> Objective:
    """The logit of class `unit` (the paper's last-layer visualizations)."""
    obj = channel(LOGITS, units)
    return Objective(obj.fn, obj.layers, f"class_logit({units})", obj.batch)


def direction(layer: str, vectors: torch.Tensor) -> Objective:
    """Mean over space of ⟨acts(x, y), v⟩; `vectors` is (C,) or one (B, C) row per image."""
    if vectors.ndim not in (1, 2):
        raise ValueError(f"direction vectors must be (C,) or (B, C), got {tuple(vectors.shape)}")

    def fn(acts: Activations) -> torch.Tensor:
        a = acts[layer]
        v = vectors.to(a.device, a.dtype)
        v = v.expand(a.shape[0], -1) if v.ndim == 1 else v
        if v.shape[1] != a.shape[1]:
            raise ValueError(f"direction has {v.shape[1]} entries but layer {layer!r} has "
                             f"{a.shape[1]} units")
        a = a.flatten(2) if a.ndim > 2 else a[..., None]
        return torch.einsum("bcs,bc->bs", a, v).mean(1)
    return Objective(fn, (layer,), f"direction({layer})",
                     vectors.shape[0] if vectors.ndim == 2 else None)


def diversity(layer: str) -> Objective:
    """−mean cosine similarity of an image's Gram matrix to the others' (lucid's diversity).
    Couples the images of a batch, by design."""
    def fn(acts: Activations) -> torch.Tensor:
        a = acts[layer].flatten(2)
        gram = torch.einsum("bcs,bds->bcd", a, a).flatten(1)
        gram = gram / gram.norm(dim=1, keepdim=True).clamp_min(1e-12)
        sim = gram @ gram.T
        b = sim.shape[0]
        if b < 2:
            return torch.zeros(b, device=a.device)
        off = sim.sum(1) - sim.diagonal()
        return -off / (b - 1)
    return Objective(fn, (layer,), f"diversity({layer})")
