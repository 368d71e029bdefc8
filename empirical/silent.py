"""Silent units / orthogonal filters (*Don't trust your eyes*, Sec. 3): every unit of a conv
layer gets an added branch that is exactly 0 on natural images, yet takes over its
visualization, so the whole layer's visualizations become (near-)identical.

For unit j with filter w_j acting on the layer input h:

    out_j = w_j ⋆ h + ReLU(w′_j ⋆ h − b′_j),

δ = the filter that maximizes the summed response to the layer input of one target
visualization (for a linear response: the normalized sum of its input patches), shared by
all units; δ_j = δ orthogonalized against w_j and rescaled to ‖w_j‖; w′_j = w_j + λ·δ_j,
renormalized to ‖w_j‖ and multiplied by `gain`; b′_j = the maximum of w′_j ⋆ h over the
natural calibration images and *all* positions (the layer's own padding included), streamed,
plus a safety margin (see :class:`SilentCalibration`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from fvtrust.empirical.gates import batches
from fvtrust.empirical.models import Network, get_layer
from torch import nn


def conv_layer(model: Network, layer: str) -> nn.Conv2d:
    """The conv module `layer`, validated: full (not grouped) 2-D convolution."""
    module = get_layer(model, layer)
    if not isinstance(module, nn.Conv2d):
        raise ValueError(f"layer {layer!r} is a {type(module).__name__}, not a convolution with "
                         f"spatial structure; silent units need a Conv2d layer")
    if module.groups != 1:
        raise ValueError(f"layer {layer!r} is a grouped/depthwise convolution "
                         f"(groups={module.groups}); each unit sees one channel only")
    return module


def _conv_input(model: Network, conv: nn.Conv2d, images: torch.Tensor) -> torch.Tensor:
    """The input h of `conv` for `images` (padding applied as the layer applies it)."""
    store: dict[str, torch.Tensor] = {}

    def grab(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        store["h"] = args[0]
        raise _Stop

    pad = getattr(conv, "static_padding", None)
    target = pad if isinstance(pad, nn.Module) and not isinstance(pad, nn.Identity) else conv
    handle = target.register_forward_pre_hook(grab)
    try:
        model(images)
    except _Stop:
        pass
    finally:
        handle.remove()
    h = store["h"]
    if target is not conv:  # lukemelas static "same" padding pads before the conv
        h = pad(h)
    return h


class _Stop(Exception):
    pass


def _response(conv: nn.Conv2d, h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """weight ⋆ h with the conv's stride, dilation and padding (static padding already in h)."""
    return F.conv2d(h, weight, None, conv.stride, conv.padding, conv.dilation)


def shared_direction(conv: nn.Conv2d, h_target: torch.Tensor) -> torch.Tensor:
    """δ: the unit-norm filter maximizing Σ_positions ⟨δ, patch⟩ = the normalized sum of
    the target's input patches."""
    kh, kw = conv.kernel_size
    padded = F.pad(h_target, (conv.padding[1],) * 2 + (conv.padding[0],) * 2)
    patches = F.unfold(padded, (kh, kw), dilation=conv.dilation, stride=conv.stride)
    delta = patches.sum((0, 2)).view(conv.in_channels, kh, kw)
    return delta / delta.norm().clamp_min(1e-12)


def silent_weights(weight: torch.Tensor, delta: torch.Tensor, lam: float = 3.0,
                   gain: float = 100.0) -> torch.Tensor:
    """w′_j = gain·‖w_j‖·(w_j + λδ_j)/‖w_j + λδ_j‖ with δ_j ⟂ w_j, ‖δ_j‖ = ‖w_j‖."""
    w = weight.flatten(1)
    d = delta.flatten()[None].expand_as(w)
    norms = w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    d_orth = d - (d * w).sum(1, keepdim=True) / norms**2 * w
    d_orth = d_orth / d_orth.norm(dim=1, keepdim=True).clamp_min(1e-12) * norms
    w_new = w + lam * d_orth
    w_new = w_new / w_new.norm(dim=1, keepdim=True).clamp_min(1e-12) * norms * gain
    return w_new.view_as(weight)


class SilentConv(nn.Module):
    """out = conv(h) + ReLU(w′ ⋆ h − b′): the conv with every unit's silent branch."""

    def __init__(self, conv: nn.Conv2d, branch_weight: torch.Tensor,
                 branch_bias: torch.Tensor) -> None:
        super().__init__()
        self.conv = conv
        self.register_buffer("branch_weight", branch_weight)
        self.register_buffer("branch_bias", branch_bias)

    def branch(self, h: torch.Tensor) -> torch.Tensor:
        pre = _response(self.conv, h, self.branch_weight) - self.branch_bias.view(1, -1, 1, 1)
        return F.relu(pre)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        pad = getattr(self.conv, "static_padding", None)
        padded = pad(h) if isinstance(pad, nn.Module) else h
        return self.conv(h) + self.branch(padded)


@dataclass
class SilentCalibration:
    """Branch thresholds b′ = max + margin·(max − mean) of w′_j ⋆ h over the natural
    calibration images and positions: held-out images reach a little past the calibration
    maximum (extreme values), renders go far past it."""

    bias: torch.Tensor
    maximum: torch.Tensor
    mean: torch.Tensor
    n_images: int


def calibrate_branch(model: Network, conv: nn.Conv2d, weight: torch.Tensor,
                     images: torch.Tensor, margin: float = 1.0,
                     batch_size: int = 32) -> SilentCalibration:
    """Running maximum and mean of w′_j ⋆ h (streamed), then b′_j."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    running, total, count = None, None, 0
    with torch.no_grad():
        for chunk in batches(images.to(model.device), batch_size):
            r = _response(conv, _conv_input(model, conv, chunk), weight)
            m = r.amax((0, 2, 3))
            running = m if running is None else torch.maximum(running, m)
            s = r.sum((0, 2, 3))
            total = s if total is None else total + s
            count += r.shape[0] * r.shape[2] * r.shape[3]
    mean = total / count
    return SilentCalibration(running + margin * (running - mean), running, mean, len(images))


def install_silent_units(model: Network, layer: str, target: torch.Tensor,
                         calibration: torch.Tensor, lam: float = 3.0, gain: float = 100.0,
                         margin: float = 1.0) -> Network:
    """A copy of `model` whose conv `layer` carries a silent branch per unit.

    `target` is one image in [0, 1] (the target visualization, (3, H, W)); `calibration`
    are natural images for b′.
    """
    import copy

    conv = conv_layer(model, layer)
    with torch.no_grad():
        h_target = _conv_input(model, conv, target[None].to(model.device))
    delta = shared_direction(conv, h_target)
    weight = silent_weights(conv.weight.detach(), delta, lam, gain)
    cal = calibrate_branch(model, conv, weight, calibration, margin)
    silent = copy.deepcopy(model)
    parent_name, _, child = layer.rpartition(".")
    parent = get_layer(silent, parent_name) if parent_name else silent.net
    setattr(parent, child, SilentConv(getattr(parent, child), weight, cal.bias))
    silent.name = f"{model.name}+silent({layer})"
    silent.eval()
    return silent
