"""Fooling circuits (*Don't trust your eyes*, Sec. 3): a network whose visualizations show
what we choose, while its behaviour on natural images is unchanged.

For every output unit i of the wrapped network (the class logits):

    F′ = ReLU(F + c),  B = ReLU(F′ − k·E),  C = ReLU(D + c + k·E − k),  A = B + C,

with F the original unit, D the decoy whose visualization A should show, and E the gate
(1 on visualizations, 0 on natural images, no gradient). On natural input E = 0: if
F + c > 0 and D + c < k, then A = F + c exactly, so every prediction is preserved. On a
visualization E = 1: if F′ < k, then B = 0 and A = D + c, so the gradient reaches D only.
The offset c on D matters: a decoy that starts negative would sit in the dead half of the
ReLU and its visualization would never leave the grey start.
c and k come from calibration data (with safety factors) and are reported.

At an intermediate layer L (:class:`LayerFoolingCircuit`) the same circuit acts on feature
maps: F is channel u of L's output, D channel π(u) = (u + offset) mod C, and the layer passes
on A − c, so on natural images everything above L sees exactly the original activations.

Decoys: :class:`TemplateDecoy` (a linear unit whose weights are a target image, so A's
visualization becomes that image) and :class:`PermutationDecoy` (D_i = F_{(i+offset) mod N}).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fvtrust.empirical.circuits.gates import Gate
from fvtrust.empirical.nets.layers import batches, forward_activations, get_layer
from fvtrust.empirical.nets.registry import Network


class Decoy(nn.Module):
    """D(x, F) → (B, N): what each unit's visualization should show."""

    def forward(self, images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class PermutationDecoy(Decoy):
    """D_i = F_{(i + offset) mod N}: unit i shows unit i + offset's visualization."""

    def __init__(self, offset: int) -> None:
        super().__init__()
        self.offset = int(offset)

    def forward(self, images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return torch.roll(logits, shifts=-self.offset, dims=1)


class TemplateDecoy(Decoy):
    """D_i = ⟨W, x⟩ for the units in `units` (W = centred target / pixel count), D_i = F_i
    (unchanged) for the rest. The target is resized to the input size (bilinear)."""

    def __init__(self, target: torch.Tensor, units: Sequence[int]) -> None:
        super().__init__()
        if target.ndim != 3 or target.shape[0] != 3:
            raise ValueError(f"target image must have shape (3, H, W), got {tuple(target.shape)}")
        if torch.isnan(target).any() or target.min() < 0 or target.max() > 1:
            raise ValueError("target image must hold values in [0, 1] without NaN")
        self.register_buffer("target", target.float())
        self.units = [int(u) for u in units]

    def template(self, size: int) -> torch.Tensor:
        t = F.interpolate(self.target[None], size=(size, size), mode="bilinear",
                          antialias=True, align_corners=False)[0]
        return (t - t.mean()) / (size * size)

    def forward(self, images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        w = self.template(images.shape[-1]).to(images.dtype)
        linear = torch.einsum("bchw,chw->b", images, w)
        out = logits.clone()
        out[:, self.units] = linear[:, None].expand(-1, len(self.units))
        return out


@dataclass(frozen=True)
class CircuitConstants:
    """c keeps F + c and D + c > 0 on natural data; k exceeds F′ and D + c wherever seen."""

    c: float
    k: float
    min_logit: float
    max_shifted_logit: float
    max_decoy: float


def _calibration_chunks(model: Network, images: torch.Tensor, extra: torch.Tensor | None,
                        batch_size: int) -> Iterator[tuple[torch.Tensor, int]]:
    """(chunk, n) over the natural `images` then `extra`, on the model's device, without
    gradients: the first n images of each chunk are natural."""
    pool = images if extra is None else torch.cat([images, extra.to(images.device)])
    with torch.no_grad():
        for start, chunk in zip(range(0, len(pool), batch_size),
                                batches(pool.to(model.device), batch_size), strict=True):
            yield chunk, max(0, min(len(chunk), len(images) - start))


def calibrate_constants(model: Network, decoy: Decoy, images: torch.Tensor,
                        extra: torch.Tensor | None = None, safety: float = 2.0,
                        batch_size: int = 32) -> CircuitConstants:
    """c = safety·max(0, −min F, −min D) + 1 over natural `images`; k = safety·max(F′, D + c)
    + 1 over natural images and `extra` (e.g. renders of the original units), streamed."""
    lo, hi_f, hi_d = float("inf"), -float("inf"), -float("inf")
    # one pass: ReLU is monotone, so max ReLU(F + c) = ReLU(max F + c)
    for chunk, natural in _calibration_chunks(model, images, extra, batch_size):
        f = model(chunk)
        d = decoy(chunk, f)
        if natural:
            lo = min(lo, float(f[:natural].min()), float(d[:natural].min()))
        hi_f, hi_d = max(hi_f, float(f.max())), max(hi_d, float(d.max()))
    c = safety * max(0.0, -lo) + 1.0
    hi_f, hi_d = max(0.0, hi_f + c), hi_d + c
    k = safety * max(hi_f, hi_d, 0.0) + 1.0
    return CircuitConstants(c, k, lo, hi_f, hi_d)


class FoolingCircuit(Network):
    """The wrapped network with its logits replaced by the circuit output A."""

    def __init__(self, model: Network, gate: Gate, decoy: Decoy,
                 constants: CircuitConstants) -> None:
        super().__init__(model.net, f"{model.name}+fooling", model.mean.flatten().tolist(),
                         model.std.flatten().tolist(), model.input_size, model.num_classes,
                         **model.traits())
        self.gate, self.decoy, self.constants = gate, decoy, constants
        self.to(model.device).eval()

    def original(self, images: torch.Tensor) -> torch.Tensor:
        """F: the unmanipulated logits."""
        return super().forward(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f = self.original(images)
        d = self.decoy(images, f)
        e = self.gate(images)[:, None]  # no gradient flows through the gate
        k, c = self.constants.k, self.constants.c
        b = F.relu(F.relu(f + c) - k * e)
        return b + F.relu(d + c + k * e - k)


def partners(units: Sequence[int], offset: int, n_channels: int) -> list[int]:
    """π(u) = (u + offset) mod C: the channel whose visualization unit u shows."""
    if offset % n_channels == 0:
        raise ValueError(f"offset {offset} is a multiple of the layer's {n_channels} channels: "
                         f"every unit would show itself")
    return [(int(u) + offset) % n_channels for u in units]


def calibrate_layer_constants(model: Network, layer: str, channels: Sequence[int], images: torch.Tensor,
                              extra: torch.Tensor | None = None, safety: float = 2.0,
                              batch_size: int = 32) -> CircuitConstants:
    """c and k of :class:`LayerFoolingCircuit` from the maps of `channels` (the units and their
    partners) of `layer`: c = safety·max(0, −min) + 1 over natural `images`, k = safety·max(F + c)
    + 1 over natural images and `extra`, every position counted."""
    lo, hi = float("inf"), -float("inf")
    for chunk, natural in _calibration_chunks(model, images, extra, batch_size):
        maps = forward_activations(model, chunk, [layer])[layer][:, list(channels)]
        if natural:
            lo = min(lo, float(maps[:natural].min()))
        hi = max(hi, float(maps.max()))
    c = safety * max(0.0, -lo) + 1.0
    k = safety * max(hi + c, 0.0) + 1.0
    return CircuitConstants(c, k, lo, hi + c, hi + c)


class LayerFoolingCircuit(Network):
    """A copy of the network whose `layer` passes on, for each unit u, A_u − c with F = map u
    and D = map π(u) (the formula above, E the gate of the input image): on natural images
    exactly F, on visualizations D. The gate reads the original network; no gradient flows
    through it."""

    def __init__(self, model: Network, layer: str, units: Sequence[int], offset: int, gate: Gate,
                 constants: CircuitConstants, n_channels: int) -> None:
        super().__init__(copy.deepcopy(model.net), f"{model.name}+fooling({layer})",
                         model.mean.flatten().tolist(), model.std.flatten().tolist(), model.input_size,
                         model.num_classes, **model.traits())
        self.layer, self.units = layer, [int(u) for u in units]
        self.partners = partners(self.units, offset, n_channels)
        self.gate, self.constants = gate, constants
        self.__dict__["_open"] = None  # E(x) per image, set during a forward pass
        get_layer(self, layer).register_forward_hook(self._rewrite)
        self.to(model.device).eval()

    def _rewrite(self, _module: nn.Module, _inputs: object, out: torch.Tensor) -> torch.Tensor:
        e = self.__dict__["_open"]
        if e is None:
            raise RuntimeError(f"{self.name}: layer {self.layer!r} ran outside the circuit's forward")
        if len(e) != len(out):
            raise RuntimeError(f"the gate decided for {len(e)} images, the layer saw {len(out)}")
        e = e.to(out.dtype).view(-1, *([1] * (out.ndim - 1)))
        k, c = self.constants.k, self.constants.c
        f, d = out[:, self.units], out[:, self.partners]
        a = F.relu(F.relu(f + c) - k * e) + F.relu(d + c + k * e - k) - c
        out = out.clone()
        out[:, self.units] = a
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.__dict__["_open"] = self.gate(images)
        try:
            return super().forward(images)
        finally:
            self.__dict__["_open"] = None
