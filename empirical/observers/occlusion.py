"""Sliding occlusions, as in Zimmermann et al. 2021 (their released procedure).

A square patch of side ``patch`` slides over every position at ``stride`` px; each occluded
image has the patch filled with *that patch's own* per-channel mean colour. The unit's
response to every occluded image (spatial mean of its channel) gives the two positions shown
in a trial: argmax (the occlusion that changed the activation least) and argmin (most).

The expensive part is scoring the occluded images: one forward pass to the unit's layer per
position. All channels of the layer come out of the same pass, so :func:`occlusion_responses`
returns every unit's response at once and a query image shared by several units is scored once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fvtrust.empirical.nets.layers import forward_activations, spatial_mean
from fvtrust.empirical.nets.registry import Network


@dataclass(frozen=True)
class OcclusionGrid:
    """Every position (top, left) of a ``patch`` × ``patch`` square in a ``size`` × ``size``
    image at ``stride`` px, the last row/column flush with the border."""

    size: int
    patch: int
    stride: int

    def __post_init__(self) -> None:
        if not 1 <= self.patch <= self.size:
            raise ValueError(f"occlusion patch must be 1..{self.size} px for {self.size} px "
                             f"images, got {self.patch}")
        if self.stride < 1:
            raise ValueError(f"occlusion stride must be >= 1 px, got {self.stride}")

    @classmethod
    def from_fraction(cls, size: int, fraction: float, stride: int) -> OcclusionGrid:
        """A patch of `fraction` of the side (the paper: 0.3, 0.4 main, 0.5)."""
        if not 0 < fraction <= 1:
            raise ValueError(f"occlusion patch fraction must lie in (0, 1], got {fraction}")
        return cls(size, max(1, round(fraction * size)), stride)

    def offsets(self) -> list[int]:
        last = self.size - self.patch
        steps = list(range(0, last + 1, self.stride))
        return steps if steps[-1] == last else [*steps, last]

    def boxes(self) -> torch.Tensor:
        """(P, 2) long tensor of (top, left), row-major."""
        o = torch.tensor(self.offsets())
        return torch.cartesian_prod(o, o)

    def __len__(self) -> int:
        return len(self.offsets()) ** 2


def occlude_with_mean(image: torch.Tensor, boxes: torch.Tensor, patch: int) -> torch.Tensor:
    """(P, 3, S, S): the image once per box, each box filled with its own per-channel mean."""
    out = image.unsqueeze(0).repeat(len(boxes), 1, 1, 1)
    for i, (top, left) in enumerate(boxes.tolist()):
        region = out[i, :, top:top + patch, left:left + patch]
        region[:] = region.mean(dim=(1, 2), keepdim=True)
    return out


@torch.no_grad()
def occlusion_responses(model: Network, layer: str, image: torch.Tensor, grid: OcclusionGrid,
                        batch_size: int = 64) -> torch.Tensor:
    """(P, C): spatial-mean response of every channel of `layer` to every occluded image."""
    if image.ndim != 3 or image.shape[1:] != (grid.size, grid.size):
        raise ValueError(f"occlusion needs one (3, {grid.size}, {grid.size}) image, got "
                         f"{tuple(image.shape)}")
    boxes = grid.boxes()
    out = []
    for start in range(0, len(boxes), batch_size):
        batch = occlude_with_mean(image, boxes[start:start + batch_size], grid.patch)
        act = forward_activations(model, batch.to(model.device), [layer])[layer]
        out.append(spatial_mean(act).float().cpu())
    return torch.cat(out)


@dataclass(frozen=True)
class OcclusionTrial:
    """One trial: the query and the boxes of the least- and most-changing occlusions."""

    least: tuple[int, int]  # argmax of the response: changed the activation least
    most: tuple[int, int]  # argmin: changed it most — the correct answer
    response_least: float
    response_most: float
    response_clean: float


def extreme_occlusions(responses: torch.Tensor, boxes: torch.Tensor, clean: float) -> OcclusionTrial:
    """The argmax/argmin pair of one unit's responses (P,) over the boxes."""
    hi, lo = int(responses.argmax()), int(responses.argmin())
    return OcclusionTrial(tuple(boxes[hi].tolist()), tuple(boxes[lo].tolist()),
                          float(responses[hi]), float(responses[lo]), clean)
